//! `phare keys …`: the fleet's keyring (init, rotate, add, revoke, show).

use std::path::PathBuf;

use clap::Subcommand;
use phare_protocol::RoleName;
use phare_provisioning::keys;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a keyring: root, publisher and operator keys (PKCS#8, mode
    /// 0600) and root version 1, `root.json`, which devices pin.
    Init {
        /// The keyring directory; existing keys are never overwritten.
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
        /// The fleet name.
        #[arg(long)]
        fleet: String,
        /// Number of root keys (give each to a different person).
        #[arg(long, default_value_t = 1)]
        root_keys: usize,
        /// Root signatures required to change the root.
        #[arg(long, default_value_t = 1)]
        root_threshold: usize,
        /// Number of publisher keys (sign assignments and alerts).
        #[arg(long, default_value_t = 1)]
        publisher_keys: usize,
        /// Publisher signatures required on a document.
        #[arg(long, default_value_t = 1)]
        publisher_threshold: usize,
        /// Number of operator keys (sign commands).
        #[arg(long, default_value_t = 1)]
        operator_keys: usize,
    },
    /// Replace every key of a role with fresh ones (a new root version).
    Rotate {
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
        /// root, publisher or operator.
        #[arg(long)]
        role: String,
    },
    /// Add a fresh key to a role (a new root version).
    Add {
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
        /// root, publisher or operator.
        #[arg(long)]
        role: String,
        /// Also set the role's threshold.
        #[arg(long)]
        threshold: Option<usize>,
    },
    /// Remove a key from every role (a new root version): documents signed
    /// only by it are refused from then on.
    Revoke {
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
        /// The key id (hex SHA-256 of the public key).
        keyid: String,
    },
    /// Show the current root: version, expiry, roles and keys held here.
    Show {
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
    },
}

/// A role by the name the command line gives it.
fn role_named(name: &str) -> anyhow::Result<RoleName> {
    Ok(match name {
        "root" => RoleName::Root,
        "publisher" => RoleName::Publisher,
        "operator" => RoleName::Operator,
        other => anyhow::bail!("unknown role {other:?}: root, publisher or operator"),
    })
}

/// Where a new root version went, and what it needs before it is published.
fn report_root(written: keys::RootWritten) {
    println!(
        "wrote root version {} to {}",
        written.version,
        written.path.display()
    );
    if written.missing.is_empty() {
        println!(
            "publish it: phare publish --broker <url> {}",
            written.path.display()
        );
    } else {
        println!(
            "it still needs signatures ({}):",
            written.missing.join("; ")
        );
        println!(
            "  phare sign --add-to {} --key <root key>",
            written.path.display()
        );
    }
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Init {
            dir,
            fleet,
            root_keys,
            root_threshold,
            publisher_keys,
            publisher_threshold,
            operator_keys,
        } => {
            let spec = keys::InitSpec {
                root_keys,
                root_threshold,
                publisher_keys,
                publisher_threshold,
                operator_keys,
                operator_threshold: 1,
            };
            let keyring = keys::Keyring::init(&dir, &fleet, spec)?;
            println!("keyring for fleet {fleet:?} written to {}", dir.display());
            println!(
                "pin {} on every device (config key `root`)",
                keyring.root_path().display()
            );
        }
        KeysCommand::Rotate { dir, role } => {
            report_root(keys::Keyring::open(&dir)?.rotate(role_named(&role)?)?)
        }
        KeysCommand::Add {
            dir,
            role,
            threshold,
        } => report_root(keys::Keyring::open(&dir)?.add(role_named(&role)?, threshold)?),
        KeysCommand::Revoke { dir, keyid } => {
            report_root(keys::Keyring::open(&dir)?.revoke(&keyid)?)
        }
        KeysCommand::Show { dir } => {
            let keyring = keys::Keyring::open(&dir)?;
            let root = keyring.root();
            println!(
                "fleet {:?}, root version {}, expires {}",
                root.fleet, root.version, root.expires_at
            );
            for role in [RoleName::Root, RoleName::Publisher, RoleName::Operator] {
                let spec = &root.roles[role.as_str()];
                let held: Vec<String> = keyring.held_keys(role).iter().map(|k| k.keyid()).collect();
                println!(
                    "{:>10}: threshold {} of {}",
                    role.as_str(),
                    spec.threshold,
                    spec.keyids.len()
                );
                for keyid in &spec.keyids {
                    println!(
                        "            {keyid}{}",
                        if held.contains(keyid) {
                            "  (held here)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

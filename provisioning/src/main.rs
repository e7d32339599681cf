//! `phare`: the Phare operator tool.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use phare_protocol::RoleName;
use phare_provisioning::ca::Tool;
use phare_provisioning::{alert, fleet, keys, pop, publish};

use cli::authoring::{AssetCommand, AssignmentCommand, StampFlags};
use cli::broker::BrokerCommand;
use cli::device::DeviceCommand;
use cli::flags::{BrokerAuth, FleetBroker};

mod cli;

/// Operate a fleet of Phare screens: keys, signed documents, publishing,
/// the fleet's certificates and broker, device enrolment and commands,
/// proof of play. (The self-contained demo is `phare-demo`, `make demo`.)
#[derive(Parser)]
#[command(name = "phare", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the fleet's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Wrap a JSON document in a DSSE envelope signed by the given keys,
    /// or add signatures to an existing envelope (threshold signing by key
    /// holders in different places). A document devices would reject (a
    /// missing or misspelt field, a bad day or time, an unsafe URL, already
    /// expired, another fleet's) or a key devices would not count (another
    /// role's, retired, revoked) is refused with the reason instead.
    ///
    /// With --bump, --version or --issued-now, the payload file is first
    /// rewritten with what they set (pretty JSON, members in the
    /// protocol's order), and those exact bytes are signed: the file is
    /// what was signed.
    Sign {
        /// Document kind: root, assignment, alert or command (read from the
        /// payload when omitted).
        #[arg(long)]
        kind: Option<String>,
        /// PKCS#8 private key file; repeatable.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Sign with every key held in this keyring for the kind's role.
        #[arg(long)]
        keyring: Option<PathBuf>,
        /// The fleet's current root (root.json) that the keys and the fleet
        /// are checked against [default: <keyring>/root.json, else
        /// keys/root.json].
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        /// Add the signatures to this existing envelope (rewritten in place
        /// unless -o is given) instead of signing a payload.
        #[arg(long, conflicts_with = "payload")]
        add_to: Option<PathBuf>,
        /// The JSON payload to sign (its exact bytes are signed).
        #[arg(required_unless_present = "add_to")]
        payload: Option<PathBuf>,
        /// Write the envelope here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        stamp: StampFlags,
    },
    /// Publish signed envelopes on the topics their documents name (retained,
    /// except commands, which are used once). Each is first checked as
    /// devices will (signature threshold against the keyring's root.json,
    /// fleet, expiry): one they would refuse is not published, so it never
    /// replaces the good document the broker retains.
    Publish {
        /// Broker URL (mqtt:// or mqtts://host:port); repeat to publish to
        /// every broker.
        #[arg(long = "broker", required = true)]
        brokers: Vec<String>,
        /// The keyring whose TLS files authenticate to mqtts:// brokers.
        #[arg(long, default_value = "keys")]
        keyring: PathBuf,
        #[command(flatten)]
        auth: BrokerAuth,
        /// Topic prefix, if the fleet does not use `phare/<fleet>/`.
        #[arg(long)]
        prefix: Option<String>,
        /// Envelope files, published in the order given (e.g. a root chain).
        #[arg(required = true)]
        envelopes: Vec<PathBuf>,
    },
    /// Write a new assignment.
    #[command(subcommand)]
    Assignment(AssignmentCommand),
    /// Describe content files, or add them to an assignment.
    #[command(subcommand)]
    Asset(AssetCommand),
    /// Emergency and information alerts over every screen of the fleet.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Proof of play: collect what screens played, export it.
    #[command(subcommand)]
    Pop(PopCommand),
    /// Watch the fleet's screens.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Enrol screens and send them signed commands.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Set up the fleet's MQTT broker (Mosquitto).
    #[command(subcommand)]
    Broker(BrokerCommand),
}

#[derive(Subcommand)]
enum FleetCommand {
    /// One line per screen from its retained status: online, the broker it
    /// uses, assignment version, pending content (assets and bytes
    /// missing), what plays, recent errors.
    Status {
        #[command(flatten)]
        to: FleetBroker,
        /// Print the statuses as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Topic prefix, if the fleet does not use `phare/<fleet>/`.
        #[arg(long)]
        prefix: Option<String>,
        /// Stop listening after this long without a new status.
        #[arg(long, default_value_t = 1000)]
        quiet_ms: u64,
    },
}

#[derive(Subcommand)]
enum AlertCommand {
    /// Sign and publish an alert: it goes over everything on the screens it
    /// targets until it expires or is cleared. Alerts are independent:
    /// each has its own id, and a screen shows the active alert of highest
    /// priority (then the newest) among those that target it. Prints which
    /// screens it reaches (enrolled devices and retained statuses) and
    /// warns about targets that match none.
    Send {
        /// The keyring holding a publisher key (and devices.json).
        #[arg(long, default_value = "keys")]
        keyring: PathBuf,
        /// Broker URL; repeat to publish to every broker.
        #[arg(long = "broker", required = true)]
        brokers: Vec<String>,
        #[command(flatten)]
        auth: BrokerAuth,
        /// Which alert: sending again with the same id replaces it. Default:
        /// a new id from the time (printed, to clear it with).
        #[arg(long)]
        id: Option<String>,
        /// The text shown.
        #[arg(long)]
        message: String,
        /// fullscreen or banner.
        #[arg(long, default_value = "fullscreen")]
        style: String,
        /// Of several active alerts, a screen shows the highest. Default:
        /// 100 for fullscreen, 50 for banner.
        #[arg(long)]
        priority: Option<u32>,
        /// `device:<id>` or `group:<name>`; repeatable. None: the whole fleet.
        #[arg(long = "target")]
        targets: Vec<String>,
        /// How long it stays up, in minutes.
        #[arg(long, default_value_t = 60)]
        minutes: i64,
        /// A cached asset (sha256:…) to show with the text.
        #[arg(long)]
        asset: Option<String>,
    },
    /// Clear one alert (a newer version of it with `active: false`); the
    /// others stay up.
    Clear {
        /// The keyring holding a publisher key.
        #[arg(long, default_value = "keys")]
        keyring: PathBuf,
        /// Broker URL; repeat to publish to every broker.
        #[arg(long = "broker", required = true)]
        brokers: Vec<String>,
        #[command(flatten)]
        auth: BrokerAuth,
        /// The alert to clear (as `alert send` printed it).
        #[arg(long)]
        id: String,
    },
}

// Parsed once at start-up: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum PopCommand {
    /// Subscribe durably and store every proof-of-play record in SQLite,
    /// each exactly once, until Ctrl-C.
    ///
    /// Records count for the screen their topic names; a batch that claims
    /// to come from another screen is refused and counted. Over mqtts://
    /// it connects with the keyring's collector certificate
    /// (tls/collector.pem, from `phare broker config`): the broker gives
    /// each certificate one connection, so the operator's commands do not
    /// knock the collector off.
    Collect {
        #[command(flatten)]
        to: FleetBroker,
        /// The collector's database.
        #[arg(long, default_value = "pop.db")]
        db: PathBuf,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration_s: Option<u64>,
    },
    /// Print the collected records.
    Export {
        #[arg(long, default_value = "pop.db")]
        db: PathBuf,
        /// CSV on standard output (the only format for now).
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
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

/// The document kind of a payload, checked against `--kind` if given.
/// The fleet named on the command line, else the keyring's.
fn role_named(name: &str) -> anyhow::Result<RoleName> {
    Ok(match name {
        "root" => RoleName::Root,
        "publisher" => RoleName::Publisher,
        "operator" => RoleName::Operator,
        other => anyhow::bail!("unknown role {other:?}: root, publisher or operator"),
    })
}

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

async fn alert_command(command: AlertCommand) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    let (keyring_dir, brokers, auth, alert) = match command {
        AlertCommand::Send {
            keyring,
            brokers,
            auth,
            id,
            message,
            style,
            priority,
            targets,
            minutes,
            asset,
        } => {
            let fleet = keys::Keyring::open(&keyring)?.root().fleet.clone();
            let spec = alert::AlertSpec {
                id,
                message,
                style,
                priority,
                targets,
                lasts: jiff::SignedDuration::from_mins(minutes),
                asset,
            };
            (keyring, brokers, auth, alert::new_alert(&fleet, spec, now)?)
        }
        AlertCommand::Clear {
            keyring,
            brokers,
            auth,
            id,
        } => {
            let fleet = keys::Keyring::open(&keyring)?.root().fleet.clone();
            (keyring, brokers, auth, alert::clearing(&fleet, &id, now)?)
        }
    };
    let ring = keys::Keyring::open(&keyring_dir)?;
    let envelope = ring.sign("alert", &serde_json::to_value(&alert)?)?;
    let route = publish::route_for(&envelope, None)?;
    for broker in &brokers {
        let endpoint = auth.endpoint(broker, &keyring_dir);
        publish::publish(
            &endpoint,
            &route.topic,
            envelope.to_json().into_bytes(),
            route.retain,
        )
        .await?;
        let what = if alert.active { "published" } else { "cleared" };
        println!(
            "alert {:?} version {} {what} on {broker}",
            alert.id, alert.version
        );
    }
    if alert.active {
        cli::sign::report_reach(
            alert.targets.as_deref(),
            &alert.fleet,
            &keyring_dir,
            &auth,
            &brokers[0],
        )
        .await;
        println!(
            "clear it with: phare alert clear --keyring {} --broker {} --id {}",
            keyring_dir.display(),
            brokers[0],
            alert.id
        );
    }
    Ok(())
}

fn keys_command(command: KeysCommand) -> anyhow::Result<()> {
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

fn main() -> std::process::ExitCode {
    phare_common::exit_code(run())
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Keys(command) => keys_command(command)?,
        Command::Sign {
            kind,
            keys: key_files,
            keyring,
            root,
            add_to,
            payload,
            output,
            stamp,
        } => runtime.block_on(cli::sign::sign(cli::sign::SignRequest {
            kind,
            key_files,
            keyring,
            root,
            add_to,
            payload,
            output,
            stamp,
        }))?,
        Command::Publish {
            brokers,
            keyring,
            auth,
            prefix,
            envelopes,
        } => runtime.block_on(cli::sign::publish(cli::sign::PublishRequest {
            brokers,
            keyring,
            auth,
            prefix,
            envelopes,
        }))?,
        Command::Assignment(command) => cli::authoring::assignment(command)?,
        Command::Asset(command) => cli::authoring::asset(command)?,
        Command::Alert(command) => runtime.block_on(alert_command(command))?,
        Command::Pop(PopCommand::Collect { to, db, duration_s }) => runtime.block_on(async {
            let fleet = to.fleet_name()?;
            let stop = async {
                match duration_s {
                    Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            println!(
                "collecting proof of play of fleet {fleet:?} into {}",
                db.display()
            );
            let collector = to.endpoint(Tool::Collector);
            pop::collect(&collector, &fleet, &db, stop, |arrival| match arrival {
                pop::Arrival::Stored { device, new } => println!("{device}: {new} new records"),
                pop::Arrival::Refused { why, refused } => {
                    eprintln!("refused a batch ({refused} so far): {why}")
                }
            })
            .await
        })?,
        Command::Pop(PopCommand::Export { db, csv: _ }) => {
            pop::PlayLog::open(&db)?.export_csv(std::io::stdout().lock())?;
        }
        Command::Fleet(FleetCommand::Status {
            to,
            json,
            prefix,
            quiet_ms,
        }) => {
            let topics = match prefix {
                Some(prefix) => phare_protocol::topics::Topics::new(&prefix),
                None => phare_protocol::topics::Topics::for_fleet(&to.fleet_name()?),
            };
            let quiet = Duration::from_millis(quiet_ms);
            let collected =
                runtime.block_on(fleet::collect(&to.endpoint(Tool::Operator), &topics, quiet))?;
            // JSON output escapes every control character itself.
            if json {
                println!("{}", serde_json::to_string_pretty(&collected.statuses)?);
            } else {
                print!("{}", fleet::table(&collected.statuses));
            }
            if !collected.refused.is_empty() {
                eprintln!(
                    "ignored {} status(es) that spoke for another screen or were malformed:",
                    collected.refused.len()
                );
                for why in &collected.refused {
                    eprintln!("  {why}");
                }
            }
        }
        Command::Device(command) => runtime.block_on(cli::device::run(command))?,
        Command::Broker(command) => cli::broker::run(command)?,
    }
    Ok(())
}

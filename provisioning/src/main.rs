//! `phare`: the Phare operator tool.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use phare_protocol::Envelope;
use phare_protocol::envelope::payload_type;
use phare_provisioning::{asset, demo, keys, publish};

/// Operate a fleet of Phare screens: keys, signed documents, publishing,
/// and a self-contained demo.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the fleet's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Wrap a JSON document in a DSSE envelope signed by the given keys.
    Sign {
        /// Document kind: root, assignment, alert or command.
        #[arg(long)]
        kind: String,
        /// PKCS#8 private key file; repeat for threshold signing.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// The JSON payload to sign (its exact bytes are signed).
        payload: PathBuf,
        /// Write the envelope here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Publish a signed envelope, retained, to the topic its document names.
    Publish {
        /// Broker URL (mqtt://host:port); repeat to publish to every broker.
        #[arg(long = "broker", required = true)]
        brokers: Vec<String>,
        /// Topic prefix, if the fleet does not use `phare/<fleet>/`.
        #[arg(long)]
        prefix: Option<String>,
        /// The envelope file.
        envelope: PathBuf,
    },
    /// Describe content files for an assignment.
    #[command(subcommand)]
    Asset(AssetCommand),
    /// Run the whole product locally: broker, origin, media, keys, player.
    Demo {
        /// Play to a fake sink and print status lines only.
        #[arg(long)]
        headless: bool,
        /// Keep the demo's files here (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration_s: Option<u64>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create root, publisher and operator keys (mode 0600) and the signed
    /// root document (root.json) that devices pin.
    Init {
        /// Directory for the keys; existing keys are never overwritten.
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
        /// The fleet name.
        #[arg(long)]
        fleet: String,
    },
}

#[derive(Subcommand)]
enum AssetCommand {
    /// Print the signed-entry JSON of a file: sha256 id, size, media type,
    /// and its URL under each origin.
    Add {
        file: PathBuf,
        /// Origin base URL the file is (or will be) uploaded to; repeatable.
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Media type, when the file extension does not tell.
        #[arg(long)]
        media_type: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttd=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Keys(KeysCommand::Init { dir, fleet }) => {
            let keys = keys::FleetKeys::generate(&fleet)?;
            keys.save(&dir)?;
            println!("keys for fleet {fleet:?} written to {}", dir.display());
            println!(
                "pin {} on every device (config key `root`)",
                dir.join(keys::ROOT_ENVELOPE_FILE).display()
            );
        }
        Command::Sign {
            kind,
            keys: key_files,
            payload,
            output,
        } => {
            let body = std::fs::read(&payload)
                .with_context(|| format!("reading {}", payload.display()))?;
            let document: serde_json::Value = serde_json::from_slice(&body)
                .with_context(|| format!("{} is not JSON", payload.display()))?;
            anyhow::ensure!(
                document.get("kind").and_then(|k| k.as_str()) == Some(kind.as_str()),
                "the payload's \"kind\" is not {kind:?}"
            );
            let signers = key_files
                .iter()
                .map(|p| keys::read_private_key(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let envelope = Envelope::sign(
                &payload_type(&kind),
                &body,
                &signers.iter().collect::<Vec<_>>(),
            );
            match output {
                Some(path) => std::fs::write(&path, envelope.to_json())?,
                None => println!("{}", envelope.to_json()),
            }
        }
        Command::Publish {
            brokers,
            prefix,
            envelope,
        } => {
            let bytes = std::fs::read(&envelope)
                .with_context(|| format!("reading {}", envelope.display()))?;
            let parsed = Envelope::from_slice(&bytes)?;
            let topic = publish::topic_for(&parsed, prefix.as_deref())?;
            runtime.block_on(async {
                for broker in &brokers {
                    publish::publish_retained(broker, &topic, bytes.clone()).await?;
                    println!("published to {broker} {topic}");
                }
                anyhow::Ok(())
            })?;
        }
        Command::Asset(AssetCommand::Add {
            file,
            origins,
            media_type,
        }) => {
            let (id, entry) = asset::entry_for(&file, &origins, media_type.as_deref())?;
            let json = serde_json::json!({ id.to_string(): entry });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Command::Demo {
            headless,
            dir,
            duration_s,
        } => {
            runtime.block_on(demo::run(demo::DemoOptions {
                headless,
                dir,
                duration: duration_s.map(Duration::from_secs),
            }))?;
        }
    }
    Ok(())
}

//! `phare device …`: enrol a screen, and send it signed commands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use phare_protocol::document::{Action, ImageFormat};
use phare_protocol::report::CommandResponse;
use phare_protocol::topics::Topics;
use phare_provisioning::command::{self, Request};
use phare_provisioning::enrol::{self, DeviceSpec};
use phare_provisioning::keys::Keyring;
use phare_provisioning::mosquitto::INSTALL_SCRIPT;
use phare_provisioning::terminal::{MAX_SHOWN, printable};

use super::flags::BrokerAuth;

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Enrol a screen: its key, certificate and boot-partition bundle.
    ///
    /// Creates the fleet CA on first use, issues the device a client
    /// certificate (CN = its name), records it in <keyring>/devices.json,
    /// and writes a bundle directory (player.toml, root.json, ca.pem,
    /// device.pem, device.key) to copy onto the Pi's boot partition as
    /// `phare/`. Then re-run `phare broker config` for its group ACL.
    Add {
        /// The device id: its MQTT topic level and certificate name.
        name: String,
        /// A group it belongs to, in order of preference; repeatable.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Broker URL (mqtts://host[:port]), in order of preference;
        /// repeatable.
        #[arg(long = "broker", required = true)]
        brokers: Vec<String>,
        /// Origin base URL for relative asset URLs, in order of
        /// preference; repeatable.
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// The keyring: the fleet, its root and its CA (in tls/).
        #[arg(long, default_value = "keys")]
        keyring: PathBuf,
        /// Where to write the bundle (default: <keyring>/devices/<name>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Enrol an enrolled device again: a new key and certificate (the
        /// old certificate stays valid until it expires).
        #[arg(long)]
        reissue: bool,
    },
    /// Cut a lost or stolen screen off the broker: revoke its certificates.
    ///
    /// Every certificate the fleet CA issued to the screen is marked
    /// revoked in <keyring>/tls/issued.json, and a new certificate
    /// revocation list, signed by the CA, is written among the broker's
    /// files (crl.pem, which the config of `phare broker config` names as
    /// `crlfile`). Install it on the broker host with their install.sh,
    /// which restarts Mosquitto: from then on the broker refuses the
    /// certificate in the TLS handshake. A reload (SIGHUP) rereads the list too, but Mosquitto
    /// keeps connections already open, the stolen screen's included; a
    /// restart closes it, and the other screens reconnect by themselves.
    /// To put a replacement screen under the same name, `phare device add
    /// --reissue`.
    Revoke {
        /// The device id.
        name: String,
        /// The keyring: the fleet, its CA and the record of what it issued.
        #[arg(long, default_value = "keys")]
        keyring: PathBuf,
        /// The broker's files, where the list is written (default:
        /// <keyring>/broker/).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Save what the screen shows (PNG or JPEG thumbnail).
    Screenshot {
        #[command(flatten)]
        to: Target,
        /// The image file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Restart the screen's computer.
    Reboot(Target),
    /// Start the programme again from its first item.
    Reload(Target),
    /// Wake the screen until its next opening-hours change.
    DisplayOn(Target),
    /// Put the screen in standby until its next opening-hours change.
    DisplayOff(Target),
    /// Set the sound volume.
    SetVolume {
        #[command(flatten)]
        to: Target,
        /// From 0.0 (mute) through 1.0 (the source's level) to 4.0 (amplified).
        #[arg(long, value_parser = volume)]
        volume: f64,
    },
    /// Delete cached content that the current programmes do not use.
    PurgeCache(Target),
    /// Publish a fresh status now.
    ReportNow(Target),
}

/// Which screen, through which broker, and how long to wait for it.
#[derive(Args)]
pub struct Target {
    /// The device id.
    name: String,
    /// Broker URL (mqtt:// or mqtts://).
    #[arg(long)]
    broker: String,
    /// The keyring holding an operator key (and the TLS files).
    #[arg(long, default_value = "keys")]
    keyring: PathBuf,
    /// Topic prefix, if the fleet does not use `phare/<fleet>/`.
    #[arg(long)]
    prefix: Option<String>,
    /// How long to wait for the answer.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    #[command(flatten)]
    auth: BrokerAuth,
}

fn volume(text: &str) -> Result<f64, String> {
    let volume: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if phare_protocol::document::VOLUME.contains(&volume) {
        Ok(volume)
    } else {
        Err("the volume goes from 0.0 (mute) through 1.0 to 4.0 (amplified)".into())
    }
}

pub async fn run(command: DeviceCommand) -> anyhow::Result<()> {
    let (to, action, output) = match command {
        DeviceCommand::Add {
            name,
            groups,
            brokers,
            origins,
            keyring,
            out,
            reissue,
        } => {
            let spec = DeviceSpec {
                name,
                groups,
                brokers,
                origins,
            };
            let enrolled = enrol::add_device(&keyring, &spec, out.as_deref(), reissue)?;
            if enrolled.ca_created {
                println!("created the fleet CA in {}", keyring.join("tls").display());
            }
            println!(
                "enrolled {} (certificate sha256 {})",
                spec.name, enrolled.cert_sha256
            );
            println!(
                "copy the files of {}/ into the phare/ folder of the Pi's boot partition \
                 (they include the device's private key)",
                enrolled.bundle.display()
            );
            println!(
                "then refresh the broker's ACL: phare broker config --keyring {} --host <broker> …, \
                 and on the broker host sudo sh {}",
                keyring.display(),
                keyring.join("broker").join(INSTALL_SCRIPT).display()
            );
            return Ok(());
        }
        DeviceCommand::Revoke { name, keyring, out } => {
            let out = out.unwrap_or_else(|| keyring.join("broker"));
            let revoked = enrol::revoke_device(&keyring, &name, &out)?;
            if revoked.serials.is_empty() {
                println!("{name}'s certificates were already revoked");
            } else {
                println!(
                    "revoked {name}'s certificate(s), serial {}",
                    revoked.serials.join(", ")
                );
            }
            println!(
                "wrote the new revocation list {}; install it on the broker host:",
                revoked.crl.display()
            );
            let script = out.join(INSTALL_SCRIPT);
            if script.exists() {
                println!("  sudo sh {}", script.display());
            } else {
                println!(
                    "  (no {INSTALL_SCRIPT} there yet: write the broker's files first, \
                     phare broker config --out {} --host <broker> …)",
                    out.display()
                );
            }
            println!(
                "(it restarts mosquitto: a reload, SIGHUP, rereads the list too but keeps \
                 open connections, the screen's included)"
            );
            return Ok(());
        }
        DeviceCommand::Screenshot { to, output } => {
            let format = ImageFormat::Png;
            (to, Action::Screenshot { format }, Some(output))
        }
        DeviceCommand::Reboot(to) => (to, Action::Reboot, None),
        DeviceCommand::Reload(to) => (to, Action::Reload, None),
        DeviceCommand::DisplayOn(to) => (to, Action::DisplayOn, None),
        DeviceCommand::DisplayOff(to) => (to, Action::DisplayOff, None),
        DeviceCommand::SetVolume { to, volume } => (to, Action::SetVolume { volume }, None),
        DeviceCommand::PurgeCache(to) => (to, Action::PurgeCache, None),
        DeviceCommand::ReportNow(to) => (to, Action::ReportNow, None),
    };
    let response = send(&to, action).await?;
    match output {
        Some(path) => {
            let (media_type, size) = command::save_screenshot(&response, &path)?;
            println!("wrote {} ({size} bytes, {media_type})", path.display());
        }
        None => println!("{}: {} done{}", to.name, action.name(), details(&response)),
    }
    Ok(())
}

/// What an answer says beyond the usual fields, e.g. ` (purged_files 3)`.
fn details(response: &CommandResponse) -> String {
    const USUAL: [&str; 5] = ["id", "ok", "action", "at", "error"];
    let response = serde_json::to_value(response).expect("a response always serialises");
    let extra: Vec<String> = response
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| !USUAL.contains(&key.as_str()))
        .map(|(key, value)| printable(&format!("{key} {value}"), MAX_SHOWN))
        .collect();
    if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    }
}

/// Sends one command and returns the device's answer if it is `ok`.
async fn send(to: &Target, action: Action) -> anyhow::Result<CommandResponse> {
    let keyring = Keyring::open(&to.keyring)?;
    let topics = match &to.prefix {
        Some(prefix) => Topics::new(prefix),
        None => Topics::for_fleet(&keyring.root().fleet),
    };
    let endpoint = to.auth.endpoint(&to.broker, &to.keyring);
    let request = Request {
        device: to.name.clone(),
        action,
    };
    let timeout = Duration::from_secs(to.timeout_s);
    let response = command::send(&endpoint, &topics, &keyring, &request, timeout, |spent| {
        eprintln!("waiting for {}… ({} s)", to.name, spent.as_secs())
    })
    .await?;
    if !response.ok {
        bail!(
            "{} refused {}: {}",
            to.name,
            action.name(),
            printable(
                response.error.as_deref().unwrap_or("no reason given"),
                MAX_SHOWN
            )
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    /// The command takes what the device takes (its config and the
    /// command alike go to 4.0).
    #[test]
    fn the_volume_range_is_the_devices() {
        assert_eq!(super::volume("1.5"), Ok(1.5));
        assert_eq!(super::volume("4"), Ok(4.0));
        assert!(super::volume("4.5").is_err());
        assert!(super::volume("-0.1").is_err());
        assert!(super::volume("loud").is_err());
    }
}

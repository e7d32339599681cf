//! `phare alert send` and `phare alert clear`: an alert signed and
//! published to every broker, and the screens it reaches.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use phare_provisioning::{alert, keys, publish};

use super::flags::BrokerAuth;

#[derive(Subcommand)]
pub enum AlertCommand {
    /// Sign and publish an alert: it goes over everything on the screens it
    /// targets until it expires or is cleared. Alerts are independent:
    /// each has its own id, and a screen shows the active alert of highest
    /// priority (then the newest) among those that target it. Prints which
    /// screens it reaches (enrolled devices and retained statuses) and
    /// warns about targets that match none.
    Send {
        #[command(flatten)]
        to: AlertBrokers,
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
        #[command(flatten)]
        to: AlertBrokers,
        /// The alert to clear (as `alert send` printed it).
        #[arg(long)]
        id: String,
    },
}

/// Where an alert is signed and sent.
#[derive(Args)]
pub struct AlertBrokers {
    /// The keyring holding a publisher key (and devices.json, for whom an
    /// alert reaches).
    #[arg(long, default_value = "keys")]
    keyring: PathBuf,
    /// Broker URL; repeat to publish to every broker.
    #[arg(long = "broker", required = true)]
    brokers: Vec<String>,
    #[command(flatten)]
    auth: BrokerAuth,
}

pub async fn run(command: AlertCommand) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    let (to, alert) = match command {
        AlertCommand::Send {
            to,
            id,
            message,
            style,
            priority,
            targets,
            minutes,
            asset,
        } => {
            let fleet = keys::Keyring::open(&to.keyring)?.root().fleet.clone();
            let spec = alert::AlertSpec {
                id,
                message,
                style,
                priority,
                targets,
                lasts: jiff::SignedDuration::from_mins(minutes),
                asset,
            };
            (to, alert::new_alert(&fleet, spec, now)?)
        }
        AlertCommand::Clear { to, id } => {
            let fleet = keys::Keyring::open(&to.keyring)?.root().fleet.clone();
            (to, alert::clearing(&fleet, &id, now)?)
        }
    };
    let AlertBrokers {
        keyring: keyring_dir,
        brokers,
        auth,
    } = to;
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
        super::sign::report_reach(
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

//! `phare pop collect` and `phare pop export`: proof of play.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use phare_provisioning::ca::Tool;
use phare_provisioning::pop;

use super::flags::FleetBroker;

// Parsed once at start-up: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum PopCommand {
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

pub async fn run(command: PopCommand) -> anyhow::Result<()> {
    match command {
        PopCommand::Collect { to, db, duration_s } => {
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
        }
        PopCommand::Export { db, csv: _ } => {
            pop::PlayLog::open(&db)?.export_csv(std::io::stdout().lock())
        }
    }
}

//! `phare fleet status`: the fleet's screens from their retained statuses.

use std::time::Duration;

use clap::Subcommand;
use phare_protocol::topics::Topics;
use phare_provisioning::ca::Tool;
use phare_provisioning::fleet;

use super::flags::FleetBroker;

#[derive(Subcommand)]
pub enum FleetCommand {
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

pub async fn run(command: FleetCommand) -> anyhow::Result<()> {
    let FleetCommand::Status {
        to,
        json,
        prefix,
        quiet_ms,
    } = command;
    let topics = match prefix {
        Some(prefix) => Topics::new(&prefix),
        None => Topics::for_fleet(&to.fleet_name()?),
    };
    let quiet = Duration::from_millis(quiet_ms);
    let collected = fleet::collect(&to.endpoint(Tool::Operator), &topics, quiet).await?;
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
    Ok(())
}

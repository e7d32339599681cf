//! `phare-demo`: Phare on one machine (`make demo`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Run the whole product locally: an embedded broker and origin, generated
/// media, fresh keys, a signed assignment, and the real `phare-player`
/// (built beside this binary) playing it.
#[derive(Parser)]
#[command(name = "phare-demo", version)]
struct Args {
    /// Play to a fake sink and print status lines only.
    #[arg(long)]
    headless: bool,
    /// Keep the demo's files here (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration_s: Option<u64>,
}

fn main() -> std::process::ExitCode {
    phare_common::exit_code(run())
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttd=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    tokio::runtime::Runtime::new()?.block_on(phare_demo::run(phare_demo::DemoOptions {
        headless: args.headless,
        dir: args.dir,
        duration: args.duration_s.map(Duration::from_secs),
    }))
}

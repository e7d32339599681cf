//! `phare-player --config /etc/phare/player.toml`

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use phare_player::agent::Agent;
use phare_player::config::Config;

/// The Phare signage player: plays signed playlists from its local cache
/// and follows its fleet over MQTT. Opens no listening socket.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The device configuration (TOML).
    #[arg(long, default_value = "/etc/phare/player.toml")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal; the journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let config = Config::load(&args.config)?;
    // One TLS crypto provider for the whole process: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let agent = Agent::start(config)?;
        agent.run(shutdown_signal()).await;
        anyhow::Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM (systemd stop).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

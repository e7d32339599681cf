//! `phare-player --config /etc/phare/player.toml`

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use phare_common::files::{Access, write_atomic};
use phare_player::agent::Agent;
use phare_player::config::Config;
use phare_player::render::Screenshots;
use phare_player::watchdog::{self, Heartbeat};

/// The Phare signage player: plays signed playlists from its local cache
/// and follows its fleet over MQTT. Opens no listening socket.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The device configuration (TOML).
    #[arg(long, default_value = "/etc/phare/player.toml")]
    config: PathBuf,
    /// Write a screenshot (PNG and JPEG thumbnail) into this directory
    /// whenever the process gets SIGUSR1 (overrides `display.screenshot_dir`).
    #[arg(long)]
    screenshot_dir: Option<PathBuf>,
    /// Run this many simulated devices instead (no screen; ids
    /// `<device_id>-00000`…, data under `<data_dir>/<id>/`): load for a
    /// broker and an origin, as the `fleet` benchmark does.
    #[arg(long, value_name = "DEVICES")]
    simulate: Option<usize>,
}

fn main() -> std::process::ExitCode {
    phare_common::exit_code(run())
}

fn run() -> anyhow::Result<()> {
    one_malloc_arena();
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
    let screenshot_dir = args
        .screenshot_dir
        .or_else(|| config.display.screenshot_dir.clone());
    // One TLS crypto provider for the whole process: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(devices) = args.simulate {
        // One thread for all the simulated devices: a fleet benchmark runs
        // several such processes on few cores, where a thread pool per
        // process only adds wake-ups across threads and contention on the
        // one malloc arena (a 10,000-device rollout took a third less time
        // so; `make bench-fleet`). Each device runs the same code either way.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        return runtime.block_on(phare_player::simulate::run(
            config,
            devices,
            shutdown_signal(),
        ));
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let agent = Agent::start(config)?;
        if let Some(dir) = screenshot_dir {
            tokio::spawn(screenshot_on_signal(agent.screenshots(), dir));
        }
        // Playing from cache from here on: systemd may consider us started.
        let heartbeat = Heartbeat::from_env();
        if let Some(period) = heartbeat.period() {
            tracing::info!(?period, "pinging the systemd watchdog from the agent loop");
        }
        watchdog::ready();
        let shutdown = async {
            shutdown_signal().await;
            watchdog::stopping();
        };
        agent.run(shutdown, heartbeat).await;
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

/// Writes a screenshot into `dir` every time the process gets SIGUSR1:
/// local diagnostics that need no broker (`kill -USR1 $(pidof phare-player)`).
async fn screenshot_on_signal(screenshots: Screenshots, dir: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut usr1 = match signal(SignalKind::user_defined1()) {
        Ok(usr1) => usr1,
        Err(e) => return tracing::error!(error = %e, "cannot listen for SIGUSR1"),
    };
    while usr1.recv().await.is_some() {
        let (shots, dir) = (screenshots.clone(), dir.clone());
        // Encoding takes a fraction of a second: off the async threads.
        match tokio::task::spawn_blocking(move || write_screenshot(&shots, &dir)).await {
            Ok(Ok(path)) => tracing::info!(path = %path.display(), "screenshot written"),
            Ok(Err(e)) => tracing::error!(error = %e, "screenshot failed"),
            Err(e) => tracing::error!(error = %e, "screenshot task failed"),
        }
    }
}

/// `screenshot-<unix ms>.png` and `.jpg`, each renamed into place whole, so
/// a reader never sees a partial file.
fn write_screenshot(screenshots: &Screenshots, dir: &Path) -> anyhow::Result<PathBuf> {
    let shot = screenshots.take()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = format!("screenshot-{}", jiff::Timestamp::now().as_millisecond());
    for (extension, bytes) in [("jpg", &shot.jpeg_thumbnail), ("png", &shot.png)] {
        let path = dir.join(format!("{stem}.{extension}"));
        write_atomic(&path, bytes, Access::Public)?;
    }
    Ok(dir.join(format!("{stem}.png")))
}

/// glibc gives threads their own malloc arenas (up to eight per core), and
/// each keeps the frame-sized blocks freed in it: with a decoder's, the
/// producers' and the output's threads, that held 15 MB more at 1080p than
/// one shared arena, which costs no measurable CPU here (`make bench-cpu`).
/// Must run before any thread starts.
fn one_malloc_arena() {
    // SAFETY: mallopt only sets a tunable, and no other thread exists yet.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}

//! `phare-player --simulate N`: N devices in one process, each with the
//! real link, trust, store and cache (and none with a screen), to load a
//! broker and an origin the way a fleet does (the `fleet` benchmark).
//!
//! Device `i` is `<device_id>-<i>` (five digits) with its own data under
//! `<data_dir>/<its id>/`; everything else comes from the one config.

use std::path::PathBuf;

use anyhow::Context;
use tokio::sync::watch;

use crate::agent::Agent;
use crate::config::Config;
use crate::watchdog::Heartbeat;

/// The id of simulated device `index`.
pub fn device_id(base: &str, index: usize) -> String {
    format!("{base}-{index:05}")
}

/// Runs `devices` simulated devices until `shutdown` resolves.
pub async fn run(
    config: Config,
    devices: usize,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    raise_file_limit();
    let (stop, stopped) = watch::channel(false);
    let mut agents = tokio::task::JoinSet::new();
    for index in 0..devices {
        let mut device = config.clone();
        device.device_id = device_id(&config.device_id, index);
        device.data_dir = config.data_dir.join(&device.device_id);
        let data_dir: PathBuf = device.data_dir.clone();
        let agent = Agent::start_simulated(device)
            .with_context(|| format!("starting the device in {}", data_dir.display()))?;
        let mut stopped = stopped.clone();
        let stop_requested = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        agents.spawn(agent.run(stop_requested, Heartbeat::disabled()));
    }
    tracing::info!(devices, "simulated devices running");
    shutdown.await;
    let _ = stop.send(true);
    while agents.join_next().await.is_some() {}
    Ok(())
}

/// Each device holds a connection, SQLite files and a timer: thousands of
/// descriptors, past the usual soft limit of 1024.
fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(error = %e, "cannot raise the open file limit");
    }
}

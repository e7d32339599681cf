//! `phare-demo` (`make demo`): the whole product on one laptop. An
//! embedded broker, an embedded origin, generated media, fresh keys, a
//! signed assignment published with the operator tool's own code, and the
//! real `phare-player` playing it.
//!
//! Apart from `phare`, so that the operator tool links no GStreamer and
//! no embedded broker or web server: those are the demo's and the tests'
//! ([`media`], [`broker`], [`origin`]).

pub mod broker;
pub mod media;
pub mod origin;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use phare_common::time::sleep_until_opt;
use phare_protocol::report::Status;
use phare_provisioning::asset::entry_for;
use phare_provisioning::authoring::{Skeleton, Stamp, add_asset, new_assignment, stamp};
use phare_provisioning::keys::{InitSpec, Keyring};
use phare_provisioning::publish::{publish, route_for};

use crate::origin::Origin;

pub struct DemoOptions {
    /// Render to a fake sink and only print status lines.
    pub headless: bool,
    /// Where to keep everything; a temporary directory otherwise.
    pub dir: Option<PathBuf>,
    /// Stop by itself after this long (for scripted runs).
    pub duration: Option<Duration>,
}

const FLEET: &str = "demo";
const DEVICE: &str = "lobby-1";

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = options
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let media_dir = dir.join("media");
    std::fs::create_dir_all(&media_dir)?;

    println!("phare-demo: generating media in {}", media_dir.display());
    let clips = [
        ("welcome.mp4", "smpte", "Welcome to Phare"),
        ("notice.png", "pinwheel", "Lobby notice — café à 10h"),
        ("ball.mp4", "ball", "Gapless? Item 3"),
    ];
    for (name, pattern, label) in clips {
        let path = media_dir.join(name);
        if name.ends_with(".png") {
            media::write_png(&path, 1280, 720, pattern, label)?;
        } else {
            media::write_video(&path, 4, 1280, 720, pattern, label)?;
        }
    }

    let broker = broker::start_embedded()?;
    let broker_url = format!("mqtt://{broker}");
    let origin = Origin::serve(&media_dir, "127.0.0.1:0".parse()?).await?;
    println!("phare-demo: broker {broker_url}, origin {}", origin.url());

    let keys_dir = dir.join("keys");
    if keys_dir.exists() {
        std::fs::remove_dir_all(&keys_dir)?;
    }
    let keyring = Keyring::init(&keys_dir, FLEET, InitSpec::default())?;

    let now = Timestamp::now();
    let skeleton = Skeleton {
        fleet: FLEET.into(),
        target: format!("device:{DEVICE}"),
        timezone: "UTC".into(),
        lasts: SignedDuration::from_hours(30 * 24),
    };
    let mut assignment = new_assignment(&skeleton, now)?;
    // A version of its own for each run: a kept --dir keeps the player's
    // version floor too.
    let version = u64::try_from(now.as_second())?;
    let this_run = Stamp {
        version: Some(version),
        issued_at: None,
    };
    stamp(&mut assignment, "assignment", this_run)?;
    for (name, _, _) in clips {
        let (id, entry) = entry_for(&media_dir.join(name), &[origin.url()], None)?;
        let duration_ms = entry.is_image().then_some(4000);
        add_asset(&mut assignment, &id, &entry, None, duration_ms)?;
    }
    let envelope = keyring.sign("assignment", &assignment)?;
    let route = route_for(&envelope, None)?;
    publish(
        &broker_url,
        &route.topic,
        envelope.to_json().into_bytes(),
        route.retain,
    )
    .await?;
    println!(
        "phare-demo: published a signed assignment of {} items",
        clips.len()
    );

    let data_dir = dir.join("player");
    std::fs::create_dir_all(&data_dir)?;
    let sink = if options.headless { "fake" } else { "auto" };
    let config = format!(
        "device_id = \"{DEVICE}\"\nfleet = \"{FLEET}\"\nbrokers = [\"{broker_url}\"]\norigins = [\"{}\"]\n\
         root = \"{}\"\ndata_dir = \"{}\"\nvideo_sink = \"{sink}\"\nstatus_interval_s = 5\n\
         # A window that fits a laptop screen (a sink window takes the canvas size).\n\
         [display]\nwidth = 1280\nheight = 720\n",
        origin.url(),
        keyring.root_path().display(),
        data_dir.display(),
    );
    let config_path = dir.join("player.toml");
    std::fs::write(&config_path, config)?;

    let player_bin = sibling_binary("phare-player")?;
    let mut player = tokio::process::Command::new(&player_bin)
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", player_bin.display()))?;
    println!("phare-demo: player started ({sink} sink). Ctrl-C stops everything.");

    let status_path = data_dir.join("status.json");
    let mut last_line = String::new();
    let deadline = options.duration.map(|d| tokio::time::Instant::now() + d);
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sleep_until_opt(deadline) => break,
            exit = player.wait() => anyhow::bail!("the player exited: {}", exit?),
            _ = ticks.tick() => {
                let line = status_line(&status_path);
                if !line.is_empty() && line != last_line {
                    println!("status: {line}");
                    last_line = line;
                }
            }
        }
    }
    println!("phare-demo: stopping");
    if let Some(pid) = player.id() {
        // SIGTERM: the player stops cleanly and says it went offline.
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(5), player.wait())
        .await
        .is_err()
    {
        player.kill().await?;
    }
    Ok(())
}

/// A binary installed next to this one (`phare-player` beside
/// `phare-demo`).
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("no directory for the current executable")?
        .join(name);
    anyhow::ensure!(
        path.exists(),
        "{} not found; build it with `cargo build --bins`",
        path.display()
    );
    Ok(path)
}

/// One human line from the player's status.json.
fn status_line(path: &Path) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let Ok(status) = serde_json::from_slice::<Status>(&bytes) else {
        return String::new();
    };
    let what = match (&status.playing, &status.pending_assignment) {
        (Some(playing), _) => format!(
            "playing {} item {} ({})",
            playing.playlist,
            playing.item,
            playing
                .asset
                .as_deref()
                .map_or_else(String::new, |a| a.chars().take(19).collect())
        ),
        (None, Some(pending)) => {
            format!("downloading ({} assets missing)", pending.assets_missing)
        }
        (None, None) => "idle".to_string(),
    };
    format!(
        "{what}; broker {}; cache {} assets, {} bytes; {} errors",
        status.broker.as_deref().unwrap_or("none"),
        status.cache.assets,
        status.cache.bytes,
        status.errors.len()
    )
}

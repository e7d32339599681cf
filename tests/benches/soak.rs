//! `soak`: the real player (fake output) through hours of what a lobby
//! screen lives through, compressed: assignment switches every couple of
//! seconds, alerts raised and cleared, the broker and the origin killed and
//! restarted, the disk filled to the last byte, the clock thrown into 2100
//! and back (libfaketime). It fails if the player's resident memory, open
//! file descriptors or threads drift once warmed up, or if it stops obeying.
//!
//! `SOAK_HOURS` (default 0.05: three minutes, for CI) sets the length.
//! The data directory is a 96 MiB tmpfs of its own, so filling it fills
//! nothing else: run as root (CI) or with sudo. Writes
//! `target/bench/soak.json` (docs/protocol.md §15).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use phare_tests::*;
use serde_json::json;

/// One step of the scenario: a switch, and what else is due.
const STEP: Duration = Duration::from_millis(1500);
/// Samples before this share of the run are warm-up.
const WARM_UP: f64 = 0.25;
/// Allowed drift from the first to the last quarter after warm-up.
const MAX_RSS_DRIFT_MB: f64 = 5.0;
const MAX_FD_DRIFT: i64 = 4;
const MAX_THREAD_DRIFT: i64 = 4;
const TMPFS_MB: u64 = 96;

/// What the kernel says of the player's process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_kb: u64,
    fds: u64,
    threads: u64,
}

fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the player runs");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Sample {
        rss_kb: field("VmRSS:"),
        threads: field("Threads:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as u64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `program args` as root (directly, or through sudo).
fn as_root(program: &str, args: &[&str]) {
    let mut command = if is_root() {
        Command::new(program)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg(program);
        sudo
    };
    let status = command.args(args).status().expect("running as root");
    assert!(status.success(), "{program} {args:?}: {status}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// A tmpfs mounted for the run, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, megabytes: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let options = format!("size={megabytes}m,mode=0777");
        as_root(
            "mount",
            &["-t", "tmpfs", "-o", &options, "tmpfs", at.to_str().unwrap()],
        );
        Tmpfs(at.to_path_buf())
    }

    /// Fills it to the last byte; returns the ballast to remove.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let ballast = self.0.join("ballast");
        let mut file = std::fs::File::create(&ballast).unwrap();
        let block = vec![0u8; 1 << 16];
        while file.write_all(&block).is_ok() {}
        let _ = file.flush();
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new(if is_root() { "umount" } else { "sudo" })
            .args(if is_root() { vec![] } else { vec!["umount"] })
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn alert(version: i64, active: bool) -> serde_json::Value {
    let now = Timestamp::now();
    json!({"kind": "alert", "fleet": FLEET, "id": "soak", "version": version, "issued_at": now,
           "expires_at": now.checked_add(SignedDuration::from_mins(10)).unwrap(),
           "active": active, "message": "Soak", "style": "banner"})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hours: f64 = std::env::var("SOAK_HOURS")
        .ok()
        .map(|h| h.parse().expect("SOAK_HOURS is a number of hours"))
        .unwrap_or(0.05);
    let length = Duration::from_secs_f64(hours * 3600.0);
    let mut scene = Scene::persistent(Fleet::new()).await;
    let images: Vec<PathBuf> = ["smpte", "ball", "snow", "pinwheel"]
        .iter()
        .map(|pattern| scene.fleet.image(&format!("{pattern}.png"), pattern))
        .collect();
    // The origin comes back on the address the player knows.
    let origin_addr: std::net::SocketAddr = scene
        .origin
        .as_ref()
        .unwrap()
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the origin listens on ip:port");
    let disk = Tmpfs::mount(&scene.work.path().join("data"), TMPFS_MB);
    let clock = scene.work.path().join("faketime");
    std::fs::write(&clock, "+0\n").unwrap();
    let screen = Screen {
        env: faketime_env(&clock),
        ..Screen::fake()
    };

    let mut version = 1;
    scene
        .publish_assignment(version, &[&images[0], &images[1]])
        .await;
    let player = scene.start_player_on(
        &screen,
        "status_interval_s = 5\n[cache]\nmin_free_bytes = 8388608\n",
    );
    player.wait_status("the first assignment", playing_version(1));
    let pid = player.pid().unwrap();

    let started = Instant::now();
    let mut samples: Vec<(Duration, Sample)> = Vec::new();
    let (mut alerts, mut outages, mut full_disks, mut clock_jumps) = (0, 0, 0, 0);
    let mut alert_version = 0;
    let mut ballast: Option<PathBuf> = None;
    let mut step: u64 = 0;
    while started.elapsed() < length {
        step += 1;
        // A switch: two of the four images, in a new order each time.
        version += 1;
        let first = (step as usize) % images.len();
        let second = (first + 1 + step as usize / images.len()) % images.len();
        let files = if first == second {
            vec![images[first].as_path()]
        } else {
            vec![images[first].as_path(), images[second].as_path()]
        };
        scene.publish_assignment(version, &files).await;
        if step.is_multiple_of(5) {
            alert_version += 1;
            publish(
                &scene.broker,
                &scene.sign("alert", &alert(alert_version, true)),
            )
            .await;
            alerts += 1;
        } else if step % 5 == 1 && alert_version > 0 {
            alert_version += 1;
            publish(
                &scene.broker,
                &scene.sign("alert", &alert(alert_version, false)),
            )
            .await;
        }
        match step % 40 {
            // The broker dies and comes back (sessions kept on disk).
            10 => {
                scene.broker.restart();
                outages += 1;
            }
            // The origin goes away for a few steps.
            20 => {
                scene.origin = None;
                outages += 1;
            }
            23 => {
                scene.origin = Some(
                    Origin::serve(&scene.fleet.media_dir(), origin_addr)
                        .await
                        .expect("the origin comes back on its port"),
                );
            }
            // The disk fills up, then frees again.
            28 => {
                ballast = Some(disk.fill());
                full_disks += 1;
            }
            31 => {
                if let Some(ballast) = ballast.take() {
                    std::fs::remove_file(ballast).unwrap();
                }
            }
            // A spoofed clock: 2100 for a few steps, then right again.
            34 => {
                std::fs::write(&clock, "@2100-01-01 00:00:00\n").unwrap();
                clock_jumps += 1;
            }
            37 => std::fs::write(&clock, "+0\n").unwrap(),
            _ => {}
        }
        samples.push((started.elapsed(), sample(pid)));
        tokio::time::sleep(STEP).await;
    }
    // Back to normal: the player still obeys.
    if let Some(ballast) = ballast.take() {
        std::fs::remove_file(ballast).unwrap();
    }
    std::fs::write(&clock, "+0\n").unwrap();
    if scene.origin.is_none() {
        scene.origin = Some(
            Origin::serve(&scene.fleet.media_dir(), origin_addr)
                .await
                .unwrap(),
        );
    }
    version += 1;
    scene.publish_assignment(version, &[&images[2]]).await;
    player.wait_status(
        "the last assignment after the soak",
        playing_version(version),
    );
    assert_eq!(player.pid(), Some(pid), "the player was never restarted");

    let after_warm_up: Vec<Sample> = samples
        .iter()
        .filter(|(at, _)| at.as_secs_f64() >= length.as_secs_f64() * WARM_UP)
        .map(|(_, s)| *s)
        .collect();
    let quarter = (after_warm_up.len() / 4).max(1);
    let (head, tail) = (
        &after_warm_up[..quarter],
        &after_warm_up[after_warm_up.len() - quarter..],
    );
    let drift = |f: fn(&Sample) -> f64| {
        median(tail.iter().map(f).collect()) - median(head.iter().map(f).collect())
    };
    let rss_drift_mb = drift(|s| s.rss_kb as f64 / 1024.0);
    let fd_drift = drift(|s| s.fds as f64) as i64;
    let threads_drift = drift(|s| s.threads as f64) as i64;
    let peak_rss_mb = samples.iter().map(|(_, s)| s.rss_kb).max().unwrap() as f64 / 1024.0;
    let switches = version - 1;
    let report = json!({
        "hours_simulated": started.elapsed().as_secs_f64() / 3600.0,
        "switches": switches,
        "alerts": alerts,
        "outages": outages,
        "full_disks": full_disks,
        "clock_jumps": clock_jumps,
        "rss_drift_mb": rss_drift_mb,
        "fd_drift": fd_drift,
        "threads_drift": threads_drift,
        "peak_rss_mb": peak_rss_mb,
        "samples": samples.len(),
    });
    println!(
        "soak: {:.2} h, {switches} switches, {alerts} alerts, {outages} outages, \
         {full_disks} full disks, {clock_jumps} clock jumps",
        started.elapsed().as_secs_f64() / 3600.0
    );
    println!(
        "drift after warm-up: RSS {rss_drift_mb:+.1} MB (peak {peak_rss_mb:.1} MB), \
         fds {fd_drift:+}, threads {threads_drift:+}"
    );
    write_bench_report("soak", &report);
    drop(disk);
    assert!(
        rss_drift_mb <= MAX_RSS_DRIFT_MB,
        "RSS grew by {rss_drift_mb:.1} MB"
    );
    assert!(fd_drift <= MAX_FD_DRIFT, "{fd_drift} more open files");
    assert!(
        threads_drift <= MAX_THREAD_DRIFT,
        "{threads_drift} more threads"
    );
}

//! `cache`: fetch and verify 1 GiB of content from a loopback origin
//! (docs/protocol.md §15), next to `curl -o` + `sha256sum` of the same files in the
//! same run. Also the player's peak RSS (VmHWM) after a small fetch and
//! after the large one: it must not grow with the amount fetched. Writes
//! target/bench/cache.json.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use phare_tests::cache::{blob, with_blobs};
use phare_tests::*;

const FILES: usize = 8;
const FILE_BYTES: usize = 128 << 20;
const SMALL_BYTES: usize = 16 << 20;

/// Peak resident set of a process, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb / 1024.0
}

/// Publishes `version` with `files` and times it until the player has
/// fetched and verified them all and made the assignment active.
async fn fetch_all(scene: &Scene, player: &Player, version: u64, files: &[&Path]) -> Duration {
    let assignment = with_blobs(scene.fleet.assignment(version, &[]), files);
    let started = Instant::now();
    publish(&scene.broker, &scene.fleet.sign(&assignment)).await;
    while player
        .status()
        .is_none_or(|s| s["assignment"]["version"] != version)
    {
        assert!(started.elapsed() < TIMEOUT * 10, "{}", player.log_tail());
        std::thread::sleep(Duration::from_millis(5));
    }
    started.elapsed()
}

/// `curl -o` each file, then `sha256sum` them all: the baseline.
fn curl_and_hash(origin: &str, files: &[&Path], out: &Path) -> Duration {
    let started = Instant::now();
    let mut copies: Vec<PathBuf> = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let copy = out.join(name);
        let ok = Command::new("curl")
            .args(["-sSf", "-o"])
            .arg(&copy)
            .arg(format!("{origin}{name}"))
            .status()
            .expect("curl is installed (scripts/install-deps.sh)")
            .success();
        assert!(ok, "curl failed for {name}");
        copies.push(copy);
    }
    let ok = Command::new("sha256sum")
        .args(&copies)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "sha256sum failed");
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scene = Scene::new().await;
    let media = scene.fleet.media_dir();
    let small = blob(&media, "small.bin", SMALL_BYTES);
    let large: Vec<PathBuf> = (0..FILES)
        .map(|i| blob(&media, &format!("large-{i}.bin"), FILE_BYTES))
        .collect();
    let large: Vec<&Path> = large.iter().map(PathBuf::as_path).collect();
    let total = (FILES * FILE_BYTES) as f64;
    let origin = scene.origin.as_ref().unwrap().url();

    // The cache may take the whole disk but its floor for this run.
    let mut player = Player::start_with(
        scene.work.path(),
        &scene.fleet.root_path(),
        &[scene.broker.url()],
        std::slice::from_ref(&origin),
        "[cache]\nmin_free_bytes = 0\n",
    );
    fetch_all(&scene, &player, 1, &[&small]).await;
    let rss_small_mb = peak_rss_mb(player.pid().unwrap());
    // A fresh process, so that its peak is the large fetch's alone.
    player.restart();
    player.wait_status("version 1 from cache", |s| s["assignment"]["version"] == 1);
    let elapsed = fetch_all(&scene, &player, 2, &large).await;
    let rss_mb = peak_rss_mb(player.pid().unwrap());
    player.stop();

    let out = tempfile::tempdir().unwrap();
    let baseline = curl_and_hash(&origin, &large, out.path());

    let mb_s = total / 1e6 / elapsed.as_secs_f64();
    let baseline_mb_s = total / 1e6 / baseline.as_secs_f64();
    let ratio = mb_s / baseline_mb_s;
    println!(
        "cache: fetch + verify {FILES} x {} MiB from a loopback origin",
        FILE_BYTES >> 20
    );
    println!(
        "{:>10} {:>14} {:>8} {:>10} {:>16}",
        "MB/s", "curl+sha MB/s", "ratio", "RSS MB", "RSS MB (16 MiB)"
    );
    println!("{mb_s:>10.1} {baseline_mb_s:>14.1} {ratio:>8.2} {rss_mb:>10.1} {rss_small_mb:>16.1}");
    let report = serde_json::json!({
        "mb_s": mb_s,
        "baseline_mb_s": baseline_mb_s,
        "ratio": ratio,
        "rss_mb": rss_mb,
        "rss_small_fetch_mb": rss_small_mb,
        "bytes": total,
        "files": FILES,
        "seconds": elapsed.as_secs_f64(),
        "baseline_seconds": baseline.as_secs_f64(),
    });
    write_bench_report("cache", &report);
}

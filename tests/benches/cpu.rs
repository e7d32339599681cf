//! `cpu`: what the player costs on top of decoding (docs/protocol.md §15). The
//! release `phare-player` plays a 60 s 1080p30 H.264 clip from its cache,
//! with no network, on a 1920x1080@30 output to `fakesink sync=true`; in
//! the same run `gst-launch-1.0 playbin` plays the same file to the same
//! sink: the decoding floor. CPU seconds (user + system) over 60 s of
//! playback and peak RSS of each, from /proc. Writes target/bench/cpu.json.
//!
//! The clip takes a minute or two to encode; it is kept in
//! target/bench/media/ for the next runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phare_demo::media::write_custom;
use phare_tests::render::cpu_and_peak_rss;
use phare_tests::*;

const SECONDS: u32 = 60;
const TARGET_RATIO: f64 = 1.05;
const TARGET_RSS_MB: f64 = 80.0;

/// The 1080p30 clip, made once: a test pattern scrolling sideways with a
/// running clock burnt in, so that every frame differs and the decoder
/// works as it would on real footage (a still pattern decodes for nothing).
fn clip(bench_dir: &Path) -> PathBuf {
    let dir = bench_dir.join("media");
    let path = dir.join(format!("cpu-1080p30-{SECONDS}s.mp4"));
    if path.exists() {
        return path;
    }
    println!("cpu: encoding a {SECONDS} s 1080p30 clip (once)...");
    std::fs::create_dir_all(&dir).unwrap();
    let partial = dir.join(".cpu-clip.partial.mp4");
    write_custom(
        &format!(
            "videotestsrc num-buffers={} pattern=smpte horizontal-speed=4 \
             ! video/x-raw,width=1920,height=1080,framerate=30/1 ! timeoverlay font-desc=\"Sans 60\" \
             ! videoconvert ! openh264enc bitrate=6000000 gop-size=60 ! h264parse ! mp4mux \
             ! filesink name=out",
            SECONDS * 30
        ),
        &partial,
        Duration::from_secs(1800),
    )
    .unwrap();
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// Samples `pid` until it exits or `window` has passed; the last reading
/// before that, as (CPU seconds, peak RSS MB).
fn watch(pid: u32, window: Duration) -> (f64, f64) {
    let begin = Instant::now();
    let mut last = cpu_and_peak_rss(pid).expect("the process runs");
    while begin.elapsed() < window {
        std::thread::sleep(Duration::from_millis(100));
        match cpu_and_peak_rss(pid) {
            Some(now) => last = now,
            None => break,
        }
    }
    last
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let clip = clip(&bench_dir);

    // The player: fill its cache, then play from it with no network.
    let mut scene = Scene::new().await;
    let file = scene.fleet.media_dir().join("clip.mp4");
    std::fs::copy(&clip, &file).unwrap();
    scene.publish_assignment(1, &[&file]).await;
    let mut player = scene.start_player_with("[display]\nwidth = 1920\nheight = 1080\nfps = 30\n");
    player.wait_status("the cache to fill", playing_version(1));
    scene.restart_offline(&mut player);
    player.wait_status("playing from the cache", playing_version(1));
    let pid = player.pid().unwrap();
    let (cpu_start, _) = cpu_and_peak_rss(pid).unwrap();
    let (cpu_end, rss_mb) = watch(pid, Duration::from_secs(u64::from(SECONDS)));
    player.stop();
    let cpu_s = cpu_end - cpu_start;

    // The floor: the same file, decoded to the same sink.
    let uri = format!("file://{}", clip.canonicalize().unwrap().display());
    let mut floor = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "playbin",
            &format!("uri={uri}"),
            "video-sink=fakesink sync=true",
            "audio-sink=fakesink sync=true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 must be installed");
    let (floor_cpu_s, floor_rss_mb) = watch(floor.id(), Duration::from_secs(3600));
    assert!(floor.wait().unwrap().success(), "gst-launch-1.0 failed");

    let ratio = cpu_s / floor_cpu_s;
    println!("cpu: {SECONDS} s of 1080p30 H.264 to fakesink sync=true, same file, same run");
    println!("{:<34} {:>8} {:>12}", "", "cpu s", "peak rss MB");
    println!(
        "{:<34} {cpu_s:>8.2} {rss_mb:>12.1}",
        "phare-player (1920x1080@30 out)"
    );
    println!(
        "{:<34} {floor_cpu_s:>8.2} {floor_rss_mb:>12.1}",
        "gst-launch-1.0 playbin (floor)"
    );
    println!(
        "ratio {ratio:.3} (target <= {TARGET_RATIO}), rss {rss_mb:.1} MB (target <= {TARGET_RSS_MB})"
    );
    let report = serde_json::json!({
        "cpu_s": cpu_s,
        "floor_cpu_s": floor_cpu_s,
        "ratio": ratio,
        "rss_mb": rss_mb,
        "floor_rss_mb": floor_rss_mb,
        "seconds": SECONDS,
        "target_ratio": TARGET_RATIO,
        "target_rss_mb": TARGET_RSS_MB,
    });
    write_bench_report("cpu", &report);
}

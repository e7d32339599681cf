//! `boot`: process start to first rendered frame, from the cache, with no
//! network reachable (docs/protocol.md §15). Writes target/bench/boot.json.

use std::time::{Duration, Instant};

use phare_tests::*;

const RUNS: usize = 7;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut scene = Scene::new().await;
    let clip = scene.fleet.video("clip.mp4", "smpte");
    let still = scene.fleet.image("still.png", "ball");
    scene.publish_assignment(1, &[&clip, &still]).await;
    let mut player = scene.start_player();
    player.wait_status("the cache to fill", playing_version(1));
    player.stop();
    scene.broker.stop();
    scene.origin = None;

    let mut samples = Vec::new();
    for _ in 0..RUNS {
        std::fs::remove_file(player.data_dir.join("status.json")).unwrap();
        let started = Instant::now();
        player.restart();
        // status.json shows `playing` once the first frame reached the sink.
        while player.status().is_none_or(|s| s["playing"].is_null()) {
            assert!(started.elapsed() < TIMEOUT, "no first frame");
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        player.stop();
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[RUNS / 2];
    println!("boot: process start to first frame, from cache, no network ({RUNS} runs)");
    println!("{:>10} {:>10} {:>10}", "min ms", "median ms", "max ms");
    println!(
        "{:>10.1} {:>10.1} {:>10.1}",
        samples[0],
        median,
        samples[RUNS - 1]
    );
    let report = serde_json::json!({
        "first_frame_ms": median,
        "min_ms": samples[0],
        "max_ms": samples[RUNS - 1],
        "runs": RUNS,
        "samples_ms": samples,
    });
    write_bench_report("boot", &report);
}

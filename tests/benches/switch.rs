//! `switch`: how fast a screen obeys. Latency from publishing an alert to
//! the player showing it, and from publishing a new assignment whose assets
//! are already cached to its first rendered frame; p50/p95 over 20 trials
//! each (docs/protocol.md §15). Writes target/bench/switch.json.
//!
//! "Shown" is read from the player's status.json, which it writes right
//! after handing the alert to the renderer (drawn on the next frame, at most
//! 40 ms later) and right after a new item's first frame reached the sink.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use phare_tests::*;
use serde_json::json;

const TRIALS: usize = 20;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn wait_ms(
    player: &Player,
    started: Instant,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> f64 {
    while !player.status().is_some_and(|s| done(&s)) {
        assert!(started.elapsed() < TIMEOUT, "timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
    started.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scene = Scene::new().await;
    let a = scene.fleet.image("a.png", "smpte");
    let b = scene.fleet.image("b.png", "ball");
    // Both assets cached by version 1, so later versions need no download.
    scene.publish_assignment(1, &[&a, &b]).await;
    let player = scene.start_player();
    player.wait_status("version 1 playing", playing_version(1));

    let mut alerts = Vec::new();
    for trial in 0..TRIALS {
        let version = trial as i64 * 2 + 1;
        let now = Timestamp::now();
        let document = |version: i64, active: bool| {
            json!({"kind": "alert", "fleet": FLEET, "id": "bench", "version": version, "issued_at": now,
                   "expires_at": now.checked_add(SignedDuration::from_mins(10)).unwrap(),
                   "active": active, "message": "Bench", "style": "banner"})
        };
        let shown = scene.sign("alert", &document(version, true));
        let started = Instant::now();
        publish(&scene.broker, &shown).await;
        alerts.push(wait_ms(&player, started, |s| {
            s["alert"]["version"] == version
        }));
        publish(
            &scene.broker,
            &scene.sign("alert", &document(version + 1, false)),
        )
        .await;
        player.wait_status("the alert cleared", |s| s["alert"].is_null());
    }

    let mut assignments = Vec::new();
    for trial in 0..TRIALS {
        let version = 2 + trial as u64;
        let files: [&std::path::Path; 2] = if trial % 2 == 0 { [&b, &a] } else { [&a, &b] };
        let envelope = scene.fleet.sign(&scene.fleet.assignment(version, &files));
        let started = Instant::now();
        publish(&scene.broker, &envelope).await;
        assignments.push(wait_ms(&player, started, |s| {
            s["assignment"]["version"] == version && !s["playing"].is_null()
        }));
    }

    alerts.sort_by(f64::total_cmp);
    assignments.sort_by(f64::total_cmp);
    let report = json!({
        "alert_p50_ms": percentile(&alerts, 0.5),
        "alert_p95_ms": percentile(&alerts, 0.95),
        "assignment_p50_ms": percentile(&assignments, 0.5),
        "assignment_p95_ms": percentile(&assignments, 0.95),
        "trials": TRIALS,
    });
    println!("switch: publish to shown, {TRIALS} trials each (ms)");
    println!("{:>12} {:>8} {:>8}", "", "p50", "p95");
    println!(
        "{:>12} {:>8.1} {:>8.1}",
        "alert",
        report["alert_p50_ms"].as_f64().unwrap(),
        report["alert_p95_ms"].as_f64().unwrap()
    );
    println!(
        "{:>12} {:>8.1} {:>8.1}",
        "assignment",
        report["assignment_p50_ms"].as_f64().unwrap(),
        report["assignment_p95_ms"].as_f64().unwrap()
    );
    write_bench_report("switch", &report);
}

//! `fleet`: N simulated devices (`phare-player --simulate`: the real link,
//! trust, store and cache, no screen) on one local Mosquitto. One group
//! assignment is published; reported is the time until each device says
//! it is active, p50/p99, and memory per device (DESIGN.md §10).
//!
//! `make bench-fleet` runs 1000 devices; `FLEET_DEVICES=5000 make
//! bench-fleet` more. Devices run 1000 to a process, as file descriptors
//! (a connection, SQLite files, a timer each) run out past that.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phare_provisioning::origin::Origin;
use phare_tests::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

const PER_PROCESS: usize = 1000;
const GROUP: &str = "bench";

/// The newest status of each device, and when it first reported version 1.
#[derive(Default)]
struct Fleetwide {
    online: HashMap<String, bool>,
    active_at: HashMap<String, Instant>,
}

async fn watch_statuses(broker: &Mosquitto, seen: Arc<Mutex<Fleetwide>>) {
    let mut options = MqttOptions::new("bench-fleet-watch", "127.0.0.1", broker.port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    client
        .subscribe(format!("phare/{FLEET}/device/+/status"), QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = eventloop.poll().await {
            let Event::Incoming(Packet::Publish(p)) = event else {
                continue;
            };
            let Ok(status) = serde_json::from_slice::<Value>(&p.payload) else {
                continue;
            };
            let Some(device) = status["device"].as_str() else {
                continue;
            };
            let mut seen = seen.lock().unwrap();
            seen.online
                .insert(device.to_string(), status["online"] == true);
            if status["assignment"]["version"] == 1 {
                seen.active_at
                    .entry(device.to_string())
                    .or_insert_with(Instant::now);
            }
        }
    });
}

/// Resident memory of a process, in KiB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let devices: usize = std::env::var("FLEET_DEVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let fleet = Fleet::new();
    let origin = Origin::serve(&fleet.media_dir(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let broker = Mosquitto::start();
    let work = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Fleetwide::default()));
    watch_statuses(&broker, seen.clone()).await;

    let started = Instant::now();
    let mut processes: Vec<Child> = Vec::new();
    for (p, first) in (0..devices).step_by(PER_PROCESS).enumerate() {
        let count = PER_PROCESS.min(devices - first);
        let config = work.path().join(format!("sim{p}.toml"));
        std::fs::write(
            &config,
            format!(
                "device_id = \"sim{p}\"\nfleet = \"{FLEET}\"\ngroups = [\"{GROUP}\"]\n\
                 brokers = [\"{}\"]\norigins = [\"{}\"]\nroot = {:?}\ndata_dir = {:?}\n\
                 video_sink = \"fake\"\nstatus_interval_s = 3600\n",
                broker.url(),
                origin.url(),
                fleet.root_path().display().to_string(),
                work.path().join(format!("sim{p}")).display().to_string(),
            ),
        )
        .unwrap();
        let child = Command::new(player_binary())
            .arg("--config")
            .arg(&config)
            .arg("--simulate")
            .arg(count.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        processes.push(child);
    }
    let generous = Duration::from_secs(120 + devices as u64 / 10);
    wait_until("every device online", generous, || {
        seen.lock().unwrap().online.values().filter(|o| **o).count() == devices
    });
    let online_s = started.elapsed().as_secs_f64();
    let idle_kb: u64 = processes.iter().map(|c| rss_kb(c.id())).sum();

    let image = fleet.image("fleet.png", "smpte");
    let mut assignment = fleet.assignment(1, &[&image]);
    assignment["target"] = format!("group:{GROUP}").into();
    let envelope = fleet.sign(&assignment);
    let published = Instant::now();
    publish(&broker, &envelope).await;
    wait_until("every device active", generous, || {
        seen.lock().unwrap().active_at.len() == devices
    });
    let busy_kb: u64 = processes.iter().map(|c| rss_kb(c.id())).sum();
    for mut child in processes {
        let _ = child.kill();
        let _ = child.wait();
    }

    let mut delays: Vec<f64> = seen
        .lock()
        .unwrap()
        .active_at
        .values()
        .map(|at| at.duration_since(published).as_secs_f64())
        .collect();
    delays.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1],
    );
    let per_device_kb = busy_kb as f64 / devices as f64;
    println!("fleet: {devices} simulated devices, one group assignment, one Mosquitto");
    println!(
        "{:>8} {:>10} {:>8} {:>8} {:>8} {:>14}",
        "devices", "online s", "p50 s", "p99 s", "max s", "KiB per device"
    );
    println!(
        "{devices:>8} {online_s:>10.1} {p50:>8.2} {p99:>8.2} {max:>8.2} {per_device_kb:>14.0}"
    );
    write_bench_report(
        "fleet",
        &serde_json::json!({
            "devices": devices,
            "p50_s": p50,
            "p99_s": p99,
            "max_s": max,
            "all_online_s": online_s,
            "mem_per_device_kb": per_device_kb,
            "idle_mem_per_device_kb": idle_kb as f64 / devices as f64,
            "processes": devices.div_ceil(PER_PROCESS),
        }),
    );
}

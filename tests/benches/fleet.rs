//! `fleet`: N simulated devices (`phare-player --simulate`: the real link,
//! trust, store and cache, no screen) on one local Mosquitto. One group
//! assignment is published; reported is the time until each device says
//! it is active, p50/p99, and memory per device (docs/protocol.md §15): the
//! resident memory of the simulating processes over the devices they run.
//!
//! `make bench-fleet` runs 1000 devices; `FLEET_DEVICES=10000 make
//! bench-fleet` ten thousand. Devices run 1000 to a process: each holds
//! nine to twelve file descriptors (three SQLite connections with their
//! WAL and shared-memory files, its broker connection, a timer, and its
//! download's while it fetches).
//!
//! The devices' data directories are on a tmpfs (`/dev/shm`) when there is
//! one: every screen of a fleet writes its own card, whereas here all of
//! them would share one disk and one ext4, whose file creation and fsyncs
//! then took half the CPU time of a rollout and grew faster than the
//! fleet. The devices still make every write and fsync they would make on
//! a card; ten thousand of them hold about 2 GB there.
//! `FLEET_DATA_DIR=<dir>` puts them elsewhere, e.g. on a disk.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use phare_demo::origin::Origin;
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
    // QoS 0: with QoS 1 the broker keeps at most 20 messages in flight and
    // 1000 queued for one subscriber, and drops the rest: thousands of
    // devices reporting at once would lose statuses.
    client
        .subscribe(format!("phare/{FLEET}/device/+/status"), QoS::AtMostOnce)
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

/// Resident memory of a process, in KiB: (all, anonymous).
fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// CPU time a process has used so far (user and system), in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses: utime
    // and stime are the 12th and 13th, in clock ticks (USER_HZ, 100 on
    // every Linux).
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// The simulating processes; killed when dropped, also when the bench
/// fails half-way.
struct Simulators(Vec<Child>);

impl Simulators {
    /// Resident memory of them all, in KiB: (all, anonymous).
    fn rss_kb(&self) -> (u64, u64) {
        self.0
            .iter()
            .map(|c| rss_kb(c.id()))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    }

    /// CPU time they have used so far, in seconds.
    fn cpu_s(&self) -> f64 {
        self.0.iter().map(|c| cpu_s(c.id())).sum()
    }
}

impl Drop for Simulators {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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

/// Where the devices' data directories go (see the top of this file).
fn data_parent() -> PathBuf {
    std::env::var_os("FLEET_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|shm| shm.is_dir()))
        .unwrap_or_else(std::env::temp_dir)
}

/// Ten thousand devices are ten thousand connections to the broker, which
/// inherits this limit: the soft one is often 1024.
fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let devices: usize = std::env::var("FLEET_DEVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    raise_file_limit();
    let fleet = Fleet::new();
    let origin = Origin::serve(&fleet.media_dir(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let broker = Mosquitto::start();
    let work = tempfile::tempdir_in(data_parent()).unwrap();
    let seen = Arc::new(Mutex::new(Fleetwide::default()));
    watch_statuses(&broker, seen.clone()).await;

    let started = Instant::now();
    let mut simulators = Simulators(Vec::new());
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
        simulators.0.push(child);
    }
    let generous = Duration::from_secs(120 + devices as u64 / 10);
    wait_until("every device online", generous, || {
        seen.lock().unwrap().online.values().filter(|o| **o).count() == devices
    });
    let online_s = started.elapsed().as_secs_f64();
    let (idle_kb, _) = simulators.rss_kb();
    eprintln!("fleet: {devices} devices online after {online_s:.1} s; publishing");

    let image = fleet.image("fleet.png", "smpte");
    let mut assignment = fleet.assignment(1, &[&image]);
    assignment["target"] = format!("group:{GROUP}").into();
    let envelope = fleet.sign(&assignment);
    let cpu_before = simulators.cpu_s();
    let published = Instant::now();
    publish(&broker, &envelope).await;
    wait_until("every device active", generous, || {
        seen.lock().unwrap().active_at.len() == devices
    });
    let rollout_cpu_s = simulators.cpu_s() - cpu_before;
    let (busy_kb, busy_anon_kb) = simulators.rss_kb();
    let broker_kb = broker.pid().map_or(0, |pid| rss_kb(pid).0);
    drop(simulators);

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
    let per_device = |kb: u64| kb as f64 / devices as f64;
    println!("fleet: {devices} simulated devices, one group assignment, one Mosquitto");
    println!(
        "{:>8} {:>10} {:>8} {:>8} {:>8} {:>14} {:>14} {:>12}",
        "devices",
        "online s",
        "p50 s",
        "p99 s",
        "max s",
        "KiB per device",
        "CPU ms/device",
        "broker MiB"
    );
    println!(
        "{devices:>8} {online_s:>10.1} {p50:>8.2} {p99:>8.2} {max:>8.2} {:>14.0} {:>14.2} {:>12.0}",
        per_device(busy_kb),
        rollout_cpu_s * 1000.0 / devices as f64,
        broker_kb as f64 / 1024.0
    );
    write_bench_report(
        "fleet",
        &serde_json::json!({
            "devices": devices,
            "p50_s": p50,
            "p99_s": p99,
            "max_s": max,
            "all_online_s": online_s,
            "mem_per_device_kb": per_device(busy_kb),
            "anon_mem_per_device_kb": per_device(busy_anon_kb),
            "idle_mem_per_device_kb": per_device(idle_kb),
            "rollout_cpu_ms_per_device": rollout_cpu_s * 1000.0 / devices as f64,
            "broker_rss_mb": broker_kb as f64 / 1024.0,
            "processes": devices.div_ceil(PER_PROCESS),
            "data_dir": work.path().parent().map(|p| p.display().to_string()),
        }),
    );
}

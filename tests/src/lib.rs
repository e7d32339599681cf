//! Harness for the end-to-end tests: a real Mosquitto on a free loopback
//! port, a real HTTP origin, generated media, fresh keys, and the real
//! `phare-player` binary as a child process.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{Timestamp, ToSpan};
use phare_protocol::Envelope;
use phare_provisioning::asset::entry_for;
use phare_provisioning::keys::{InitSpec, Keyring};
use serde_json::{Value, json};

pub mod cache;
pub mod render;

pub use phare_demo::origin::Origin;
pub use phare_provisioning::keys::InitSpec as KeySpec;
pub use phare_provisioning::publish::route_for;

/// Generous: a loaded CI machine is slow, and these are not benchmarks.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub const FLEET: &str = "acme";
pub const DEVICE: &str = "lobby-1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How many fresh ports a broker start tries: a free port can be taken by
/// another process (another test binary, another developer's tests) between
/// [`free_port`] and Mosquitto's bind.
const PORT_ATTEMPTS: usize = 10;

/// A Mosquitto broker of our own, on loopback; killed when dropped.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Keeps sessions and retained messages across restarts (on disk).
    persistent: bool,
}

/// Another process listens on the port Mosquitto was to take.
#[derive(Debug)]
struct PortTaken;

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::launch(false)
    }

    /// A broker that remembers sessions, subscriptions and queued messages
    /// across a restart, as production brokers do.
    pub fn start_persistent() -> Mosquitto {
        Mosquitto::launch(true)
    }

    fn launch(persistent: bool) -> Mosquitto {
        for _ in 0..PORT_ATTEMPTS {
            let mut broker = Mosquitto {
                port: free_port(),
                dir: tempfile::tempdir().unwrap(),
                child: None,
                persistent,
            };
            if broker.try_start().is_ok() {
                return broker;
            }
        }
        panic!("mosquitto found no free port in {PORT_ATTEMPTS} tries");
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts (again) on the same port. A non-persistent broker comes back
    /// with no memory of earlier sessions or retained messages, like one
    /// replaced after a failure. If another process holds the port for a
    /// moment (a [`free_port`] probe), it tries again until [`TIMEOUT`].
    pub fn restart(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while self.try_start().is_err() {
            assert!(
                Instant::now() < deadline,
                "port {} stayed taken by another process: mosquitto cannot restart",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_start(&mut self) -> Result<(), PortTaken> {
        self.stop();
        let config = self.dir.path().join("mosquitto.conf");
        let persistence = if self.persistent {
            // Started as root, Mosquitto drops to its own user, which cannot
            // write into our private temporary directory: stay who we are.
            format!(
                "user root\npersistence true\npersistence_location {}/\n",
                self.dir.path().display()
            )
        } else {
            "persistence false\n".to_string()
        };
        std::fs::write(
            &config,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\nmessage_size_limit 0\n{persistence}",
                self.port
            ),
        )
        .unwrap();
        self.child = Some(spawn_ready(&config, self.port, self.dir.path())?);
        Ok(())
    }

    /// Stops the broker: a persistent one gracefully (SIGTERM), so that it
    /// saves its state; otherwise abruptly.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.persistent {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
            } else {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs Mosquitto on `config`, whose listener is `port`, logging into
/// `dir`, and returns once it is really serving: its own log says it bound
/// the port and runs (so a listener found there is ours, not another
/// process's), and, on a plain listener, an MQTT CONNECT gets a CONNACK.
/// A TCP connection alone proves neither. Fails the test with the log if
/// the broker stops or does not come up in time.
fn spawn_ready(config: &Path, port: u16, dir: &Path) -> Result<Child, PortTaken> {
    let log_path = dir.join("mosquitto.log");
    let mut child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("mosquitto must be installed (make test installs it)");
    // A TLS listener cannot be asked in plain MQTT; its log line must do.
    let tls = configures_tls(config);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let log = log();
            if log.contains("Address already in use") {
                return Err(PortTaken);
            }
            panic!("mosquitto stopped ({status}):\n{log}");
        }
        let running = log().lines().any(|l| l.ends_with(" running"));
        if running && (tls || answers_mqtt(port)) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mosquitto did not come up on port {port}:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether Mosquitto's `config`, or a file it includes (`include_dir`, as
/// Debian's main config does), gives a listener a certificate.
fn configures_tls(config: &Path) -> bool {
    let text = std::fs::read_to_string(config).unwrap();
    let values = |name: &'static str| {
        text.lines()
            .filter_map(move |l| l.trim_start().strip_prefix(name))
            .map(str::trim)
    };
    values("certfile ").next().is_some()
        || values("include_dir ").any(|dir| {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries.filter_map(Result::ok).any(|entry| {
                    entry.path().extension().is_some_and(|e| e == "conf")
                        && configures_tls(&entry.path())
                })
            })
        })
}

/// Whether an MQTT broker on `port` answers a CONNECT with a CONNACK (of
/// any return code: one that refuses us is serving all the same).
fn answers_mqtt(port: u16) -> bool {
    use std::io::{Read, Write};
    // MQTT 3.1.1 CONNECT: clean session, keep-alive 10 s, empty client id
    // (the broker assigns one).
    const CONNECT: [u8; 14] = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 0];
    const DISCONNECT: [u8; 2] = [0xe0, 0];
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut connack = [0; 4];
    let answered = stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .and_then(|()| stream.write_all(&CONNECT))
        .and_then(|()| stream.read_exact(&mut connack))
        .is_ok_and(|()| connack[..2] == [0x20, 2]);
    let _ = stream.write_all(&DISCONNECT);
    answered
}

fn mosquitto_binary() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("mosquitto"))
}

/// Polls `condition` until it holds, panicking with `what` after [`TIMEOUT`].
pub fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fleet: keys, a media directory served by an origin, and assignments.
pub struct Fleet {
    pub keys: Keyring,
    pub dir: tempfile::TempDir,
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet::with_keys(InitSpec::default())
    }

    /// A fleet whose keyring has these key counts and thresholds.
    pub fn with_keys(spec: InitSpec) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::init(&dir.path().join("keys"), FLEET, spec).unwrap();
        std::fs::create_dir_all(dir.path().join("media")).unwrap();
        Fleet { keys, dir }
    }

    pub fn media_dir(&self) -> PathBuf {
        self.dir.path().join("media")
    }

    pub fn root_path(&self) -> PathBuf {
        self.keys.root_path()
    }

    /// Writes a short test video into the media directory.
    pub fn video(&self, name: &str, pattern: &str) -> PathBuf {
        let path = self.media_dir().join(name);
        phare_demo::media::write_video(&path, 1, 320, 240, pattern, name).unwrap();
        path
    }

    /// Writes a still image into the media directory.
    pub fn image(&self, name: &str, pattern: &str) -> PathBuf {
        let path = self.media_dir().join(name);
        phare_demo::media::write_png(&path, 320, 240, pattern, name).unwrap();
        path
    }

    /// An assignment for this device playing `files` in order (images for
    /// 800 ms), with relative URLs resolved by the device's origins.
    pub fn assignment(&self, version: u64, files: &[&Path]) -> Value {
        let mut assets = serde_json::Map::new();
        let mut items = Vec::new();
        for file in files {
            let (id, entry) = entry_for(file, &[], None).unwrap();
            let mut item = json!({"asset": id});
            if entry.is_image() {
                item["duration_ms"] = 800.into();
            }
            items.push(item);
            assets.insert(id.to_string(), serde_json::to_value(entry).unwrap());
        }
        let now = Timestamp::now();
        json!({
            "kind": "assignment", "fleet": FLEET, "target": format!("device:{DEVICE}"),
            "version": version, "issued_at": now, "expires_at": now.checked_add(24.hours()).unwrap(),
            "timezone": "Europe/Paris", "assets": assets, "playlists": {"main": items},
            "default_playlist": "main",
        })
    }

    pub fn sign(&self, document: &Value) -> Envelope {
        self.keys.sign("assignment", document).unwrap()
    }
}

impl Default for Fleet {
    fn default() -> Fleet {
        Fleet::new()
    }
}

/// Publishes an envelope where its document belongs (retained but for
/// commands).
pub async fn publish(broker: &Mosquitto, envelope: &Envelope) {
    let route = route_for(envelope, None).unwrap();
    publish_raw(
        broker,
        &route.topic,
        envelope.to_json().into_bytes(),
        route.retain,
    )
    .await;
}

/// Publishes any bytes on any topic, as a hostile broker or client could.
/// A broker that cannot be reached is tried again until [`TIMEOUT`] (a
/// connection race at a broker's start); a message may then arrive twice,
/// as QoS 1 allows anyway.
pub async fn publish_raw(broker: &Mosquitto, topic: &str, payload: Vec<u8>, retain: bool) {
    use phare_provisioning::connect::ConnectError;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let sent =
            phare_provisioning::publish::publish(&broker.url(), topic, payload.clone(), retain)
                .await;
        match sent {
            Ok(()) => return,
            Err(e)
                if matches!(e.downcast_ref(), Some(ConnectError::Unreachable { .. }))
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("publishing on {topic}: {e:#}"),
        }
    }
}

/// The topic of one of the device's streams, e.g. `assignment`, `command`.
pub fn device_topic(stream: &str) -> String {
    format!("phare/{FLEET}/device/{DEVICE}/{stream}")
}

/// Collects every message published on a topic filter from now on.
pub struct Subscriber {
    messages: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn new(broker: &Mosquitto, filter: &str) -> Subscriber {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("test-sub-{}-{n}", std::process::id());
        Subscriber::connect(broker, filter, &id, true).await
    }

    /// A subscriber with a persistent session that reconnects by itself:
    /// on a persistent broker it gets what was published while it, or the
    /// broker, was away.
    pub async fn durable(broker: &Mosquitto, filter: &str, client_id: &str) -> Subscriber {
        Subscriber::connect(broker, filter, client_id, false).await
    }

    /// Connects and subscribes, trying again until [`TIMEOUT`]: a broker
    /// just (re)started may still refuse or reset a first connection.
    async fn connect(broker: &Mosquitto, filter: &str, id: &str, clean: bool) -> Subscriber {
        use rumqttc::{Event, Packet};
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let (client, mut eventloop) = loop {
            match subscribed(broker.port, filter, id, clean).await {
                Ok(connected) => break connected,
                Err(e) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "could not subscribe to {filter} on port {}: {e}",
                    broker.port
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = messages.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock().unwrap().push(p.payload.to_vec())
                    }
                    Ok(_) => {}
                    // Polling again reconnects, resuming a persistent session.
                    Err(_) if !clean => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(_) => break,
                }
            }
        });
        Subscriber { messages, task }
    }

    /// The payloads received so far, parsed as JSON.
    pub fn json(&self) -> Vec<Value> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter_map(|p| serde_json::from_slice(p).ok())
            .collect()
    }
}

/// A client subscribed to `filter`: returns once the broker acknowledged
/// the subscription, or the first connection error.
async fn subscribed(
    port: u16,
    filter: &str,
    id: &str,
    clean: bool,
) -> Result<(rumqttc::AsyncClient, rumqttc::EventLoop), rumqttc::ConnectionError> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(4 << 20, 4 << 20);
    options.set_clean_session(clean);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .expect("a new client's queue has room");
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            return Ok((client, eventloop));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The asset id of a media file, as assignments name it.
pub fn asset_id(file: &Path) -> String {
    entry_for(file, &[], None).unwrap().0.to_string()
}

/// Where the player's picture goes: its `video_sink` and what its
/// environment needs to reach that sink's display server.
#[derive(Debug, Clone)]
pub struct Screen {
    /// The `video_sink` config value: `fake`, `x`, `gl`, `wayland`, ...
    pub sink: String,
    /// Variables set (`Some`) or removed (`None`) in the player's
    /// environment, e.g. `DISPLAY`.
    pub env: Vec<(String, Option<String>)>,
}

impl Screen {
    /// No screen at all: the fake sink, as most tests use.
    pub fn fake() -> Screen {
        Screen {
            sink: "fake".into(),
            env: Vec::new(),
        }
    }
}

/// A running `phare-player` process with its own data directory.
pub struct Player {
    pub data_dir: PathBuf,
    config: PathBuf,
    /// The player's log (stderr), appended across restarts.
    log: PathBuf,
    /// Applied to the player's environment at each (re)start.
    env: Vec<(String, Option<String>)>,
    child: Option<Child>,
}

impl Player {
    /// Writes a config (fake sink) and starts the player.
    pub fn start(dir: &Path, root: &Path, brokers: &[String], origins: &[String]) -> Player {
        Player::start_with(dir, root, brokers, origins, "")
    }

    /// Like [`Player::start`], with `extra` appended to the config (TOML,
    /// e.g. a `[cache]` section).
    pub fn start_with(
        dir: &Path,
        root: &Path,
        brokers: &[String],
        origins: &[String],
        extra: &str,
    ) -> Player {
        Player::start_on(dir, root, brokers, origins, &Screen::fake(), extra)
    }

    /// Like [`Player::start_with`], drawing on `screen`.
    pub fn start_on(
        dir: &Path,
        root: &Path,
        brokers: &[String],
        origins: &[String],
        screen: &Screen,
        extra: &str,
    ) -> Player {
        let data_dir = dir.join("data");
        let quoted = |list: &[String]| {
            list.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // A status every 2 s, so that tests see changes soon, unless
        // `extra` sets its own interval.
        let status = if extra.contains("status_interval_s") {
            ""
        } else {
            "status_interval_s = 2\n"
        };
        // The test senders (HLS over http, rtsp, udp/rtp multicast, srt)
        // are plaintext: allowed, unless `extra` says otherwise.
        let plaintext = if extra.contains("allow_plaintext_live") {
            ""
        } else {
            "allow_plaintext_live = true\n"
        };
        let config = dir.join("player.toml");
        std::fs::write(
            &config,
            format!(
                "device_id = \"{DEVICE}\"\nfleet = \"{FLEET}\"\nbrokers = [{}]\norigins = [{}]\n\
                 root = {:?}\ndata_dir = {:?}\nvideo_sink = {:?}\n{status}{plaintext}{extra}",
                quoted(brokers),
                quoted(origins),
                root.display().to_string(),
                data_dir.display().to_string(),
                screen.sink,
            ),
        )
        .unwrap();
        let mut player = Player {
            data_dir,
            config,
            log: dir.join("player.log"),
            env: screen.env.clone(),
            child: None,
        };
        player.restart();
        player
    }

    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(player_binary());
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let child = command
            .arg("--config")
            .arg(&self.config)
            // PHARE_TEST_LOG=debug (any RUST_LOG filter) to see more.
            .env(
                "RUST_LOG",
                std::env::var("PHARE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, as systemd stops it, and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + TIMEOUT;
            while child.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the player did not stop on SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILL: a crash or a power cut, as far as the process can tell.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The current `status.json`, if there is a readable one.
    pub fn status(&self) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(self.data_dir.join("status.json")).ok()?).ok()
    }

    /// Waits until the status satisfies `condition`, returning it.
    pub fn wait_status(&self, what: &str, mut condition: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(found) = self.status().filter(&mut condition) {
                return found;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\nlast status: {:?}\nplayer log:\n{}",
                    self.status(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The player's whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of the player's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Watches which asset plays, until `count` distinct item starts have
    /// been seen; returns them in order as (item index, asset id).
    pub fn watch_items(&self, count: usize) -> Vec<(u64, String)> {
        let mut seen: Vec<(u64, String, String)> = Vec::new();
        wait_for(
            || {
                if let Some(playing) = self
                    .status()
                    .map(|s| s["playing"].clone())
                    .filter(|p| !p.is_null())
                {
                    let key = (
                        playing["item"].as_u64().unwrap(),
                        playing["asset"].as_str().unwrap_or_default().to_string(),
                        playing["since"].as_str().unwrap_or_default().to_string(),
                    );
                    if seen.last() != Some(&key) {
                        seen.push(key);
                    }
                }
                seen.len() >= count
            },
            "items to play",
        );
        seen.into_iter()
            .map(|(item, asset, _)| (item, asset))
            .collect()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `phare-player` binary of this build (target/<profile>/phare-player).
pub fn player_binary() -> PathBuf {
    built_binary("phare-player")
}

/// The `phare` operator tool of this build, as admins run it.
pub fn phare_binary() -> PathBuf {
    built_binary("phare")
}

fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first (make test does)",
        path.display()
    );
    path
}

/// One test's world: a fleet with its media origin and broker, and a
/// directory for the player.
pub struct Scene {
    pub fleet: Fleet,
    pub broker: Mosquitto,
    /// Dropped to take the origin down.
    pub origin: Option<Origin>,
    pub work: tempfile::TempDir,
}

impl Scene {
    /// Must run on a multi-threaded runtime: the origin serves from it while
    /// the test blocks waiting for the player.
    pub async fn new() -> Scene {
        Scene::with_fleet(Fleet::new()).await
    }

    pub async fn with_fleet(fleet: Fleet) -> Scene {
        Scene::with_broker(fleet, Mosquitto::start()).await
    }

    /// A scene whose broker keeps sessions, subscriptions and queued
    /// messages across its restarts (see [`Mosquitto::start_persistent`]).
    pub async fn persistent(fleet: Fleet) -> Scene {
        Scene::with_broker(fleet, Mosquitto::start_persistent()).await
    }

    async fn with_broker(fleet: Fleet, broker: Mosquitto) -> Scene {
        let origin = Origin::serve(&fleet.media_dir(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Scene {
            fleet,
            broker,
            origin: Some(origin),
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// Signs and publishes an assignment of `files` for the device.
    pub async fn publish_assignment(&self, version: u64, files: &[&Path]) {
        publish(
            &self.broker,
            &self.fleet.sign(&self.fleet.assignment(version, files)),
        )
        .await;
    }

    /// Starts the player against this scene's broker and origin.
    pub fn start_player(&self) -> Player {
        let origin = self.origin.as_ref().expect("the origin is up").url();
        self.start_player_with_origins(&[origin])
    }

    /// Starts the player drawing on `screen`, with `extra` TOML appended
    /// to its config (e.g. a `[display]` section).
    pub fn start_player_on(&self, screen: &Screen, extra: &str) -> Player {
        let origin = self.origin.as_ref().expect("the origin is up").url();
        Player::start_on(
            self.work.path(),
            &self.fleet.root_path(),
            &[self.broker.url()],
            &[origin],
            screen,
            extra,
        )
    }

    pub fn start_player_with_origins(&self, origins: &[String]) -> Player {
        Player::start(
            self.work.path(),
            &self.fleet.root_path(),
            &[self.broker.url()],
            origins,
        )
    }

    /// Takes the network away (broker and origin) and restarts `player`
    /// with its `status.json` forgotten: from here it plays from its cache.
    pub fn restart_offline(&mut self, player: &mut Player) {
        player.stop();
        self.broker.stop();
        self.origin = None;
        std::fs::remove_file(player.data_dir.join("status.json")).unwrap();
        player.restart();
    }

    /// Signs a document with the fleet's keys for its kind.
    pub fn sign(&self, kind: &str, document: &Value) -> Envelope {
        self.fleet.keys.sign(kind, document).unwrap()
    }
}

/// A scene whose player plays version `version` of a one-image playlist:
/// the starting point of most tests. Returns the image too.
pub async fn playing_one_image(fleet: Fleet, version: u64) -> (Scene, Player, PathBuf) {
    let scene = Scene::with_fleet(fleet).await;
    let image = scene.fleet.image("usual.png", "smpte");
    scene.publish_assignment(version, &[&image]).await;
    let player = scene.start_player();
    player.wait_status("the first assignment to play", playing_version(version));
    (scene, player, image)
}

/// Status predicate: this assignment version is active and an item plays.
pub fn playing_version(version: u64) -> impl FnMut(&Value) -> bool {
    move |s| s["assignment"]["version"] == version && !s["playing"].is_null()
}

/// Status predicate: a rejection with this reason code was reported.
/// Whether the device published an event with `reason`, as `events` (a
/// subscriber to its events topic) saw them.
pub fn reported(events: &Subscriber, reason: &str) -> bool {
    events.json().iter().any(|event| event["reason"] == reason)
}

pub fn rejected_with(reason: &'static str) -> impl FnMut(&Value) -> bool {
    move |s| {
        s["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["reason"] == reason))
    }
}

/// Asserts that `file` is among the items seen playing.
pub fn assert_played(seen: &[(u64, String)], file: &Path) {
    let id = asset_id(file);
    assert!(
        seen.iter().any(|(_, asset)| *asset == id),
        "{} did not play; seen: {seen:?}",
        file.display()
    );
}

/// Writes a benchmark's results to `target/bench/<name>.json` (docs/protocol.md §15).
pub fn write_bench_report(name: &str, report: &Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(report).unwrap(),
    )
    .unwrap();
}

impl Mosquitto {
    /// A broker run from a config of the test's own: `config(port, dir)`
    /// returns its text, given a free loopback port and this broker's
    /// private directory (called again with another port if that one was
    /// taken meanwhile). A broker that does not start fails the test with
    /// its log. (`restart` would put the default config back: not for this
    /// broker.)
    pub fn start_with_config(mut config: impl FnMut(u16, &Path) -> String) -> Mosquitto {
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let path = dir.path().join("custom.conf");
            std::fs::write(&path, config(port, dir.path())).unwrap();
            if let Ok(child) = spawn_ready(&path, port, dir.path()) {
                return Mosquitto {
                    port,
                    dir,
                    child: Some(child),
                    persistent: false,
                };
            }
        }
        panic!("mosquitto found no free port in {PORT_ATTEMPTS} tries");
    }
}

impl Player {
    /// Starts the player from a config file of the test's own (e.g. a
    /// `phare device add` bundle), whose `data_dir` is `data_dir`. Its log
    /// goes beside the config.
    pub fn start_from(config: &Path, data_dir: &Path) -> Player {
        let mut player = Player {
            data_dir: data_dir.to_path_buf(),
            config: config.to_path_buf(),
            log: config.with_file_name("player.log"),
            env: Vec::new(),
            child: None,
        };
        player.restart();
        player
    }
}

/// The environment that runs a player under libfaketime, its wall clock
/// read from `file` (`+0`, `@2100-01-01 00:00:00`, …), re-read every
/// second. Monotonic clocks stay real, so timers and GStreamer keep
/// working. libfaketime comes with `make deps` (Debian's `libfaketime`).
pub fn faketime_env(file: &Path) -> Vec<(String, Option<String>)> {
    let library = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| PathBuf::from(format!("/usr/lib/{arch}/faketime/libfaketimeMT.so.1")))
        .find(|path| path.exists())
        .expect("libfaketime (Debian package libfaketime, installed by make deps)");
    [
        ("LD_PRELOAD", library.display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
        ("FAKETIME_CACHE_DURATION", "1".to_string()),
        ("DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), Some(value)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holds `port` with a listener that resets every connection (it
    /// closes them with the CONNECT unread), as another process's server
    /// on a reused port would, until `for_how_long` has passed.
    fn impostor(port: u16, for_how_long: Duration) -> std::thread::JoinHandle<()> {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let until = Instant::now() + for_how_long;
            while Instant::now() < until {
                if let Ok((stream, _)) = listener.accept() {
                    std::thread::sleep(Duration::from_millis(20));
                    drop(stream);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    }

    /// Publishes on `topic` until `subscriber` got it.
    async fn assert_delivered(broker: &Mosquitto, subscriber: &Subscriber, topic: &str) {
        publish_raw(broker, topic, b"{\"ok\":1}".to_vec(), false).await;
        let deadline = Instant::now() + TIMEOUT;
        while subscriber.json().is_empty() {
            assert!(Instant::now() < deadline, "nothing delivered on {topic}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_waits_out_another_process_on_the_port() {
        let mut broker = Mosquitto::start();
        broker.stop();
        let squatter = impostor(broker.port, Duration::from_secs(2));
        tokio::task::block_in_place(|| broker.restart());
        squatter.join().unwrap();
        let subscriber = Subscriber::new(&broker, "harness/probe").await;
        assert_delivered(&broker, &subscriber, "harness/probe").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_waits_for_a_broker_still_starting() {
        let mut broker = Mosquitto::start();
        broker.stop();
        // The same address, for the subscriber to try while it is down.
        let address = Mosquitto {
            port: broker.port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            persistent: false,
        };
        let subscribing =
            tokio::spawn(async move { Subscriber::new(&address, "harness/late").await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| broker.restart());
        let subscriber = subscribing.await.expect("the subscriber connected");
        assert_delivered(&broker, &subscriber, "harness/late").await;
    }
}

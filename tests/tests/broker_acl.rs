//! The fleet's broker as `phare broker config` writes it, run by a real
//! Mosquitto: mutual TLS admits the fleet's certificates only, and the ACL
//! keeps each device to its own topics and its groups.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phare_player::tls::MqttAuth;
use phare_protocol::document::{Action, ImageFormat};
use phare_protocol::topics::Topics;
use phare_provisioning::ca::Tool;
use phare_provisioning::command::{self, Request};
use phare_provisioning::connect::{ConnectError, Endpoint};
use phare_provisioning::enrol::{CONFIG_FILE, DeviceSpec, add_device, revoke_device};
use phare_provisioning::keys::{InitSpec, Keyring};
use phare_provisioning::mosquitto::{BrokerSetup, CONF_FILE, write_config};
use phare_provisioning::pop::Arrival;
use phare_provisioning::publish::publish;
use phare_tests::{FLEET, Mosquitto, Player, TIMEOUT};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::json;

/// A fleet with two screens in different groups, and its broker.
struct World {
    _dir: tempfile::TempDir,
    keys: PathBuf,
    /// The broker's files as `phare broker config` wrote them, used in place.
    broker_files: PathBuf,
    /// Where the broker writes its process id.
    pid_file: PathBuf,
    broker: Mosquitto,
}

impl World {
    fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        Keyring::init(&keys, FLEET, InitSpec::default()).unwrap();
        enrol(&keys, "lobby-1", "lobby");
        enrol(&keys, "lobby-2", "hall");
        let out = dir.path().join("broker");
        let pid_file = dir.path().join("mosquitto.pid");
        let broker = Mosquitto::start_with_config(|port, run_dir| {
            let setup = BrokerSetup {
                hosts: vec!["127.0.0.1".into()],
                port,
                bind: Some("127.0.0.1".into()),
                install_dir: out.clone(),
                include_dir: out.join("conf.d"),
            };
            write_config(&keys, &setup, &out).unwrap();
            let conf = std::fs::read_to_string(out.join(CONF_FILE)).unwrap();
            // The test's own additions: stay root (the files are in a
            // private temporary directory), persist there, log to stderr,
            // say its process id (for SIGHUP).
            format!(
                "{conf}\nuser root\npersistence_location {}/\nlog_dest stderr\npid_file {}\n",
                run_dir.display(),
                pid_file.display()
            )
        });
        World {
            _dir: dir,
            keys,
            broker_files: out,
            pid_file,
            broker,
        }
    }

    /// `systemctl reload mosquitto`: SIGHUP.
    fn reload_broker(&self) {
        let pid = std::fs::read_to_string(&self.pid_file).unwrap();
        let sent = std::process::Command::new("kill")
            .args(["-HUP", pid.trim()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.broker.port)
    }

    /// The operator, with the keyring's CA and certificate by default.
    fn operator(&self) -> Endpoint {
        Endpoint::new(&self.url(), &MqttAuth::default(), &self.keys)
    }

    /// A device, with the TLS files of its bundle.
    fn device(&self, name: &str) -> Endpoint {
        let bundle = self.keys.join("devices").join(name);
        Endpoint {
            url: self.url(),
            auth: phare_player::config::Config::load(&bundle.join(CONFIG_FILE))
                .unwrap()
                .mqtt,
        }
    }

    fn topic(&self, rest: &str) -> String {
        format!("phare/{FLEET}/{rest}")
    }
}

fn enrol(keys: &Path, name: &str, group: &str) {
    let spec = DeviceSpec {
        name: name.into(),
        groups: vec![group.into()],
        brokers: vec!["mqtts://127.0.0.1".into()],
        origins: Vec::new(),
    };
    add_device(keys, &spec, None, false).unwrap();
}

/// Starts a player from a bundle as it is, but for where a test keeps
/// data and shows video.
fn start_headless(bundle: &Path) -> Player {
    let config = bundle.join(CONFIG_FILE);
    let data_dir = bundle.join("data");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "video_sink = \"auto\"",
        &format!(
            "video_sink = \"fake\"\ndata_dir = {:?}\nstatus_interval_s = 2",
            data_dir.display().to_string()
        ),
    );
    std::fs::write(&config, text).unwrap();
    Player::start_from(&config, &data_dir)
}

/// What a client received: (topic, payload), in order.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A connected client that keeps what it receives, by topic.
struct Client {
    client: AsyncClient,
    received: Received,
    /// Subscriptions the broker acknowledged so far.
    subacks: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn connect(endpoint: &Endpoint) -> Result<Client, ConnectError> {
        Client::connect_as(endpoint, endpoint.options("test")?).await
    }

    /// Connects with these options (e.g. a given client id).
    async fn connect_as(
        endpoint: &Endpoint,
        options: rumqttc::MqttOptions,
    ) -> Result<Client, ConnectError> {
        let (client, mut eventloop) = endpoint.connect(options).await?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let subacks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acked = subacks.clone();
        let task = tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                match event {
                    Event::Incoming(Packet::Publish(p)) => sink
                        .lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.to_vec())),
                    Event::Incoming(Packet::SubAck(_)) => {
                        acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        });
        Ok(Client {
            client,
            received,
            subacks,
            task,
        })
    }

    /// Subscribes, and returns once the broker acknowledged it.
    async fn subscribe(&self, filter: &str) {
        use std::sync::atomic::Ordering;
        let before = self.subacks.load(Ordering::SeqCst);
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        while self.subacks.load(Ordering::SeqCst) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no SUBACK for {filter}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    fn payloads_on(&self, topic: &str) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    /// Waits (generously) until something arrives on `topic`.
    async fn wait_for(&self, topic: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let payloads = self.payloads_on(topic);
            if !payloads.is_empty() {
                return payloads;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing arrived on {topic}; got {:?}",
                self.received.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_fleets_certificates_get_in() {
    let world = World::start();

    // (a) The operator, with the keyring's certificate, connects and
    // publishes (the broker acknowledged it).
    let operator = world.operator();
    assert!(
        operator.auth.cert_file.is_some(),
        "the keyring's certificate is the default"
    );
    publish(
        &operator,
        &world.topic("alert/evac"),
        b"hello".to_vec(),
        true,
    )
    .await
    .unwrap();

    // (b) A certificate from another fleet's CA is refused in the handshake.
    let rival = tempfile::tempdir().unwrap();
    let rival_keys = rival.path().join("keys");
    Keyring::init(&rival_keys, "rival", InitSpec::default()).unwrap();
    enrol(&rival_keys, "lobby-1", "lobby");
    let mut intruder = world.device("lobby-1");
    let rival_bundle = rival_keys.join("devices/lobby-1");
    intruder.auth.cert_file = Some(rival_bundle.join("device.pem"));
    intruder.auth.key_file = Some(rival_bundle.join("device.key"));
    match Client::connect(&intruder).await {
        Err(ConnectError::Tls { reason, .. }) => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        Err(other) => panic!("not a TLS refusal: {other}"),
        Ok(_) => panic!("a rival fleet's certificate got in"),
    }

    // (c) No certificate at all is refused too.
    let mut anonymous = world.device("lobby-1");
    anonymous.auth.cert_file = None;
    anonymous.auth.key_file = None;
    match Client::connect(&anonymous).await {
        Err(ConnectError::Tls { .. }) => {}
        Err(other) => panic!("not a TLS refusal: {other}"),
        Ok(_) => panic!("a client without a certificate got in"),
    }

    // A device of the fleet gets in.
    Client::connect(&world.device("lobby-1")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_reads_and_writes_only_its_own_topics() {
    let world = World::start();
    let operator = world.operator();
    let retained = [
        "device/lobby-1/assignment",
        "device/lobby-2/assignment",
        "group/lobby/assignment",
        "group/hall/assignment",
        "trust/root/1",
        "alert/evac",
    ];
    for rest in retained {
        let topic = world.topic(rest);
        publish(&operator, &topic, rest.as_bytes().to_vec(), true)
            .await
            .unwrap();
    }

    // Reads: lobby-1 asks for the other screen's and the other group's
    // assignments first, then for its own. Mosquitto answers subscriptions
    // in order, so by the time its own have arrived, the others would have.
    let lobby1 = Client::connect(&world.device("lobby-1")).await.unwrap();
    for rest in ["device/lobby-2/assignment", "group/hall/assignment"] {
        lobby1.subscribe(&world.topic(rest)).await;
    }
    for rest in [
        "device/lobby-1/assignment",
        "group/lobby/assignment",
        "trust/root/+",
        "alert/+",
    ] {
        lobby1.subscribe(&world.topic(rest)).await;
    }
    for rest in [
        "device/lobby-1/assignment",
        "group/lobby/assignment",
        "trust/root/1",
        "alert/evac",
    ] {
        assert_eq!(lobby1.wait_for(&world.topic(rest)).await, [rest]);
    }
    // And a generous while more, for good measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for rest in ["device/lobby-2/assignment", "group/hall/assignment"] {
        assert!(
            lobby1.payloads_on(&world.topic(rest)).is_empty(),
            "lobby-1 read {rest}"
        );
    }

    // Writes: lobby-1 forges lobby-2's status, then reports its own. The
    // broker keeps one client's messages in order: once its own status has
    // reached the operator, the forgery would have too.
    let watcher = Client::connect(&operator).await.unwrap();
    watcher.subscribe(&world.topic("device/+/status")).await;
    watcher.subscribe(&world.topic("device/+/command")).await;
    lobby1
        .publish(&world.topic("device/lobby-2/status"), "forged")
        .await;
    lobby1
        .publish(&world.topic("device/lobby-2/command"), "forged")
        .await;
    lobby1
        .publish(&world.topic("device/lobby-1/status"), "mine")
        .await;
    assert_eq!(
        watcher
            .wait_for(&world.topic("device/lobby-1/status"))
            .await,
        ["mine"]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for rest in ["device/lobby-2/status", "device/lobby-2/command"] {
        assert!(
            watcher.payloads_on(&world.topic(rest)).is_empty(),
            "lobby-1 wrote {rest}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_screen_is_watched_and_commanded_over_mutual_tls() {
    let world = World::start();
    // Enrolled once the broker's address is known: the patterns of the ACL
    // cover a device without groups, no ACL refresh needed.
    let spec = DeviceSpec {
        name: "lobby-3".into(),
        groups: Vec::new(),
        brokers: vec![world.url()],
        origins: Vec::new(),
    };
    let bundle = add_device(&world.keys, &spec, None, false).unwrap().bundle;
    let mut player = start_headless(&bundle);
    player.wait_status("connected to the broker", |s| s["broker"] == world.url());

    let operator = world.operator();
    let topics = Topics::for_fleet(FLEET);
    let statuses =
        phare_provisioning::fleet::collect(&operator, &topics, Duration::from_millis(500))
            .await
            .unwrap();
    let table = phare_provisioning::fleet::table(&statuses.statuses);
    let line = table.lines().find(|l| l.starts_with("lobby-3")).unwrap();
    assert!(
        line.contains("yes") && line.contains(&world.url()),
        "{table}"
    );

    let keyring = Keyring::open(&world.keys).unwrap();
    let ask = |action: Action| Request {
        device: "lobby-3".into(),
        action,
    };
    let answer = command::send(
        &operator,
        &topics,
        &keyring,
        &ask(Action::ReportNow),
        TIMEOUT,
        |_| {},
    )
    .await
    .unwrap();
    assert!(answer.ok, "{answer:?}");
    // Until the status screen's first frame reached the sink, the device
    // answers that it has no picture yet: ask again.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let shot = loop {
        let shot = command::send(
            &operator,
            &topics,
            &keyring,
            &ask(Action::Screenshot {
                format: ImageFormat::Png,
            }),
            TIMEOUT,
            |_| {},
        )
        .await
        .unwrap();
        if shot.ok || std::time::Instant::now() > deadline {
            break shot;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let file = bundle.join("shot.png");
    let (media_type, size) = command::save_screenshot(&shot, &file).unwrap();
    assert!(
        media_type.starts_with("image/") && size > 1000,
        "{media_type}, {size} bytes"
    );
    assert_eq!(std::fs::read(&file).unwrap().len(), size);

    // Stopped, it says so (its last status is retained), and a command is
    // refused without waiting.
    player.stop();
    let err = command::send(
        &operator,
        &topics,
        &keyring,
        &ask(Action::Reload),
        TIMEOUT,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("lobby-3 is offline (last seen "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_with_another_fleets_certificate_is_refused_and_says_why() {
    let world = World::start();
    // Enrolled by another fleet's CA, under a name this fleet knows; it
    // trusts this fleet's broker, so only its own certificate is wrong.
    let other = tempfile::tempdir().unwrap();
    let other_keys = other.path().join("keys");
    Keyring::init(&other_keys, FLEET, InitSpec::default()).unwrap();
    let spec = DeviceSpec {
        name: "lobby-1".into(),
        groups: Vec::new(),
        brokers: vec![world.url()],
        origins: Vec::new(),
    };
    let bundle = add_device(&other_keys, &spec, None, false).unwrap().bundle;
    std::fs::copy(world.keys.join("tls").join("ca.pem"), bundle.join("ca.pem")).unwrap();
    let player = start_headless(&bundle);

    let status = player.wait_status("the refusal in the status", |s| {
        s["errors"].as_array().is_some_and(|errors| {
            errors
                .iter()
                .any(|e| e["kind"] == "broker_unreachable" && e["subject"] == world.url())
        })
    });
    assert!(status["broker"].is_null(), "never connected: {status}");
    let error = status["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "broker_unreachable")
        .unwrap();
    let detail = error["detail"].as_str().unwrap();
    // The broker's TLS alert, as rustls names it.
    assert!(detail.contains("UnknownCA"), "the reason is given: {error}");
    let log = player.log_tail();
    assert!(
        !log.contains("PRIVATE KEY"),
        "no key material in the log: {log}"
    );
}

/// Publishes `payload` as the device `name` would, on `rest` under the
/// fleet's prefix.
async fn publish_as(
    world: &World,
    name: &str,
    rest: &str,
    payload: serde_json::Value,
    retain: bool,
) {
    publish(
        &world.device(name),
        &world.topic(rest),
        payload.to_string().into_bytes(),
        retain,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_screen_cannot_speak_for_another_in_the_operators_tools() {
    let world = World::start();
    let operator = world.operator();
    let topics = Topics::for_fleet(FLEET);

    // lobby-2 is off; its last status was garbled on the way (escape
    // sequences). lobby-1, stolen, writes on the only status topic the ACL
    // lets it write, its own: a status saying lobby-2 is online.
    publish_as(
        &world,
        "lobby-2",
        "device/lobby-2/status",
        json!({"device": "lobby-2", "online": false, "broker": "\u{1b}]0;owned\u{7}\u{1b}[2J"}),
        true,
    )
    .await;
    publish_as(
        &world,
        "lobby-1",
        "device/lobby-1/status",
        json!({"device": "lobby-2", "online": true, "broker": "forged"}),
        true,
    )
    .await;

    // Proof of play: the collector runs, under its own certificate, while
    // the operator looks at the fleet: lobby-1 sends, on its own topic,
    // records claiming to be lobby-2's first two; then lobby-2 sends its
    // real ones.
    let collector = Endpoint::for_tool(
        &world.url(),
        &MqttAuth::default(),
        &world.keys,
        Tool::Collector,
    );
    assert!(
        collector
            .auth
            .cert_file
            .as_ref()
            .unwrap()
            .ends_with("collector.pem")
    );
    let db_dir = tempfile::tempdir().unwrap();
    let db = db_dir.path().join("pop.db");
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let collecting = {
        let (db, arrivals) = (db.clone(), arrivals.clone());
        tokio::spawn(async move {
            let stop = async {
                let _ = stop_rx.await;
            };
            phare_provisioning::pop::collect(&collector, FLEET, &db, stop, |arrival| {
                arrivals.lock().unwrap().push(arrival)
            })
            .await
        })
    };
    let records = |playlist: &str| {
        json!(
            [1, 2].map(|seq| json!({"seq": seq, "playlist": playlist, "item": 0,
            "start": "2026-11-29T10:00:00Z", "end": "2026-11-29T10:00:05Z", "completed": true}))
        )
    };
    // The collector's subscription is in place once a first batch arrives.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while arrivals.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the collector got nothing"
        );
        publish_as(
            &world,
            "lobby-1",
            "device/lobby-1/pop",
            json!({"device": "lobby-2", "records": records("forged")}),
            false,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The status table, meanwhile: lobby-2 once, offline; nothing that
    // drives the terminal; the forgery counted.
    let collected =
        phare_provisioning::fleet::collect(&operator, &topics, Duration::from_millis(500))
            .await
            .unwrap();
    let table = phare_provisioning::fleet::table(&collected.statuses);
    assert!(!table.contains(['\u{1b}', '\u{7}']), "{table:?}");
    let lobby2: Vec<&str> = table.lines().filter(|l| l.starts_with("lobby-2")).collect();
    assert_eq!(lobby2.len(), 1, "{table}");
    assert!(
        lobby2[0].contains(" no ") && !lobby2[0].contains("forged"),
        "{table}"
    );
    assert_eq!(collected.refused.len(), 1, "{:?}", collected.refused);

    let stored = |arrivals: &[Arrival]| {
        arrivals
            .iter()
            .any(|a| matches!(a, Arrival::Stored { device, .. } if device == "lobby-2"))
    };
    publish_as(
        &world,
        "lobby-2",
        "device/lobby-2/pop",
        json!({"device": "lobby-2", "records": records("main")}),
        false,
    )
    .await;
    while !stored(&arrivals.lock().unwrap()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lobby-2's batch did not arrive: {:?}",
            arrivals.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(()).unwrap();
    collecting.await.unwrap().unwrap();
    let arrivals = arrivals.lock().unwrap();
    // The forgery was refused, and counted.
    assert!(
        matches!(arrivals[0], Arrival::Refused { refused: 1, .. }),
        "{arrivals:?}"
    );
    let mut csv = Vec::new();
    phare_provisioning::pop::PlayLog::open(&db)
        .unwrap()
        .export_csv(&mut csv)
        .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let playlists: Vec<(&str, &str)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            (fields[0], fields[2])
        })
        .collect();
    assert_eq!(
        playlists,
        [("lobby-2", "main"), ("lobby-2", "main")],
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_cannot_take_over_another_screens_session() {
    let world = World::start();
    // lobby-2, under its client id as the player connects.
    let device = world.device("lobby-2");
    let lobby2 = Client::connect_as(&device, device.options_as("lobby-2").unwrap())
        .await
        .unwrap();
    let own = world.topic("device/lobby-2/assignment");
    lobby2.subscribe(&own).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // lobby-1, stolen, connects under lobby-2's client id: without the
    // binding, the broker would close lobby-2's connection and hand its
    // session over.
    let thief = world.device("lobby-1");
    let options = thief.options_as("lobby-2").unwrap();
    let (_client, mut eventloop) = thief.connect(options).await.unwrap();
    let thief_task = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    tokio::time::sleep(Duration::from_secs(1)).await;

    // lobby-2 is still connected: it gets what is published for it.
    publish(&world.operator(), &own, b"still mine".to_vec(), false)
        .await
        .unwrap();
    assert_eq!(lobby2.wait_for(&own).await, ["still mine"]);
    thief_task.abort();
}

/// Waits (generously) until `endpoint` is refused in the TLS handshake
/// because its certificate is revoked.
async fn wait_until_revoked(endpoint: &Endpoint) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match Client::connect(endpoint).await {
            Err(ConnectError::Tls { reason, .. }) if reason.contains("CertificateRevoked") => {
                return;
            }
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "still not refused as revoked: {:?}",
                other.err()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_screen_is_refused_once_the_broker_rereads_the_list() {
    let world = World::start();
    let (lobby1, lobby2) = (world.device("lobby-1"), world.device("lobby-2"));
    // lobby-2's connection, open throughout. (One per certificate: no
    // other lobby-2 connection may succeed while it is watched.)
    let open = Client::connect(&lobby2).await.unwrap();

    for name in ["lobby-1", "lobby-2"] {
        let revoked = revoke_device(&world.keys, name, &world.broker_files).unwrap();
        assert_eq!(revoked.serials.len(), 1);
        assert_eq!(revoked.crl, world.broker_files.join("crl.pem"));
    }
    // The list is read when the broker starts or reloads, not before.
    drop(Client::connect(&lobby1).await.unwrap());

    world.reload_broker();
    wait_until_revoked(&lobby1).await;
    // The reload is done: lobby-2's open connection is still up (hence
    // `systemctl restart`), and a new one is refused.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !open.task.is_finished(),
        "the revoked screen's open connection was closed by the reload"
    );
    wait_until_revoked(&lobby2).await;
    // The operator still gets in.
    publish(
        &world.operator(),
        &world.topic("alert/evac"),
        b"x".to_vec(),
        true,
    )
    .await
    .unwrap();

    // A screen enrolled now, revoked at once: the broker keeps every list
    // it loaded and goes by the latest dated, so each new one is dated
    // after the last.
    enrol(&world.keys, "lobby-3", "lobby");
    let lobby3 = world.device("lobby-3");
    drop(Client::connect(&lobby3).await.unwrap());
    revoke_device(&world.keys, "lobby-3", &world.broker_files).unwrap();
    world.reload_broker();
    wait_until_revoked(&lobby3).await;
    wait_until_revoked(&lobby1).await;

    // Revoked again: nothing new. A name the CA never issued to: an error.
    assert!(
        revoke_device(&world.keys, "lobby-1", &world.broker_files)
            .unwrap()
            .serials
            .is_empty()
    );
    assert!(revoke_device(&world.keys, "lobby-9", &world.broker_files).is_err());
}

//! The device's link to its brokers, end to end: failover down the list
//! and back to the primary, and the durable outbox across an outage.

use std::path::Path;

use phare_tests::*;
use serde_json::Value;

fn on_broker(url: String) -> impl FnMut(&Value) -> bool {
    move |s| s["online"] == true && s["broker"] == url.as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_fails_over_to_the_second_broker_and_returns_to_the_primary() {
    let Scene {
        fleet,
        broker: mut primary,
        origin,
        work,
    } = Scene::new().await;
    let secondary = Mosquitto::start();
    let first = fleet.image("first.png", "smpte");
    let v1 = fleet.sign(&fleet.assignment(1, &[&first]));
    // The operator publishes retained documents to every broker.
    publish(&primary, &v1).await;
    publish(&secondary, &v1).await;
    let player = Player::start_with(
        work.path(),
        &fleet.root_path(),
        &[primary.url(), secondary.url()],
        &[origin.as_ref().unwrap().url()],
        "primary_retry_s = 1\n",
    );
    player.wait_status("playing through the primary", |s| {
        playing_version(1)(s) && on_broker(primary.url())(s)
    });

    primary.stop();
    player.wait_status("moved to the secondary", on_broker(secondary.url()));
    let second = fleet.image("second.png", "ball");
    publish(&secondary, &fleet.sign(&fleet.assignment(2, &[&second]))).await;
    player.wait_status("a new assignment through the secondary", playing_version(2));
    let statuses = Subscriber::new(&secondary, &device_topic("status")).await;
    wait_for(
        || statuses.json().iter().any(on_broker(secondary.url())),
        "the retained status on the secondary names it",
    );

    // The primary comes back empty, as a replaced node would; the operator
    // publishes there again, and the device goes back on its own.
    primary.restart();
    publish(&primary, &fleet.sign(&fleet.assignment(2, &[&second]))).await;
    player.wait_status("back on the primary", on_broker(primary.url()));
    let statuses = Subscriber::new(&primary, &device_topic("status")).await;
    wait_for(
        || {
            statuses
                .json()
                .iter()
                .any(|s| on_broker(primary.url())(s) && playing_version(2)(s))
        },
        "the retained status on the primary",
    );
}

/// Rows waiting in the device's durable outbox.
fn outbox_rows(data_dir: &Path) -> usize {
    let db = rusqlite::Connection::open(data_dir.join("state.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM outbox", [], |row| {
        row.get::<_, i64>(0)
    })
    .unwrap_or(0) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_produced_while_the_broker_is_down_arrive_after_reconnection_in_order() {
    let mut scene = Scene::persistent(Fleet::new()).await;
    let events = Subscriber::durable(&scene.broker, &device_topic("events"), "test-events").await;
    let first = scene.fleet.image("first.png", "smpte");
    scene.publish_assignment(1, &[&first]).await;
    let player = scene.start_player();
    player.wait_status("playing", playing_version(1));

    // Version 2 names an image the origin does not have yet: every attempt
    // fails, and each failure is an event.
    let late = scene.fleet.image("late.png", "ball");
    let v2 = scene.fleet.sign(&scene.fleet.assignment(2, &[&late]));
    let hidden = scene.work.path().join("late.png");
    std::fs::rename(&late, &hidden).unwrap();
    publish(&scene.broker, &v2).await;
    wait_for(
        || events.json().iter().any(|e| e["kind"] == "download_failed"),
        "a first failure reported online",
    );

    scene.broker.stop();
    wait_for(
        || outbox_rows(&player.data_dir) >= 2,
        "failures queued while offline",
    );
    // The file appears: the download succeeds offline and version 2 plays.
    std::fs::rename(&hidden, &late).unwrap();
    player.wait_status("version 2 playing offline", playing_version(2));
    let queued = outbox_rows(&player.data_dir);
    assert!(queued >= 3, "failures and the download queued: {queued}");

    let before = events.json().len();
    scene.broker.restart();
    wait_for(
        || outbox_rows(&player.data_dir) == 0,
        "the outbox delivered and emptied",
    );
    wait_for(
        || events.json().len() >= before + queued,
        "every queued event at the subscriber",
    );
    let after: Vec<Value> = events.json().split_off(before);
    let times: Vec<jiff::Timestamp> = after
        .iter()
        .map(|e| e["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in the order they happened: {after:#?}"
    );
    let kinds: Vec<&str> = after.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let downloaded = kinds.iter().position(|k| *k == "downloaded");
    assert!(
        downloaded.is_some_and(|d| kinds[..d]
            .iter()
            .filter(|k| **k == "download_failed")
            .count()
            >= 2),
        "offline failures, then the download: {kinds:?}"
    );
}

/// A TLS broker, its certificate from `fleet`'s CA, that takes `lobby-1`
/// with `password` and nobody else (a password never crosses plain MQTT).
/// Returns it with its URL.
fn password_broker(fleet: &Fleet, password: &str) -> (Mosquitto, String) {
    let (ca, _) =
        phare_provisioning::ca::FleetCa::open_or_create(&fleet.dir.path().join("keys"), FLEET)
            .unwrap();
    let broker = Mosquitto::start_with_config(|port, dir| {
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        ca.issue_server(&["127.0.0.1".into()])
            .unwrap()
            .write(&cert, &key)
            .unwrap();
        let passwords = dir.join("passwords");
        let made = std::process::Command::new("mosquitto_passwd")
            .arg("-b")
            .arg("-c")
            .arg(&passwords)
            .arg(DEVICE)
            .arg(password)
            .status()
            .expect("mosquitto_passwd comes with mosquitto");
        assert!(made.success());
        format!(
            "listener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\n\
             allow_anonymous false\npassword_file {}\nuser root\n",
            cert.display(),
            key.display(),
            passwords.display()
        )
    });
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    (broker, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_logs_in_with_a_password_file_and_a_wrong_one_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let fleet = Fleet::new();
    let (_broker, url) = password_broker(&fleet, "correct horse");
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("mqtt.password");
    std::fs::write(&secret, "wrong horse\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let auth = format!(
        "[mqtt]\nca_file = {:?}\nusername = \"{DEVICE}\"\npassword_file = {:?}\n",
        fleet
            .dir
            .path()
            .join("keys/tls/ca.pem")
            .display()
            .to_string(),
        secret.display().to_string()
    );
    let mut player = Player::start_with(
        work.path(),
        &fleet.root_path(),
        std::slice::from_ref(&url),
        &[],
        &auth,
    );
    let status = player.wait_status("the refusal in the status", |s| {
        s["errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "broker_unreachable"))
    });
    assert!(status["broker"].is_null(), "{status}");
    let refusal = status["errors"].to_string();
    assert!(refusal.contains("NotAuthorized"), "{refusal}");

    std::fs::write(&secret, "correct horse\n").unwrap();
    player.restart();
    player.wait_status("connected with the right password", on_broker(url));
    let log = player.log_tail();
    assert!(!log.contains("horse"), "no password in the log: {log}");
}

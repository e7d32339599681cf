//! The attack suite (TUF's attack model applied to Phare's documents): one
//! test per attack, each against the real player through a real broker,
//! each proving the device refuses the attack with the right reason and
//! keeps playing what it played.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::{Timestamp, ToSpan};
use phare_protocol::envelope::payload_type;
use phare_protocol::{Envelope, RoleName, SigningKey};
use phare_tests::*;
use serde_json::{Value, json};

/// A player playing version `version` of a one-image playlist.
struct Victim {
    scene: Scene,
    player: Player,
    image: PathBuf,
}

impl Victim {
    async fn new(version: u64) -> Victim {
        Victim::with_fleet(Fleet::new(), version).await
    }

    async fn with_fleet(fleet: Fleet, version: u64) -> Victim {
        let (scene, player, image) = playing_one_image(fleet, version).await;
        Victim {
            scene,
            player,
            image,
        }
    }

    /// An assignment of the same image, to be tampered with.
    fn assignment(&self, version: u64) -> Value {
        self.scene.fleet.assignment(version, &[&self.image])
    }

    /// Publishes an envelope on one of the device's own topics, whatever
    /// its document says, as a hostile broker or client could.
    async fn inject(&self, stream: &str, envelope: &Envelope, retain: bool) {
        publish_raw(
            &self.scene.broker,
            &device_topic(stream),
            envelope.to_json().into_bytes(),
            retain,
        )
        .await;
    }

    /// Waits for the rejection and proves the screen still plays `version`.
    fn assert_refused(&self, reason: &'static str, version: u64) {
        let status = self
            .player
            .wait_status(&format!("a {reason} rejection"), rejected_with(reason));
        assert_eq!(status["assignment"]["version"], version, "{status}");
        assert_played(&self.player.watch_items(2), &self.image);
    }
}

fn payload(document: &Value) -> Vec<u8> {
    serde_json::to_vec(document).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_document() {
    let v = Victim::new(1).await;
    let unsigned = Envelope::sign(&payload_type("assignment"), &payload(&v.assignment(2)), &[]);
    publish(&v.scene.broker, &unsigned).await;
    v.assert_refused("threshold", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_by_an_unknown_key() {
    let v = Victim::new(1).await;
    let stranger = SigningKey::generate().unwrap();
    publish(
        &v.scene.broker,
        &Envelope::sign(
            &payload_type("assignment"),
            &payload(&v.assignment(2)),
            &[&stranger],
        ),
    )
    .await;
    v.assert_refused("threshold", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_publisher_threshold() {
    let fleet = Fleet::with_keys(KeySpec {
        publisher_keys: 2,
        publisher_threshold: 2,
        ..KeySpec::default()
    });
    let v = Victim::with_fleet(fleet, 1).await;
    let one = v.scene.fleet.keys.held_keys(RoleName::Publisher)[0];
    publish(
        &v.scene.broker,
        &Envelope::sign(
            &payload_type("assignment"),
            &payload(&v.assignment(2)),
            &[one],
        ),
    )
    .await;
    v.assert_refused("threshold", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_signatures_by_one_key() {
    let fleet = Fleet::with_keys(KeySpec {
        publisher_keys: 2,
        publisher_threshold: 2,
        ..KeySpec::default()
    });
    let v = Victim::with_fleet(fleet, 1).await;
    let one = v.scene.fleet.keys.held_keys(RoleName::Publisher)[0];
    let mut envelope = Envelope::sign(
        &payload_type("assignment"),
        &payload(&v.assignment(2)),
        &[one],
    );
    envelope.signatures.push(envelope.signatures[0].clone());
    publish(&v.scene.broker, &envelope).await;
    v.assert_refused("threshold", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_payload() {
    let v = Victim::new(1).await;
    let mut envelope = v.scene.sign("assignment", &v.assignment(2));
    let mut forged = v.assignment(2);
    forged["playlists"]["main"][0]["duration_ms"] = 1.into();
    envelope.payload = BASE64.encode(payload(&forged));
    publish(&v.scene.broker, &envelope).await;
    v.assert_refused("bad_signature", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_envelope_replayed_as_an_assignment() {
    let v = Victim::new(1).await;
    let command = v.scene.sign("command", &command("report_now", DEVICE));
    v.inject("assignment", &command, true).await;
    v.assert_refused("malformed", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_an_older_version() {
    let v = Victim::new(5).await;
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(4)),
    )
    .await;
    v.assert_refused("rollback", 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_version_different_bytes() {
    let v = Victim::new(5).await;
    let mut other = v.assignment(5);
    other["playlists"]["main"][0]["duration_ms"] = 5000.into();
    publish(&v.scene.broker, &v.scene.sign("assignment", &other)).await;
    v.assert_refused("rollback", 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_document() {
    let v = Victim::new(1).await;
    let mut expired = v.assignment(2);
    // Issued and expired in the past: one that expires before it is issued
    // is malformed, whatever the time.
    expired["issued_at"] = json!(Timestamp::now().checked_sub(2.hours()).unwrap());
    expired["expires_at"] = json!(Timestamp::now().checked_sub(1.hour()).unwrap());
    publish(&v.scene.broker, &v.scene.sign("assignment", &expired)).await;
    v.assert_refused("expired", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fleet() {
    let v = Victim::new(1).await;
    let mut other = v.assignment(2);
    other["fleet"] = "other-fleet".into();
    let envelope = v.scene.sign("assignment", &other);
    v.inject("assignment", &envelope, true).await;
    v.assert_refused("wrong_fleet", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_target() {
    let v = Victim::new(1).await;
    let mut other = v.assignment(2);
    other["target"] = "device:lobby-2".into();
    let envelope = v.scene.sign("assignment", &other);
    v.inject("assignment", &envelope, true).await;
    v.assert_refused("wrong_target", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_envelope() {
    let v = Victim::new(1).await;
    let mut huge = v.assignment(2);
    huge["padding"] = "x".repeat(1_200_000).into();
    let envelope = v.scene.sign("assignment", &huge);
    publish(&v.scene.broker, &envelope).await;
    v.assert_refused("too_large", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_url_schemes() {
    let v = Victim::new(1).await;
    let urls = [
        "file:///etc/shadow",
        "ftp://127.0.0.1/x.png",
        "javascript:alert(1)",
    ];
    for (refusals, url) in (1..).zip(urls) {
        let mut bad = v.assignment(2);
        bad["assets"][asset_id(&v.image)]["urls"] = json!([url]);
        publish(&v.scene.broker, &v.scene.sign("assignment", &bad)).await;
        // Each URL is refused on its own, not by the previous one's event.
        v.player.wait_status(&format!("{url} refused"), move |s| {
            let errors = s["errors"].as_array().unwrap();
            errors
                .iter()
                .filter(|e| e["reason"] == "unsafe_url")
                .count()
                == refusals
        });
    }
    v.assert_refused("unsafe_url", 1);
}

fn command(action: &str, device: &str) -> Value {
    let now = Timestamp::now();
    json!({
        "kind": "command", "fleet": FLEET, "device": device,
        "id": format!("cmd-{}", now.as_nanosecond()),
        "issued_at": now, "expires_at": now.checked_add(5.minutes()).unwrap(),
        "action": action, "args": {},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_for_another_device_replayed_to_this_one() {
    let v = Victim::new(1).await;
    let envelope = v.scene.sign("command", &command("report_now", "lobby-2"));
    v.inject("command", &envelope, false).await;
    v.assert_refused("wrong_target", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_id_replayed() {
    let v = Victim::new(1).await;
    let responses = Subscriber::new(&v.scene.broker, &device_topic("response")).await;
    let envelope = v.scene.sign("command", &command("report_now", DEVICE));
    publish(&v.scene.broker, &envelope).await;
    wait_for(|| responses.json().len() == 1, "the command's response");
    publish(&v.scene.broker, &envelope).await;
    v.assert_refused("replay", 1);
    let answered = responses.json();
    assert_eq!(answered.len(), 1, "executed once: {answered:?}");
    assert_eq!(answered[0]["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_signed_by_the_new_keys_only() {
    let v = Victim::new(1).await;
    // An attacker's own keyring for the same fleet, version 2.
    let attacker_dir = tempfile::tempdir().unwrap();
    let mut attacker =
        phare_provisioning::keys::Keyring::init(attacker_dir.path(), FLEET, KeySpec::default())
            .unwrap();
    let written = attacker.rotate(RoleName::Publisher).unwrap();
    let forged_root = Envelope::from_slice(&std::fs::read(&written.path).unwrap()).unwrap();
    publish(&v.scene.broker, &forged_root).await;
    v.assert_refused("threshold", 1);
    // And what its publisher signs is worthless.
    publish(
        &v.scene.broker,
        &attacker.sign("assignment", &v.assignment(2)).unwrap(),
    )
    .await;
    let status = v.player.wait_status("the forged assignment refused", |s| {
        s["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["reason"] == "threshold")
            .count()
            >= 2
    });
    assert_eq!(status["assignment"]["version"], 1);
}

fn root_file(scene: &Scene, version: u64) -> Envelope {
    Envelope::from_slice(&std::fs::read(scene.fleet.keys.root_version_path(version)).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_chain_with_a_gap() {
    let mut v = Victim::new(1).await;
    v.scene.fleet.keys.rotate(RoleName::Publisher).unwrap();
    v.scene.fleet.keys.rotate(RoleName::Publisher).unwrap();
    // Root 3 without root 2: cannot be checked against what the device trusts.
    publish(&v.scene.broker, &root_file(&v.scene, 3)).await;
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(2)),
    )
    .await;
    v.assert_refused("threshold", 1);
    // With the missing link, the chain walks to 3 and the new key is trusted.
    publish(&v.scene.broker, &root_file(&v.scene, 2)).await;
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(3)),
    )
    .await;
    v.player
        .wait_status("version 3 after the chain caught up", playing_version(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_missed_five_rotations_catches_up() {
    let mut scene = Scene::new().await;
    let image = scene.fleet.image("safe.png", "smpte");
    for _ in 0..5 {
        scene.fleet.keys.rotate(RoleName::Root).unwrap();
        scene.fleet.keys.rotate(RoleName::Publisher).unwrap();
    }
    // Roots 2..=11 retained on the broker; the device pinned root 1.
    let pinned = scene.work.path().join("pinned-root-1.json");
    std::fs::copy(scene.fleet.keys.root_version_path(1), &pinned).unwrap();
    for version in 2..=11 {
        publish(&scene.broker, &root_file(&scene, version)).await;
    }
    scene.publish_assignment(1, &[&image]).await;
    let origin = scene.origin.as_ref().unwrap().url();
    let player = Player::start(scene.work.path(), &pinned, &[scene.broker.url()], &[origin]);
    player.wait_status(
        "an assignment signed by the newest publisher",
        playing_version(1),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_publisher_key_signs_nothing_any_more() {
    let fleet = Fleet::with_keys(KeySpec {
        publisher_keys: 2,
        ..KeySpec::default()
    });
    let mut v = Victim::with_fleet(fleet, 1).await;
    let revoked = v.scene.fleet.keys.held_keys(RoleName::Publisher)[0].keyid();
    let revoked_key = phare_protocol::SigningKey::from_pkcs8(
        v.scene.fleet.keys.held_keys(RoleName::Publisher)[0].pkcs8(),
    )
    .unwrap();
    v.scene.fleet.keys.revoke(&revoked).unwrap();
    publish(&v.scene.broker, &root_file(&v.scene, 2)).await;
    let envelope = Envelope::sign(
        &payload_type("assignment"),
        &payload(&v.assignment(2)),
        &[&revoked_key],
    );
    publish(&v.scene.broker, &envelope).await;
    v.assert_refused("threshold", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_forward_then_recovery_by_root_rotation() {
    let mut v = Victim::new(1).await;
    // A stolen publisher key pushes a version nobody can exceed.
    let stolen = 1u64 << 62;
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(stolen)),
    )
    .await;
    v.player
        .wait_status("the fast-forwarded version", playing_version(stolen));
    // The operator rotates the publisher key: the floors reset.
    v.scene.fleet.keys.rotate(RoleName::Publisher).unwrap();
    publish(&v.scene.broker, &root_file(&v.scene, 2)).await;
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(2)),
    )
    .await;
    v.player
        .wait_status("recovery with version 2", playing_version(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_asset_bytes_from_one_origin() {
    let v = Victim::new(1).await;
    // A second asset; origin A serves other bytes under its name, origin B
    // the right ones.
    let good = v.scene.fleet.image("fresh.png", "ball");
    let mirror = tempfile::tempdir().unwrap();
    std::fs::copy(&good, mirror.path().join("fresh.png")).unwrap();
    let origin_b = Origin::serve(mirror.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let document = v.scene.fleet.assignment(2, &[&good]);
    std::fs::write(&good, b"not the signed bytes").unwrap();
    let mut player = v.player;
    player.stop();
    let origin_a = v.scene.origin.as_ref().unwrap().url();
    let player = v
        .scene
        .start_player_with_origins(&[origin_a, origin_b.url()]);
    publish(&v.scene.broker, &v.scene.sign("assignment", &document)).await;
    player.wait_status("version 2 from the honest origin", playing_version(2));
    let id = asset_id(&mirror.path().join("fresh.png"));
    let stored =
        std::fs::read(player.data_dir.join("content").join(&id["sha256:".len()..])).unwrap();
    assert_eq!(
        stored,
        std::fs::read(mirror.path().join("fresh.png")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_asset_stream() {
    let v = Victim::new(1).await;
    let big = v.scene.fleet.image("big.png", "ball");
    let document = v.scene.fleet.assignment(2, &[&big]);
    // The origin streams the signed bytes and then some.
    let mut bytes = std::fs::read(&big).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 1 << 20));
    std::fs::write(&big, bytes).unwrap();
    publish(&v.scene.broker, &v.scene.sign("assignment", &document)).await;
    let status = v.player.wait_status("the download refused", |s| {
        s["errors"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "download_failed"
                && e["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("more than the signed")
        })
    });
    assert_eq!(status["assignment"]["version"], 1);
    assert_eq!(status["pending_assignment"]["version"], 2);
    assert_played(&v.player.watch_items(2), &v.image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_assignment_keeps_playing_and_says_stale() {
    let scene = Scene::new().await;
    let image = scene.fleet.image("safe.png", "smpte");
    // The player connected first, so that its short life is not spent
    // before the player is there (start-up takes seconds on a loaded
    // machine); the asset is at hand on the origin.
    let player = scene.start_player();
    player.wait_status("the broker", |s| !s["broker"].is_null());
    let mut short = scene.fleet.assignment(1, &[&image]);
    short["expires_at"] = json!(Timestamp::now().checked_add(5.seconds()).unwrap());
    publish(&scene.broker, &scene.sign("assignment", &short)).await;
    player.wait_status("version 1 playing", playing_version(1));
    player.wait_status("the status to say stale", |s| {
        s["assignment"]["stale"] == true
    });
    assert_played(&player.watch_items(2), &image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_floor_survives_kill_9_during_updates() {
    let scene = Scene::new().await;
    let image = scene.fleet.image("safe.png", "smpte");
    scene.publish_assignment(1, &[&image]).await;
    let mut player = scene.start_player();
    player.wait_status("version 1 playing", playing_version(1));
    for version in 2..=6u64 {
        scene.publish_assignment(version, &[&image]).await;
        // Power cut somewhere in the middle of taking the update.
        std::thread::sleep(std::time::Duration::from_millis(20 * version));
        player.kill();
        player.restart();
        player.wait_status("the update taken after the crash", playing_version(version));
    }
    player.kill();
    player.restart();
    player.wait_status("version 6 after the last restart", playing_version(6));
    scene.publish_assignment(3, &[&image]).await;
    let status = player.wait_status("the rollback refused", rejected_with("rollback"));
    assert_eq!(status["assignment"]["version"], 6);
}

/// Status predicate: the device's own time (`at`) is in `range`.
fn device_time(range: std::ops::Range<&'static str>) -> impl FnMut(&Value) -> bool {
    let (from, to): (Timestamp, Timestamp) =
        (range.start.parse().unwrap(), range.end.parse().unwrap());
    move |s| {
        s["at"]
            .as_str()
            .and_then(|at| at.parse::<Timestamp>().ok())
            .is_some_and(|at| (from..to).contains(&at))
    }
}

const OUR_TIME: std::ops::Range<&str> = "2020-01-01T00:00:00Z".."2099-01-01T00:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_set_forward_once_does_not_freeze_the_device() {
    let scene = Scene::new().await;
    let image = scene.fleet.image("usual.png", "smpte");
    let clock = scene.work.path().join("faketime");
    std::fs::write(&clock, "+0\n").unwrap();
    scene.publish_assignment(1, &[&image]).await;
    let screen = Screen {
        env: faketime_env(&clock),
        ..Screen::fake()
    };
    let mut player = scene.start_player_on(&screen, "");
    player.wait_status("version 1", playing_version(1));

    // A spoofed NTP answer: the year 2100. New documents look expired.
    std::fs::write(&clock, "@2100-01-01 00:00:00\n").unwrap();
    player.wait_status(
        "the device living in 2100",
        device_time("2100-01-01T00:00:00Z".."2101-01-01T00:00:00Z"),
    );
    scene.publish_assignment(2, &[&image]).await;
    player.wait_status("version 2 refused as expired", rejected_with("expired"));

    // The clock is set right: the device works again at once...
    std::fs::write(&clock, "+0\n").unwrap();
    player.wait_status("the device back in our time", device_time(OUR_TIME));
    scene.publish_assignment(3, &[&image]).await;
    player.wait_status("version 3 accepted", playing_version(3));

    // ...and after a restart: nothing of 2100 was kept.
    player.restart();
    player.wait_status("version 3 after a restart", playing_version(3));
    scene.publish_assignment(4, &[&image]).await;
    let status = player.wait_status("version 4 accepted", playing_version(4));
    assert!(device_time(OUR_TIME)(&status), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_issued_in_the_far_future_is_refused() {
    let v = Victim::new(1).await;
    // A publisher's typo would raise the durable time floor to 2100.
    let mut document = v.assignment(2);
    document["issued_at"] = "2100-01-01T00:00:00Z".into();
    document["expires_at"] = "2100-01-02T00:00:00Z".into();
    publish(&v.scene.broker, &v.scene.sign("assignment", &document)).await;
    v.assert_refused("issued_in_future", 1);
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(3)),
    )
    .await;
    v.player
        .wait_status("version 3 accepted", playing_version(3));
}

/// An envelope of just under 1 MiB whose one unknown field is its name:
/// the parser's complaint quotes it whole.
fn envelope_quoting_itself() -> Vec<u8> {
    let frame = r#"{"payloadType":"x","payload":"","signatures":[],"":1}"#;
    let name = "\u{1}".repeat((phare_protocol::envelope::MAX_ENVELOPE_BYTES - frame.len()) / 6);
    let bytes = serde_json::to_vec(&json!({
        "payloadType": "x", "payload": "", "signatures": [], name: 1
    }))
    .unwrap();
    assert!(bytes.len() <= phare_protocol::envelope::MAX_ENVELOPE_BYTES);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_quoting_a_huge_input_cannot_cut_the_device_off() {
    let v = Victim::new(1).await;
    let events = Subscriber::new(&v.scene.broker, &device_topic("events")).await;
    publish_raw(
        &v.scene.broker,
        &device_topic("assignment"),
        envelope_quoting_itself(),
        false,
    )
    .await;
    v.assert_refused("malformed", 1);
    // The event reached the broker, short; the link is alive and the next
    // document plays.
    wait_for(
        || {
            events
                .json()
                .iter()
                .any(|e| e["reason"] == "malformed" && e["detail"].as_str().unwrap().len() < 1024)
        },
        "the short rejection event on the broker",
    );
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(2)),
    )
    .await;
    let status = v.player.wait_status("version 2", playing_version(2));
    assert!(
        status.to_string().len() < 64 * 1024,
        "{}",
        status.to_string().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_documents_is_reported_within_a_budget() {
    let v = Victim::new(1).await;
    let events = Subscriber::new(&v.scene.broker, &device_topic("events")).await;
    let flood = 2000;
    // The device busy (stopped) meanwhile: the broker's queue for it (1000
    // messages by default) fills with the flood and drops what comes after,
    // the good document included, which it must then ask for again.
    let signal = |name: &str| {
        let pid = v.player.pid().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([name, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let options = MqttOptions::new("flood", "127.0.0.1", v.scene.broker.port);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let topic = device_topic("assignment");
        tokio::spawn(async move {
            for n in 0..flood {
                let bad = format!("{{nope {n}").into_bytes();
                client
                    .publish(&topic, QoS::AtLeastOnce, false, bad)
                    .await
                    .unwrap();
            }
        });
        let mut acked = 0;
        while acked < flood {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                // A connection race: polling again reconnects and resends.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }
    // The device is still responsive: a good document plays.
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(2)),
    )
    .await;
    signal("-CONT");
    v.player
        .wait_status("version 2 after the flood", playing_version(2));
    let reported = events
        .json()
        .iter()
        .filter(|e| e["kind"] == "rejected")
        .count();
    assert!(
        (1..=20).contains(&reported),
        "{reported} rejection events for {flood} bad documents"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_publisher_key_keeps_the_version_floors() {
    let mut v = Victim::new(1).await;
    let first = v.scene.sign("assignment", &v.assignment(2));
    publish(&v.scene.broker, &first).await;
    v.player.wait_status("version 2", playing_version(2));
    let old = v.scene.sign("assignment", &v.assignment(1));
    // A second publisher key joins; the first stays valid.
    v.scene.fleet.keys.add(RoleName::Publisher, None).unwrap();
    publish(&v.scene.broker, &root_file(&v.scene, 2)).await;
    v.player.wait_status("root 2 accepted", |s| {
        s["errors"].as_array().is_some_and(|e| e.is_empty()) && !s["playing"].is_null()
    });
    // The broker replays an older, unexpired assignment.
    publish(&v.scene.broker, &old).await;
    v.assert_refused("rollback", 2);
}

/// An admin's typo in a signed document: the device refuses it, naming the
/// member and what was meant, and keeps playing what it played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_member_is_refused_with_what_was_meant() {
    let v = Victim::new(1).await;
    let mut typo = v.assignment(2);
    typo["playlists"]["main"][0]["duraton_ms"] = 8000.into();
    publish(&v.scene.broker, &v.scene.sign("assignment", &typo)).await;
    let status = v
        .player
        .wait_status("the refusal", rejected_with("malformed"));
    let errors = status["errors"].to_string();
    assert!(
        errors.contains("did you mean `playlists.main[0].duration_ms`"),
        "{errors}"
    );
    assert_eq!(status["assignment"]["version"], 1, "{status}");
    // The corrected document supersedes the error: the status lists
    // current problems only.
    publish(
        &v.scene.broker,
        &v.scene.sign("assignment", &v.assignment(3)),
    )
    .await;
    let status = v
        .player
        .wait_status("the corrected version", playing_version(3));
    assert_eq!(status["errors"], serde_json::json!([]), "{status}");
}

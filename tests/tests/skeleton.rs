//! The walking skeleton, end to end: sign → publish → verify → download →
//! play, rejections, offline start, broker restart. Real Mosquitto, real
//! HTTP origin, real GStreamer (fake sink), the real player binary.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use phare_protocol::SigningKey;
use phare_protocol::envelope::payload_type;
use phare_tests::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

async fn origin(fleet: &Fleet) -> Origin {
    Origin::serve(&fleet.media_dir(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The retained status the broker holds for the device.
async fn retained_status(broker: &Mosquitto) -> serde_json::Value {
    let mut options = MqttOptions::new("status-reader", "127.0.0.1", broker.port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 8);
    client
        .subscribe(
            format!("phare/{FLEET}/device/{DEVICE}/status"),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    let read = async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.unwrap() {
                return serde_json::from_slice(&p.payload).unwrap();
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .expect("a retained status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_playlist_is_verified_downloaded_and_played_in_order() {
    let fleet = Fleet::new();
    let first = fleet.video("first.mp4", "smpte");
    let second = fleet.image("second.png", "pinwheel");
    let third = fleet.video("third.mp4", "ball");
    let origin = origin(&fleet).await;
    let broker = Mosquitto::start();
    publish(
        &broker,
        &fleet.sign(&fleet.assignment(1, &[&first, &second, &third])),
    )
    .await;

    let work = tempfile::tempdir().unwrap();
    let mut player = Player::start(
        work.path(),
        &fleet.root_path(),
        &[broker.url()],
        &[origin.url()],
    );
    let status = player.wait_status("the assignment to be active", |s| {
        s["assignment"]["version"] == 1
    });
    assert_eq!(status["assignment"]["target"], format!("device:{DEVICE}"));
    assert_eq!(status["cache"]["assets"], 3);

    // Item order proven: every item, then the loop back to the first.
    let seen = player.watch_items(4);
    let expected = [first, second, third]
        .iter()
        .map(|f| asset_id(f))
        .collect::<Vec<_>>();
    let start = seen
        .iter()
        .position(|(item, _)| *item == 0)
        .expect("item 0 plays");
    let order: Vec<_> = seen[start..].iter().take(3).cloned().collect();
    assert_eq!(
        order,
        vec![
            (0, expected[0].clone()),
            (1, expected[1].clone()),
            (2, expected[2].clone())
        ],
        "seen: {seen:?}"
    );
    // Downloaded files are exactly the signed content.
    for file in [&expected[0], &expected[1], &expected[2]] {
        let hex = file.strip_prefix("sha256:").unwrap();
        assert!(player.data_dir.join("content").join(hex).is_file());
    }

    // The broker holds our status, and the Last Will replaces it on a crash.
    let online = retained_status(&broker).await;
    assert_eq!(online["online"], true);
    assert_eq!(online["device"], DEVICE);
    player.kill();
    let mut offline = serde_json::Value::Null;
    for _ in 0..100 {
        offline = retained_status(&broker).await;
        if offline["online"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(offline["online"], false, "the Last Will says offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_foreign_envelopes_are_rejected_and_playback_goes_on() {
    let fleet = Fleet::new();
    let clip = fleet.video("clip.mp4", "smpte");
    let still = fleet.image("still.png", "snow");
    let origin = origin(&fleet).await;
    let broker = Mosquitto::start();
    publish(&broker, &fleet.sign(&fleet.assignment(1, &[&clip, &still]))).await;
    let work = tempfile::tempdir().unwrap();
    let player = Player::start(
        work.path(),
        &fleet.root_path(),
        &[broker.url()],
        &[origin.url()],
    );
    player.wait_status("version 1 playing", |s| {
        s["assignment"]["version"] == 1 && !s["playing"].is_null()
    });

    // Version 2, tampered after signing: only the clip.
    let mut tampered = fleet.sign(&fleet.assignment(2, &[&clip, &still]));
    let forged = serde_json::to_vec(&fleet.assignment(2, &[&still])).unwrap();
    tampered.payload = BASE64.encode(forged);
    publish(&broker, &tampered).await;
    let status = player.wait_status("a bad_signature rejection", |s| {
        s["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "bad_signature")
    });
    assert_eq!(status["assignment"]["version"], 1);

    // Version 3, signed by a key the root does not know.
    let stranger = SigningKey::generate().unwrap();
    let payload = serde_json::to_vec(&fleet.assignment(3, &[&still])).unwrap();
    let foreign =
        phare_protocol::Envelope::sign(&payload_type("assignment"), &payload, &[&stranger]);
    publish(&broker, &foreign).await;
    let status = player.wait_status("a threshold rejection", |s| {
        s["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "threshold")
    });
    assert_eq!(status["assignment"]["version"], 1);

    // The previous content keeps playing: both of its items still start.
    let seen = player.watch_items(3);
    assert!(seen.iter().any(|(_, a)| *a == asset_id(&clip)), "{seen:?}");
    assert!(seen.iter().any(|(_, a)| *a == asset_id(&still)), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_from_cache_with_no_network_at_all() {
    let fleet = Fleet::new();
    let clip = fleet.video("clip.mp4", "ball");
    let still = fleet.image("still.png", "smpte");
    let origin = origin(&fleet).await;
    let mut broker = Mosquitto::start();
    publish(&broker, &fleet.sign(&fleet.assignment(1, &[&clip, &still]))).await;
    let work = tempfile::tempdir().unwrap();
    let mut player = Player::start(
        work.path(),
        &fleet.root_path(),
        &[broker.url()],
        &[origin.url()],
    );
    player.wait_status("version 1 playing", |s| {
        s["assignment"]["version"] == 1 && !s["playing"].is_null()
    });

    player.stop();
    broker.stop();
    drop(origin);
    std::fs::remove_file(work.path().join("data/status.json")).unwrap();
    player.restart();

    let status = player.wait_status("playing from cache", |s| !s["playing"].is_null());
    assert_eq!(status["assignment"]["version"], 1);
    assert!(
        status["broker"].is_null(),
        "no broker is reachable: {status}"
    );
    let seen = player.watch_items(3);
    assert!(seen.iter().any(|(_, a)| *a == asset_id(&clip)), "{seen:?}");
    assert!(seen.iter().any(|(_, a)| *a == asset_id(&still)), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_is_rejoined_and_new_assignments_arrive() {
    let fleet = Fleet::new();
    let clip = fleet.video("clip.mp4", "smpte");
    let still = fleet.image("still.png", "pinwheel");
    let origin = origin(&fleet).await;
    let mut broker = Mosquitto::start();
    publish(&broker, &fleet.sign(&fleet.assignment(1, &[&clip]))).await;
    let work = tempfile::tempdir().unwrap();
    let player = Player::start(
        work.path(),
        &fleet.root_path(),
        &[broker.url()],
        &[origin.url()],
    );
    player.wait_status("version 1 active", |s| {
        s["assignment"]["version"] == 1 && !s["broker"].is_null()
    });

    broker.restart();
    // The new broker knows nothing: no sessions, no retained documents.
    publish(&broker, &fleet.sign(&fleet.assignment(2, &[&still, &clip]))).await;
    let status = player.wait_status("version 2 active", |s| s["assignment"]["version"] == 2);
    assert_eq!(status["broker"], broker.url());
    let seen = player.watch_items(2);
    assert!(seen.iter().any(|(_, a)| *a == asset_id(&still)), "{seen:?}");
}

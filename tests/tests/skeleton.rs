//! The walking skeleton, end to end: sign → publish → verify → download →
//! play, rejections, offline start, broker restart. Real Mosquitto, real
//! HTTP origin, real GStreamer (fake sink), the real player binary.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use phare_protocol::envelope::payload_type;
use phare_protocol::{Envelope, SigningKey};
use phare_tests::*;

/// The retained status the broker holds for the device.
async fn retained_status(broker: &Mosquitto) -> serde_json::Value {
    // The harness's subscriber rides out a broker still starting up.
    let status = Subscriber::new(broker, &format!("phare/{FLEET}/device/{DEVICE}/status")).await;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(first) = status.json().into_iter().next() {
            return first;
        }
        assert!(std::time::Instant::now() < deadline, "no retained status");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_playlist_is_verified_downloaded_and_played_in_order() {
    let scene = Scene::new().await;
    let first = scene.fleet.video("first.mp4", "smpte");
    let second = scene.fleet.image("second.png", "pinwheel");
    let third = scene.fleet.video("third.mp4", "ball");
    scene
        .publish_assignment(1, &[&first, &second, &third])
        .await;

    let mut player = scene.start_player();
    let status = player.wait_status("the assignment to be active", |s| {
        s["assignment"]["version"] == 1
    });
    assert_eq!(status["assignment"]["target"], format!("device:{DEVICE}"));
    assert_eq!(status["cache"]["assets"], 3);

    // Item order proven: from the first item on, each in turn.
    let seen = player.watch_items(4);
    let expected: Vec<String> = [&first, &second, &third]
        .iter()
        .map(|f| asset_id(f))
        .collect();
    let start = seen
        .iter()
        .position(|(item, _)| *item == 0)
        .expect("item 0 plays");
    let order: Vec<_> = seen[start..].iter().take(3).cloned().collect();
    let want: Vec<_> = (0..3).map(|i| (i as u64, expected[i].clone())).collect();
    assert_eq!(order, want, "seen: {seen:?}");
    // Downloaded files sit under their content address.
    for id in &expected {
        let hex = id.strip_prefix("sha256:").unwrap();
        assert!(player.data_dir.join("content").join(hex).is_file());
    }

    // The broker holds our status, and the Last Will replaces it on a crash.
    let online = retained_status(&scene.broker).await;
    assert_eq!(online["online"], true);
    assert_eq!(online["device"], DEVICE);
    player.kill();
    let mut offline = serde_json::Value::Null;
    for _ in 0..100 {
        offline = retained_status(&scene.broker).await;
        if offline["online"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(offline["online"], false, "the Last Will says offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_foreign_envelopes_are_rejected_and_playback_goes_on() {
    let scene = Scene::new().await;
    let clip = scene.fleet.video("clip.mp4", "smpte");
    let still = scene.fleet.image("still.png", "snow");
    scene.publish_assignment(1, &[&clip, &still]).await;
    let player = scene.start_player();
    player.wait_status("version 1 playing", playing_version(1));

    // Version 2, its payload swapped after signing.
    let mut tampered = scene
        .fleet
        .sign(&scene.fleet.assignment(2, &[&clip, &still]));
    tampered.payload =
        BASE64.encode(serde_json::to_vec(&scene.fleet.assignment(2, &[&still])).unwrap());
    publish(&scene.broker, &tampered).await;
    let status = player.wait_status("a bad_signature rejection", rejected_with("bad_signature"));
    assert_eq!(status["assignment"]["version"], 1);

    // Version 3, signed by a key the root does not know.
    let stranger = SigningKey::generate().unwrap();
    let payload = serde_json::to_vec(&scene.fleet.assignment(3, &[&still])).unwrap();
    publish(
        &scene.broker,
        &Envelope::sign(&payload_type("assignment"), &payload, &[&stranger]),
    )
    .await;
    let status = player.wait_status("a threshold rejection", rejected_with("threshold"));
    assert_eq!(status["assignment"]["version"], 1);

    // The previous content keeps playing: both of its items still start.
    let seen = player.watch_items(3);
    assert_played(&seen, &clip);
    assert_played(&seen, &still);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_from_cache_with_no_network_at_all() {
    let mut scene = Scene::new().await;
    let clip = scene.fleet.video("clip.mp4", "ball");
    let still = scene.fleet.image("still.png", "smpte");
    scene.publish_assignment(1, &[&clip, &still]).await;
    let mut player = scene.start_player();
    player.wait_status("version 1 playing", playing_version(1));

    scene.restart_offline(&mut player);

    let status = player.wait_status("playing from cache", playing_version(1));
    assert!(
        status["broker"].is_null(),
        "no broker is reachable: {status}"
    );
    let seen = player.watch_items(3);
    assert_played(&seen, &clip);
    assert_played(&seen, &still);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_is_rejoined_and_new_assignments_arrive() {
    let mut scene = Scene::new().await;
    let clip = scene.fleet.video("clip.mp4", "smpte");
    let still = scene.fleet.image("still.png", "pinwheel");
    scene.publish_assignment(1, &[&clip]).await;
    let player = scene.start_player();
    player.wait_status("version 1 playing, connected", |s| {
        playing_version(1)(s) && !s["broker"].is_null()
    });

    // The new broker process knows nothing: no sessions, no retained documents.
    scene.broker.restart();
    scene.publish_assignment(2, &[&still, &clip]).await;
    let status = player.wait_status("version 2 playing", playing_version(2));
    assert_eq!(status["broker"], scene.broker.url());
    assert_played(&player.watch_items(2), &still);
}

/// The socket inodes a process holds, from its file descriptors.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().to_string();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_opens_no_listening_socket() {
    let (_scene, player, _) = playing_one_image(Fleet::new(), 1).await;
    player.wait_status("connected", |s| !s["broker"].is_null());
    let pid = player.pid().unwrap();
    let mine = socket_inodes(pid);
    assert!(!mine.is_empty(), "it holds at least its broker connection");
    let mut seen = 0;
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (state, inode) = (fields[3], fields[9]);
            seen += usize::from(mine.iter().any(|i| i == inode));
            // TCP state 0A is LISTEN; any bound UDP socket receives.
            let listening = if table.starts_with("tcp") {
                state == "0A"
            } else {
                true
            };
            assert!(
                !(listening && mine.iter().any(|i| i == inode)),
                "{table}: {line}"
            );
        }
    }
    // The check can see this process's sockets: its broker connection.
    assert!(seen >= 1, "none of the player's sockets found in /proc/net");
}

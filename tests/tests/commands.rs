//! Signed commands, end to end: what a device answers on
//! `device/<id>/response`, correlated by command id.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::{SignedDuration, Timestamp};
use phare_tests::*;
use serde_json::{Value, json};

/// A command valid from a minute ago until `lasts` from now (negative: one
/// that expired; its life still begins before it ends, else it would be
/// malformed rather than expired).
fn command(id: &str, action: &str, args: Value, lasts: SignedDuration) -> Value {
    let now = Timestamp::now();
    let expires_at = now.checked_add(lasts).unwrap();
    json!({
        "kind": "command", "fleet": FLEET, "device": DEVICE, "id": id,
        "issued_at": expires_at.min(now).checked_sub(SignedDuration::from_mins(1)).unwrap(),
        "expires_at": expires_at, "action": action, "args": args,
    })
}

/// Sends a command and waits for its response.
async fn ask(scene: &Scene, responses: &Subscriber, id: &str, action: &str, args: Value) -> Value {
    let envelope = scene.sign(
        "command",
        &command(id, action, args, SignedDuration::from_mins(5)),
    );
    publish(&scene.broker, &envelope).await;
    let mut answer = None;
    wait_for(
        || {
            answer = responses.json().into_iter().find(|r| r["id"] == id);
            answer.is_some()
        },
        &format!("the response to {id}"),
    );
    answer.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_answered_by_id() {
    let (scene, player, _) = playing_one_image(Fleet::new(), 1).await;
    let responses = Subscriber::new(&scene.broker, &device_topic("response")).await;

    let shot = ask(&scene, &responses, "shot-1", "screenshot", json!({})).await;
    assert_eq!(shot["ok"], true, "{shot}");
    assert_eq!(shot["media_type"], "image/png");
    let png = BASE64.decode(shot["image"].as_str().unwrap()).unwrap();
    assert!(png.len() <= 512 * 1024, "{} bytes", png.len());
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).expect("PNG pixels decode");
    assert!(frame.width >= 160 && frame.height >= 90, "{frame:?}");
    assert!(
        pixels.iter().any(|&p| p > 64),
        "the thumbnail shows the picture, not black"
    );

    let small = ask(
        &scene,
        &responses,
        "shot-2",
        "screenshot",
        json!({"format": "jpeg"}),
    )
    .await;
    assert_eq!(small["media_type"], "image/jpeg", "{small}");
    let jpeg = BASE64.decode(small["image"].as_str().unwrap()).unwrap();
    assert!(jpeg.starts_with(&[0xff, 0xd8, 0xff]), "a JPEG");

    let reload = ask(&scene, &responses, "reload-1", "reload", json!({})).await;
    assert_eq!(reload["ok"], true, "{reload}");
    player.wait_status("playing after the reload", playing_version(1));

    let loud = ask(
        &scene,
        &responses,
        "volume-1",
        "set_volume",
        json!({"volume": 7}),
    )
    .await;
    assert_eq!(loud["ok"], false);
    assert!(
        loud["error"].as_str().unwrap().contains("0.0 to 4.0"),
        "{loud}"
    );
    let quiet = ask(
        &scene,
        &responses,
        "volume-2",
        "set_volume",
        json!({"volume": 0.25}),
    )
    .await;
    assert_eq!(quiet["ok"], true, "{quiet}");

    let unknown = ask(&scene, &responses, "dance-1", "dance", json!({})).await;
    assert_eq!(unknown["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_command_is_refused_and_not_answered() {
    let (scene, player, _) = playing_one_image(Fleet::new(), 1).await;
    let responses = Subscriber::new(&scene.broker, &device_topic("response")).await;
    let stale = command(
        "late-1",
        "report_now",
        json!({}),
        SignedDuration::from_secs(-60),
    );
    publish(&scene.broker, &scene.sign("command", &stale)).await;
    player.wait_status("an expired rejection", rejected_with("expired"));
    // A fresh command after it is answered, and the stale one never was.
    ask(&scene, &responses, "fresh-1", "report_now", json!({})).await;
    assert!(responses.json().iter().all(|r| r["id"] != "late-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_cache_frees_what_nothing_plays_and_the_screen_plays_on() {
    let (scene, player, old) = playing_one_image(Fleet::new(), 1).await;
    let responses = Subscriber::new(&scene.broker, &device_topic("response")).await;
    let new = scene.fleet.image("new.png", "ball");
    scene.publish_assignment(2, &[&new]).await;
    player.wait_status("version 2 playing", playing_version(2));
    let cached = |file: &std::path::Path| {
        let id = asset_id(file);
        player
            .data_dir
            .join("content")
            .join(id.strip_prefix("sha256:").unwrap())
    };
    assert!(
        cached(&old).is_file(),
        "the old image stays cached until purged"
    );

    let purge = ask(&scene, &responses, "purge-1", "purge_cache", json!({})).await;
    assert_eq!(purge["ok"], true, "{purge}");
    assert_eq!(purge["purged_files"], 1, "{purge}");
    assert_eq!(
        purge["purged_bytes"],
        std::fs::metadata(&old).unwrap().len(),
        "{purge}"
    );
    assert!(!cached(&old).exists(), "the unused image is gone");
    assert!(cached(&new).is_file(), "what plays is kept");
    player.wait_status("one asset left, still playing", |s| {
        s["cache"]["assets"] == 1 && playing_version(2)(s)
    });
}

//! Rendering end to end, through the real player binary (fake sink): the
//! status screen and its enrolment QR code, a live HLS channel that falls
//! back to its cached still when its server dies and comes back by itself,
//! switches from one live channel to another (GStreamer's and ffmpeg's
//! HLS, on a new assignment and at a schedule edge), and broken media
//! skipped. Screenshots are taken over SIGUSR1.

use std::time::{Duration, Instant};

use jiff::{Timestamp, ToSpan};
use phare_tests::render::{
    HlsChannel, HlsEncoder, Killable, RtspServer, decode_qr, screenshot_config,
};
use phare_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_assignment_the_status_screen_shows_who_to_enrol() {
    let scene = Scene::new().await;
    let shots = scene.work.path().join("shots");
    let player = scene.start_player_with(&screenshot_config(&shots));
    player.wait_status("the broker", |s| !s["broker"].is_null());

    let qr = decode_qr(&player.screenshot(&shots)).expect("a QR code on the status screen");
    assert!(qr.starts_with("phare:enrol?"), "{qr}");
    assert!(qr.contains(&format!("fleet={FLEET}")), "{qr}");
    assert!(qr.contains(&format!("device={DEVICE}")), "{qr}");

    // An assignment replaces it.
    let clip = scene.fleet.video("clip.mp4", "smpte");
    scene.publish_assignment(1, &[&clip]).await;
    player.wait_status("version 1 playing", playing_version(1));
    player.wait_screenshot(&shots, "the video instead of the status screen", |png| {
        decode_qr(png).is_none()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_channel_falls_back_to_its_cached_still_and_comes_back() {
    let scene = Scene::new().await;
    let mut channel = HlsChannel::start(HlsEncoder::GStreamer, "ball");
    let uri = channel.uri();
    live_falls_back_and_returns(&scene, &uri, &mut channel.server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtsp_camera_falls_back_to_its_cached_still_and_comes_back() {
    let scene = Scene::new().await;
    let mut camera = RtspServer::start();
    let uri = camera.url();
    live_falls_back_and_returns(&scene, &uri, &mut camera).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_live_channel_is_refused_where_the_device_does_not_allow_it() {
    let scene = Scene::new().await;
    let fallback = scene.fleet.image("fallback.png", "pinwheel");
    let mut assignment = scene.fleet.assignment(1, &[&fallback]);
    let uri = "rtsp://127.0.0.1:9/live";
    assignment["playlists"]["main"] = json!([{"live": uri, "fallback": asset_id(&fallback)}]);
    publish(&scene.broker, &scene.fleet.sign(&assignment)).await;
    let player = scene.start_player_with("allow_plaintext_live = false\n");

    let status = player.wait_status("the refusal", rejected_with("unsafe_url"));
    assert_eq!(status["trust"]["plaintext_live"], false, "{status}");
    assert!(status["assignment"].is_null(), "{status}");
    let errors = status["errors"].to_string();
    assert!(
        errors.contains(uri) && errors.contains("allow_plaintext_live"),
        "{errors}"
    );
}

/// Plays the live `uri` with a cached still as its fallback: live, then the
/// fallback once `source` is killed, then live again, by itself, once it
/// is back.
async fn live_falls_back_and_returns(scene: &Scene, uri: &str, source: &mut impl Killable) {
    let fallback = scene.fleet.image("fallback.png", "pinwheel");
    let mut assignment = scene.fleet.assignment(1, &[&fallback]);
    assignment["playlists"]["main"] = json!([{"live": uri, "fallback": asset_id(&fallback)}]);
    publish(&scene.broker, &scene.fleet.sign(&assignment)).await;
    let player = scene.start_player_with("[display]\nwidth = 320\nheight = 180\nfps = 25\n");

    let live = |state: &'static str| move |s: &serde_json::Value| s["live"]["state"] == state;
    let status = player.wait_status("the live stream", live("playing"));
    assert_eq!(status["live"]["uri"], uri);
    assert_eq!(status["playing"]["item"], 0);

    source.stop();
    player.wait_status("the fallback", live("fallback"));

    source.restart();
    player.wait_status("the live stream, back by itself", live("playing"));
}

/// How long a switch from one live channel to another may take: the new
/// connection, a playlist and a segment or two. Far below the stall it
/// once was (until the new channel's server restarted).
const LIVE_SWITCH: Duration = Duration::from_secs(20);

const LIVE_DISPLAY: &str = "[display]\nwidth = 320\nheight = 180\nfps = 25\n";

/// A playlist of the one live `channel`, its fallback a cached still.
fn live_playlist(
    document: &mut serde_json::Value,
    name: &str,
    channel: &HlsChannel,
    fallback: &std::path::Path,
) {
    document["playlists"][name] = json!([{"live": channel.uri(), "fallback": asset_id(fallback)}]);
}

/// The player shows `channel` live, within [`LIVE_SWITCH`] of `since`.
fn wait_live(player: &Player, channel: &HlsChannel, since: Instant) {
    let uri = channel.uri();
    let status = player.wait_status("the channel live", |s| {
        s["live"]["uri"] == uri.as_str()
            && s["live"]["state"] == "playing"
            && s["playing"]["item"] == 0
    });
    assert!(
        since.elapsed() < LIVE_SWITCH,
        "{uri} went live after {:?}: {status}",
        since.elapsed()
    );
}

/// Channel `from` plays live, then a new assignment's channel `to` does.
async fn live_to_live_on_a_new_assignment(from: HlsEncoder, to: HlsEncoder) {
    let scene = Scene::new().await;
    let (a, b) = (
        HlsChannel::start(from, "ball"),
        HlsChannel::start(to, "smpte"),
    );
    let fallback = scene.fleet.image("fallback.png", "pinwheel");
    let mut first = scene.fleet.assignment(1, &[&fallback]);
    live_playlist(&mut first, "main", &a, &fallback);
    publish(&scene.broker, &scene.fleet.sign(&first)).await;
    let player = scene.start_player_with(LIVE_DISPLAY);
    wait_live(&player, &a, Instant::now());

    let mut second = scene.fleet.assignment(2, &[&fallback]);
    live_playlist(&mut second, "main", &b, &fallback);
    let published = Instant::now();
    publish(&scene.broker, &scene.fleet.sign(&second)).await;
    wait_live(&player, &b, published);
    // And back, on the same player.
    let mut third = scene.fleet.assignment(3, &[&fallback]);
    live_playlist(&mut third, "main", &a, &fallback);
    let published = Instant::now();
    publish(&scene.broker, &scene.fleet.sign(&third)).await;
    wait_live(&player, &a, published);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ffmpeg_live_channel_replaces_another_on_a_new_assignment() {
    live_to_live_on_a_new_assignment(HlsEncoder::FfmpegTs, HlsEncoder::FfmpegFmp4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gstreamer_live_channel_and_an_ffmpeg_one_replace_each_other() {
    live_to_live_on_a_new_assignment(HlsEncoder::GStreamer, HlsEncoder::FfmpegTs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_channel_changes_at_the_schedule_edge() {
    let scene = Scene::new().await;
    let usual = HlsChannel::start(HlsEncoder::FfmpegTs, "ball");
    let news = HlsChannel::start(HlsEncoder::FfmpegFmp4, "smpte");
    let fallback = scene.fleet.image("fallback.png", "pinwheel");
    let mut document = scene.fleet.assignment(1, &[&fallback]);
    document["timezone"] = "UTC".into();
    live_playlist(&mut document, "main", &usual, &fallback);
    live_playlist(&mut document, "news", &news, &fallback);
    // Far enough ahead for the usual channel to be live first.
    let start = Timestamp::from_second(Timestamp::now().as_second() + 15).unwrap();
    let end = start.checked_add(1.hour()).unwrap();
    document["schedule"] = json!([{"playlist": "news",
        "start": start.strftime("%H:%M:%S").to_string(),
        "end": end.strftime("%H:%M:%S").to_string()}]);
    publish(&scene.broker, &scene.fleet.sign(&document)).await;
    let player = scene.start_player_with(LIVE_DISPLAY);
    wait_live(&player, &usual, Instant::now());
    assert!(
        Timestamp::now() < start,
        "the usual channel went live too late to test the edge"
    );

    let until_edge = start.duration_since(Timestamp::now()).unsigned_abs();
    std::thread::sleep(until_edge);
    wait_live(&player, &news, Instant::now());
    assert_eq!(player.status().unwrap()["playing"]["playlist"], "news");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_media_is_skipped_and_a_wholly_broken_playlist_shows_the_status_screen() {
    let scene = Scene::new().await;
    let garbage = scene.fleet.media_dir().join("garbage.mp4");
    std::fs::write(&garbage, b"not a video, whatever its hash says".repeat(50)).unwrap();
    let clip = scene.fleet.video("clip.mp4", "ball");
    scene.publish_assignment(1, &[&garbage, &clip]).await;
    let shots = scene.work.path().join("shots");
    let player = scene.start_player_with(&screenshot_config(&shots));

    let status = player.wait_status("a play_failed event", |s| {
        s["errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "play_failed"))
    });
    let failure = status["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "play_failed")
        .unwrap()
        .clone();
    assert_eq!(failure["subject"], asset_id(&garbage));
    assert_played(&player.watch_items(2), &clip);

    scene.publish_assignment(2, &[&garbage]).await;
    player.wait_status("version 2 active", |s| s["assignment"]["version"] == 2);
    player.wait_screenshot(&shots, "the status screen", |png| {
        decode_qr(png).is_some_and(|qr| qr.contains(&format!("device={DEVICE}")))
    });
}

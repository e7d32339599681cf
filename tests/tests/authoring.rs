//! Assignments written with the operator tool as admins run it (`phare
//! assignment new`, `phare asset add --into`, `phare sign --bump`), against
//! a real Mosquitto and a real player.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::{SignedDuration, Timestamp};
use phare_tests::*;
use serde_json::Value;

/// Runs `phare` in `dir` and returns its standard output; a failure fails
/// the test with what it said.
fn phare(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(phare_binary())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "phare {args:?}: {stdout}\n{stderr}"
    );
    format!("{stdout}{stderr}")
}

/// The payload an envelope file signs, as bytes.
fn signed_payload(envelope: &Path) -> Vec<u8> {
    let envelope: Value = serde_json::from_slice(&std::fs::read(envelope).unwrap()).unwrap();
    BASE64
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap()
}

/// `phare sign --bump` of `<name>.json` against the broker, into
/// `<name>.env.json`; what it said.
fn sign_bumped(dir: &Path, name: &str, broker: &str) -> String {
    let (payload, envelope) = (format!("{name}.json"), format!("{name}.env.json"));
    phare(
        dir,
        &[
            "sign",
            "--keyring",
            "keys",
            &payload,
            "--bump",
            "--broker",
            broker,
            "-o",
            &envelope,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_signs_the_version_after_the_retained_one() {
    let fleet = Fleet::new();
    let broker = Mosquitto::start();
    let image = fleet.image("menu.png", "smpte");
    publish(&broker, &fleet.sign(&fleet.assignment(3, &[&image]))).await;

    let dir = fleet.dir.path();
    let mut stale = fleet.assignment(1, &[&image]);
    stale["issued_at"] = "2026-01-01T00:00:00Z".into();
    std::fs::write(dir.join("lobby.json"), stale.to_string()).unwrap();
    let before = Timestamp::now();
    let said = sign_bumped(dir, "lobby", &broker.url());
    assert!(said.contains("retains version 3"), "{said}");
    assert!(said.contains("set version 4"), "{said}");

    // What was signed is the rewritten file, byte for byte.
    let signed = signed_payload(&dir.join("lobby.env.json"));
    assert_eq!(signed, std::fs::read(dir.join("lobby.json")).unwrap());
    let document: Value = serde_json::from_slice(&signed).unwrap();
    assert_eq!(document["version"], 4);
    let issued: Timestamp = document["issued_at"].as_str().unwrap().parse().unwrap();
    assert!(
        issued >= before.checked_sub(SignedDuration::from_secs(1)).unwrap()
            && issued <= Timestamp::now(),
        "issued_at {issued}"
    );
    assert_eq!(document["assets"], stale["assets"], "the content is kept");

    // Nothing retained for another target: version 1.
    let mut hall = stale.clone();
    hall["target"] = "group:hall".into();
    hall["version"] = 9.into();
    std::fs::write(dir.join("hall.json"), hall.to_string()).unwrap();
    let said = sign_bumped(dir, "hall", &broker.url());
    assert!(said.contains("retains nothing"), "{said}");
    let document: Value =
        serde_json::from_slice(&signed_payload(&dir.join("hall.env.json"))).unwrap();
    assert_eq!(document["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_written_with_the_tool_plays() {
    let scene = Scene::new().await;
    let clip = scene.fleet.video("welcome.mp4", "ball");
    let menu = scene.fleet.image("menu.png", "pinwheel");
    let dir = scene.fleet.dir.path();
    let (clip_path, menu_path) = (clip.to_str().unwrap(), menu.to_str().unwrap());
    let target = format!("device:{DEVICE}");
    let url = scene.broker.url();

    phare(
        dir,
        &["assignment", "new", "--target", &target, "-o", "lobby.json"],
    );
    phare(dir, &["asset", "add", clip_path, "--into", "lobby.json"]);
    phare(
        dir,
        &[
            "asset",
            "add",
            menu_path,
            "--into",
            "lobby.json",
            "--duration-ms",
            "800",
        ],
    );
    let said = phare(dir, &["asset", "add", clip_path, "--into", "lobby.json"]);
    assert!(said.contains("already in playlist"), "{said}");
    sign_bumped(dir, "lobby", &url);
    phare(dir, &["publish", "--broker", &url, "lobby.env.json"]);

    let player = scene.start_player();
    player.wait_status("the written assignment to play", playing_version(1));
    let seen = player.watch_items(3);
    assert_played(&seen, &clip);
    assert_played(&seen, &menu);
    let status = player.status().unwrap();
    assert_eq!(status["cache"]["assets"], 2, "the clip is declared once");
}

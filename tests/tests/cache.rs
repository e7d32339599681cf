//! The content cache against real HTTP origins on loopback that fail on
//! purpose (see `phare_tests::cache::FaultyOrigin`), the real player binary
//! and its real SQLite index: mirrors, quarantine, resume, size caps, slow
//! servers, crashes mid-download, disk limits, eviction, bit rot.

use std::path::{Path, PathBuf};

use phare_protocol::topics::Topics;
use phare_provisioning::asset::entry_for;
use phare_tests::cache::{Fault, FaultyOrigin, Served, blob, refusing_url, with_blobs};
use phare_tests::*;
use serde_json::Value;

/// Starts the player with these origins and `[cache]` settings (the
/// free-space floor off: the test machine's disk is not the point).
fn start(scene: &Scene, origins: &[String], cache: &str) -> Player {
    Player::start_with(
        scene.work.path(),
        &scene.fleet.root_path(),
        &[scene.broker.url()],
        origins,
        &format!("[cache]\nmin_free_bytes = 0\n{cache}"),
    )
}

async fn publish_document(scene: &Scene, document: &Value) {
    publish(&scene.broker, &scene.fleet.sign(document)).await;
}

/// An assignment playing `played` and carrying `blobs` besides.
fn assignment(scene: &Scene, version: u64, played: &[&Path], blobs: &[&Path]) -> Value {
    with_blobs(scene.fleet.assignment(version, played), blobs)
}

/// The SHA-256 id of a file's content, whatever its name.
fn content_id(file: &Path) -> String {
    entry_for(file, &[], Some("application/octet-stream"))
        .unwrap()
        .0
        .to_string()
}

/// Where the player keeps the verified copy of a media file.
fn cached(player: &Player, file: &Path) -> PathBuf {
    let id = content_id(file);
    player
        .data_dir
        .join("content")
        .join(id.strip_prefix("sha256:").unwrap())
}

fn assert_cached_intact(player: &Player, file: &Path) {
    let copy = cached(player, file);
    assert!(copy.is_file(), "{} is not cached", file.display());
    assert_eq!(content_id(&copy), content_id(file), "{}", copy.display());
}

fn active(version: u64) -> impl FnMut(&Value) -> bool {
    move |s| s["assignment"]["version"] == version
}

/// Every index row marked present has its file, of its size, hashing to its
/// id. Returns the number of present rows.
fn assert_store_consistent(data_dir: &Path) -> usize {
    let db = rusqlite::Connection::open(data_dir.join("state.db")).unwrap();
    let mut stmt = db.prepare("SELECT id, size, state FROM content").unwrap();
    let rows: Vec<(String, i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut present = 0;
    for (id, size, state) in rows {
        if state != "present" {
            continue;
        }
        let file = data_dir
            .join("content")
            .join(id.strip_prefix("sha256:").unwrap());
        let len = std::fs::metadata(&file).map(|m| m.len());
        assert_eq!(len.ok(), Some(size as u64), "{id} is marked present");
        assert_eq!(content_id(&file), id, "{id} is marked present");
        present += 1;
    }
    present
}

/// Bytes of content on disk, verified or partial.
fn bytes_on_disk(data_dir: &Path) -> u64 {
    let content = data_dir.join("content");
    [content.clone(), content.join(".partial")]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_origin_is_passed_over_for_the_next() {
    let scene = Scene::new().await;
    // Errors leave the status once the asset arrives; the events stay.
    let events = Subscriber::new(&scene.broker, &device_topic("events")).await;
    let clip = scene.fleet.video("clip.mp4", "smpte");
    let good = scene.origin.as_ref().unwrap().url();
    let player = start(&scene, &[refusing_url(), good], "");
    scene.publish_assignment(1, &[&clip]).await;

    player.wait_status("version 1 playing", playing_version(1));
    wait_for(|| reported(&events, "unreachable"), "a unreachable event");
    assert_cached_intact(&player, &clip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_serving_wrong_bytes_is_quarantined_and_the_next_serves() {
    let scene = Scene::new().await;
    // Errors leave the status once the asset arrives; the events stay.
    let events = Subscriber::new(&scene.broker, &device_topic("events")).await;
    let media = scene.fleet.media_dir();
    let clip = scene.fleet.video("clip.mp4", "smpte");
    let blobs = [
        blob(&media, "a.bin", 64 << 10),
        blob(&media, "b.bin", 64 << 10),
    ];
    let corrupt = FaultyOrigin::serve(&media, &[Fault::Corrupt]).await;
    let good = scene.origin.as_ref().unwrap().url();
    let player = start(&scene, &[corrupt.url(), good], "parallel_downloads = 1\n");
    let [a, b] = [&blobs[0], &blobs[1]].map(PathBuf::as_path);
    publish_document(&scene, &assignment(&scene, 1, &[&clip], &[a, b])).await;

    player.wait_status("version 1 playing", playing_version(1));
    wait_for(
        || reported(&events, "hash_mismatch"),
        "a hash_mismatch event",
    );
    // Asked once, then left alone while the other origin served the rest.
    assert_eq!(corrupt.requests().len(), 1, "{:?}", corrupt.requests());
    for file in [clip.as_path(), a, b] {
        assert_cached_intact(&player, file);
    }
}

/// Fetches `file` alone from one origin that follows `script`; returns what
/// it served once the file is cached and verified.
async fn fetch_scripted(file: &Path, script: &[Fault]) -> Vec<Served> {
    let scene = Scene::new().await;
    let origin = FaultyOrigin::serve(file.parent().unwrap(), script).await;
    let player = start(&scene, &[origin.url()], "");
    publish_document(&scene, &assignment(&scene, 1, &[], &[file])).await;
    player.wait_status("version 1 active", active(1));
    assert_cached_intact(&player, file);
    origin.requests_for(file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_download_resumes_from_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let size = 256 << 10;
    let half = size as u64 / 2;
    let file = blob(dir.path(), "big.bin", size);
    let served = fetch_scripted(&file, &[Fault::DropAt(half), Fault::Good]).await;
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!((served[0].range_start, served[0].bytes), (None, half));
    // Only the remainder was sent again.
    assert_eq!(served[1].range_start, Some(half), "{served:?}");
    assert_eq!(served[1].status, 206);
    assert_eq!(served[1].bytes, size as u64 - half);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_range_still_yields_the_right_file() {
    let dir = tempfile::tempdir().unwrap();
    let size = 256 << 10;
    let file = blob(dir.path(), "big.bin", size);
    let served = fetch_scripted(&file, &[Fault::DropAt(100_000), Fault::IgnoreRange]).await;
    assert_eq!(served.len(), 2, "{served:?}");
    assert_eq!(served[1].range_start, Some(100_000));
    assert_eq!((served[1].status, served[1].bytes), (200, size as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_longer_than_signed_is_cut_off_and_rejected() {
    let scene = Scene::new().await;
    // Errors leave the status once the asset arrives; the events stay.
    let events = Subscriber::new(&scene.broker, &device_topic("events")).await;
    let media = scene.fleet.media_dir();
    let file = blob(&media, "small.bin", 64 << 10);
    let extra = 64 << 20;
    let endless = FaultyOrigin::serve(&media, &[Fault::Overflow(extra)]).await;
    let good = scene.origin.as_ref().unwrap().url();
    let player = start(&scene, &[endless.url(), good], "");
    publish_document(&scene, &assignment(&scene, 1, &[], &[&file])).await;

    player.wait_status("version 1 active", active(1));
    wait_for(|| reported(&events, "too_large"), "a too_large event");
    assert_cached_intact(&player, &file);
    // The player stopped reading at the cap, long before the server would
    // have stopped sending.
    let served = endless.requests();
    assert_eq!(served.len(), 1, "{served:?}");
    assert!(served[0].bytes < extra / 4, "{served:?}");
    assert!(bytes_on_disk(&player.data_dir) < extra / 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_origin_is_abandoned_for_the_next() {
    let scene = Scene::new().await;
    // Errors leave the status once the asset arrives; the events stay.
    let events = Subscriber::new(&scene.broker, &device_topic("events")).await;
    let media = scene.fleet.media_dir();
    let size = 256 << 10;
    let file = blob(&media, "big.bin", size);
    let trickle = FaultyOrigin::serve(&media, &[Fault::Throttle(1024)]).await;
    let good = scene.origin.as_ref().unwrap().url();
    let player = start(
        &scene,
        &[trickle.url(), good],
        "min_throughput_bytes_per_s = 65536\nthroughput_window_s = 1\n",
    );
    publish_document(&scene, &assignment(&scene, 1, &[], &[&file])).await;

    player.wait_status("version 1 active", active(1));
    wait_for(|| reported(&events, "too_slow"), "a too_slow event");
    assert_cached_intact(&player, &file);
    assert!(trickle.requests()[0].bytes < size as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_download_twenty_times_the_store_stays_consistent() {
    let scene = Scene::new().await;
    let media = scene.fleet.media_dir();
    let files: Vec<PathBuf> = (0..4)
        .map(|i| blob(&media, &format!("part-{i}.bin"), 192 << 10))
        .collect();
    let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    // Slow enough that twenty crashes all land in the middle.
    let origin = FaultyOrigin::serve(&media, &[Fault::Throttle(64 << 10)]).await;
    let mut player = start(&scene, &[origin.url()], "parallel_downloads = 2\n");
    publish_document(&scene, &assignment(&scene, 1, &[], &files)).await;

    let mut seen = 0;
    for round in 0..20 {
        // Wait for some progress, then pull the plug.
        wait_for(
            || bytes_on_disk(&player.data_dir) >= seen + (8 << 10),
            "download progress",
        );
        player.kill();
        seen = bytes_on_disk(&player.data_dir);
        assert!(
            player
                .status()
                .is_none_or(|s| s["assignment"]["version"] != 1),
            "round {round}: everything was fetched before the crashes were over\n{}",
            player.log_tail()
        );
        assert_store_consistent(&player.data_dir);
        player.restart();
    }

    player.wait_status("version 1 active", active(1));
    player.stop();
    assert_eq!(assert_store_consistent(&player.data_dir), files.len());
    for file in &files {
        assert_cached_intact(&player, file);
    }
    let partials = std::fs::read_dir(player.data_dir.join("content/.partial")).unwrap();
    assert_eq!(partials.count(), 0, "partial files left behind");
    // Downloads went on from their partial files, across restarts.
    assert!(
        origin.requests().iter().any(|r| r.range_start.is_some()),
        "nothing was resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_too_big_for_the_cache_is_refused_and_the_old_one_plays() {
    let scene = Scene::new().await;
    let media = scene.fleet.media_dir();
    let clip = scene.fleet.video("clip.mp4", "smpte");
    let small = blob(&media, "small.bin", 100_000);
    let big = blob(&media, "big.bin", 200_000);
    let origin = FaultyOrigin::serve(&media, &[Fault::Good]).await;
    let limit = std::fs::metadata(&clip).unwrap().len() + 150_000;
    let player = start(&scene, &[origin.url()], &format!("max_bytes = {limit}\n"));
    publish_document(&scene, &assignment(&scene, 1, &[&clip], &[&small])).await;
    player.wait_status("version 1 playing", playing_version(1));

    publish_document(&scene, &assignment(&scene, 2, &[&clip], &[&big])).await;
    let status = player.wait_status("insufficient_space", rejected_with("insufficient_space"));
    assert_eq!(status["assignment"]["version"], 1);
    let pending = &status["pending_assignment"];
    assert_eq!(pending["version"], 2, "{status}");
    assert_eq!(pending["assets_missing"], 1);
    assert_eq!(pending["bytes_missing"], 200_000);
    // Nothing that plays was evicted, nothing was fetched in vain.
    assert_cached_intact(&player, &clip);
    assert_cached_intact(&player, &small);
    assert!(origin.requests_for(&big).is_empty());
    assert_played(&player.watch_items(2), &clip);

    // The operator sees which screen is not ready, and why.
    let statuses = phare_provisioning::fleet::collect(
        &scene.broker.url(),
        &Topics::for_fleet(FLEET),
        std::time::Duration::from_millis(500),
    )
    .await
    .unwrap();
    let table = phare_provisioning::fleet::table(&statuses.statuses);
    let line = table.lines().find(|l| l.starts_with(DEVICE)).unwrap();
    assert!(line.contains("v2: 1 assets"), "{table}");
    assert!(line.contains("insufficient_space"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_makes_room_but_keeps_what_plays() {
    let scene = Scene::new().await;
    let media = scene.fleet.media_dir();
    let clip = scene.fleet.video("clip.mp4", "smpte");
    let [a, b, c] = ["a.bin", "b.bin", "c.bin"].map(|name| blob(&media, name, 100_000));
    let limit = std::fs::metadata(&clip).unwrap().len() + 250_000;
    let good = scene.origin.as_ref().unwrap().url();
    let player = start(&scene, &[good], &format!("max_bytes = {limit}\n"));

    publish_document(&scene, &assignment(&scene, 1, &[&clip], &[&a])).await;
    player.wait_status("version 1 playing", playing_version(1));
    publish_document(&scene, &assignment(&scene, 2, &[&clip], &[&b])).await;
    player.wait_status("version 2 playing", playing_version(2));
    // Version 3 fits only without `a`, which nothing uses any more; `b`
    // (playing until version 3 is complete) and the clip stay.
    publish_document(&scene, &assignment(&scene, 3, &[&clip], &[&c])).await;
    let status = player.wait_status("version 3 playing", playing_version(3));

    assert!(!cached(&player, &a).exists(), "a was not evicted");
    for file in [&clip, &b, &c] {
        assert_cached_intact(&player, file);
    }
    assert_eq!(status["cache"]["assets"], 3, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_rot_is_caught_by_the_rehash_and_the_file_fetched_again() {
    let scene = Scene::new().await;
    // Errors leave the status once the asset arrives; the events stay.
    let events = Subscriber::new(&scene.broker, &device_topic("events")).await;
    let clip = scene.fleet.video("clip.mp4", "smpte");
    let file = blob(&scene.fleet.media_dir(), "data.bin", 100_000);
    let good = scene.origin.as_ref().unwrap().url();
    let player = start(&scene, &[good], "rehash_interval_s = 1\n");
    publish_document(&scene, &assignment(&scene, 1, &[&clip], &[&file])).await;
    player.wait_status("version 1 playing", playing_version(1));

    // One flipped bit, same size: only a re-hash can tell.
    let copy = cached(&player, &file);
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[5000] ^= 0x10;
    std::fs::write(&copy, bytes).unwrap();

    wait_for(|| reported(&events, "bit_rot"), "a bit_rot event");
    wait_for(
        || copy.is_file() && content_id(&copy) == content_id(&file),
        "the file fetched again",
    );
}

/// `assignment` with its one asset renamed to an id its bytes do not hash
/// to: a publishing mistake, the origin's copy being right.
fn with_wrong_hash(mut assignment: Value) -> Value {
    let wrong = format!("sha256:{}", "07".repeat(32));
    let assets = assignment["assets"].as_object_mut().unwrap();
    let (id, entry) = assets
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    assets.remove(&id);
    assets.insert(wrong.clone(), entry);
    assignment["playlists"]["main"][0]["asset"] = wrong.into();
    assignment
}

/// The status's cache issues of this kind (`bad_entry`, `bad_origin`).
fn issues<'a>(status: &'a Value, kind: &str) -> Vec<&'a Value> {
    status["cache"]["issues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_entry_does_not_stall_the_next_assignment_from_the_same_origin() {
    let scene = Scene::new().await;
    let first = scene.fleet.image("first.png", "smpte");
    let mistaken = scene.fleet.image("mistaken.png", "ball");
    let fixed = scene.fleet.image("fixed.png", "snow");
    // One origin, as most small fleets have.
    let player = start(&scene, &[scene.origin.as_ref().unwrap().url()], "");
    scene.publish_assignment(1, &[&first]).await;
    player.wait_status("version 1 playing", playing_version(1));

    let bad = with_wrong_hash(scene.fleet.assignment(2, &[&mistaken]));
    publish_document(&scene, &bad).await;
    let status = player.wait_status("the bad entry reported", |s| {
        rejected_with("hash_mismatch")(s) && !issues(s, "bad_entry").is_empty()
    });
    // Said for a human: this entry, probably; not the origin.
    let entry = issues(&status, "bad_entry")[0];
    assert_eq!(entry["subject"], format!("sha256:{}", "07".repeat(32)));
    let detail = entry["detail"].as_str().unwrap();
    assert!(detail.contains("entry is probably wrong"), "{detail}");
    assert!(issues(&status, "bad_origin").is_empty(), "{status}");
    assert_eq!(status["assignment"]["version"], 1, "the screen plays on");

    let published = std::time::Instant::now();
    scene.publish_assignment(3, &[&fixed]).await;
    let status = player.wait_status("version 3 playing", playing_version(3));
    let took = published.elapsed();
    eprintln!("good assignment after a bad entry: playing in {took:?}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert!(issues(&status, "bad_entry").is_empty(), "{status}");
    assert!(issues(&status, "bad_origin").is_empty(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_got_several_assets_wrong_is_quarantined_but_still_tried_if_alone() {
    let scene = Scene::new().await;
    let media = scene.fleet.media_dir();
    let wrong = ["a.bin", "b.bin", "c.bin"].map(|name| blob(&media, name, 32 << 10));
    let later = blob(&media, "later.bin", 32 << 10);
    // Wrong bytes for the three assets of version 1, right ones afterwards.
    let origin = FaultyOrigin::serve(
        &media,
        &[Fault::Corrupt, Fault::Corrupt, Fault::Corrupt, Fault::Good],
    )
    .await;
    let player = start(&scene, &[origin.url()], "parallel_downloads = 1\n");
    let [a, b, c] = [&wrong[0], &wrong[1], &wrong[2]].map(PathBuf::as_path);
    publish_document(&scene, &assignment(&scene, 1, &[], &[a, b, c])).await;
    let status = player.wait_status("the origin quarantined", |s| {
        !issues(s, "bad_origin").is_empty()
    });
    let quarantined = issues(&status, "bad_origin")[0];
    assert_eq!(quarantined["subject"], format!("http://{}", origin.addr));
    let detail = quarantined["detail"].as_str().unwrap();
    assert!(detail.contains("3 different assets"), "{detail}");

    // The only origin: quarantined, yet asked, and it serves right now.
    publish_document(&scene, &assignment(&scene, 2, &[], &[&later])).await;
    player.wait_status("version 2 active", active(2));
    assert_cached_intact(&player, &later);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_five_times_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let file = blob(dir.path(), "moved.bin", 64 << 10);
    let mut script = vec![Fault::Redirect; 5];
    script.push(Fault::Good);
    let served = fetch_scripted(&file, &script).await;
    let statuses: Vec<u16> = served.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [302, 302, 302, 302, 302, 200]);

    let scene = Scene::new().await;
    // Errors leave the status once the asset arrives; the events stay.
    let events = Subscriber::new(&scene.broker, &device_topic("events")).await;
    script.insert(0, Fault::Redirect);
    let origin = FaultyOrigin::serve(dir.path(), &script).await;
    let player = start(&scene, &[origin.url()], "");
    publish_document(&scene, &assignment(&scene, 1, &[], &[&file])).await;
    player.wait_status("version 1 active", active(1));
    wait_for(|| reported(&events, "bad_redirect"), "a bad_redirect event");
    // The sixth redirect was refused, not followed: the file came from a
    // fresh request.
    let served = origin.requests_for(&file);
    assert_eq!(
        served[..6].iter().filter(|r| r.status == 302).count(),
        6,
        "{served:?}"
    );
    assert_cached_intact(&player, &file);
}

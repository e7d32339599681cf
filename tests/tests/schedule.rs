//! Scheduling, alerts, screen power and proof of play, end to end against
//! the real player, a real Mosquitto and a real collector.

use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp, ToSpan};
use phare_provisioning::asset::entry_for;
use phare_provisioning::pop::PlayLog;
use phare_tests::*;
use serde_json::{Value, json};

/// Adds a playlist of one image (`duration_ms` 600) to an assignment.
fn add_playlist(document: &mut Value, name: &str, image: &Path) {
    let (id, entry) = entry_for(image, &[], None).unwrap();
    document["assets"][id.as_str()] = serde_json::to_value(entry).unwrap();
    document["playlists"][name] = json!([{"asset": id, "duration_ms": 600}]);
}

fn utc_time(t: Timestamp) -> String {
    t.strftime("%H:%M:%S").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playlist_switches_at_the_scheduled_instant_and_back() {
    let scene = Scene::new().await;
    let usual = scene.fleet.image("usual.png", "smpte");
    let special = scene.fleet.image("special.png", "ball");
    let mut document = scene.fleet.assignment(1, &[&usual]);
    add_playlist(&mut document, "lunch", &special);
    document["timezone"] = "UTC".into();
    // Whole seconds, a few of them ahead: the window the player must hit.
    let start = Timestamp::from_second(Timestamp::now().as_second() + 6).unwrap();
    let end = start.checked_add(4.seconds()).unwrap();
    document["schedule"] =
        json!([{"playlist": "lunch", "start": utc_time(start), "end": utc_time(end)}]);
    publish(&scene.broker, &scene.sign("assignment", &document)).await;
    let player = scene.start_player();
    player.wait_status("the default playlist", |s| {
        s["playing"]["playlist"] == "main"
    });

    player.wait_status("the lunch playlist", |s| {
        s["playing"]["playlist"] == "lunch"
    });
    let switched = Timestamp::now();
    assert!(switched >= start, "switched at {switched}, before {start}");
    assert!(
        switched.duration_since(start) < SignedDuration::from_secs(3),
        "switched at {switched}, window {start}"
    );
    player.wait_status("back to the default", |s| {
        s["playing"]["playlist"] == "main"
    });
    assert!(Timestamp::now() >= end);
}

fn alert(
    scene: &Scene,
    version: i64,
    active: bool,
    lasts: SignedDuration,
) -> phare_protocol::Envelope {
    let now = Timestamp::now();
    scene.sign(
        "alert",
        &json!({
            "kind": "alert", "fleet": FLEET, "id": "evac", "version": version, "issued_at": now,
            "expires_at": now.checked_add(lasts).unwrap(), "active": active,
            "message": "Exercice d'évacuation — rendez-vous parking B", "style": "fullscreen",
        }),
    )
}

/// The share of a screenshot's pixels in the full-screen alert's red.
fn alert_red_share(png: &[u8]) -> f64 {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let total = (info.width * info.height) as usize;
    let red = pixels[..total * channels]
        .chunks(channels)
        .filter(|p| p[0] > 100 && p[1] < 60 && p[2] < 60)
        .count();
    red as f64 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_takes_over_then_expires_and_the_schedule_resumes() {
    let scene = Scene::new().await;
    let image = scene.fleet.image("usual.png", "smpte");
    scene.publish_assignment(1, &[&image]).await;
    let shots = tempfile::tempdir().unwrap();
    let plays = Subscriber::new(&scene.broker, &device_topic("pop")).await;
    let player = scene.start_player_with(&phare_tests::render::screenshot_config(shots.path()));
    player.wait_status("playing", playing_version(1));
    assert!(
        alert_red_share(&player.screenshot(shots.path())) < 0.2,
        "no alert yet"
    );

    publish(
        &scene.broker,
        &alert(&scene, 1, true, SignedDuration::from_secs(15)),
    )
    .await;
    let status = player.wait_status("the alert shown", |s| !s["alert"].is_null());
    let shown_at = Timestamp::now();
    assert_eq!(status["alert"]["style"], "fullscreen");
    assert!(
        status["alert"]["message"]
            .as_str()
            .unwrap()
            .contains("évacuation")
    );
    player.wait_screenshot(shots.path(), "the alert on screen", |png| {
        alert_red_share(png) > 0.5
    });

    player.wait_status("the alert expired", |s| s["alert"].is_null());
    let expired_at = Timestamp::now();
    player.wait_screenshot(shots.path(), "the programme back on screen", |png| {
        alert_red_share(png) < 0.2
    });
    assert_played(&player.watch_items(2), &image);

    // The stills that looped under the full-screen alert were not seen:
    // their records say the alert interrupted them, none says completed.
    let under_alert = |record: &Value| {
        let at = |field: &str| {
            record[field]
                .as_str()
                .unwrap()
                .parse::<Timestamp>()
                .unwrap()
        };
        at("start") >= shown_at && at("end") <= expired_at
    };
    let records = || -> Vec<Value> {
        plays
            .json()
            .iter()
            .flat_map(|batch| batch["records"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    wait_for(
        || records().iter().filter(|r| under_alert(r)).count() >= 5,
        "records of the stills under the alert",
    );
    for record in records().iter().filter(|r| under_alert(r)) {
        assert_eq!(record["completed"], false, "{record}");
        assert_eq!(record["reason"], "alert", "{record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_survives_a_restart_with_the_broker_down_until_cleared() {
    let mut scene = Scene::new().await;
    let image = scene.fleet.image("usual.png", "smpte");
    scene.publish_assignment(1, &[&image]).await;
    let mut player = scene.start_player();
    player.wait_status("playing", playing_version(1));
    publish(
        &scene.broker,
        &alert(&scene, 5, true, SignedDuration::from_hours(1)),
    )
    .await;
    player.wait_status("the alert shown", |s| s["alert"]["version"] == 5);

    player.stop();
    scene.broker.stop();
    std::fs::remove_file(player.data_dir.join("status.json")).unwrap();
    player.restart();
    let status = player.wait_status("the alert back after the restart", |s| {
        s["alert"]["version"] == 5
    });
    assert!(status["broker"].is_null());

    // Cleared by a higher version once the broker is back.
    scene.broker.restart();
    publish(
        &scene.broker,
        &alert(&scene, 6, false, SignedDuration::from_hours(1)),
    )
    .await;
    player.wait_status("the alert cleared", |s| {
        s["alert"].is_null() && !s["broker"].is_null()
    });
}

/// One alert of the fleet, signed: `targets` none for the whole fleet.
fn alert_of(
    scene: &Scene,
    id: &str,
    (version, active): (i64, bool),
    (style, priority): (&str, u32),
    targets: &[&str],
) -> phare_protocol::Envelope {
    let now = Timestamp::now();
    let mut document = json!({
        "kind": "alert", "fleet": FLEET, "id": id, "version": version, "issued_at": now,
        "expires_at": now.checked_add(SignedDuration::from_hours(1)).unwrap(),
        "active": active, "priority": priority, "message": format!("Alerte {id}"), "style": style,
    });
    if !targets.is_empty() {
        document["targets"] = json!(targets);
    }
    scene.sign("alert", &document)
}

/// Alerts are independent: an alert for another screen, one of higher
/// priority for this one, and its clearing, neither hide for good nor
/// clear the full-screen evacuation; what is up survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_independent_and_the_most_important_one_shows() {
    let mut scene = Scene::new().await;
    let image = scene.fleet.image("usual.png", "smpte");
    scene.publish_assignment(1, &[&image]).await;
    let mut player = scene.start_player();
    player.wait_status("playing", playing_version(1));
    let shown = |id: &'static str| move |s: &Value| s["alert"]["id"] == id;

    let evacuation = ("fullscreen", 100);
    publish(
        &scene.broker,
        &alert_of(&scene, "evac", (1, true), evacuation, &[]),
    )
    .await;
    let status = player.wait_status("the evacuation", shown("evac"));
    assert_eq!(status["alert"]["priority"], 100, "{status}");
    // A typo'd target: for another screen. Then a more important one for
    // this screen, which shows over the evacuation while it lasts.
    let elsewhere = alert_of(
        &scene,
        "cafe",
        (1, true),
        ("banner", 500),
        &["device:lobby-2"],
    );
    publish(&scene.broker, &elsewhere).await;
    let here = alert_of(
        &scene,
        "here",
        (1, true),
        ("banner", 200),
        &[&format!("device:{DEVICE}")],
    );
    publish(&scene.broker, &here).await;
    player.wait_status("the more important alert", shown("here"));
    // Clearing it clears it only.
    publish(
        &scene.broker,
        &alert_of(&scene, "here", (2, false), ("banner", 200), &[]),
    )
    .await;
    player.wait_status("the evacuation again", shown("evac"));

    player.stop();
    scene.broker.stop();
    std::fs::remove_file(player.data_dir.join("status.json")).unwrap();
    player.restart();
    let status = player.wait_status("the evacuation after a restart", shown("evac"));
    assert!(status["broker"].is_null(), "{status}");

    scene.broker.restart();
    publish(
        &scene.broker,
        &alert_of(&scene, "evac", (2, false), evacuation, &[]),
    )
    .await;
    player.wait_status("no alert", |s| {
        s["alert"].is_null() && !s["broker"].is_null()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_power_windows_the_screen_sleeps_until_told_otherwise() {
    let scene = Scene::new().await;
    let image = scene.fleet.image("usual.png", "smpte");
    let mut document = scene.fleet.assignment(1, &[&image]);
    document["timezone"] = "UTC".into();
    // On only in an hour-long window starting two hours from now.
    let on = Timestamp::now().checked_add(2.hours()).unwrap();
    let off = on.checked_add(1.hour()).unwrap();
    document["display"] = json!({"power": [{"on": utc_time(on), "off": utc_time(off)}]});
    publish(&scene.broker, &scene.sign("assignment", &document)).await;
    // No periodic status during the test: what wakes the player then is
    // the player's own doing.
    let player = scene.start_player_on(&Screen::fake(), "status_interval_s = 3600\n");
    let status = player.wait_status("the screen off", |s| {
        s["display"] == "off" && s["assignment"]["version"] == 1
    });
    assert!(status["playing"].is_null(), "{status}");
    let pid = player.pid().unwrap();
    // Asleep, with no status due, nothing should wake the player but its
    // broker keep-alive (1 wake-up in 5 s when measured): one timer at
    // 1 Hz stays under the bound, a faster one, or any polling, goes over
    // it in every window. The quietest of a few windows counts: one-off
    // work (a late acknowledgement, a busy broker) lands in some of them,
    // a periodic wake-up in all.
    let bound = IDLE_WINDOW.as_secs() + 2;
    let quietest = (0..3)
        .map(|_| {
            let before = wake_ups(pid);
            std::thread::sleep(IDLE_WINDOW);
            let after = wake_ups(pid);
            // Per thread: one that starts counts all its wake-ups.
            after
                .iter()
                .map(|(tid, count)| count - before.get(tid).copied().unwrap_or(0))
                .sum::<u64>()
        })
        .min()
        .unwrap();
    assert!(
        quietest <= bound,
        "the sleeping player woke {quietest} times in its quietest {IDLE_WINDOW:?} \
         (at most {bound})"
    );

    // An operator's display_on holds until the next window edge.
    let now = Timestamp::now();
    let command = json!({
        "kind": "command", "fleet": FLEET, "device": DEVICE, "id": "wake-1", "issued_at": now,
        "expires_at": now.checked_add(5.minutes()).unwrap(), "action": "display_on", "args": {},
    });
    publish(&scene.broker, &scene.sign("command", &command)).await;
    player.wait_status("the screen on and playing", |s| {
        s["display"] == "on" && !s["playing"].is_null()
    });
}

/// Long enough to see any periodic wake-up several times over.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

/// How often each of the process's threads has gone to sleep and been
/// woken (voluntary context switches: preemptions by a busy machine are
/// not wake-ups), by thread id.
fn wake_ups(pid: u32) -> std::collections::HashMap<String, u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            let count = status
                .lines()
                .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))?
                .trim()
                .parse()
                .ok()?;
            Some((task.file_name().to_string_lossy().into_owned(), count))
        })
        .collect()
}

/// The device's outstanding proof-of-play records and its last sequence.
fn device_plays(player: &Player) -> (i64, i64) {
    let db = rusqlite::Connection::open(player.data_dir.join("state.db")).unwrap();
    let outstanding = db
        .query_row("SELECT COUNT(*) FROM pop", [], |r| r.get(0))
        .unwrap();
    let last = db
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'pop'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    (outstanding, last)
}

/// `phare pop collect`, in this process, into `db`, until stopped.
struct Collector {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    fn start(url: String, db: &Path) -> Collector {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let db = db.to_owned();
        let task = tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            phare_provisioning::pop::collect(&url, FLEET, &db, stopped, |_| {})
                .await
                .expect("the collector failed");
        });
        Collector { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Proof of play waits on the device for a collector: batches published
/// while none runs (the broker acknowledges them, then drops them: nobody
/// subscribed) are sent again until a collector acknowledges them, so the
/// first collector to start gets every record from the very first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_of_play_waits_on_the_device_for_a_collector() {
    let scene = Scene::new().await;
    let a = scene.fleet.image("a.png", "smpte");
    let b = scene.fleet.image("b.png", "ball");
    scene.publish_assignment(1, &[&a, &b]).await;
    // Watches the batches go out; it acknowledges nothing.
    let watcher = Subscriber::new(&scene.broker, &device_topic("pop")).await;
    let player = scene.start_player();
    let published = || {
        watcher
            .json()
            .iter()
            .map(|batch| batch["records"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
    };
    wait_for(|| published() >= 4, "records published with no collector");
    let (outstanding, _) = device_plays(&player);
    assert!(
        outstanding >= 4,
        "the device forgot {outstanding} unacknowledged records"
    );

    let work = tempfile::tempdir().unwrap();
    let collected = work.path().join("collector.db");
    let collector = Collector::start(scene.broker.url(), &collected);
    let arrived = || {
        PlayLog::open(&collected)
            .and_then(|log| log.sequences_in_arrival_order(DEVICE))
            .unwrap_or_default()
    };
    wait_for(|| arrived().len() >= 4, "the held records at the collector");
    let arrived = arrived();
    assert_eq!(
        arrived,
        (1..=arrived.len() as i64).collect::<Vec<_>>(),
        "every record from the first, once, in order"
    );
    // Acknowledged, so forgotten on the device.
    wait_for(
        || device_plays(&player).0 < arrived.len() as i64,
        "the device to forget what the collector has",
    );
    collector.stop().await;
}

/// A device that no collector reached for weeks holds at most
/// `MAX_HELD_PLAYS` records: past that, its oldest showings are folded into
/// one summary per item, which the collector gets with their counts. Not
/// one showing goes uncounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_of_play_past_its_bound_is_summarised_and_collected() {
    use phare_player::store::{MAX_HELD_PLAYS, Store, UNFOLDED_PLAYS};
    let scene = Scene::new().await;
    // Weeks of showings of two items, none collected.
    let held = MAX_HELD_PLAYS as i64;
    let data_dir = scene.work.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    drop(Store::open(&data_dir.join("state.db")).unwrap());
    let mut db = rusqlite::Connection::open(data_dir.join("state.db")).unwrap();
    let seed = db.transaction().unwrap();
    seed.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO pop (playlist, item, asset, started_at, ended_at, completed)
         SELECT 'main', i % 2, 'sha256:' || (i % 2), '2026-11-01T00:00:00Z',
                '2026-11-01T00:00:08Z', 1 FROM n",
        [held],
    )
    .unwrap();
    seed.commit().unwrap();
    drop(db);

    let a = scene.fleet.image("a.png", "smpte");
    scene.publish_assignment(1, &[&a]).await;
    let player = scene.start_player();
    // Its first showing closes past the bound: a fold.
    wait_for(
        || device_plays(&player).0 < held,
        "the device to fold its oldest records",
    );
    assert!(
        player
            .log()
            .contains("its oldest records are now summaries")
    );

    let work = tempfile::tempdir().unwrap();
    let collected = work.path().join("collector.db");
    let collector = Collector::start(scene.broker.url(), &collected);
    let summaries = || -> Vec<(i64, i64)> {
        let Ok(log) = rusqlite::Connection::open(&collected) else {
            return Vec::new();
        };
        let Ok(mut stmt) =
            log.prepare("SELECT seq, plays FROM plays WHERE completed_plays IS NOT NULL")
        else {
            return Vec::new();
        };
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map(|rows| rows.flatten().collect())
            .unwrap_or_default()
    };
    wait_for(
        || summaries().len() == 2,
        "the two items' summaries at the collector",
    );
    collector.stop().await;
    // After the records a batch in flight may hold, one summary per item,
    // counting the showings it stands for.
    let summaries = summaries();
    let first = UNFOLDED_PLAYS as i64 + 1;
    assert_eq!(
        summaries.iter().map(|s| s.0).collect::<Vec<_>>(),
        [first, first + 1]
    );
    let folded: i64 = summaries.iter().map(|s| s.1).sum();
    assert_eq!(folded, MAX_HELD_PLAYS as i64 / 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_of_play_crosses_a_broker_outage_exactly_once_and_in_order() {
    let fleet = Fleet::new();
    let origin = Origin::serve(&fleet.media_dir(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut broker = Mosquitto::start_persistent();
    let work = tempfile::tempdir().unwrap();
    let collected = work.path().join("collector.db");

    // The collector, running throughout.
    let collector = Collector::start(broker.url(), &collected);
    let a = fleet.image("a.png", "smpte");
    let b = fleet.image("b.png", "ball");
    publish(&broker, &fleet.sign(&fleet.assignment(1, &[&a, &b]))).await;
    let mut player = Player::start(
        work.path(),
        &fleet.root_path(),
        &[broker.url()],
        &[origin.url()],
    );
    player.wait_status("playing", playing_version(1));
    let count = || {
        PlayLog::open(&collected)
            .map(|log| log.count().unwrap())
            .unwrap_or(0)
    };
    wait_for(|| count() >= 3, "records before the outage");

    // Items go on playing while the broker is away.
    broker.stop();
    player.watch_items(4);
    broker.restart();
    wait_for(|| count() >= 8, "records after the outage");

    // Restart the player: it delivers what the stop left, then more.
    player.stop();
    let before_restart = count();
    player.restart();
    wait_for(
        || count() >= before_restart + 2,
        "records after the restart",
    );
    player.stop();
    collector.stop().await;

    // The collector holds 1..=k in arrival order, each once; only records
    // the broker had not acknowledged when the player stopped may be
    // missing, and they are still on the device, to be sent next time.
    let (outstanding, last) = device_plays(&player);
    let arrived = PlayLog::open(&collected)
        .unwrap()
        .sequences_in_arrival_order(DEVICE)
        .unwrap();
    let k = *arrived.last().unwrap();
    assert_eq!(
        arrived,
        (1..=k).collect::<Vec<_>>(),
        "every record, once, in order"
    );
    assert!(
        k >= last - outstanding && k <= last,
        "collected 1..={k}; device last {last}, outstanding {outstanding}"
    );
}

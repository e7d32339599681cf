//! The core's decisions, with storage in memory and a pretend cache: no
//! broker, no GStreamer, no clock but the one the tests move.

use std::collections::BTreeMap;

use phare_protocol::envelope::payload_type;
use phare_protocol::report::{CacheStatus, Status};
use phare_protocol::{Envelope, SigningKey};
use serde_json::{Value, json};

use super::*;
use crate::agent::storage::MemoryStorage;
use crate::overlay::AlertStyle;
use crate::trust::Identity;

/// What the cache holds, by asset: its size.
#[derive(Default)]
struct Cached(BTreeMap<AssetId, u64>);

impl Content for Cached {
    fn has(&self, id: &AssetId, size: u64) -> bool {
        self.0.get(id) == Some(&size)
    }

    fn fetched(&self, _id: &AssetId) -> u64 {
        0
    }
}

fn asset(n: u8) -> AssetId {
    AssetId::from_digest(&[n; 32])
}

const ASSET_SIZE: u64 = 1000;

/// Its root (version 1) signs; `publisher` signs documents and commands.
fn root(version: u64, root: &SigningKey, publisher: &SigningKey) -> Envelope {
    crate::trust::test_root(version, root, publisher, &[root])
}

/// A core for device `lobby-1` of group `lobby`, started at 10:00 UTC on
/// a Monday, with an empty cache.
struct Rig {
    core: Core<MemoryStorage>,
    cache: Cached,
    now: Now,
    root_key: SigningKey,
    publisher: SigningKey,
    topics: Topics,
}

fn rig() -> Rig {
    rig_with(MemoryStorage::default())
}

fn rig_with(storage: MemoryStorage) -> Rig {
    let root_key = SigningKey::generate().unwrap();
    let publisher = SigningKey::generate().unwrap();
    let identity = Identity {
        fleet: "acme".into(),
        device_id: "lobby-1".into(),
        groups: vec!["lobby".into()],
        allow_plaintext_live: false,
    };
    let trust = Trust::new(&root(1, &root_key, &publisher), &[], identity).unwrap();
    let topics = Topics::for_fleet("acme");
    let settings = Settings {
        device_id: "lobby-1".into(),
        groups: vec!["lobby".into()],
        topics: topics.clone(),
        rotation: Rotation::None,
        can_reboot: false,
    };
    let mut rig = Rig {
        core: Core::new(settings, storage, trust, TrustedClock::new(None)),
        cache: Cached::default(),
        now: Now {
            system: "2026-06-01T10:00:00Z".parse().unwrap(),
            monotonic: Instant::now(),
        },
        root_key,
        publisher,
        topics,
    };
    rig.handle(Input::Start);
    rig
}

impl Rig {
    fn handle(&mut self, input: Input) -> Vec<Effect> {
        self.core.handle(input, self.now, &self.cache)
    }

    /// Moves both clocks to `hh:mm` UTC, later that day or the next.
    fn at(&mut self, time: &str) {
        let [hours, minutes] = [&time[..2], &time[3..]].map(|s| s.parse::<i64>().unwrap());
        let today = self.now.system.in_tz("UTC").unwrap().date();
        let mut then = today
            .at(hours as i8, minutes as i8, 0, 0)
            .in_tz("UTC")
            .unwrap()
            .timestamp();
        if then <= self.now.system {
            then = then
                .checked_add(jiff::SignedDuration::from_hours(24))
                .unwrap();
        }
        self.advance(then.duration_since(self.now.system).unsigned_abs());
    }

    fn advance(&mut self, by: Duration) {
        self.now.system = self.now.system.checked_add(by).unwrap();
        self.now.monotonic += by;
    }

    fn sign(&self, kind: &str, document: &Value, key: &SigningKey) -> Vec<u8> {
        let body = serde_json::to_vec(document).unwrap();
        Envelope::sign(&payload_type(kind), &body, &[key])
            .to_json()
            .into_bytes()
    }

    fn publish_assignment(&mut self, document: &Value) -> Vec<Effect> {
        let topic = self
            .topics
            .assignment_for_target(document["target"].as_str().unwrap())
            .unwrap();
        let payload = self.sign("assignment", document, &self.publisher);
        self.handle(Input::Message { topic, payload })
    }

    fn publish_alert(&mut self, document: &Value) -> Vec<Effect> {
        let topic = self.topics.alert(document["id"].as_str().unwrap());
        let payload = self.sign("alert", document, &self.publisher);
        self.handle(Input::Message { topic, payload })
    }

    fn command(&mut self, id: &str, action: &str) -> Vec<Effect> {
        let document = json!({"kind": "command", "fleet": "acme", "device": "lobby-1",
            "id": id, "issued_at": self.now.system,
            "expires_at": self.now.system.checked_add(jiff::SignedDuration::from_mins(5)).unwrap(),
            "action": action, "args": {}});
        let payload = self.sign("command", &document, &self.publisher);
        let topic = self.topics.command("lobby-1");
        self.handle(Input::Message { topic, payload })
    }

    /// The asset arrives in the cache.
    fn downloaded(&mut self, id: &AssetId) -> Vec<Effect> {
        self.cache.0.insert(id.clone(), ASSET_SIZE);
        self.handle(Input::Cache(Outcome {
            events: Vec::new(),
            changed: true,
        }))
    }

    fn status(&self) -> Status {
        self.core
            .status(self.now, CacheStatus::default(), 0, &self.cache)
    }

    fn render(&mut self, event: RenderEvent) -> Vec<Effect> {
        self.handle(Input::Render(event))
    }

    /// The records stored so far: (item, completed, reason), closed ones.
    fn records(&self) -> Vec<(usize, bool, Option<String>)> {
        self.core
            .storage
            .plays
            .values()
            .filter(|r| !r.end.is_empty())
            .map(|r| (r.item, r.completed, r.reason.clone()))
            .collect()
    }
}

/// An assignment of stills for `target`: `main` plays `assets`, and
/// `extra` is merged in (a schedule, display settings).
fn assignment(target: &str, version: u64, assets: &[AssetId], extra: Value) -> Value {
    let entries: serde_json::Map<String, Value> = assets
        .iter()
        .map(|id| {
            let entry = json!({"size": ASSET_SIZE, "media_type": "image/png",
                               "urls": [format!("https://origin.example/{}.png", id.hex())]});
            (id.to_string(), entry)
        })
        .collect();
    let items: Vec<Value> = assets
        .iter()
        .map(|id| json!({"asset": id, "duration_ms": 5000}))
        .collect();
    let mut document = json!({"kind": "assignment", "fleet": "acme", "target": target,
        "version": version, "issued_at": "2026-06-01T00:00:00Z",
        "expires_at": "2027-01-01T00:00:00Z", "timezone": "UTC",
        "assets": entries, "playlists": {"main": items}, "default_playlist": "main"});
    if let (Value::Object(document), Value::Object(extra)) = (&mut document, extra) {
        document.extend(extra);
    }
    document
}

fn alert(id: &str, version: u64, expires_at: &str, extra: Value) -> Value {
    let mut document = json!({"kind": "alert", "fleet": "acme", "id": id, "version": version,
        "issued_at": "2026-06-01T09:00:00Z", "expires_at": expires_at, "active": true,
        "priority": 10, "message": "Évacuation", "style": "fullscreen"});
    if let (Value::Object(document), Value::Object(extra)) = (&mut document, extra) {
        document.extend(extra);
    }
    document
}

/// What the renderer was told to play, and why the screen was cut.
fn played(effects: &[Effect]) -> Vec<(Vec<Option<AssetId>>, Interruption)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Render(Render::Play { items, reason }) => {
                Some((items.iter().map(|i| i.asset().cloned()).collect(), *reason))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_assignment_plays_only_once_its_content_is_complete() {
    let mut rig = rig();
    let (a, b) = (asset(1), asset(2));
    let effects = rig.publish_assignment(&assignment(
        "device:lobby-1",
        1,
        &[a.clone(), b.clone()],
        json!({}),
    ));
    assert!(played(&effects).is_empty(), "{effects:?}");
    let wanted = effects.iter().find_map(|e| match e {
        Effect::WantAssets { missing, .. } => Some(missing.keys().cloned().collect::<Vec<_>>()),
        _ => None,
    });
    assert_eq!(wanted, Some(vec![a.clone(), b.clone()]));
    let pending = rig.status().pending_assignment.unwrap();
    assert_eq!((pending.version, pending.assets_missing), (1, 2));
    assert!(rig.status().assignment.is_none());

    assert!(played(&rig.downloaded(&a)).is_empty(), "one asset of two");
    let effects = rig.downloaded(&b);
    assert_eq!(
        played(&effects),
        [(vec![Some(a), Some(b)], Interruption::Assignment)]
    );
    let status = rig.status();
    assert_eq!(status.assignment.unwrap().version, 1);
    assert_eq!(status.pending_assignment, None);
}

#[test]
fn a_newer_pending_assignment_replaces_an_older_one() {
    let mut rig = rig();
    let (a, b, c) = (asset(1), asset(2), asset(3));
    rig.cache.0.insert(a.clone(), ASSET_SIZE);
    rig.publish_assignment(&assignment(
        "device:lobby-1",
        1,
        std::slice::from_ref(&a),
        json!({}),
    ));
    assert_eq!(rig.status().assignment.unwrap().version, 1);
    rig.publish_assignment(&assignment(
        "device:lobby-1",
        2,
        std::slice::from_ref(&b),
        json!({}),
    ));
    rig.publish_assignment(&assignment(
        "device:lobby-1",
        3,
        std::slice::from_ref(&c),
        json!({}),
    ));
    assert_eq!(rig.status().pending_assignment.unwrap().version, 3);

    // Version 2's content arrives: too late, version 3 is what is wanted.
    assert!(played(&rig.downloaded(&b)).is_empty());
    assert_eq!(rig.status().assignment.unwrap().version, 1, "1 plays on");
    let effects = rig.downloaded(&c);
    assert_eq!(
        played(&effects),
        [(vec![Some(c)], Interruption::Assignment)]
    );
    assert_eq!(rig.status().assignment.unwrap().version, 3);

    // An older version is a rollback, refused with a reason.
    let effects = rig.publish_assignment(&assignment("device:lobby-1", 2, &[b], json!({})));
    assert!(played(&effects).is_empty());
    let error = rig.status().errors.pop().unwrap();
    assert_eq!(error.reason.as_deref(), Some("rollback"));
}

#[test]
fn an_assignment_not_stored_is_not_accepted() {
    let mut broken = MemoryStorage::default();
    broken.failing = true;
    let mut rig = rig_with(broken);
    let a = asset(1);
    rig.cache.0.insert(a.clone(), ASSET_SIZE);
    let effects = rig.publish_assignment(&assignment("device:lobby-1", 1, &[a], json!({})));
    assert!(played(&effects).is_empty(), "{effects:?}");
    assert!(rig.status().assignment.is_none());
    assert!(rig.core.assignments.is_empty());
}

/// A device playing `main` (one still) at 10:00, its item on screen.
fn playing(extra: Value) -> Rig {
    let mut rig = rig();
    let a = asset(1);
    rig.cache.0.insert(a.clone(), ASSET_SIZE);
    rig.handle(Input::Connected {
        broker: "mqtt://broker:1883".into(),
    });
    rig.publish_assignment(&assignment("group:lobby", 1, &[a], extra));
    rig.render(RenderEvent::ItemStarted { index: 0 });
    rig
}

#[test]
fn an_alert_takes_the_screen_then_expires() {
    let mut rig = playing(json!({}));
    let effects = rig.publish_alert(&alert("fire", 1, "2026-06-01T10:05:00Z", json!({})));
    let overlay = effects.iter().find_map(|e| match e {
        Effect::Render(Render::Alert(Some(overlay))) => Some(overlay.style),
        _ => None,
    });
    assert_eq!(overlay, Some(AlertStyle::Fullscreen));
    let alarm = effects.iter().find_map(|e| match e {
        Effect::SetAlarm(at) => Some(*at),
        _ => None,
    });
    assert_eq!(
        alarm,
        Some("2026-06-01T10:05:00Z".parse().unwrap()),
        "wakes at its end"
    );
    assert_eq!(rig.status().alert.unwrap().id, "fire");

    // A more important one preempts it; a less important one does not.
    rig.publish_alert(&alert(
        "flood",
        1,
        "2026-06-01T10:04:00Z",
        json!({"priority": 20}),
    ));
    rig.publish_alert(&alert(
        "drill",
        1,
        "2026-06-01T10:04:00Z",
        json!({"priority": 5}),
    ));
    assert_eq!(rig.status().alert.unwrap().id, "flood");

    // The still under the full-screen alert was not seen.
    rig.render(RenderEvent::ItemEnded {
        index: 0,
        completed: true,
    });
    assert_eq!(rig.records(), [(0, false, Some("alert".into()))]);

    rig.at("10:04");
    rig.handle(Input::Alarm { clock_set: false });
    assert_eq!(rig.status().alert.unwrap().id, "fire", "flood ended");
    rig.at("10:05");
    let effects = rig.handle(Input::Alarm { clock_set: false });
    assert!(
        effects.contains(&Effect::Render(Render::Alert(None))),
        "{effects:?}"
    );
    assert_eq!(rig.status().alert, None);
}

#[test]
fn an_alerts_own_asset_plays_instead_of_the_programme_until_it_ends() {
    let mut rig = playing(json!({}));
    let poster = asset(9);
    // Its type and size come from an assignment that lists it.
    rig.cache.0.insert(poster.clone(), ASSET_SIZE);
    rig.publish_assignment(&assignment(
        "device:lobby-1",
        1,
        &[asset(1), poster.clone()],
        json!({}),
    ));
    rig.render(RenderEvent::ItemStarted { index: 0 });
    let effects = rig.publish_alert(&alert(
        "fire",
        1,
        "2026-06-01T10:05:00Z",
        json!({"asset": poster}),
    ));
    assert_eq!(
        played(&effects),
        [(vec![Some(poster)], Interruption::Alert)]
    );
    assert!(
        effects.contains(&Effect::Render(Render::Alert(Some(AlertOverlay {
            message: "Évacuation".into(),
            style: AlertStyle::Banner,
        }))))
    );
    let (_, completed, reason) = rig.records().pop().unwrap();
    assert_eq!((completed, reason.as_deref()), (false, Some("alert")));

    rig.at("10:05");
    let effects = rig.handle(Input::Alarm { clock_set: false });
    assert_eq!(played(&effects).len(), 1, "the programme again");
    assert_eq!(played(&effects)[0].0.len(), 2);
}

#[test]
fn a_display_command_holds_until_the_power_windows_next_change() {
    let power = json!({"display": {"power": [{"on": "08:00", "off": "18:00"}]}});
    let mut rig = playing(power);
    assert_eq!(rig.status().display, DisplayState::On);

    rig.command("c1", "display_off");
    assert_eq!(rig.status().display, DisplayState::Off);
    assert_eq!(rig.records(), [(0, false, Some("display_off".into()))]);
    rig.at("12:00");
    rig.handle(Input::Alarm { clock_set: false });
    assert_eq!(rig.status().display, DisplayState::Off, "held");
    // The windows turn the screen off at 18:00 and on at 08:00: from then
    // on they rule again.
    rig.at("18:00");
    rig.handle(Input::Alarm { clock_set: false });
    assert_eq!(rig.status().display, DisplayState::Off);
    rig.at("08:00");
    let effects = rig.handle(Input::Alarm { clock_set: false });
    assert!(effects.contains(&Effect::ScreenPower(true)), "{effects:?}");
    assert_eq!(rig.status().display, DisplayState::On);

    // On when the windows say off: until they next say on.
    rig.at("19:00");
    rig.handle(Input::Alarm { clock_set: false });
    assert_eq!(rig.status().display, DisplayState::Off);
    rig.command("c2", "display_on");
    assert_eq!(rig.status().display, DisplayState::On);
    rig.at("07:59");
    rig.handle(Input::Alarm { clock_set: false });
    assert_eq!(
        rig.status().display,
        DisplayState::On,
        "held through the night"
    );
    rig.at("08:00");
    rig.handle(Input::Alarm { clock_set: false });
    rig.at("18:00");
    rig.handle(Input::Alarm { clock_set: false });
    assert_eq!(rig.status().display, DisplayState::Off, "the plan again");
}

#[test]
fn proof_of_play_is_recorded_once_with_why_an_item_was_cut() {
    let lunch = json!({"schedule": [{"playlist": "lunch", "start": "12:00", "end": "13:00"}],
                       "playlists": {"main": [{"asset": asset(1), "duration_ms": 5000},
                                              {"asset": asset(1), "duration_ms": 5000}],
                                     "lunch": [{"asset": asset(1), "duration_ms": 5000}]}});
    let mut rig = playing(lunch);
    rig.render(RenderEvent::ItemEnded {
        index: 0,
        completed: true,
    });
    rig.render(RenderEvent::ItemStarted { index: 1 });
    rig.at("12:00");
    let effects = rig.handle(Input::Alarm { clock_set: false });
    assert_eq!(played(&effects)[0].1, Interruption::Schedule);
    // The renderer says the item it cut ended: it is closed already.
    rig.render(RenderEvent::ItemEnded {
        index: 1,
        completed: false,
    });
    rig.render(RenderEvent::ItemStarted { index: 0 });
    rig.handle(Input::Shutdown);
    assert_eq!(
        rig.records(),
        [
            (0, true, None),
            (1, false, Some("schedule".into())),
            (0, false, Some("shutdown".into())),
        ]
    );
}

#[test]
fn proof_of_play_goes_one_batch_at_a_time_until_a_collector_has_it() {
    let mut rig = playing(json!({}));
    let effects = rig.render(RenderEvent::ItemEnded {
        index: 0,
        completed: true,
    });
    let batch = |effects: &[Effect]| {
        effects.iter().find_map(|e| match e {
            Effect::PublishPlays { payload, batch, .. } => {
                let sent: phare_protocol::report::PlayBatch =
                    serde_json::from_slice(payload).unwrap();
                Some((
                    *batch,
                    sent.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
                ))
            }
            _ => None,
        })
    };
    assert_eq!(batch(&effects), Some((1, vec![1])));
    // One at a time: the next record waits.
    rig.render(RenderEvent::ItemStarted { index: 0 });
    let effects = rig.render(RenderEvent::ItemEnded {
        index: 0,
        completed: true,
    });
    assert_eq!(batch(&effects), None);
    // The broker has it, no collector answers: it goes again later.
    rig.handle(Input::PlaysAcked(1));
    let resend = rig.core.deadline().unwrap();
    assert_eq!(resend, rig.now.monotonic + Duration::from_secs(15));
    rig.advance(Duration::from_secs(15));
    let effects = rig.handle(Input::Deadline);
    assert_eq!(batch(&effects), Some((2, vec![1, 2])));
    // A collector stored them: forgotten.
    let ack = rig.topics.pop_ack("lobby-1");
    rig.handle(Input::Message {
        topic: ack,
        payload: br#"{"through": 2}"#.to_vec(),
    });
    assert!(rig.records().is_empty());
}

#[test]
fn events_go_through_the_outbox_by_importance_and_errors_stay_in_the_status() {
    let mut rig = rig();
    let events = vec![
        Event::new(rig.now.system, EventKind::DownloadFailed, "timeout").with_subject("a"),
        Event::new(rig.now.system, EventKind::Downloaded, "1000 bytes").with_subject("a"),
    ];
    let effects = rig.handle(Input::Cache(Outcome {
        events,
        changed: false,
    }));
    let queued: Vec<Importance> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Queue { importance, .. } => Some(*importance),
            _ => None,
        })
        .collect();
    assert_eq!(queued, [Importance::Error, Importance::Routine]);
    assert!(
        rig.status().errors.is_empty(),
        "the download ended the failure"
    );
}

#[test]
fn a_rotated_publisher_key_resets_the_floors_it_signed_and_no_others() {
    let mut rig = rig();
    rig.publish_assignment(&assignment("device:lobby-1", 9, &[], json!({})));
    rig.publish_alert(&alert("fire", 3, "2026-06-01T11:00:00Z", json!({})));
    assert_eq!(
        rig.core.storage.documents["assignment:device:lobby-1"].version,
        9
    );
    let new_publisher = SigningKey::generate().unwrap();
    let root2 = root(2, &rig.root_key, &new_publisher);
    let effects = rig.handle(Input::Message {
        topic: rig.topics.root(2),
        payload: root2.to_json().into_bytes(),
    });
    assert!(rig.status().errors.is_empty(), "{effects:?}");
    assert_eq!(rig.core.storage.roots.len(), 1, "root 2 stored");
    // Both streams were signed by the old key: their floors start over,
    // so the new key's version 1 is taken.
    assert_eq!(
        rig.core.storage.documents["assignment:device:lobby-1"].version,
        0
    );
    rig.publisher = new_publisher;
    rig.publish_assignment(&assignment("device:lobby-1", 1, &[], json!({})));
    assert_eq!(
        rig.core.storage.documents["assignment:device:lobby-1"].version,
        1
    );
    assert!(rig.status().errors.is_empty());

    // A root that keeps the key keeps the floors.
    let root3 = root(3, &rig.root_key, &rig.publisher);
    rig.handle(Input::Message {
        topic: rig.topics.root(3),
        payload: root3.to_json().into_bytes(),
    });
    rig.publish_assignment(&assignment(
        "device:lobby-1",
        1,
        &[],
        json!({"timezone": "Europe/Paris"}),
    ));
    let error = rig.status().errors.pop().unwrap();
    assert_eq!(error.reason.as_deref(), Some("rollback"));
}

#[test]
fn a_command_is_carried_out_once_and_answered() {
    let mut rig = rig();
    let answers = |effects: &[Effect]| -> Vec<CommandResponse> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Queue { topic, payload, .. } if topic.ends_with("/response") => {
                    Some(serde_json::from_slice(payload).unwrap())
                }
                _ => None,
            })
            .collect()
    };
    let effects = rig.command("c1", "report_now");
    assert!(effects.contains(&Effect::PublishStatus));
    let [answer] = &answers(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert!(answer.ok && answer.id == "c1");
    let effects = rig.command("c1", "report_now");
    assert!(answers(&effects).is_empty(), "a replay is refused");
    assert_eq!(
        rig.status().errors.pop().unwrap().reason.as_deref(),
        Some("replay")
    );
    let [answer] = &answers(&rig.command("c2", "reboot"))[..] else {
        panic!()
    };
    assert_eq!(
        answer.error.as_deref(),
        Some("reboot_command is empty in the configuration")
    );
    let effects = rig.command("c3", "screenshot");
    assert!(answers(&effects).is_empty(), "answered once it is taken");
    let Some(Effect::Screenshot { response, .. }) = effects.into_iter().next() else {
        panic!()
    };
    let effects = rig.handle(Input::Finished(response));
    assert_eq!(answers(&effects)[0].id, "c3");
}

#[test]
fn a_flood_of_refusals_is_counted_and_the_retained_documents_asked_for_again() {
    let mut rig = rig();
    let topic = rig.topics.device_assignment("lobby-1");
    let mut reported = 0;
    for _ in 0..RejectionBudget::PER_WINDOW + 5 {
        let effects = rig.handle(Input::Message {
            topic: topic.clone(),
            payload: b"not an envelope".to_vec(),
        });
        reported += effects
            .iter()
            .filter(|e| matches!(e, Effect::Queue { .. }))
            .count();
    }
    assert_eq!(reported, RejectionBudget::PER_WINDOW as usize);
    let again = rig.core.deadline().expect("a resubscription is due");
    assert_eq!(again, rig.now.monotonic + FLOOD_RESUBSCRIBE);
    rig.advance(FLOOD_RESUBSCRIBE);
    assert_eq!(rig.handle(Input::Deadline), [Effect::Resubscribe]);
    assert_eq!(rig.core.deadline(), None);
}

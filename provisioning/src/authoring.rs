//! Writing assignments without copying hashes by hand: the skeleton `phare
//! assignment new` writes, the asset and playlist item `phare asset add
//! --into` adds, and the `version` and `issued_at` `phare sign` sets.
//!
//! Documents are edited as JSON, not through the typed documents, so that
//! everything the admin wrote (a schedule, a display section, members of
//! their own, `x-…`) is kept as it is. Files are written back whole, with
//! members in the protocol's order ([`members::to_pretty_json`]).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use phare_common::files::{Access, write_atomic};
use phare_protocol::document::{Assignment, parse_document, validate_payload};
use phare_protocol::members;
use phare_protocol::{AssetEntry, AssetId, Envelope};
use serde_json::{Value, json};

use crate::connect::{Endpoint, retained};
use crate::registry::check_name;

/// The playlist of a new assignment, its default.
pub const FIRST_PLAYLIST: &str = "main";

/// How long after the subscription's confirmation a retained document may
/// still arrive (the broker sends it at once).
const RETAINED_QUIET: Duration = Duration::from_secs(1);

/// What `phare assignment new` needs to know.
#[derive(Debug, Clone)]
pub struct Skeleton {
    pub fleet: String,
    /// `device:<id>` or `group:<name>`.
    pub target: String,
    /// IANA time zone of its schedule.
    pub timezone: String,
    /// How long after `now` it expires.
    pub lasts: SignedDuration,
}

/// `now` to the second: documents people read carry no nanoseconds.
pub fn whole_seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).expect("a timestamp's own seconds are in range")
}

/// A new assignment: version 1, issued `now`, with one empty playlist,
/// [`FIRST_PLAYLIST`], as its default. Valid as it is (a device shows its
/// status screen for an empty playlist), so it can be signed at any
/// step of filling it.
pub fn new_assignment(skeleton: &Skeleton, now: Timestamp) -> anyhow::Result<Value> {
    check_name("fleet name", &skeleton.fleet)?;
    match skeleton.target.split_once(':') {
        Some(("device", device)) => check_name("device name", device)?,
        Some(("group", group)) => check_name("group name", group)?,
        _ => anyhow::bail!(
            "target {:?} is neither device:<id> nor group:<name>",
            skeleton.target
        ),
    }
    let now = whole_seconds(now);
    let document = json!({
        "kind": "assignment",
        "fleet": skeleton.fleet,
        "target": skeleton.target,
        "version": 1,
        "issued_at": now,
        "expires_at": now.checked_add(skeleton.lasts)?,
        "timezone": skeleton.timezone,
        "assets": {},
        "playlists": {FIRST_PLAYLIST: []},
        "default_playlist": FIRST_PLAYLIST,
    });
    validate_payload("assignment", &serde_json::to_vec(&document)?)
        .map_err(|why| anyhow::anyhow!("{why}"))?;
    Ok(document)
}

/// Reads a document file as JSON.
pub fn read_document(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

/// The bytes of a document file: pretty JSON in the protocol's order and
/// a final newline.
pub fn document_bytes(kind: &str, document: &Value) -> Vec<u8> {
    let mut text = members::to_pretty_json(kind, document);
    text.push('\n');
    text.into_bytes()
}

/// Writes `document` to `path` whole ([`document_bytes`]) and returns the
/// bytes written.
pub fn write_document(path: &Path, kind: &str, document: &Value) -> anyhow::Result<Vec<u8>> {
    let bytes = document_bytes(kind, document);
    write_atomic(path, &bytes, Access::Public)?;
    Ok(bytes)
}

/// What adding an asset changed in one place of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Unchanged,
}

/// What [`add_asset`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addition {
    /// The entry in `assets`: `Updated` when its URLs changed.
    pub asset: Change,
    /// The playlist the item is in.
    pub playlist: String,
    /// Whether the playlist had to be created.
    pub playlist_created: bool,
    /// The item: `Updated` when its `duration_ms` changed.
    pub item: Change,
    /// Whether the playlist can play: it is the default or a schedule
    /// entry names it.
    pub playable: bool,
}

/// Adds an asset to an assignment: its entry to `assets` and an item
/// playing it to `playlist` (the default playlist if `None`; created if
/// missing). Adding it again changes nothing, except what the arguments
/// change: the entry's URLs, and the `duration_ms` of the first item of
/// the playlist that plays it (a playlist that should play one asset
/// twice is edited by hand).
pub fn add_asset(
    document: &mut Value,
    id: &AssetId,
    entry: &AssetEntry,
    playlist: Option<&str>,
    duration_ms: Option<u64>,
) -> anyhow::Result<Addition> {
    let assignment: Assignment = parse_document(&serde_json::to_vec(document)?, "assignment")
        .map_err(|why| anyhow::anyhow!("not an assignment to add to: {why}"))?;
    anyhow::ensure!(
        !entry.is_image() || duration_ms.is_some(),
        "{id} is an image ({}): give --duration-ms, how long it shows",
        entry.media_type
    );
    let playlist = playlist.unwrap_or(&assignment.default_playlist).to_string();
    let playable = playlist == assignment.default_playlist
        || assignment.schedule.iter().any(|e| e.playlist == playlist);

    let new_entry = serde_json::to_value(entry)?;
    let assets = &mut document["assets"];
    let asset = match assets.get(id.as_str()) {
        None => Change::Added,
        Some(old) if *old == new_entry => Change::Unchanged,
        Some(_) => Change::Updated,
    };
    assets[id.as_str()] = new_entry;

    let playlists = &mut document["playlists"];
    let playlist_created = playlists.get(&playlist).is_none();
    if playlist_created {
        playlists[&playlist] = json!([]);
    }
    let items = playlists[&playlist]
        .as_array_mut()
        .expect("a parsed assignment's playlists are lists");
    let duration = duration_ms.map(Value::from);
    let item = match items.iter_mut().find(|item| item["asset"] == id.as_str()) {
        None => {
            let mut item = json!({"asset": id});
            if let Some(duration) = duration {
                item["duration_ms"] = duration;
            }
            items.push(item);
            Change::Added
        }
        Some(item) => match duration {
            Some(duration) if item.get("duration_ms") != Some(&duration) => {
                item["duration_ms"] = duration;
                Change::Updated
            }
            _ => Change::Unchanged,
        },
    };
    Ok(Addition {
        asset,
        playlist,
        playlist_created,
        item,
        playable,
    })
}

/// What `phare sign` sets in a payload before signing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    pub version: Option<u64>,
    pub issued_at: Option<Timestamp>,
}

/// Whether documents of `kind` can be stamped: assignments and alerts
/// only (a root's version is `phare keys`'s; commands have none).
pub fn check_stampable(kind: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(kind, "assignment" | "alert"),
        "only an assignment's or an alert's version and issued_at are set when signing, \
         not a {kind}'s"
    );
    Ok(())
}

/// Sets the stamp's members in a document of `kind` ([`check_stampable`]).
pub fn stamp(document: &mut Value, kind: &str, stamp: Stamp) -> anyhow::Result<()> {
    check_stampable(kind)?;
    let object = document
        .as_object_mut()
        .context("the payload is not a JSON object")?;
    if let Some(version) = stamp.version {
        object.insert("version".into(), version.into());
    }
    if let Some(issued_at) = stamp.issued_at {
        object.insert("issued_at".into(), json!(issued_at));
    }
    Ok(())
}

/// The version of the document retained on `topic`, if one is: read, not
/// verified (devices verify; this only numbers the next one).
pub async fn retained_version(broker: &Endpoint, topic: &str) -> anyhow::Result<Option<u64>> {
    let Some(envelope) = retained_envelope(broker, topic).await? else {
        return Ok(None);
    };
    version_of(&envelope)
        .map(Some)
        .with_context(|| format!("the document retained on {topic} at {}", broker.url))
}

/// The envelope retained on `topic`, if any, as the broker holds it.
pub async fn retained_envelope(broker: &Endpoint, topic: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let messages = retained(broker, "version", topic, RETAINED_QUIET).await?;
    Ok(messages.last().map(|message| message.payload.to_vec()))
}

/// The `version` of an envelope's payload.
fn version_of(envelope: &[u8]) -> anyhow::Result<u64> {
    let payload = Envelope::from_slice(envelope)?.payload_bytes()?;
    let document: Value = serde_json::from_slice(&payload).context("its payload is not JSON")?;
    document["version"]
        .as_u64()
        .context("its payload has no version")
}

#[cfg(test)]
mod tests {
    use jiff::ToSpan;

    use super::*;

    fn skeleton() -> Skeleton {
        Skeleton {
            fleet: "acme".into(),
            target: "group:lobby".into(),
            timezone: "Europe/Paris".into(),
            lasts: SignedDuration::from_hours(24 * 365),
        }
    }

    fn now() -> Timestamp {
        "2026-12-08T09:30:15.123456Z".parse().unwrap()
    }

    fn entry(media_type: &str, urls: &[&str]) -> AssetEntry {
        AssetEntry {
            size: 3,
            media_type: media_type.into(),
            urls: urls.iter().map(|u| u.to_string()).collect(),
        }
    }

    fn id(byte: u8) -> AssetId {
        AssetId::from_digest(&[byte; 32])
    }

    fn valid(document: &Value) {
        validate_payload("assignment", &serde_json::to_vec(document).unwrap()).unwrap();
    }

    #[test]
    fn a_new_assignment_is_valid_version_1_issued_now() {
        let document = new_assignment(&skeleton(), now()).unwrap();
        valid(&document);
        assert_eq!(document["version"], 1);
        assert_eq!(document["issued_at"], "2026-12-08T09:30:15Z");
        assert_eq!(document["expires_at"], "2027-12-08T09:30:15Z");
        assert_eq!(document["playlists"], json!({"main": []}));
        assert_eq!(document["default_playlist"], "main");
        assert_eq!(document["timezone"], "Europe/Paris");

        for (target, why) in [
            ("lobby", "neither device"),
            ("group:lo/bby", "group name"),
            ("device:", "device name"),
        ] {
            let bad = Skeleton {
                target: target.into(),
                ..skeleton()
            };
            let err = new_assignment(&bad, now()).unwrap_err().to_string();
            assert!(err.contains(why), "{target}: {err}");
        }
        let bad = Skeleton {
            timezone: "Mars/Olympus".into(),
            ..skeleton()
        };
        let err = new_assignment(&bad, now()).unwrap_err().to_string();
        assert!(err.contains("time zone"), "{err}");
    }

    #[test]
    fn adding_an_asset_declares_it_and_plays_it_once() {
        let mut document = new_assignment(&skeleton(), now()).unwrap();
        let video = entry("video/mp4", &["clip.mp4"]);
        let added = add_asset(&mut document, &id(1), &video, None, None).unwrap();
        assert_eq!(
            added,
            Addition {
                asset: Change::Added,
                playlist: "main".into(),
                playlist_created: false,
                item: Change::Added,
                playable: true,
            }
        );
        valid(&document);
        assert_eq!(
            document["assets"][id(1).as_str()]["urls"],
            json!(["clip.mp4"])
        );
        assert_eq!(document["playlists"]["main"], json!([{"asset": id(1)}]));

        // The same again: nothing changes, not even the bytes.
        let before = document_bytes("assignment", &document);
        let again = add_asset(&mut document, &id(1), &video, Some("main"), None).unwrap();
        assert_eq!(
            (again.asset, again.item),
            (Change::Unchanged, Change::Unchanged)
        );
        assert_eq!(document_bytes("assignment", &document), before);

        // New URLs and a duration update the entry and the item in place.
        let moved = entry("video/mp4", &["https://cdn.example/clip.mp4"]);
        let again = add_asset(&mut document, &id(1), &moved, None, Some(5000)).unwrap();
        assert_eq!(
            (again.asset, again.item),
            (Change::Updated, Change::Updated)
        );
        assert_eq!(
            document["playlists"]["main"],
            json!([{"asset": id(1), "duration_ms": 5000}])
        );
        assert_eq!(document["assets"].as_object().unwrap().len(), 1);
        valid(&document);
    }

    #[test]
    fn an_image_needs_a_duration_and_a_new_playlist_is_created() {
        let mut document = new_assignment(&skeleton(), now()).unwrap();
        let image = entry("image/png", &["menu.png"]);
        let err = add_asset(&mut document, &id(2), &image, None, None).unwrap_err();
        assert!(err.to_string().contains("--duration-ms"), "{err}");
        assert_eq!(document, new_assignment(&skeleton(), now()).unwrap());

        let added = add_asset(&mut document, &id(2), &image, Some("lunch"), Some(8000)).unwrap();
        assert!(added.playlist_created);
        assert!(!added.playable, "neither the default nor scheduled");
        assert_eq!(
            document["playlists"]["lunch"],
            json!([{"asset": id(2), "duration_ms": 8000}])
        );
        valid(&document);

        document["schedule"] = json!([{"playlist": "lunch", "start": "11:30", "end": "14:00"}]);
        let again = add_asset(&mut document, &id(2), &image, Some("lunch"), Some(8000)).unwrap();
        assert!(again.playable && !again.playlist_created);
    }

    #[test]
    fn what_the_admin_wrote_is_kept() {
        let mut document = new_assignment(&skeleton(), now()).unwrap();
        document["x-note"] = json!("spring campaign");
        document["display"] = json!({"rotation": 90});
        add_asset(&mut document, &id(3), &entry("video/mp4", &[]), None, None).unwrap();
        assert_eq!(document["x-note"], "spring campaign");
        assert_eq!(document["display"], json!({"rotation": 90}));

        let mut typo = new_assignment(&skeleton(), now()).unwrap();
        typo["playlist"] = json!({});
        let err = add_asset(&mut typo, &id(3), &entry("video/mp4", &[]), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `playlists`"), "{err}");
        let alert = json!({"kind": "alert"});
        assert!(
            add_asset(
                &mut alert.clone(),
                &id(3),
                &entry("video/mp4", &[]),
                None,
                None
            )
            .is_err()
        );
    }

    #[test]
    fn stamping_sets_version_and_issued_at_of_assignments_and_alerts_only() {
        let mut document = new_assignment(&skeleton(), now()).unwrap();
        let later = whole_seconds(now().checked_add(90.minutes()).unwrap());
        let both = Stamp {
            version: Some(4),
            issued_at: Some(later),
        };
        stamp(&mut document, "assignment", both).unwrap();
        assert_eq!(document["version"], 4);
        assert_eq!(document["issued_at"], "2026-12-08T11:00:15Z");
        valid(&document);

        let version_only = Stamp {
            version: Some(5),
            issued_at: None,
        };
        stamp(&mut document, "assignment", version_only).unwrap();
        assert_eq!(document["version"], 5);
        assert_eq!(document["issued_at"], "2026-12-08T11:00:15Z");

        let mut root = json!({"kind": "root", "version": 2});
        let err = stamp(&mut root, "root", both).unwrap_err().to_string();
        assert!(err.contains("not a root's"), "{err}");
        assert_eq!(root["version"], 2);
    }

    #[test]
    fn the_retained_version_is_read_from_the_envelope_payload() {
        let payload = serde_json::to_vec(&json!({"kind": "assignment", "version": 3})).unwrap();
        let envelope = Envelope::sign("application/vnd.phare.assignment+json", &payload, &[]);
        assert_eq!(version_of(envelope.to_json().as_bytes()).unwrap(), 3);
        assert!(version_of(b"not an envelope").is_err());
        let none = Envelope::sign("x", b"{}", &[]);
        let err = version_of(none.to_json().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no version"), "{err}");
    }
}

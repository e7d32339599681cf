//! `phare fleet status`: which screens are online, what they play, and
//! which are not ready yet (content still downloading, or refused for lack
//! of space), read from the devices' retained status (docs/protocol.md §10).
//!
//! A status counts for the device its topic names: the broker's ACL lets
//! a screen publish its own status only, but the payload says what its
//! sender likes. One whose `device` field names another screen (a stolen
//! screen showing a missing one online) is refused and counted; and what
//! the statuses say is made safe for the terminal before it is printed.

use std::time::Duration;

use phare_protocol::report::{CacheIssueKind, Status};
use phare_protocol::topics::Topics;

use crate::connect::{Endpoint, retained};
use crate::terminal::{MAX_SHOWN, printable};

/// The statuses collected, and how many were refused.
#[derive(Debug, Default)]
pub struct Statuses {
    /// One per device, by device id.
    pub statuses: Vec<Status>,
    /// Why each refused status was refused, printable.
    pub refused: Vec<String>,
}

/// The status a retained message on `topic` carries, if it is one and
/// speaks for the device its topic names.
pub fn status_from(topics: &Topics, topic: &str, payload: &[u8]) -> Result<Status, String> {
    let shown = || printable(topic, MAX_SHOWN);
    let Some((device, "status")) = topics.device_leaf(topic) else {
        return Err(format!("{} is no device's status topic", shown()));
    };
    let status: Status =
        serde_json::from_slice(payload).map_err(|e| format!("{}: not a status: {e}", shown()))?;
    match status.device.as_str() {
        "" => Err(format!("{}: names no device", shown())),
        claimed if claimed == device => Ok(status),
        claimed => Err(format!(
            "{}: claims to be {}'s status",
            shown(),
            printable(claimed, MAX_SHOWN)
        )),
    }
}

/// Collects the retained status of every device under `topics`: the
/// broker sends them right after the subscription; collection ends once
/// none arrived for `quiet`.
pub async fn collect(
    broker: impl Into<Endpoint>,
    topics: &Topics,
    quiet: Duration,
) -> anyhow::Result<Statuses> {
    let broker: Endpoint = broker.into();
    let mut collected = Statuses::default();
    for message in retained(&broker, "fleet", &topics.status("+"), quiet).await? {
        match status_from(topics, &message.topic, &message.payload) {
            Ok(status) => collected.statuses.push(status),
            Err(why) => {
                tracing::warn!("status refused: {why}");
                collected.refused.push(why);
            }
        }
    }
    collected.statuses.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(collected)
}

const COLUMNS: usize = 7;

/// One line per device, in the table's columns, each printable.
pub fn row(status: &Status) -> [String; COLUMNS] {
    let cells = raw_row(status);
    cells.map(|cell| printable(&cell, MAX_SHOWN))
}

fn raw_row(status: &Status) -> [String; COLUMNS] {
    let version = match &status.assignment {
        Some(a) if a.stale => format!("{} (stale)", a.version),
        Some(a) => a.version.to_string(),
        None => "-".into(),
    };
    let pending = match &status.pending_assignment {
        Some(p) => format!(
            "v{}: {} assets, {} missing",
            p.version,
            p.assets_missing,
            human_bytes(p.bytes_missing)
        ),
        None => "ready".into(),
    };
    // What the downloads wait for, and until when.
    let waiting: Vec<String> = status
        .cache
        .issues
        .iter()
        .map(|issue| {
            let what = match issue.kind {
                CacheIssueKind::BadOrigin => "origin quarantined",
                CacheIssueKind::BadEntry => "wrong bytes for",
                CacheIssueKind::Unknown => "waiting on",
            };
            let until = issue.until.strftime("%H:%M:%S UTC");
            format!("{what} {} until {until}", issue.subject)
        })
        .collect();
    let pending = if waiting.is_empty() {
        pending
    } else {
        format!("{pending}; {}", waiting.join("; "))
    };
    let playing = match &status.playing {
        Some(p) => format!("{} #{}", p.playlist, p.item),
        None => "-".into(),
    };
    let mut reasons: Vec<&str> = Vec::new();
    for error in status.errors.iter().rev() {
        let reason = error.reason.as_deref().unwrap_or(error.kind.as_str());
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    [
        status.device.clone(),
        if status.online { "yes" } else { "no" }.into(),
        status.broker.clone().unwrap_or_else(|| "-".into()),
        version,
        pending,
        playing,
        if reasons.is_empty() {
            "-".into()
        } else {
            reasons.join(", ")
        },
    ]
}

/// The table `phare fleet status` prints.
pub fn table(statuses: &[Status]) -> String {
    let header = [
        "DEVICE", "ONLINE", "BROKER", "VERSION", "PENDING", "PLAYING", "ERRORS",
    ]
    .map(String::from);
    let rows: Vec<[String; COLUMNS]> = std::iter::once(header)
        .chain(statuses.iter().map(row))
        .collect();
    let widths: Vec<usize> = (0..COLUMNS)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    fn error(kind: &str, reason: &str) -> serde_json::Value {
        serde_json::json!({"at": "2026-12-07T09:00:00Z", "kind": kind, "reason": reason,
                           "detail": "…"})
    }

    #[test]
    fn a_status_counts_for_the_device_its_topic_names() {
        let topics = Topics::for_fleet("acme");
        let status = |device: &str| {
            serde_json::to_vec(&serde_json::json!({"device": device, "online": true})).unwrap()
        };
        let own = topics.status("lobby-1");
        assert_eq!(
            status_from(&topics, &own, &status("lobby-1"))
                .unwrap()
                .device,
            "lobby-1"
        );
        let forged = status_from(&topics, &own, &status("lobby-2")).unwrap_err();
        assert!(forged.contains("claims to be lobby-2's status"), "{forged}");
        for (topic, payload) in [
            (own.as_str(), b"{}".to_vec()),
            (own.as_str(), b"nonsense".to_vec()),
            ("phare/acme/device/lobby-1/events", status("lobby-1")),
            ("phare/rival/device/lobby-1/status", status("lobby-1")),
        ] {
            assert!(status_from(&topics, topic, &payload).is_err(), "{topic}");
        }
        let hostile = status_from(&topics, &own, &status("\u{1b}[2J")).unwrap_err();
        assert!(!hostile.contains('\u{1b}'), "{hostile:?}");
    }

    #[test]
    fn the_last_will_is_an_offline_status() {
        let topics = Topics::for_fleet("acme");
        let own = topics.status("lobby-1");
        let will = status_from(&topics, &own, &Status::offline_will("lobby-1")).unwrap();
        assert_eq!(row(&will)[..3], ["lobby-1", "no", "-"].map(String::from));
    }

    #[test]
    fn what_the_downloads_wait_for_is_shown_with_until_when() {
        let status = status(serde_json::json!({"device": "lobby-1", "online": true,
            "pending_assignment": {"target": "device:lobby-1", "version": 8,
                                   "assets_missing": 1, "bytes_missing": 2048},
            "cache": {"issues": [{"kind": "bad_origin", "subject": "https://cdn-a.example/",
                                  "detail": "…", "until": "2026-12-07T10:42:07Z"}]}}));
        let [.., pending, _, _] = row(&status);
        assert_eq!(
            pending,
            "v8: 1 assets, 2.0 KiB missing; origin quarantined https://cdn-a.example/ until 10:42:07 UTC"
        );
    }

    #[test]
    fn what_a_status_says_is_shown_harmless() {
        let status = status(serde_json::json!({"device": "lobby-1", "online": true,
            "broker": "mqtts://b\u{1b}]0;owned\u{7}", "assignment": null,
            "playing": {"playlist": "x".repeat(10_000), "item": 0, "asset": null,
                        "since": "2026-12-07T09:00:00Z"},
            "errors": [error("rejected", "\u{1b}[31mfake\r")]}));
        let cells = row(&status);
        for cell in &cells {
            assert!(!cell.chars().any(char::is_control), "{cell:?}");
            assert!(cell.chars().count() <= MAX_SHOWN, "{} chars", cell.len());
        }
        assert_eq!(cells[2], "mqtts://b\u{FFFD}]0;owned\u{FFFD}");
    }

    #[test]
    fn a_pending_screen_shows_what_it_lacks_and_why() {
        let statuses = [
            status(serde_json::json!({"device": "lobby-2", "online": true,
                "assignment": {"target": "group:lobby", "version": 3, "stale": false},
                "pending_assignment": null,
                "playing": {"playlist": "main", "item": 1, "asset": null,
                            "since": "2026-12-07T09:00:00Z"},
                "errors": []})),
            status(serde_json::json!({"device": "lobby-1", "online": false,
                "broker": "mqtts://broker-b:8883",
                "assignment": {"target": "group:lobby", "version": 1, "stale": true},
                "pending_assignment": {"target": "group:lobby", "version": 2,
                                       "assets_missing": 2, "bytes_missing": 3_145_728},
                "playing": null,
                "errors": [error("download_failed", "timeout"),
                           error("cache_full", "insufficient_space"),
                           error("download_failed", "timeout")]})),
        ];
        assert_eq!(
            row(&statuses[1]),
            [
                "lobby-1",
                "no",
                "mqtts://broker-b:8883",
                "1 (stale)",
                "v2: 2 assets, 3.0 MiB missing",
                "-",
                "timeout, insufficient_space"
            ]
            .map(String::from)
        );
        let table = table(&statuses);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("DEVICE "), "{table}");
        assert!(
            lines[1].contains("ready") && lines[1].contains("main #1"),
            "{table}"
        );
    }
}

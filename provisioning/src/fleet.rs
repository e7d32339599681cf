//! `phare fleet status`: which screens are online, what they play, and
//! which are not ready yet (content still downloading, or refused for lack
//! of space), read from the devices' retained status (DESIGN.md §7).
//!
//! A status counts for the device its topic names: the broker's ACL lets
//! a screen publish its own status only, but the payload says what its
//! sender likes. One whose `device` field names another screen (a stolen
//! screen showing a missing one online) is refused and counted; and what
//! the statuses say is made safe for the terminal before it is printed.

use std::time::Duration;

use phare_protocol::topics::Topics;
use serde_json::Value;

use crate::connect::{Endpoint, retained};
use crate::terminal::{MAX_SHOWN, printable};

/// The statuses collected, and how many were refused.
#[derive(Debug, Default)]
pub struct Statuses {
    /// One per device, by device id.
    pub statuses: Vec<Value>,
    /// Why each refused status was refused, printable.
    pub refused: Vec<String>,
}

/// The status a retained message on `topic` carries, if it is one and
/// speaks for the device its topic names.
pub fn status_from(topics: &Topics, topic: &str, payload: &[u8]) -> Result<Value, String> {
    let shown = || printable(topic, MAX_SHOWN);
    let Some((device, "status")) = topics.device_leaf(topic) else {
        return Err(format!("{} is no device's status topic", shown()));
    };
    let status: Value =
        serde_json::from_slice(payload).map_err(|e| format!("{}: not JSON: {e}", shown()))?;
    match status["device"].as_str() {
        Some(claimed) if claimed == device => Ok(status),
        Some(claimed) => Err(format!(
            "{}: claims to be {}'s status",
            shown(),
            printable(claimed, MAX_SHOWN)
        )),
        None => Err(format!("{}: names no device", shown())),
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
    collected
        .statuses
        .sort_by(|a, b| a["device"].as_str().cmp(&b["device"].as_str()));
    Ok(collected)
}

const COLUMNS: usize = 7;

/// One line per device, in the table's columns, each printable.
pub fn row(status: &Value) -> [String; COLUMNS] {
    let cells = raw_row(status);
    cells.map(|cell| printable(&cell, MAX_SHOWN))
}

fn raw_row(status: &Value) -> [String; COLUMNS] {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let assignment = &status["assignment"];
    let version = match assignment["version"].as_u64() {
        Some(v) if assignment["stale"] == true => format!("{v} (stale)"),
        Some(v) => v.to_string(),
        None => "-".into(),
    };
    let pending = &status["pending_assignment"];
    let pending = match pending["version"].as_u64() {
        Some(v) => format!(
            "v{v}: {} assets, {} missing",
            pending["assets_missing"],
            human_bytes(pending["bytes_missing"].as_u64().unwrap_or(0))
        ),
        None => "ready".into(),
    };
    // What the downloads wait for, and until when.
    let waiting: Vec<String> = status["cache"]["issues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|issue| {
            let until = issue["until"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or_else(|| "?".into(), |t| t.strftime("%H:%M:%S UTC").to_string());
            let what = match issue["kind"].as_str() {
                Some("bad_origin") => "origin quarantined",
                Some("bad_entry") => "wrong bytes for",
                _ => "waiting on",
            };
            format!("{what} {} until {until}", text(&issue["subject"]))
        })
        .collect();
    let pending = if waiting.is_empty() {
        pending
    } else {
        format!("{pending}; {}", waiting.join("; "))
    };
    let playing = &status["playing"];
    let playing = match playing["playlist"].as_str() {
        Some(playlist) => format!("{playlist} #{}", playing["item"]),
        None => "-".into(),
    };
    let errors = status["errors"].as_array().map_or_else(Vec::new, |errors| {
        errors
            .iter()
            .map(|e| e["reason"].as_str().or(e["kind"].as_str()).unwrap_or("?"))
            .collect()
    });
    let mut reasons: Vec<&str> = Vec::new();
    for reason in errors.iter().rev() {
        if !reasons.contains(reason) {
            reasons.push(reason);
        }
    }
    [
        text(&status["device"]),
        if status["online"] == true {
            "yes"
        } else {
            "no"
        }
        .into(),
        text(&status["broker"]),
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
pub fn table(statuses: &[Value]) -> String {
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

    #[test]
    fn a_status_counts_for_the_device_its_topic_names() {
        let topics = Topics::for_fleet("acme");
        let status = |device: &str| {
            serde_json::to_vec(&serde_json::json!({"device": device, "online": true})).unwrap()
        };
        let own = topics.status("lobby-1");
        assert_eq!(
            status_from(&topics, &own, &status("lobby-1")).unwrap()["device"],
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
    fn what_the_downloads_wait_for_is_shown_with_until_when() {
        let status = serde_json::json!({"device": "lobby-1", "online": true,
            "pending_assignment": {"version": 8, "assets_missing": 1, "bytes_missing": 2048},
            "cache": {"issues": [{"kind": "bad_origin", "subject": "https://cdn-a.example/",
                                  "detail": "…", "until": "2026-12-07T10:42:07Z"}]}});
        let [.., pending, _, _] = row(&status);
        assert_eq!(
            pending,
            "v8: 1 assets, 2.0 KiB missing; origin quarantined https://cdn-a.example/ until 10:42:07 UTC"
        );
    }

    #[test]
    fn what_a_status_says_is_shown_harmless() {
        let status = serde_json::json!({"device": "lobby-1", "online": true,
            "broker": "mqtts://b\u{1b}]0;owned\u{7}", "assignment": null,
            "playing": {"playlist": "x".repeat(10_000), "item": 0},
            "errors": [{"reason": "\u{1b}[31mfake\r"}]});
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
            serde_json::json!({"device": "lobby-2", "online": true,
                "assignment": {"version": 3, "stale": false},
                "pending_assignment": null,
                "playing": {"playlist": "main", "item": 1}, "errors": []}),
            serde_json::json!({"device": "lobby-1", "online": false,
                "broker": "mqtts://broker-b:8883", "assignment": {"version": 1, "stale": true},
                "pending_assignment": {"version": 2, "assets_missing": 2, "bytes_missing": 3_145_728},
                "playing": null,
                "errors": [{"kind": "download_failed", "reason": "timeout"},
                           {"kind": "cache_full", "reason": "insufficient_space"},
                           {"kind": "download_failed", "reason": "timeout"}]}),
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

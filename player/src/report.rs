//! What the device tells the world: the retained status (DESIGN.md §7),
//! written both to MQTT and atomically to `<data_dir>/status.json`, and the
//! events stream (rejections, downloads, playback failures).

use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

/// How many recent errors the status carries.
const RECENT_ERRORS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub device: String,
    pub online: bool,
    pub player_version: &'static str,
    pub at: Timestamp,
    pub uptime_s: u64,
    pub assignment: Option<AssignmentStatus>,
    pub pending_assignment: Option<PendingStatus>,
    pub playing: Option<PlayingStatus>,
    pub live: Option<LiveStatus>,
    pub alert: Option<serde_json::Value>,
    pub display: &'static str,
    pub cache: CacheStatus,
    pub broker: Option<String>,
    pub errors: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignmentStatus {
    pub target: String,
    pub version: u64,
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingStatus {
    pub target: String,
    pub version: u64,
    pub assets_missing: u64,
    pub bytes_missing: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayingStatus {
    pub playlist: String,
    pub item: usize,
    pub asset: Option<String>,
    pub since: Timestamp,
}

/// The live item on screen: its stream, and whether that or its fallback
/// shows (`playing` or `fallback`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveStatus {
    pub uri: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CacheStatus {
    pub assets: u64,
    pub bytes: u64,
    pub free_bytes: u64,
    /// What holds downloads back, if anything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<CacheIssue>,
}

/// A standing download problem: an asset whose signed entry does not match
/// what its URL serves (`bad_entry`, subject the asset), or a quarantined
/// origin (`bad_origin`, subject the origin), said for a human.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheIssue {
    pub kind: &'static str,
    pub subject: String,
    pub detail: String,
}

/// One event on `device/<id>/events`; errors also stay in the status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at: Timestamp,
    /// `rejected`, `download_failed`, `downloaded`, `download_progress`,
    /// `evicted`, `cache_full`, `content_corrupt`, `origin_quarantined`,
    /// `play_failed`, …
    pub kind: &'static str,
    /// Machine-readable reason (DESIGN.md §3) where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Event {
    pub fn is_error(&self) -> bool {
        !matches!(self.kind, "downloaded" | "download_progress" | "evicted")
    }
}

impl Status {
    pub fn new(device: &str) -> Status {
        Status {
            device: device.to_string(),
            online: true,
            player_version: env!("CARGO_PKG_VERSION"),
            at: Timestamp::now(),
            uptime_s: 0,
            assignment: None,
            pending_assignment: None,
            playing: None,
            live: None,
            alert: None,
            display: "on",
            cache: CacheStatus::default(),
            broker: None,
            errors: Vec::new(),
        }
    }

    pub fn record_error(&mut self, event: Event) {
        if self.errors.len() == RECENT_ERRORS {
            self.errors.remove(0);
        }
        self.errors.push(event);
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("status always serialises")
    }
}

/// The Last Will: what the broker says for us when we vanish.
pub fn offline_will(device: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"device": device, "online": false}))
        .expect("static JSON")
}

/// Writes `bytes` to `path` atomically: a reader sees the old or the new
/// file, never a torn one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Free space on the file system holding `path`.
pub fn free_bytes(path: &Path) -> u64 {
    fs4::available_space(path).unwrap_or(0)
}

//! What the device tells the world: the retained status (DESIGN.md §7),
//! written both to MQTT and atomically to `<data_dir>/status.json`, and the
//! events stream (rejections, downloads, playback failures).

use std::path::Path;
use std::time::{Duration, Instant};

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
    /// The root trusted, whether it has expired, what live sources may play.
    pub trust: Option<crate::trust::TrustStatus>,
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
    /// Until when it holds: the next try of that asset at that URL, or the
    /// end of the origin's quarantine.
    pub until: jiff::Timestamp,
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
    pub detail: ShortText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<ShortText>,
}

/// Text for people, bounded: an event's detail or subject may quote what
/// a hostile broker sent (a field name, a URL, a topic), and must not grow
/// with it. At most [`ShortText::MAX_BYTES`] bytes, cut on a character
/// boundary with an ellipsis; control characters (which JSON would escape
/// six-fold) become U+FFFD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ShortText(String);

impl ShortText {
    pub const MAX_BYTES: usize = 300;
}

impl From<&str> for ShortText {
    fn from(text: &str) -> ShortText {
        const ELLIPSIS: char = '…';
        let mut out = String::with_capacity(text.len().min(ShortText::MAX_BYTES));
        for c in text.chars() {
            let c = if c.is_control() {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            };
            if out.len() + c.len_utf8() > ShortText::MAX_BYTES - ELLIPSIS.len_utf8() {
                out.push(ELLIPSIS);
                break;
            }
            out.push(c);
        }
        ShortText(out)
    }
}

impl From<String> for ShortText {
    fn from(text: String) -> ShortText {
        ShortText::from(text.as_str())
    }
}

impl std::ops::Deref for ShortText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ShortText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
            trust: None,
            errors: Vec::new(),
        }
    }

    /// Forgets the errors `resolved` says are over: what they were about
    /// was superseded or works now. The status lists current problems only.
    pub fn resolve_errors(&mut self, resolved: impl Fn(&Event) -> bool) {
        self.errors.retain(|event| !resolved(event));
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

/// How many rejection events a device reports per window: a hostile
/// broker can send thousands of bad documents a second, and each event
/// costs a durable outbox write and a status update.
pub struct RejectionBudget {
    window_start: Option<Instant>,
    reported: u32,
    suppressed: u64,
}

/// Whether a rejection is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Report it; `suppressed` rejections were counted but not reported
    /// since the last one reported.
    Report { suppressed: u64 },
    /// Only count it.
    Suppress,
}

impl RejectionBudget {
    pub const PER_WINDOW: u32 = 10;
    pub const WINDOW: Duration = Duration::from_secs(60);

    pub fn new() -> RejectionBudget {
        RejectionBudget {
            window_start: None,
            reported: 0,
            suppressed: 0,
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        let expired = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= Self::WINDOW);
        if expired {
            self.window_start = Some(now);
            self.reported = 0;
        }
        if self.reported == Self::PER_WINDOW {
            self.suppressed += 1;
            return Admission::Suppress;
        }
        self.reported += 1;
        Admission::Report {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }
}

impl Default for RejectionBudget {
    fn default() -> Self {
        RejectionBudget::new()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_past_the_budget_are_counted_then_summed_up() {
        let mut budget = RejectionBudget::new();
        let start = Instant::now();
        for _ in 0..RejectionBudget::PER_WINDOW {
            assert_eq!(budget.admit(start), Admission::Report { suppressed: 0 });
        }
        for _ in 0..5000 {
            assert_eq!(
                budget.admit(start + Duration::from_secs(30)),
                Admission::Suppress
            );
        }
        assert_eq!(
            budget.admit(start + RejectionBudget::WINDOW),
            Admission::Report { suppressed: 5000 }
        );
        assert_eq!(
            budget.admit(start + RejectionBudget::WINDOW),
            Admission::Report { suppressed: 0 }
        );
    }

    #[test]
    fn short_text_is_bounded_whatever_it_quotes() {
        let hostile = format!("unknown field `{}`", "\u{1}é".repeat(500_000));
        let text = ShortText::from(hostile.as_str());
        assert!(text.len() <= ShortText::MAX_BYTES);
        assert!(text.starts_with("unknown field `\u{fffd}é"));
        assert!(text.ends_with('…'));
        // Its JSON does not grow by escaping either.
        assert!(serde_json::to_string(&text).unwrap().len() <= ShortText::MAX_BYTES + 2);
        assert_eq!(&*ShortText::from("plain"), "plain");
    }

    #[test]
    fn a_full_status_stays_far_below_the_packet_cap() {
        let mut status = Status::new("lobby-1");
        let huge = "x".repeat(4 << 20);
        for _ in 0..100 {
            status.record_error(Event {
                at: Timestamp::now(),
                kind: "rejected",
                reason: Some("malformed"),
                detail: huge.as_str().into(),
                subject: Some(huge.as_str().into()),
            });
        }
        assert!(
            status.to_json().len() < 16 * 1024,
            "{}",
            status.to_json().len()
        );
    }
}

//! What a device tells the operator (`docs/protocol.md`, "Status",
//! "Events", "Proof of play", "Commands"): the retained status, events,
//! proof-of-play batches and their acknowledgement, and command responses.
//!
//! One set of types for both sides: the player writes them, the operator
//! tool reads them, so a renamed field fails to compile rather than at run
//! time. Reading is lenient where a device may be older or newer than the
//! tool: members the reader does not know are ignored, and an event or
//! issue kind it does not know reads as `unknown`. What a device writes is
//! still text from a device: the operator tool makes it safe to print.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How many recent errors the status carries.
pub const RECENT_ERRORS: usize = 10;

/// The retained status on `device/<id>/status`, also `status.json`.
///
/// The broker's Last Will says `{"device": …, "online": false}` only: every
/// other member has a default, so it reads as a status too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub device: String,
    pub online: bool,
    pub player_version: String,
    /// When the device wrote it (absent from the Last Will).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    pub uptime_s: u64,
    pub assignment: Option<AssignmentStatus>,
    pub pending_assignment: Option<PendingStatus>,
    pub playing: Option<PlayingStatus>,
    pub live: Option<LiveStatus>,
    pub alert: Option<AlertStatus>,
    pub display: DisplayState,
    pub cache: CacheStatus,
    pub broker: Option<String>,
    /// The root trusted, whether it has expired, what live sources may play.
    pub trust: Option<TrustStatus>,
    /// Current problems only, oldest first, at most [`RECENT_ERRORS`].
    pub errors: Vec<Event>,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            device: String::new(),
            online: false,
            player_version: String::new(),
            at: None,
            uptime_s: 0,
            assignment: None,
            pending_assignment: None,
            playing: None,
            live: None,
            alert: None,
            display: DisplayState::On,
            cache: CacheStatus::default(),
            broker: None,
            trust: None,
            errors: Vec::new(),
        }
    }
}

impl Status {
    /// The Last Will: what the broker says for a device that vanished.
    pub fn offline_will(device: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Will<'a> {
            device: &'a str,
            online: bool,
        }
        serde_json::to_vec(&Will {
            device,
            online: false,
        })
        .expect("a will always serialises")
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a status always serialises")
    }
}

/// The assignment on screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignmentStatus {
    pub target: String,
    pub version: u64,
    /// It has expired; it keeps playing until a newer one is complete.
    pub stale: bool,
}

/// The assignment waiting for its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingStatus {
    pub target: String,
    pub version: u64,
    pub assets_missing: u64,
    pub bytes_missing: u64,
}

/// The playlist item on screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayingStatus {
    pub playlist: String,
    /// Its position in the playlist.
    pub item: usize,
    pub asset: Option<String>,
    pub since: Timestamp,
}

/// The live item on screen: its stream, and whether that or its fallback
/// shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveStatus {
    pub uri: String,
    pub state: LiveState,
}

/// Whether a live item shows its stream or its fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    Playing,
    Fallback,
}

/// The alert shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertStatus {
    pub id: String,
    pub version: u64,
    pub priority: u32,
    pub style: String,
    pub message: String,
    pub expires_at: Timestamp,
}

/// Whether the screen is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayState {
    On,
    Off,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheStatus {
    pub assets: u64,
    pub bytes: u64,
    pub free_bytes: u64,
    /// What holds downloads back, if anything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<CacheIssue>,
}

/// A standing download problem, said for a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheIssue {
    pub kind: CacheIssueKind,
    /// The asset (`bad_entry`) or the origin (`bad_origin`).
    pub subject: String,
    pub detail: String,
    /// Until when it holds: the next try of that asset at that URL, or the
    /// end of the origin's quarantine (wall-clock: the status is read
    /// later and elsewhere).
    pub until: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheIssueKind {
    /// An asset's signed entry does not match what its URL serves.
    BadEntry,
    /// An origin is quarantined.
    BadOrigin,
    /// A kind this reader does not know (a newer player's).
    #[serde(other)]
    Unknown,
}

/// What the device trusts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustStatus {
    pub root_version: u64,
    pub root_expires_at: Timestamp,
    /// The root has expired: newer roots may be kept from the device (a
    /// freeze attack, in TUF's terms), or the operator forgot to renew it.
    pub root_expired: bool,
    /// Plaintext live sources (`http`, `rtsp`, `udp`, `rtp`, SRT without a
    /// passphrase) are allowed by the device's config.
    pub plaintext_live: bool,
}

/// One event on `device/<id>/events`; errors also stay in the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Timestamp,
    pub kind: EventKind,
    /// Machine-readable reason (a [`crate::Rejection`] code, a download
    /// failure's kind) where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub detail: ShortText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<ShortText>,
}

impl Event {
    /// An event of `kind` at `at`, with no reason or subject yet.
    pub fn new(at: Timestamp, kind: EventKind, detail: impl Into<ShortText>) -> Event {
        Event {
            at,
            kind,
            reason: None,
            detail: detail.into(),
            subject: None,
        }
    }

    pub fn with_reason(mut self, reason: &str) -> Event {
        self.reason = Some(reason.to_string());
        self
    }

    pub fn with_subject(mut self, subject: impl Into<ShortText>) -> Event {
        self.subject = Some(subject.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.kind.importance() == Importance::Error
    }
}

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A document or message was refused (`reason`: the rejection code).
    Rejected,
    DownloadFailed,
    Downloaded,
    DownloadProgress,
    Evicted,
    CacheFull,
    ContentCorrupt,
    OriginQuarantined,
    PlayFailed,
    RootExpired,
    BrokerUnreachable,
    /// A kind this reader does not know (a newer player's).
    #[serde(other)]
    Unknown,
}

/// How much an event matters: what the outbox drops first, and what the
/// status keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Importance {
    /// Progress and housekeeping: dropped first when the outbox is full,
    /// not kept in the status.
    Routine,
    /// A problem: kept in the status until it is over; dropped only past
    /// the outbox's hard cap.
    Error,
}

impl EventKind {
    /// As the events say it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Rejected => "rejected",
            EventKind::DownloadFailed => "download_failed",
            EventKind::Downloaded => "downloaded",
            EventKind::DownloadProgress => "download_progress",
            EventKind::Evicted => "evicted",
            EventKind::CacheFull => "cache_full",
            EventKind::ContentCorrupt => "content_corrupt",
            EventKind::OriginQuarantined => "origin_quarantined",
            EventKind::PlayFailed => "play_failed",
            EventKind::RootExpired => "root_expired",
            EventKind::BrokerUnreachable => "broker_unreachable",
            EventKind::Unknown => "unknown",
        }
    }

    pub fn importance(self) -> Importance {
        match self {
            EventKind::Downloaded | EventKind::DownloadProgress | EventKind::Evicted => {
                Importance::Routine
            }
            EventKind::Rejected
            | EventKind::DownloadFailed
            | EventKind::CacheFull
            | EventKind::ContentCorrupt
            | EventKind::OriginQuarantined
            | EventKind::PlayFailed
            | EventKind::RootExpired
            | EventKind::BrokerUnreachable
            | EventKind::Unknown => Importance::Error,
        }
    }
}

/// Text for people, bounded: an event's detail or subject may quote what
/// a hostile broker sent (a field name, a URL, a topic), and must not grow
/// with it. At most [`ShortText::MAX_BYTES`] bytes, cut on a character
/// boundary with an ellipsis; control characters (which JSON would escape
/// six-fold) become U+FFFD. Bounded when read too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShortText(#[serde(deserialize_with = "bounded")] String);

fn bounded<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    Ok(ShortText::from(text).0)
}

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

/// A proof-of-play batch on `device/<id>/pop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayBatch {
    pub device: String,
    /// In sequence order.
    pub records: Vec<PlayRecord>,
}

/// One showing of a playlist item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayRecord {
    /// Per device, never reused.
    pub seq: i64,
    pub playlist: String,
    /// Its position in the playlist.
    pub item: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    /// RFC 3339, when its first frame reached the screen.
    pub start: String,
    /// RFC 3339, when it left the screen.
    pub end: String,
    pub completed: bool,
    /// Why an item did not complete: `schedule`, `assignment`, `alert` (an
    /// alert took the screen, or covered it while it played), `display_off`,
    /// `shutdown`, `power_loss`, `interrupted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when this record stands for several showings of the item,
    /// folded together because no collector took them in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PlaySummary>,
}

/// Showings of one item folded into one record, `start` being the first
/// one's and `end` the last one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaySummary {
    pub plays: u64,
    /// Of those, how many played through.
    pub completed: u64,
}

/// Why an item left the screen before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interruption {
    /// The schedule switched playlists.
    Schedule,
    /// Another assignment (or a reload) took the screen.
    Assignment,
    /// An alert took the screen, or covered it while it played.
    Alert,
    DisplayOff,
    Shutdown,
    /// The player stopped without closing it (found at start-up).
    PowerLoss,
    /// Anything else.
    Interrupted,
}

impl Interruption {
    /// As [`PlayRecord::reason`] says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Interruption::Schedule => "schedule",
            Interruption::Assignment => "assignment",
            Interruption::Alert => "alert",
            Interruption::DisplayOff => "display_off",
            Interruption::Shutdown => "shutdown",
            Interruption::PowerLoss => "power_loss",
            Interruption::Interrupted => "interrupted",
        }
    }
}

/// A collector's acknowledgement on `device/<id>/pop/ack`: it stored the
/// records through `through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopAck {
    pub through: i64,
}

impl PopAck {
    /// A few bytes: anything longer is not an acknowledgement.
    pub const MAX_BYTES: usize = 64;
}

/// A device's answer to a command, on `device/<id>/response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// The command's id.
    pub id: String,
    pub action: String,
    pub at: Timestamp,
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `purge_cache`: what it removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_bytes: Option<u64>,
    /// `screenshot`: `image/png` or `image/jpeg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// `screenshot`: the image, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl CommandResponse {
    /// The answer to command `id` at `at`, not yet carrying its outcome.
    pub fn to(id: &str, action: &str, at: Timestamp) -> CommandResponse {
        CommandResponse {
            id: id.to_string(),
            action: action.to_string(),
            at,
            ok: true,
            error: None,
            purged_files: None,
            purged_bytes: None,
            media_type: None,
            image: None,
        }
    }

    /// A failed one, saying why.
    pub fn failed(mut self, error: impl Into<String>) -> CommandResponse {
        self.ok = false;
        self.error = Some(error.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A status as the player of before these types wrote it.
    const STATUS_OF_0_1: &str = r#"{"device":"lobby-1","online":true,"player_version":"0.1.0",
        "at":"2026-12-07T10:00:00Z","uptime_s":42,
        "assignment":{"target":"device:lobby-1","version":7,"stale":false},
        "pending_assignment":{"target":"group:lobby","version":8,"assets_missing":1,"bytes_missing":2048},
        "playing":{"playlist":"main","item":1,"asset":"sha256:ab","since":"2026-12-07T09:59:00Z"},
        "live":{"uri":"https://tv.example/live.m3u8","state":"fallback"},
        "alert":{"id":"fire","version":3,"priority":9,"style":"fullscreen","message":"Leave",
                 "expires_at":"2026-12-07T11:00:00Z"},
        "display":"on",
        "cache":{"assets":3,"bytes":100,"free_bytes":5000,
                 "issues":[{"kind":"bad_origin","subject":"https://cdn-a.example/",
                            "detail":"quarantined","until":"2026-12-07T10:42:07Z"}]},
        "broker":"mqtts://broker-a.example.com:8883",
        "trust":{"root_version":2,"root_expires_at":"2027-12-07T00:00:00Z",
                 "root_expired":false,"plaintext_live":false},
        "errors":[{"at":"2026-12-07T09:00:00Z","kind":"rejected","reason":"rollback",
                   "detail":"version 3 is below 7","subject":"device:lobby-1"},
                  {"at":"2026-12-07T09:01:00Z","kind":"broker_unreachable",
                   "detail":"refused","subject":"mqtts://broker-b:8883"}]}"#;

    #[test]
    fn todays_status_parses_and_goes_round() {
        let status: Status = serde_json::from_str(STATUS_OF_0_1).unwrap();
        assert_eq!(status.assignment.as_ref().unwrap().version, 7);
        assert_eq!(status.live.as_ref().unwrap().state, LiveState::Fallback);
        assert_eq!(status.cache.issues[0].kind, CacheIssueKind::BadOrigin);
        assert_eq!(status.errors[0].kind, EventKind::Rejected);
        assert_eq!(status.errors[0].reason.as_deref(), Some("rollback"));
        assert_eq!(status.errors[1].reason, None);
        let again: Status = serde_json::from_slice(&status.to_json()).unwrap();
        assert_eq!(again, status);
        // The same members, written the same way.
        let before: serde_json::Value = serde_json::from_str(STATUS_OF_0_1).unwrap();
        let after: serde_json::Value = serde_json::from_slice(&status.to_json()).unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn the_last_will_reads_as_an_offline_status() {
        let will: Status = serde_json::from_slice(&Status::offline_will("lobby-1")).unwrap();
        assert_eq!(will.device, "lobby-1");
        assert!(!will.online);
        assert_eq!(will.at, None);
    }

    #[test]
    fn a_newer_players_kinds_and_members_are_read_as_unknown() {
        let event: Event = serde_json::from_str(
            r#"{"at":"2026-12-07T09:00:00Z","kind":"layout_failed","detail":"x","zone":"left"}"#,
        )
        .unwrap();
        assert_eq!(event.kind, EventKind::Unknown);
        assert!(event.is_error());
        let issue: CacheIssue = serde_json::from_str(
            r#"{"kind":"slow_origin","subject":"o","detail":"d","until":"2026-12-07T09:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(issue.kind, CacheIssueKind::Unknown);
    }

    #[test]
    fn routine_events_are_the_ones_dropped_first() {
        let routine = [
            EventKind::Downloaded,
            EventKind::DownloadProgress,
            EventKind::Evicted,
        ];
        for kind in routine {
            assert_eq!(kind.importance(), Importance::Routine);
        }
        assert_eq!(EventKind::PlayFailed.importance(), Importance::Error);
        assert!(Importance::Routine < Importance::Error);
    }

    #[test]
    fn event_kinds_are_said_as_serde_writes_them() {
        let json = serde_json::to_value(EventKind::OriginQuarantined).unwrap();
        assert_eq!(json, EventKind::OriginQuarantined.as_str());
        let json = serde_json::to_value(EventKind::BrokerUnreachable).unwrap();
        assert_eq!(json, EventKind::BrokerUnreachable.as_str());
    }

    #[test]
    fn a_proof_of_play_batch_of_today_parses_and_goes_round() {
        let today = r#"{"device":"lobby-1","records":[
            {"seq":1,"playlist":"main","item":0,"asset":"sha256:ab","start":"2026-12-07T10:00:00Z",
             "end":"2026-12-07T10:00:05Z","completed":true},
            {"seq":2,"playlist":"main","item":1,"live":"https://tv.example/x.m3u8",
             "start":"2026-12-07T10:00:05Z","end":"2026-12-07T10:00:06Z","completed":false,
             "reason":"alert"}]}"#;
        let batch: PlayBatch = serde_json::from_str(today).unwrap();
        assert_eq!(batch.records[1].reason.as_deref(), Some("alert"));
        let json = serde_json::to_value(&batch).unwrap();
        assert_eq!(
            json,
            serde_json::from_str::<serde_json::Value>(today).unwrap()
        );
        let ack: PopAck = serde_json::from_str(r#"{"through":2}"#).unwrap();
        assert_eq!(ack.through, 2);
        let reason = serde_json::to_value(Interruption::DisplayOff).unwrap();
        assert_eq!(reason, Interruption::DisplayOff.as_str());
    }

    #[test]
    fn command_responses_of_today_parse_and_go_round() {
        for today in [
            r#"{"action":"purge_cache","at":"2026-12-07T10:00:00Z","id":"c1","ok":true,"purged_bytes":10,"purged_files":1}"#,
            r#"{"action":"reboot","at":"2026-12-07T10:00:00Z","error":"reboot_command is empty","id":"c2","ok":false}"#,
            r#"{"action":"screenshot","at":"2026-12-07T10:00:00Z","id":"c3","image":"iVBO","media_type":"image/png","ok":true}"#,
        ] {
            let response: CommandResponse = serde_json::from_str(today).unwrap();
            let again = serde_json::to_value(&response).unwrap();
            assert_eq!(
                again,
                serde_json::from_str::<serde_json::Value>(today).unwrap()
            );
        }
        let failed = CommandResponse::to("c4", "frobnicate", t("2026-12-07T10:00:00Z"))
            .failed("not supported");
        assert!(!failed.ok);
    }

    #[test]
    fn short_text_is_bounded_whatever_it_quotes_written_or_read() {
        let hostile = format!("unknown field `{}`", "\u{1}é".repeat(500_000));
        let text = ShortText::from(hostile.as_str());
        assert!(text.len() <= ShortText::MAX_BYTES);
        assert!(text.starts_with("unknown field `\u{fffd}é"));
        assert!(text.ends_with('…'));
        // Its JSON does not grow by escaping either.
        assert!(serde_json::to_string(&text).unwrap().len() <= ShortText::MAX_BYTES + 2);
        assert_eq!(&*ShortText::from("plain"), "plain");
        let read: ShortText = serde_json::to_string(&hostile)
            .and_then(|json| serde_json::from_str(&json))
            .unwrap();
        assert_eq!(read, text);
    }
}

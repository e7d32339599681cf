//! The signed documents (DESIGN.md §3, §5) as serde types, with the checks
//! that need nothing but the document itself: shape, caps, ids and URLs.
//!
//! Unknown fields are tolerated so that an older player accepts documents
//! from a newer operator tool; everything the player acts on is checked.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Rejection;

/// Most assets, or playlist items in total, that one document may carry.
pub const MAX_ENTRIES: usize = 10_000;

/// Schemes allowed for asset mirrors.
const ASSET_SCHEMES: &[&str] = &["http", "https"];
/// Schemes allowed for live items.
const LIVE_SCHEMES: &[&str] = &["http", "https", "rtsp", "rtsps", "srt", "udp", "rtp"];

/// The roles a root delegates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleName {
    Root,
    Publisher,
    Operator,
}

impl RoleName {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Root => "root",
            RoleName::Publisher => "publisher",
            RoleName::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub alg: String,
    /// Standard base64 of the raw 32-byte Ed25519 public key.
    pub public: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub keyids: Vec<String>,
    pub threshold: usize,
}

/// The root of trust: which keys exist and which may sign what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub kind: String,
    pub fleet: String,
    pub version: u64,
    pub expires_at: Timestamp,
    pub keys: BTreeMap<String, KeyEntry>,
    pub roles: BTreeMap<String, Role>,
}

/// A content address: `sha256:` followed by 64 lowercase hex digits.
/// Being validated on parse, it is safe to use as a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AssetId(String);

impl AssetId {
    /// The id of content with this SHA-256 digest.
    pub fn from_digest(digest: &[u8]) -> AssetId {
        AssetId(format!("sha256:{}", hex::encode(digest)))
    }

    /// The 64 hex digits, used as the file name in the content store.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AssetId {
    type Error = String;
    fn try_from(value: String) -> Result<AssetId, String> {
        let valid = value.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if valid {
            Ok(AssetId(value))
        } else {
            Err(format!(
                "asset id {value:?} is not sha256: and 64 lowercase hex digits"
            ))
        }
    }
}

impl From<AssetId> for String {
    fn from(id: AssetId) -> String {
        id.0
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One asset as signed: its size and type, and where mirrors of it live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetEntry {
    pub size: u64,
    pub media_type: String,
    #[serde(default)]
    pub urls: Vec<String>,
}

impl AssetEntry {
    pub fn is_image(&self) -> bool {
        self.media_type.starts_with("image/")
    }
}

/// One playlist entry: exactly one of `asset` or `live`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaylistItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<AssetId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<AssetId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    pub playlist: String,
    #[serde(default)]
    pub days: Vec<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    #[serde(default)]
    pub priority: i64,
}

/// What one device or group plays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub kind: String,
    pub fleet: String,
    pub target: String,
    pub version: u64,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    #[serde(default = "utc")]
    pub timezone: String,
    pub assets: BTreeMap<AssetId, AssetEntry>,
    pub playlists: BTreeMap<String, Vec<PlaylistItem>>,
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    pub default_playlist: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<serde_json::Value>,
}

fn utc() -> String {
    "UTC".to_string()
}

/// Parses a verified payload as a document of `kind`.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    kind: &str,
) -> Result<T, Rejection> {
    #[derive(Deserialize)]
    struct Kind {
        kind: String,
    }
    let found: Kind = serde_json::from_slice(payload)
        .map_err(|e| Rejection::Malformed(format!("{kind} document: {e}")))?;
    if found.kind != kind {
        return Err(Rejection::Malformed(format!(
            "expected a {kind} document, got {:?}",
            found.kind
        )));
    }
    serde_json::from_slice(payload)
        .map_err(|e| Rejection::Malformed(format!("{kind} document: {e}")))
}

/// The scheme of a URL, if it has one (RFC 3986: letter, then letters,
/// digits, `+`, `-`, `.`, up to the first `:` that precedes any `/`).
fn scheme(url: &str) -> Option<&str> {
    let colon = url.find(':')?;
    let candidate = &url[..colon];
    let mut chars = candidate.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))).then_some(candidate)
}

/// Checks a payload as devices will before they look at themselves
/// (binding, version floors, expiry): what an operator's tool checks before
/// signing, so that a document every device would reject is never sent.
pub fn validate_payload(kind: &str, payload: &[u8]) -> Result<(), Rejection> {
    match kind {
        "assignment" => parse_document::<Assignment>(payload, kind)?.validate(),
        "alert" => parse_document::<Alert>(payload, kind)?.validate(),
        "command" => parse_document::<Command>(payload, kind).map(drop),
        "root" => parse_document::<Root>(payload, kind).map(drop),
        other => Err(Rejection::Malformed(format!(
            "unknown document kind {other:?}"
        ))),
    }
}

/// An asset mirror must be `http(s)` or a relative path (resolved against
/// the device's configured origins); never `file:` or anything else.
pub fn check_asset_url(url: &str) -> Result<(), Rejection> {
    match scheme(url) {
        Some(s) if ASSET_SCHEMES.contains(&s.to_ascii_lowercase().as_str()) => Ok(()),
        None if !url.is_empty() && !url.starts_with("//") && !url.contains('\\') => Ok(()),
        _ => Err(Rejection::UnsafeUrl(url.to_string())),
    }
}

fn check_live_uri(uri: &str) -> Result<(), Rejection> {
    match scheme(uri).map(str::to_ascii_lowercase) {
        Some(s) if s == "srt" => check_srt_caller(uri),
        Some(s) if LIVE_SCHEMES.contains(&s.as_str()) => Ok(()),
        _ => Err(Rejection::UnsafeUrl(uri.to_string())),
    }
}

/// An SRT item must call a host: a listener or rendezvous URI (or one
/// without a host, which GStreamer takes as a listener) would open a
/// listening socket on the device, which the device never does.
fn check_srt_caller(uri: &str) -> Result<(), Rejection> {
    let refuse = |why: &str| Err(Rejection::Malformed(format!("live {uri:?}: {why}")));
    let Ok(parsed) = url::Url::parse(uri) else {
        return refuse("not a valid URI");
    };
    if parsed.host_str().is_none_or(str::is_empty) {
        return refuse("an SRT source needs the host to call");
    }
    let mode = parsed.query_pairs().find(|(key, _)| key == "mode");
    match mode.as_ref().map(|(_, value)| value.to_ascii_lowercase()) {
        None => Ok(()),
        Some(mode) if mode == "caller" || mode == "client" => Ok(()),
        Some(mode) => refuse(&format!(
            "SRT mode {mode:?} would listen on the device; only caller is allowed"
        )),
    }
}

impl Assignment {
    /// Checks everything that depends only on the document itself.
    pub fn validate(&self) -> Result<(), Rejection> {
        let malformed = |why: String| Err(Rejection::Malformed(why));
        if !(self.target.starts_with("device:") || self.target.starts_with("group:")) {
            return malformed(format!(
                "target {:?} is neither device:<id> nor group:<name>",
                self.target
            ));
        }
        let items: usize = self.playlists.values().map(Vec::len).sum();
        if self.assets.len() > MAX_ENTRIES || items > MAX_ENTRIES {
            return malformed(format!(
                "{} assets and {items} playlist items exceed the cap of {MAX_ENTRIES}",
                self.assets.len()
            ));
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            return malformed(format!("unknown time zone {:?}", self.timezone));
        }
        for entry in self.assets.values() {
            entry.urls.iter().try_for_each(|u| check_asset_url(u))?;
        }
        for (name, items) in &self.playlists {
            for (i, item) in items.iter().enumerate() {
                let at = format!("playlist {name:?} item {i}");
                match (&item.asset, &item.live) {
                    (Some(asset), None) => match self.assets.get(asset) {
                        None => return malformed(format!("{at}: asset {asset} is not declared")),
                        Some(entry) if entry.is_image() && item.duration_ms.is_none() => {
                            return malformed(format!("{at}: an image needs duration_ms"));
                        }
                        Some(_) => {}
                    },
                    (None, Some(uri)) => check_live_uri(uri)?,
                    _ => return malformed(format!("{at}: needs exactly one of asset or live")),
                }
                if let Some(fallback) = &item.fallback
                    && !self.assets.contains_key(fallback)
                {
                    return malformed(format!("{at}: fallback {fallback} is not declared"));
                }
            }
        }
        if !self.playlists.contains_key(&self.default_playlist) {
            return malformed(format!(
                "default_playlist {:?} does not exist",
                self.default_playlist
            ));
        }
        if let Some(entry) = self
            .schedule
            .iter()
            .find(|e| !self.playlists.contains_key(&e.playlist))
        {
            return malformed(format!(
                "schedule names unknown playlist {:?}",
                entry.playlist
            ));
        }
        Ok(())
    }

    /// Checks that this assignment is meant for this device.
    pub fn check_binding(
        &self,
        fleet: &str,
        device: &str,
        groups: &[String],
    ) -> Result<(), Rejection> {
        if self.fleet != fleet {
            return Err(Rejection::WrongFleet {
                want: fleet.to_string(),
                got: self.fleet.clone(),
            });
        }
        let mine = self.target.strip_prefix("device:") == Some(device)
            || self
                .target
                .strip_prefix("group:")
                .is_some_and(|g| groups.iter().any(|mine| mine == g));
        if mine {
            Ok(())
        } else {
            Err(Rejection::WrongTarget(self.target.clone()))
        }
    }

    /// Every asset the device must hold before this assignment can play.
    pub fn required_assets(&self) -> impl Iterator<Item = (&AssetId, &AssetEntry)> {
        self.assets.iter()
    }
}

/// A message shown over everything until it expires or a higher version
/// with `active: false` clears it (DESIGN.md §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: String,
    pub fleet: String,
    pub version: u64,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub active: bool,
    /// `device:<id>` or `group:<name>` entries; absent = the whole fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    #[serde(default)]
    pub message: String,
    #[serde(default = "fullscreen")]
    pub style: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<AssetId>,
}

fn fullscreen() -> String {
    "fullscreen".to_string()
}

impl Alert {
    pub fn validate(&self) -> Result<(), Rejection> {
        if !matches!(self.style.as_str(), "fullscreen" | "banner") {
            return Err(Rejection::Malformed(format!(
                "alert style {:?} is neither fullscreen nor banner",
                self.style
            )));
        }
        if self.targets.as_ref().is_some_and(|t| t.len() > MAX_ENTRIES) {
            return Err(Rejection::Malformed(format!(
                "more than {MAX_ENTRIES} alert targets"
            )));
        }
        Ok(())
    }

    /// Whether the alert is addressed to this device (directly, through one
    /// of its groups, or fleet-wide).
    pub fn concerns(&self, device: &str, groups: &[String]) -> bool {
        self.targets.as_ref().is_none_or(|targets| {
            targets.iter().any(|t| {
                t.strip_prefix("device:") == Some(device)
                    || t.strip_prefix("group:")
                        .is_some_and(|g| groups.iter().any(|mine| mine == g))
            })
        })
    }
}

/// An operator's order to one device; short-lived and used once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub kind: String,
    pub fleet: String,
    pub device: String,
    pub id: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub action: String,
    #[serde(default)]
    pub args: serde_json::Value,
}

/// Longest command id accepted; ids are stored to refuse replays.
const MAX_COMMAND_ID: usize = 128;

impl Command {
    /// Checks the command is for this device of this fleet.
    pub fn check_binding(&self, fleet: &str, device: &str) -> Result<(), Rejection> {
        if self.fleet != fleet {
            return Err(Rejection::WrongFleet {
                want: fleet.to_string(),
                got: self.fleet.clone(),
            });
        }
        if self.device != device {
            return Err(Rejection::WrongTarget(format!("device:{}", self.device)));
        }
        if self.id.is_empty() || self.id.len() > MAX_COMMAND_ID {
            return Err(Rejection::Malformed(format!(
                "command id must be 1 to {MAX_COMMAND_ID} bytes"
            )));
        }
        Ok(())
    }
}

/// Refuses a new document that has already expired.
pub fn check_not_expired(expires_at: Timestamp, now: Timestamp) -> Result<(), Rejection> {
    if expires_at <= now {
        Err(Rejection::Expired(expires_at.to_string()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn sample() -> Assignment {
        serde_json::from_value(serde_json::json!({
            "kind": "assignment", "fleet": "acme", "target": "device:lobby-1", "version": 1,
            "issued_at": "2026-11-01T00:00:00Z", "expires_at": "2027-11-01T00:00:00Z",
            "timezone": "Europe/Paris",
            "assets": {format!("sha256:{HEX}"): {"size": 10, "media_type": "image/png", "urls": ["img.png"]}},
            "playlists": {"main": [{"asset": format!("sha256:{HEX}"), "duration_ms": 5000}]},
            "default_playlist": "main"
        }))
        .unwrap()
    }

    #[test]
    fn a_sound_assignment_validates() {
        sample().validate().unwrap();
    }

    #[test]
    fn asset_ids_are_strict() {
        assert!(AssetId::try_from(format!("sha256:{HEX}")).is_ok());
        for bad in [
            format!("sha256:{}", HEX.to_uppercase()),
            format!("sha1:{HEX}"),
            format!("sha256:{}", &HEX[1..]),
            "sha256:../../etc/passwd".to_string(),
        ] {
            assert!(AssetId::try_from(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_http_mirrors_and_relative_paths_are_allowed() {
        for ok in [
            "https://cdn/a.mp4",
            "HTTP://cdn/a",
            "media/a.mp4",
            "/media/a.mp4",
        ] {
            check_asset_url(ok).unwrap();
        }
        for bad in [
            "file:///etc/passwd",
            "file:x",
            "ftp://x/y",
            "javascript:alert(1)",
            "//evil/x",
            "",
        ] {
            assert_eq!(
                check_asset_url(bad).unwrap_err().code(),
                "unsafe_url",
                "{bad}"
            );
        }
    }

    #[test]
    fn structural_mistakes_are_rejected_with_a_reason() {
        let mut a = sample();
        a.playlists.get_mut("main").unwrap()[0].duration_ms = None;
        assert!(
            a.validate()
                .unwrap_err()
                .to_string()
                .contains("needs duration_ms")
        );

        let mut a = sample();
        a.default_playlist = "nope".into();
        assert_eq!(a.validate().unwrap_err().code(), "malformed");

        let mut a = sample();
        a.playlists.get_mut("main").unwrap()[0] = PlaylistItem {
            asset: None,
            live: Some("file:///dev/video0".into()),
            fallback: None,
            duration_ms: None,
        };
        assert_eq!(a.validate().unwrap_err().code(), "unsafe_url");

        for (uri, allowed) in [
            ("srt://gateway.example:7001", true),
            ("srt://gateway.example:7001?mode=caller&latency=200", true),
            ("srt://gateway.example:7001?mode=listener", false),
            ("srt://gateway.example:7001?mode=rendezvous", false),
            ("srt://:7001", false),
        ] {
            let mut a = sample();
            a.playlists.get_mut("main").unwrap()[0] = PlaylistItem {
                asset: None,
                live: Some(uri.into()),
                fallback: None,
                duration_ms: None,
            };
            let verdict = a.validate();
            assert_eq!(verdict.is_ok(), allowed, "{uri}: {verdict:?}");
            if let Err(rejection) = verdict {
                assert_eq!(rejection.code(), "malformed", "{uri}");
            }
        }

        let mut a = sample();
        a.timezone = "Mars/Olympus".into();
        assert_eq!(a.validate().unwrap_err().code(), "malformed");
    }

    #[test]
    fn endless_documents_are_capped() {
        let mut a = sample();
        let item = a.playlists["main"][0].clone();
        a.playlists.insert("long".into(), vec![item; MAX_ENTRIES]);
        let err = a.validate().unwrap_err();
        assert!(err.to_string().contains("exceed the cap"), "{err}");
        let mut a = sample();
        let entry = a.assets.values().next().unwrap().clone();
        for n in 0..=MAX_ENTRIES as u32 {
            let mut digest = [0u8; 32];
            digest[..4].copy_from_slice(&n.to_be_bytes());
            a.assets
                .insert(AssetId::from_digest(&digest), entry.clone());
        }
        assert_eq!(a.validate().unwrap_err().code(), "malformed");
    }

    #[test]
    fn binding_checks_fleet_and_target() {
        let a = sample();
        a.check_binding("acme", "lobby-1", &[]).unwrap();
        assert_eq!(
            a.check_binding("other", "lobby-1", &[]).unwrap_err().code(),
            "wrong_fleet"
        );
        assert_eq!(
            a.check_binding("acme", "lobby-2", &[]).unwrap_err().code(),
            "wrong_target"
        );
        let mut g = sample();
        g.target = "group:lobby".into();
        g.check_binding("acme", "x", &["hall".into(), "lobby".into()])
            .unwrap();
        assert_eq!(
            g.check_binding("acme", "x", &["hall".into()])
                .unwrap_err()
                .code(),
            "wrong_target"
        );
    }

    #[test]
    fn payloads_are_checked_as_devices_will() {
        let good = serde_json::to_vec(&sample()).unwrap();
        assert_eq!(validate_payload("assignment", &good), Ok(()));

        let mut listening = sample();
        listening.playlists.get_mut("main").unwrap()[0] = PlaylistItem {
            asset: None,
            live: Some("srt://gateway.example:7001?mode=listener".into()),
            fallback: None,
            duration_ms: None,
        };
        let bad = serde_json::to_vec(&listening).unwrap();
        let rejection = validate_payload("assignment", &bad).unwrap_err();
        assert!(rejection.to_string().contains("only caller"), "{rejection}");

        let err = validate_payload("alert", &good).unwrap_err();
        assert!(err.to_string().contains("expected a alert"), "{err}");
        assert!(validate_payload("playlist", &good).is_err());
    }

    #[test]
    fn wrong_kind_is_malformed() {
        let err = parse_document::<Assignment>(br#"{"kind":"root"}"#, "assignment").unwrap_err();
        assert!(err.to_string().contains("expected a assignment document"));
    }
}

//! The signed documents (docs/protocol.md §5–§7) as serde types, with the checks
//! that need nothing but the document itself: shape, caps, ids and URLs.
//!
//! Unknown fields are tolerated so that an older player accepts documents
//! from a newer operator tool; everything the player acts on is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Rejection;

/// Most assets, or playlist items in total, that one document may carry.
pub const MAX_ENTRIES: usize = 10_000;

/// Most `schedule` entries, and most `display.power` windows, in one
/// assignment: the player weighs every window at each instant it plans.
pub const MAX_WINDOWS: usize = 256;

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
    let malformed = |e: serde_json::Error| Rejection::Malformed(format!("{kind} document: {e}"));
    let document: serde_json::Value = serde_json::from_slice(payload).map_err(malformed)?;
    let found = document.get("kind").and_then(|k| k.as_str());
    if found != Some(kind) {
        return Err(Rejection::Malformed(match found {
            Some(found) => format!("expected a {kind} document, got {found:?}"),
            None => format!("{kind} document: no kind"),
        }));
    }
    if let Some(unknown) = crate::members::unknown_member(kind, &document) {
        return Err(Rejection::Malformed(format!("{kind} document: {unknown}")));
    }
    serde_json::from_value(document).map_err(malformed)
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
        "command" => parse_document::<Command>(payload, kind)?.validate(),
        "root" => parse_document::<Root>(payload, kind).map(drop),
        other => Err(Rejection::Malformed(format!(
            "unknown document kind {other:?}"
        ))),
    }
}

/// What devices may refuse depending on their own config, for an
/// operator's tool to warn about (one line each) without refusing to sign:
/// plaintext live sources, which play only where `allow_plaintext_live`.
pub fn payload_warnings(kind: &str, payload: &[u8]) -> Vec<String> {
    let assignment = match kind {
        "assignment" => parse_document::<Assignment>(payload, kind),
        _ => return Vec::new(),
    };
    let Ok(assignment) = assignment else {
        return Vec::new();
    };
    assignment
        .plaintext_live()
        .map(|uri| {
            format!(
                "live source {uri:?} is not authenticated: only devices with \
                 allow_plaintext_live = true will play it"
            )
        })
        .collect()
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

/// A live URI must have an allowed scheme and must make the device call
/// out (or join a multicast group), never open a socket that any host on
/// the network can send to.
fn check_live_uri(uri: &str) -> Result<(), Rejection> {
    let scheme = match scheme(uri).map(str::to_ascii_lowercase) {
        Some(s) if LIVE_SCHEMES.contains(&s.as_str()) => s,
        _ => return Err(Rejection::UnsafeUrl(uri.to_string())),
    };
    let refuse = |why: &str| Err(Rejection::Malformed(format!("live {uri:?}: {why}")));
    let Ok(parsed) = url::Url::parse(uri) else {
        return refuse("not a valid URI");
    };
    // GStreamer reads the last of a repeated key, a check the first: any
    // repetition could make them disagree, so none is accepted.
    let mut keys = BTreeSet::new();
    if let Some((key, _)) = parsed
        .query_pairs()
        .find(|(key, _)| !keys.insert(key.to_ascii_lowercase()))
    {
        return refuse(&format!("query key {key:?} is repeated"));
    }
    match scheme.as_str() {
        "srt" => check_srt_caller(&parsed).or_else(|why| refuse(&why)),
        "udp" | "rtp" if host_ip(&parsed).is_none_or(|ip| !ip.is_multicast()) => refuse(
            "a udp or rtp source must be a multicast group (224.0.0.0/4 or ff00::/8): \
             any other address opens a socket every host on the network can send to",
        ),
        _ => Ok(()),
    }
}

/// The URI's host as an IP address, if it is one (hosts of non-special
/// schemes such as `udp:` are not parsed as addresses by `url`).
fn host_ip(url: &url::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// SRT parameters that bind the device's own side to an address or port.
const SRT_LOCAL_KEYS: &[&str] = &["localaddress", "localport", "adapter"];

/// An SRT item must call a host: a listener or rendezvous URI (or one
/// without a host to call, which GStreamer takes as a listener) would open
/// a listening socket on the device, which the device never does.
fn check_srt_caller(parsed: &url::Url) -> Result<(), String> {
    if parsed.host_str().is_none_or(str::is_empty)
        || host_ip(parsed).is_some_and(|ip| ip.is_unspecified())
    {
        return Err("an SRT source needs the host to call".into());
    }
    for (key, value) in parsed.query_pairs() {
        let key = key.to_ascii_lowercase();
        if key == "mode" && !matches!(value.to_ascii_lowercase().as_str(), "caller" | "client") {
            return Err(format!(
                "SRT mode {value:?} would listen on the device; only caller is allowed"
            ));
        }
        if SRT_LOCAL_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "SRT parameter {key:?} binds a local address or port; a caller needs none"
            ));
        }
    }
    Ok(())
}

/// Whether a live URI authenticates what it plays: `https`, `rtsps`, or
/// SRT with a passphrase (AES with a shared secret). Anything else can be
/// replaced by anyone on the path; devices refuse it unless their config
/// allows plaintext live sources. Operators may still sign it, for the
/// devices that do.
pub fn live_uri_is_authenticated(uri: &str) -> bool {
    match scheme(uri).map(str::to_ascii_lowercase).as_deref() {
        Some("https" | "rtsps") => true,
        Some("srt") => url::Url::parse(uri).is_ok_and(|parsed| {
            parsed
                .query_pairs()
                .any(|(key, value)| key.eq_ignore_ascii_case("passphrase") && !value.is_empty())
        }),
        _ => false,
    }
}

impl Assignment {
    /// Checks everything that depends only on the document itself.
    pub fn validate(&self) -> Result<(), Rejection> {
        self.validated().map(drop)
    }

    /// [`Assignment::validate`], keeping what it compiled: the schedule
    /// (a device plays by it, and need not compile it again).
    pub fn validated(&self) -> Result<crate::schedule::Schedule, Rejection> {
        let malformed = |why: String| Err(Rejection::Malformed(why));
        if !(self.target.starts_with("device:") || self.target.starts_with("group:")) {
            return malformed(format!(
                "target {:?} is neither device:<id> nor group:<name>",
                self.target
            ));
        }
        let power = self
            .display
            .as_ref()
            .and_then(|d| d.get("power")?.as_array().map(Vec::len))
            .unwrap_or(0);
        // A screen turned by a rotation it cannot do would be silently left
        // as it was: refused instead.
        if let Some(rotation) = self.display.as_ref().and_then(|d| d.get("rotation"))
            && !rotation
                .as_u64()
                .is_some_and(|degrees| matches!(degrees, 0 | 90 | 180 | 270))
        {
            return malformed(format!(
                "display.rotation {rotation} is not 0, 90, 180 or 270"
            ));
        }
        for (field, count) in [("schedule", self.schedule.len()), ("display.power", power)] {
            if count > MAX_WINDOWS {
                return malformed(format!(
                    "{field} has {count} entries; at most {MAX_WINDOWS} are accepted"
                ));
            }
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
        check_lifetime(self.issued_at, self.expires_at)?;
        // Days, times and dates are only read when compiled: compiling here
        // is what makes a `"thurs"` or a `"25:30"` a reason to refuse.
        crate::schedule::Schedule::compile(self).map_err(Rejection::Malformed)
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

    /// The live URIs of its playlists that do not authenticate their
    /// stream (see [`live_uri_is_authenticated`]).
    pub fn plaintext_live(&self) -> impl Iterator<Item = &str> {
        self.playlists
            .values()
            .flatten()
            .filter_map(|item| item.live.as_deref())
            .filter(|uri| !live_uri_is_authenticated(uri))
    }

    /// Every asset the device must hold before this assignment can play.
    pub fn required_assets(&self) -> impl Iterator<Item = (&AssetId, &AssetEntry)> {
        self.assets.iter()
    }
}

/// A message shown over everything until it expires or a higher version
/// of the same alert with `active: false` clears it (docs/protocol.md §8).
/// Alerts are independent: each `id` has its own retained topic and
/// version stream, and a screen shows the active alert of highest
/// `priority` (then the newest) among those that target it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: String,
    pub fleet: String,
    /// Which alert this is: `[A-Za-z0-9._-]`, at most 64 characters (it is
    /// a topic level).
    pub id: String,
    pub version: u64,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub active: bool,
    /// Which of several active alerts a screen shows: the highest.
    #[serde(default)]
    pub priority: u32,
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

/// An alert id is a topic level of its own: short, and no MQTT wildcard or
/// separator can hide in it.
pub fn is_valid_alert_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Alert {
    pub fn validate(&self) -> Result<(), Rejection> {
        if !is_valid_alert_id(&self.id) {
            return Err(Rejection::Malformed(format!(
                "alert id {:?} is not 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
                self.id
            )));
        }
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
        check_lifetime(self.issued_at, self.expires_at)
    }

    /// Whether the alert is addressed to this device (directly, through one
    /// of its groups, or fleet-wide).
    pub fn concerns(&self, device: &str, groups: &[String]) -> bool {
        self.targets.as_ref().is_none_or(|targets| {
            targets
                .iter()
                .any(|target| target_names(target, device, groups))
        })
    }
}

/// Whether one `device:<id>` or `group:<name>` target names this device
/// (directly or through one of its groups).
pub fn target_names(target: &str, device: &str, groups: &[String]) -> bool {
    Target::parse(target).is_some_and(|t| t.names(device, groups))
}

/// Whom an assignment (or an alert) is for: `device:<id>` or
/// `group:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Device(String),
    Group(String),
}

impl Target {
    /// `device:<id>` or `group:<name>`; anything else is no target.
    pub fn parse(text: &str) -> Option<Target> {
        if let Some(device) = text.strip_prefix("device:") {
            Some(Target::Device(device.to_string()))
        } else {
            text.strip_prefix("group:")
                .map(|group| Target::Group(group.to_string()))
        }
    }

    /// Whether it names this device, directly or through one of its groups.
    pub fn names(&self, device: &str, groups: &[String]) -> bool {
        match self {
            Target::Device(id) => id == device,
            Target::Group(group) => groups.iter().any(|mine| mine == group),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Device(id) => write!(f, "device:{id}"),
            Target::Group(group) => write!(f, "group:{group}"),
        }
    }
}

/// The sound volume a device takes, in its config and in a `set_volume`
/// command: 0.0 mutes, 1.0 is the source's level, above amplifies.
pub const VOLUME: std::ops::RangeInclusive<f64> = 0.0..=4.0;

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

/// What a command asks, its arguments checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// A thumbnail of the screen, in the response.
    Screenshot {
        format: ImageFormat,
    },
    /// The programme again from its first item.
    Reload,
    Reboot,
    /// Screen power until the power windows next change their mind.
    DisplayOn,
    DisplayOff,
    /// Within [`VOLUME`].
    SetVolume {
        volume: f64,
    },
    PurgeCache,
    /// The status, now.
    ReportNow,
}

/// A screenshot's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    #[default]
    Png,
    Jpeg,
}

impl Action {
    /// The action a verified command names, or why this player cannot
    /// carry it out (said in the response).
    pub fn of(command: &Command) -> Result<Action, String> {
        let args = &command.args;
        Ok(match command.action.as_str() {
            "screenshot" => Action::Screenshot {
                format: match args.get("format").and_then(|f| f.as_str()) {
                    None | Some("png") => ImageFormat::Png,
                    Some("jpeg") => ImageFormat::Jpeg,
                    Some(other) => return Err(format!("args.format {other:?}: png or jpeg")),
                },
            },
            "reload" => Action::Reload,
            "reboot" => Action::Reboot,
            "display_on" => Action::DisplayOn,
            "display_off" => Action::DisplayOff,
            "set_volume" => match args.get("volume").and_then(|v| v.as_f64()) {
                Some(volume) if VOLUME.contains(&volume) => Action::SetVolume { volume },
                _ => return Err("args.volume must be a number from 0.0 to 4.0".into()),
            },
            "purge_cache" => Action::PurgeCache,
            "report_now" => Action::ReportNow,
            other => return Err(format!("action {other:?} is not supported by this player")),
        })
    }

    /// The command's `action`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Screenshot { .. } => "screenshot",
            Action::Reload => "reload",
            Action::Reboot => "reboot",
            Action::DisplayOn => "display_on",
            Action::DisplayOff => "display_off",
            Action::SetVolume { .. } => "set_volume",
            Action::PurgeCache => "purge_cache",
            Action::ReportNow => "report_now",
        }
    }

    /// The command's `args`.
    pub fn args(self) -> serde_json::Value {
        match self {
            Action::Screenshot {
                format: ImageFormat::Png,
            } => serde_json::json!({}),
            Action::Screenshot {
                format: ImageFormat::Jpeg,
            } => serde_json::json!({"format": "jpeg"}),
            Action::SetVolume { volume } => serde_json::json!({ "volume": volume }),
            _ => serde_json::json!({}),
        }
    }
}

/// Longest command id accepted; ids are stored to refuse replays.
const MAX_COMMAND_ID: usize = 128;

impl Command {
    /// Checks everything that depends only on the document itself.
    pub fn validate(&self) -> Result<(), Rejection> {
        if self.id.is_empty() || self.id.len() > MAX_COMMAND_ID {
            return Err(Rejection::Malformed(format!(
                "command id must be 1 to {MAX_COMMAND_ID} bytes"
            )));
        }
        check_lifetime(self.issued_at, self.expires_at)
    }

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
        Ok(())
    }
}

/// Refuses a document whose life ends before it begins: no clock makes it
/// valid, so it is a mistake in the document, not a matter of time.
pub fn check_lifetime(issued_at: Timestamp, expires_at: Timestamp) -> Result<(), Rejection> {
    if expires_at <= issued_at {
        Err(Rejection::Malformed(format!(
            "expires_at {expires_at} is not after issued_at {issued_at}"
        )))
    } else {
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
    fn targets_read_and_say_themselves_the_same() {
        for text in ["device:lobby-1", "group:lobby"] {
            assert_eq!(Target::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Target::parse("lobby-1"), None);
        let groups = ["lobby".to_string()];
        assert!(target_names("group:lobby", "hall-1", &groups));
        assert!(target_names("device:hall-1", "hall-1", &[]));
        assert!(!target_names("group:hall", "hall-1", &groups));
    }

    #[test]
    fn an_action_goes_round_through_a_command() {
        let command = |action: &str, args: serde_json::Value| Command {
            kind: "command".into(),
            fleet: "acme".into(),
            device: "lobby-1".into(),
            id: "c1".into(),
            issued_at: Timestamp::UNIX_EPOCH,
            expires_at: Timestamp::UNIX_EPOCH,
            action: action.into(),
            args,
        };
        for action in [
            Action::Screenshot {
                format: ImageFormat::Jpeg,
            },
            Action::Screenshot {
                format: ImageFormat::Png,
            },
            Action::SetVolume { volume: 1.5 },
            Action::DisplayOff,
            Action::ReportNow,
        ] {
            assert_eq!(
                Action::of(&command(action.name(), action.args())),
                Ok(action)
            );
        }
        let too_loud = command("set_volume", serde_json::json!({"volume": 4.5}));
        assert_eq!(
            Action::of(&too_loud),
            Err("args.volume must be a number from 0.0 to 4.0".into())
        );
        let gif = command("screenshot", serde_json::json!({"format": "gif"}));
        assert_eq!(
            Action::of(&gif),
            Err("args.format \"gif\": png or jpeg".into())
        );
        let unknown = command("dance", serde_json::json!({}));
        assert!(Action::of(&unknown).unwrap_err().contains("not supported"));
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
            let verdict = with_live(uri);
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

    /// The verdict on an assignment whose one item is the live `uri`.
    fn with_live(uri: &str) -> Result<(), Rejection> {
        let mut a = sample();
        a.playlists.get_mut("main").unwrap()[0] = PlaylistItem {
            asset: None,
            live: Some(uri.into()),
            fallback: None,
            duration_ms: None,
        };
        a.validate()
    }

    #[test]
    fn a_live_source_never_opens_a_socket_others_can_send_to() {
        for uri in [
            "srt://gateway.example:7001?mode=caller&latency=200",
            "srt://[2001:db8::1]:7001?passphrase=0123456789abcdef",
            "udp://239.1.2.3:5000",
            "UDP://224.0.0.251:5000?buffer-size=1000000",
            "udp://[ff02::1]:5000",
            "udp://[ff3e::8000:1]:5000",
            "rtp://239.0.0.1:5004?encoding-name=MP2T",
            "rtsp://camera.example/live?a=1&b=2",
            "https://tv.example/index.m3u8",
        ] {
            assert_eq!(with_live(uri), Ok(()), "{uri}");
        }
        for (uri, why) in [
            // GStreamer takes the last mode: this one listens.
            ("srt://0.0.0.0:9000?mode=caller&mode=listener", "repeated"),
            (
                "srt://gw.example:9000?mode=caller&MODE=listener",
                "repeated",
            ),
            (
                "srt://gw.example:9000?mo%64e=caller&mode=listener",
                "repeated",
            ),
            ("https://tv.example/x.m3u8?a=1&a=2", "repeated"),
            ("srt://0.0.0.0:9000?mode=caller", "host to call"),
            ("srt://[::]:9000", "host to call"),
            ("srt://gw.example:9000?localport=9000", "binds a local"),
            (
                "srt://gw.example:9000?localaddress=0.0.0.0",
                "binds a local",
            ),
            ("udp://127.0.0.1:5000", "multicast"),
            ("udp://0.0.0.0:5000", "multicast"),
            ("udp://@:5000", "not a valid URI"),
            ("udp://lan-host.example:5000", "multicast"),
            ("udp://[::1]:5000", "multicast"),
            ("rtp://192.168.1.20:5004?encoding-name=MP2T", "multicast"),
            ("rtp://[::]:5004", "multicast"),
        ] {
            let rejection = with_live(uri).unwrap_err();
            assert_eq!(rejection.code(), "malformed", "{uri}");
            assert!(rejection.to_string().contains(why), "{uri}: {rejection}");
        }
    }

    #[test]
    fn which_live_sources_authenticate_their_stream() {
        for (uri, authenticated) in [
            ("https://tv.example/index.m3u8", true),
            ("rtsps://camera.example/live", true),
            ("srt://gw.example:7001?passphrase=0123456789abcdef", true),
            ("SRT://gw.example:7001?PassPhrase=0123456789abcdef", true),
            ("srt://gw.example:7001", false),
            ("srt://gw.example:7001?passphrase=", false),
            ("http://tv.example/index.m3u8", false),
            ("rtsp://camera.example/live", false),
            ("udp://239.1.2.3:5000", false),
            ("rtp://239.1.2.3:5004", false),
        ] {
            assert_eq!(live_uri_is_authenticated(uri), authenticated, "{uri}");
        }
        let mut a = sample();
        let live = |uri: &str| PlaylistItem {
            asset: None,
            live: Some(uri.into()),
            fallback: None,
            duration_ms: None,
        };
        a.playlists.insert(
            "tv".into(),
            vec![live("https://tv.example/a.m3u8"), live("rtsp://cam/b")],
        );
        assert_eq!(a.plaintext_live().collect::<Vec<_>>(), vec!["rtsp://cam/b"]);
        let warnings = payload_warnings("assignment", &serde_json::to_vec(&a).unwrap());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("rtsp://cam/b"), "{warnings:?}");
        assert_eq!(
            validate_payload("assignment", &serde_json::to_vec(&a).unwrap()),
            Ok(())
        );
    }

    #[test]
    fn schedules_and_power_windows_are_capped_naming_the_field() {
        let entry = serde_json::json!({"playlist": "main", "start": "08:00", "end": "09:00"});
        let window = serde_json::json!({"on": "08:00", "off": "09:00"});
        let mut a = sample();
        a.schedule = vec![serde_json::from_value(entry.clone()).unwrap(); MAX_WINDOWS];
        a.display = Some(serde_json::json!({"power": vec![window.clone(); MAX_WINDOWS]}));
        a.validate().unwrap();

        let mut long = a.clone();
        long.schedule.push(serde_json::from_value(entry).unwrap());
        let err = long.validate().unwrap_err();
        assert_eq!(err.code(), "malformed");
        assert!(
            err.to_string().contains("schedule has 257 entries"),
            "{err}"
        );

        let mut long = a;
        long.display = Some(serde_json::json!({"power": vec![window; MAX_WINDOWS + 1]}));
        let err = long.validate().unwrap_err();
        assert!(err.to_string().contains("display.power has 257"), "{err}");
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

    /// What only compiling the schedule finds, and a life that ends before
    /// it begins, are refused before signing as devices refuse them.
    #[test]
    fn schedules_and_lifetimes_are_checked_before_signing() {
        let refusal = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut document = serde_json::to_value(sample()).unwrap();
            edit(&mut document);
            validate_payload("assignment", &serde_json::to_vec(&document).unwrap())
                .unwrap_err()
                .to_string()
        };
        let entry = |days: &str, start: &str| serde_json::json!([{ "playlist": "main", "days": [days], "start": start, "end": "18:00" }]);
        let day = refusal(&|d| d["schedule"] = entry("thurs", "08:00"));
        assert!(
            day.contains("schedule entry 0: unknown day \"thurs\""),
            "{day}"
        );
        let time = refusal(&|d| d["schedule"] = entry("thu", "25:30"));
        assert!(time.contains("start \"25:30\" is not HH:MM"), "{time}");
        let power = refusal(&|d| {
            d["display"] =
                serde_json::json!({ "power": [{ "days": ["mon"], "on": "7", "off": "19:00" }] })
        });
        assert!(power.contains("display.power window 0"), "{power}");
        let backwards = refusal(&|d| d["expires_at"] = "2026-10-01T00:00:00Z".into());
        assert!(
            backwards.contains("expires_at 2026-10-01T00:00:00Z is not after issued_at"),
            "{backwards}"
        );

        let mut alert = serde_json::json!({
            "kind": "alert", "fleet": "acme", "id": "fire", "version": 1,
            "issued_at": "2026-11-01T00:00:00Z", "expires_at": "2026-11-01T00:00:00Z",
            "active": true, "message": "Evacuate",
        });
        let err = validate_payload("alert", &serde_json::to_vec(&alert).unwrap()).unwrap_err();
        assert!(err.to_string().contains("is not after issued_at"), "{err}");
        alert["expires_at"] = "2026-11-01T01:00:00Z".into();
        assert_eq!(
            validate_payload("alert", &serde_json::to_vec(&alert).unwrap()),
            Ok(())
        );
    }

    #[test]
    fn unknown_members_and_a_bad_rotation_are_refused_with_their_path() {
        let mut document = serde_json::to_value(sample()).unwrap();
        document["playlists"]["main"][0]["duraton_ms"] = 8000.into();
        let bytes = serde_json::to_vec(&document).unwrap();
        let err = validate_payload("assignment", &bytes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did you mean `playlists.main[0].duration_ms`"),
            "{err}"
        );

        let mut document = serde_json::to_value(sample()).unwrap();
        document["display"] = serde_json::json!({"rotation": 45});
        let bytes = serde_json::to_vec(&document).unwrap();
        let err = validate_payload("assignment", &bytes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("display.rotation 45"), "{err}");
    }

    #[test]
    fn wrong_kind_is_malformed() {
        let err = parse_document::<Assignment>(br#"{"kind":"root"}"#, "assignment").unwrap_err();
        assert!(err.to_string().contains("expected a assignment document"));
    }
}

//! What the device believes: the current root and the verification of every
//! document against it (docs/protocol.md §5–§6). Pure decisions; the agent persists
//! what this module accepts and supplies the trusted time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use phare_protocol::document::{check_not_expired, parse_document};
use phare_protocol::{
    Alert, AssetId, Assignment, Command, Envelope, Rejection, RoleName, Root, Target,
};

use crate::report::{Event, EventKind};
use crate::store::StoredDocument;
use phare_protocol::report::TrustStatus;
use phare_protocol::schedule::Schedule;

/// Roots held while waiting for their predecessor. Bounded, so that a
/// hostile broker cannot grow memory with made-up versions; when full, the
/// highest versions go first, being the furthest from use.
const MAX_ROOTS_AHEAD: usize = 16;

/// The outcome of checking a versioned document against its floor.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<T> {
    /// A newer document, verified and bound to this device.
    New(Box<T>),
    /// The exact document already accepted (a retained message seen again).
    Known,
}

/// An assignment that verified, with what verifying it found out, kept
/// rather than found out again: whom it is for, its compiled schedule, and
/// each playlist item as what it plays.
#[derive(Clone)]
pub struct VerifiedAssignment {
    pub target: Target,
    pub assignment: Assignment,
    pub schedule: Arc<Schedule>,
    pub playlists: Arc<BTreeMap<String, Vec<PlaylistItem>>>,
}

impl VerifiedAssignment {
    /// Keeps what the renderer and the programme rely on: the schedule
    /// its validation compiled, its target, and items that play an asset
    /// or a live stream.
    fn new(assignment: Assignment, schedule: Schedule) -> Result<VerifiedAssignment, Rejection> {
        let target = Target::parse(&assignment.target).ok_or_else(|| {
            Rejection::Malformed(format!(
                "target {:?} names no device or group",
                assignment.target
            ))
        })?;
        let playlists = assignment
            .playlists
            .iter()
            .map(|(name, items)| {
                let items = items
                    .iter()
                    .map(|item| PlaylistItem::of(item, &assignment))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((name.clone(), items))
            })
            .collect::<Result<_, Rejection>>()?;
        Ok(VerifiedAssignment {
            target,
            assignment,
            schedule: Arc::new(schedule),
            playlists: Arc::new(playlists),
        })
    }

    /// Its target and version: what an assignment is known by.
    pub fn key(&self) -> (&Target, u64) {
        (&self.target, self.assignment.version)
    }
}

/// Made from the assignment, so equal when it is.
impl PartialEq for VerifiedAssignment {
    fn eq(&self, other: &VerifiedAssignment) -> bool {
        self.assignment == other.assignment
    }
}

impl std::fmt::Debug for VerifiedAssignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedAssignment")
            .field("target", &self.target)
            .field("version", &self.assignment.version)
            .finish_non_exhaustive()
    }
}

/// What a playlist item plays: exactly one of a cached asset or a live
/// stream (validation refuses anything else).
#[derive(Debug, Clone, PartialEq)]
pub enum PlaylistItem {
    Asset {
        id: AssetId,
        /// A still (it needs a duration) rather than a video.
        image: bool,
        duration: Option<Duration>,
    },
    Live {
        uri: String,
        /// A cached asset shown while the stream is not.
        fallback: Option<AssetId>,
        duration: Option<Duration>,
    },
}

impl PlaylistItem {
    fn of(
        item: &phare_protocol::PlaylistItem,
        assignment: &Assignment,
    ) -> Result<PlaylistItem, Rejection> {
        let duration = item.duration_ms.map(Duration::from_millis);
        match (&item.asset, &item.live) {
            (Some(id), None) => {
                let entry = assignment.assets.get(id).ok_or_else(|| {
                    Rejection::Malformed(format!("playlist item names unlisted asset {id}"))
                })?;
                Ok(PlaylistItem::Asset {
                    id: id.clone(),
                    image: entry.is_image(),
                    duration,
                })
            }
            (None, Some(uri)) => Ok(PlaylistItem::Live {
                uri: uri.clone(),
                fallback: item.fallback.clone(),
                duration,
            }),
            _ => Err(Rejection::Malformed(
                "a playlist item plays exactly one of asset and live".into(),
            )),
        }
    }

    /// The asset it plays, if it is not live.
    pub fn asset(&self) -> Option<&AssetId> {
        match self {
            PlaylistItem::Asset { id, .. } => Some(id),
            PlaylistItem::Live { .. } => None,
        }
    }

    /// The stream it plays, if it is live.
    pub fn live(&self) -> Option<&str> {
        match self {
            PlaylistItem::Asset { .. } => None,
            PlaylistItem::Live { uri, .. } => Some(uri),
        }
    }
}

/// What it shows, for people: the asset id or the stream.
impl std::fmt::Display for PlaylistItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaylistItem::Asset { id, .. } => write!(f, "{id}"),
            PlaylistItem::Live { uri, .. } => f.write_str(uri),
        }
    }
}

/// The device's identity as documents must name it, and what its config
/// lets them ask of it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub fleet: String,
    pub device_id: String,
    pub groups: Vec<String>,
    /// Live sources that do not authenticate their stream may play.
    pub allow_plaintext_live: bool,
}

/// What accepting new roots changed.
#[derive(Debug, Default, PartialEq)]
pub struct RootUpdate {
    /// The roots newly accepted, in order, as (version, envelope JSON).
    pub accepted: Vec<(u64, String)>,
    /// The publisher keys changed: version floors of publisher documents
    /// must be reset, which is how an operator recovers from a compromised
    /// key that fast-forwarded them (as TUF does for its timestamp role).
    pub publisher_rotated: bool,
    /// The next root in the chain was refused; the roots before it stand.
    pub rejected: Option<Rejection>,
}

pub struct Trust {
    root: Root,
    identity: Identity,
    /// Roots seen ahead of the chain (retained messages arrive in any
    /// order); applied as soon as their predecessor is.
    ahead: BTreeMap<u64, Envelope>,
    /// The expiry of the current root was reported (once per root).
    expiry_reported: bool,
}

impl Trust {
    /// Starts from the pinned root and replays the stored chain, verifying
    /// each link again rather than trusting the disk.
    pub fn new(
        pinned: &Envelope,
        stored_roots: &[String],
        identity: Identity,
    ) -> Result<Trust, Rejection> {
        let root = Root::from_pinned(pinned)?;
        if root.fleet != identity.fleet {
            return Err(Rejection::WrongFleet {
                want: identity.fleet,
                got: root.fleet,
            });
        }
        let mut trust = Trust {
            root,
            identity,
            ahead: BTreeMap::new(),
            expiry_reported: false,
        };
        for stored in stored_roots {
            let envelope = Envelope::from_slice(stored.as_bytes())?;
            if let Ok(next) = trust.root.verify_successor(&envelope) {
                trust.root = next;
            }
        }
        Ok(trust)
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// What the device trusts at `now`, for its status.
    pub fn status(&self, now: Timestamp) -> TrustStatus {
        TrustStatus {
            root_version: self.root.version,
            root_expires_at: self.root.expires_at,
            root_expired: self.root.expires_at <= now,
            plaintext_live: self.identity.allow_plaintext_live,
        }
    }

    /// TUF's freeze check: an expired root is reported, once per root, as
    /// an error event. Nothing stops playing and nothing is refused for
    /// it (a newer root is the remedy, and it is still accepted).
    pub fn check_freeze(&mut self, now: Timestamp) -> Option<Event> {
        let expired = self.root.expires_at <= now;
        let report = expired && !self.expiry_reported;
        self.expiry_reported = expired;
        report.then(|| {
            let detail = format!(
                "root version {} expired at {}: newer roots may be withheld from this \
                 device (freeze); publish a new root",
                self.root.version, self.root.expires_at
            );
            Event::new(now, EventKind::RootExpired, detail).with_reason("expired")
        })
    }

    /// Offers a root seen on `trust/root/<N>` and walks the chain as far as
    /// the roots held allow.
    pub fn offer_root(&mut self, version: u64, envelope: Envelope) -> RootUpdate {
        if version <= self.root.version {
            return RootUpdate::default();
        }
        // The next version is checked at once, never queued behind others:
        // roots made up ahead of the chain cannot keep the real one out.
        let mut next = if version == self.root.version + 1 {
            Some(envelope)
        } else {
            self.ahead.insert(version, envelope);
            while self.ahead.len() > MAX_ROOTS_AHEAD {
                self.ahead.pop_last();
            }
            None
        };
        let publishers_before = self.role_keys(RoleName::Publisher);
        let mut update = RootUpdate::default();
        while let Some(envelope) = next
            .take()
            .or_else(|| self.ahead.remove(&(self.root.version + 1)))
        {
            match self.root.verify_successor(&envelope) {
                Ok(root) => {
                    update.accepted.push((root.version, envelope.to_json()));
                    self.root = root;
                    self.expiry_reported = false;
                }
                Err(rejection) => {
                    update.rejected = Some(rejection);
                    break;
                }
            }
        }
        update.publisher_rotated = self.role_keys(RoleName::Publisher) != publishers_before;
        update
    }

    fn role_keys(&self, role: RoleName) -> Vec<String> {
        let mut keys = self
            .root
            .roles
            .get(role.as_str())
            .map(|r| r.keyids.clone())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// Verifies an assignment envelope: publisher threshold, shape, binding
    /// to this device, version floor of its target, and expiry.
    pub fn verify_assignment(
        &self,
        envelope: &Envelope,
        floor: Option<&StoredDocument>,
        now: Timestamp,
    ) -> Result<Verdict<VerifiedAssignment>, Rejection> {
        let (verified, body) = self.bound_assignment(envelope)?;
        let (version, expires_at) = (verified.assignment.version, verified.assignment.expires_at);
        versioned(verified, version, expires_at, &body, floor, now)
    }

    /// Re-verifies a stored assignment at start-up. Expiry is not checked:
    /// the last verified assignment keeps playing after it expires.
    pub fn reverify_stored(
        &self,
        stored: &StoredDocument,
    ) -> Result<VerifiedAssignment, Rejection> {
        let envelope = Envelope::from_slice(stored.envelope.as_bytes())?;
        Ok(self.bound_assignment(&envelope)?.0)
    }

    /// Publisher signatures, document shape, and binding to this device;
    /// returns the assignment and its verified payload bytes.
    fn bound_assignment(
        &self,
        envelope: &Envelope,
    ) -> Result<(VerifiedAssignment, Vec<u8>), Rejection> {
        let body = self
            .root
            .verify(envelope, RoleName::Publisher, "assignment")?;
        let assignment: Assignment = parse_document(&body, "assignment")?;
        let schedule = assignment.validated()?;
        let Identity {
            fleet,
            device_id,
            groups,
            allow_plaintext_live,
        } = &self.identity;
        assignment.check_binding(fleet, device_id, groups)?;
        if !allow_plaintext_live && let Some(uri) = assignment.plaintext_live().next() {
            return Err(Rejection::PlaintextLive(uri.to_string()));
        }
        Ok((VerifiedAssignment::new(assignment, schedule)?, body))
    }

    /// Verifies an alert: publisher threshold, fleet, shape, the fleet-wide
    /// alert version floor, expiry. Alerts for other devices are valid
    /// documents too (they move the floor); [`Alert::concerns`] says
    /// whether to show one.
    pub fn verify_alert(
        &self,
        envelope: &Envelope,
        floor: Option<&StoredDocument>,
        now: Timestamp,
    ) -> Result<Verdict<Alert>, Rejection> {
        let body = self.root.verify(envelope, RoleName::Publisher, "alert")?;
        let alert: Alert = parse_document(&body, "alert")?;
        alert.validate()?;
        self.check_fleet(&alert.fleet)?;
        let (version, expires_at) = (alert.version, alert.expires_at);
        versioned(alert, version, expires_at, &body, floor, now)
    }

    /// Re-verifies the stored alert at start-up (it may have expired since).
    pub fn reverify_alert(&self, stored: &StoredDocument) -> Result<Alert, Rejection> {
        let envelope = Envelope::from_slice(stored.envelope.as_bytes())?;
        let body = self.root.verify(&envelope, RoleName::Publisher, "alert")?;
        parse_document(&body, "alert")
    }

    /// Verifies a command: operator threshold, bound to this device, not
    /// expired. Whether its id was seen before is the store's to say.
    pub fn verify_command(
        &self,
        envelope: &Envelope,
        now: Timestamp,
    ) -> Result<Command, Rejection> {
        let body = self.root.verify(envelope, RoleName::Operator, "command")?;
        let command: Command = parse_document(&body, "command")?;
        command.validate()?;
        command.check_binding(&self.identity.fleet, &self.identity.device_id)?;
        check_not_expired(command.expires_at, now)?;
        Ok(command)
    }

    fn check_fleet(&self, fleet: &str) -> Result<(), Rejection> {
        if fleet == self.identity.fleet {
            Ok(())
        } else {
            Err(Rejection::WrongFleet {
                want: self.identity.fleet.clone(),
                got: fleet.to_string(),
            })
        }
    }
}

/// The version-floor and expiry rules shared by every versioned stream:
/// lower versions and the same version with other bytes are rollbacks; the
/// same bytes again are known; only new documents must be unexpired.
fn versioned<T>(
    document: T,
    version: u64,
    expires_at: Timestamp,
    body: &[u8],
    floor: Option<&StoredDocument>,
    now: Timestamp,
) -> Result<Verdict<T>, Rejection> {
    if let Some(floor) = floor {
        if version < floor.version {
            return Err(Rejection::Rollback {
                have: floor.version,
                got: version,
            });
        }
        if version == floor.version {
            let same = Envelope::from_slice(floor.envelope.as_bytes())
                .and_then(|stored| stored.payload_bytes())
                .is_ok_and(|stored| stored == body);
            return if same {
                Ok(Verdict::Known)
            } else {
                Err(Rejection::Rollback {
                    have: floor.version,
                    got: version,
                })
            };
        }
    }
    check_not_expired(expires_at, now)?;
    Ok(Verdict::New(Box::new(document)))
}

/// The durable stream an assignment's version floor belongs to.
pub fn assignment_stream(target: &str) -> String {
    format!("assignment:{target}")
}

/// The prefix of the alerts' durable streams, one per alert id.
pub const ALERT_STREAMS: &str = "alert:";

/// The durable stream an alert's version floor belongs to.
pub fn alert_stream(id: &str) -> String {
    format!("{ALERT_STREAMS}{id}")
}

/// A root of fleet `acme` whose root role is `root`'s key and whose
/// publisher and operator roles are `publisher`'s, signed by `signers`:
/// what the tests of trust and of the agent's core start from.
#[cfg(test)]
pub(crate) fn test_root(
    version: u64,
    root: &phare_protocol::SigningKey,
    publisher: &phare_protocol::SigningKey,
    signers: &[&phare_protocol::SigningKey],
) -> Envelope {
    use base64::Engine;
    use phare_protocol::document::{KeyEntry, Role};
    use std::collections::BTreeMap;
    let entry = |key: &phare_protocol::SigningKey| KeyEntry {
        alg: "ed25519".into(),
        public: base64::engine::general_purpose::STANDARD.encode(key.public_key()),
    };
    let role = |key: &phare_protocol::SigningKey| Role {
        keyids: vec![key.keyid()],
        threshold: 1,
    };
    let document = Root {
        kind: "root".into(),
        fleet: "acme".into(),
        version,
        expires_at: "2099-01-01T00:00:00Z".parse().unwrap(),
        keys: BTreeMap::from([
            (root.keyid(), entry(root)),
            (publisher.keyid(), entry(publisher)),
        ]),
        roles: BTreeMap::from([
            ("root".into(), role(root)),
            ("publisher".into(), role(publisher)),
            ("operator".into(), role(publisher)),
        ]),
    };
    Envelope::sign(
        &phare_protocol::envelope::payload_type("root"),
        &serde_json::to_vec(&document).unwrap(),
        signers,
    )
}

#[cfg(test)]
mod tests {
    use phare_protocol::SigningKey;
    use phare_protocol::envelope::payload_type;
    use serde_json::json;

    use super::*;

    struct Keys {
        root: SigningKey,
        publisher: SigningKey,
    }

    fn keys() -> Keys {
        Keys {
            root: SigningKey::generate().unwrap(),
            publisher: SigningKey::generate().unwrap(),
        }
    }

    fn root_envelope(k: &Keys, version: u64, signers: &[&SigningKey]) -> Envelope {
        test_root(version, &k.root, &k.publisher, signers)
    }

    fn assignment(k: &Keys, version: u64, target: &str, expires_at: &str) -> Envelope {
        live_assignment(k, version, target, expires_at, &[])
    }

    fn live_assignment(
        k: &Keys,
        version: u64,
        target: &str,
        expires_at: &str,
        live: &[&str],
    ) -> Envelope {
        let items: Vec<_> = live.iter().map(|uri| json!({"live": uri})).collect();
        let doc = json!({
            "kind": "assignment", "fleet": "acme", "target": target, "version": version,
            "issued_at": "2026-01-01T00:00:00Z", "expires_at": expires_at,
            "assets": {}, "playlists": {"main": items}, "default_playlist": "main"
        });
        Envelope::sign(
            &payload_type("assignment"),
            &serde_json::to_vec(&doc).unwrap(),
            &[&k.publisher],
        )
    }

    fn trust(k: &Keys) -> Trust {
        let identity = Identity {
            fleet: "acme".into(),
            device_id: "lobby-1".into(),
            groups: vec!["lobby".into()],
            allow_plaintext_live: false,
        };
        Trust::new(&root_envelope(k, 1, &[&k.root]), &[], identity).unwrap()
    }

    fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    const LATER: &str = "2027-01-01T00:00:00Z";

    #[test]
    fn newer_versions_pass_and_the_same_document_is_known() {
        let k = keys();
        let t = trust(&k);
        let v2 = assignment(&k, 2, "device:lobby-1", LATER);
        assert!(matches!(
            t.verify_assignment(&v2, None, now()).unwrap(),
            Verdict::New(_)
        ));
        let floor = StoredDocument {
            version: 2,
            envelope: v2.to_json(),
        };
        assert_eq!(
            t.verify_assignment(&v2, Some(&floor), now()).unwrap(),
            Verdict::Known
        );
        let v3 = assignment(&k, 3, "group:lobby", LATER);
        assert!(matches!(
            t.verify_assignment(&v3, Some(&floor), now()).unwrap(),
            Verdict::New(_)
        ));
    }

    #[test]
    fn lower_or_same_version_with_other_bytes_is_a_rollback() {
        let k = keys();
        let t = trust(&k);
        let floor = StoredDocument {
            version: 5,
            envelope: assignment(&k, 5, "device:lobby-1", LATER).to_json(),
        };
        let older = assignment(&k, 4, "device:lobby-1", LATER);
        assert_eq!(
            t.verify_assignment(&older, Some(&floor), now())
                .unwrap_err()
                .code(),
            "rollback"
        );
        let same_version = assignment(&k, 5, "device:lobby-1", "2028-01-01T00:00:00Z");
        assert_eq!(
            t.verify_assignment(&same_version, Some(&floor), now())
                .unwrap_err()
                .code(),
            "rollback"
        );
    }

    #[test]
    fn expired_new_documents_and_strangers_targets_are_refused() {
        let k = keys();
        let t = trust(&k);
        let expired = assignment(&k, 2, "device:lobby-1", "2026-05-01T00:00:00Z");
        assert_eq!(
            t.verify_assignment(&expired, None, now())
                .unwrap_err()
                .code(),
            "expired"
        );
        // ...but a stored one is still playable after it expires.
        let stored = StoredDocument {
            version: 2,
            envelope: expired.to_json(),
        };
        t.reverify_stored(&stored).unwrap();
        let other = assignment(&k, 2, "device:lobby-2", LATER);
        assert_eq!(
            t.verify_assignment(&other, None, now()).unwrap_err().code(),
            "wrong_target"
        );
    }

    #[test]
    fn roots_are_applied_in_order_whatever_order_they_arrive_in() {
        let k = keys();
        let mut t = trust(&k);
        let v2 = root_envelope(&k, 2, &[&k.root]);
        let v3 = root_envelope(&k, 3, &[&k.root]);
        assert_eq!(t.offer_root(3, v3), RootUpdate::default());
        let accepted = t.offer_root(2, v2).accepted;
        assert_eq!(
            accepted.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(t.root().version, 3);
        // Replaying an old root changes nothing.
        assert_eq!(
            t.offer_root(1, root_envelope(&k, 1, &[&k.root])),
            RootUpdate::default()
        );
        // A stored chain is replayed at start-up.
        let identity = Identity {
            fleet: "acme".into(),
            device_id: "lobby-1".into(),
            groups: vec![],
            allow_plaintext_live: false,
        };
        let stored: Vec<String> = accepted.into_iter().map(|(_, e)| e).collect();
        let again = Trust::new(&root_envelope(&k, 1, &[&k.root]), &stored, identity).unwrap();
        assert_eq!(again.root().version, 3);
    }

    #[test]
    fn bogus_roots_ahead_never_block_the_real_next_one() {
        let k = keys();
        let mut t = trust(&k);
        // A hostile broker fills the window with versions 3..66, signed by
        // a key of its own.
        let forger = keys();
        for version in 3..=66 {
            let bogus = root_envelope(&forger, version, &[&forger.root]);
            assert_eq!(t.offer_root(version, bogus).accepted, vec![]);
        }
        // The real version 2 is still verified at once...
        let accepted = t.offer_root(2, root_envelope(&k, 2, &[&k.root]));
        assert_eq!(accepted.accepted.len(), 1, "{accepted:?}");
        assert_eq!(t.root().version, 2);
        // ...and the real version 4, held ahead, displaces the highest
        // bogus ones, to be applied when the real 3 arrives.
        t.offer_root(4, root_envelope(&k, 4, &[&k.root]));
        let update = t.offer_root(3, root_envelope(&k, 3, &[&k.root]));
        assert_eq!(
            update.accepted.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(t.root().version, 4);
        assert!(t.ahead.len() <= MAX_ROOTS_AHEAD);
    }

    #[test]
    fn plaintext_live_sources_play_only_where_the_config_allows_them() {
        let k = keys();
        let mut t = trust(&k);
        let plaintext = live_assignment(
            &k,
            2,
            "device:lobby-1",
            LATER,
            &["https://tv.example/a.m3u8", "rtsp://camera.example/live"],
        );
        let rejection = t.verify_assignment(&plaintext, None, now()).unwrap_err();
        assert_eq!(rejection.code(), "unsafe_url");
        assert!(
            rejection.to_string().contains("rtsp://camera.example/live")
                && rejection.to_string().contains("allow_plaintext_live"),
            "{rejection}"
        );
        let secure = live_assignment(
            &k,
            3,
            "device:lobby-1",
            LATER,
            &[
                "https://tv.example/a.m3u8",
                "srt://gw.example:7001?passphrase=0123456789",
            ],
        );
        assert!(matches!(
            t.verify_assignment(&secure, None, now()).unwrap(),
            Verdict::New(_)
        ));
        assert!(!t.status(now()).plaintext_live);

        t.identity.allow_plaintext_live = true;
        assert!(matches!(
            t.verify_assignment(&plaintext, None, now()).unwrap(),
            Verdict::New(_)
        ));
        assert!(t.status(now()).plaintext_live);
    }

    #[test]
    fn an_expired_root_is_reported_once_and_changes_nothing_else() {
        let k = keys();
        let mut t = trust(&k);
        let frozen: Timestamp = "2099-06-01T00:00:00Z".parse().unwrap();
        assert_eq!(t.check_freeze(now()), None);
        assert!(!t.status(now()).root_expired);

        let event = t.check_freeze(frozen).expect("an expired root is reported");
        assert_eq!(
            (event.kind, event.reason.as_deref()),
            (EventKind::RootExpired, Some("expired"))
        );
        assert!(event.is_error());
        assert!(event.detail.contains("root version 1"), "{}", event.detail);
        let status = t.status(frozen);
        assert!(status.root_expired);
        assert_eq!(status.root_version, 1);
        assert_eq!(t.check_freeze(frozen), None, "once per root");
        // Documents are still verified (the screen keeps its programme).
        let v2 = assignment(&k, 2, "device:lobby-1", "2100-01-01T00:00:00Z");
        assert!(matches!(
            t.verify_assignment(&v2, None, frozen).unwrap(),
            Verdict::New(_)
        ));
        // A newer root that has also expired is reported in its turn.
        t.offer_root(2, root_envelope(&k, 2, &[&k.root]));
        assert!(t.check_freeze(frozen).is_some());
    }
}

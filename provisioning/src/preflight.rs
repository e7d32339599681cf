//! What a document must pass before it leaves the operator's hands: the
//! rules devices apply (docs/protocol.md, "Documents" and "Trust"), judged
//! here against the fleet's current root and the clock. `phare sign` will
//! not sign, and `phare publish` will not publish, what every device would
//! refuse; a refused publish never replaces the good retained document
//! that screens enrolled later still need.
//!
//! Pure: the root, the clock and the documents are passed in.

use anyhow::{Context, anyhow, bail};
use jiff::Timestamp;
use phare_protocol::document::{RoleName, Root, check_not_expired, validate_payload};
use phare_protocol::keys::SigningKey;
use phare_protocol::{Envelope, Rejection};
use serde_json::Value;

use crate::keys::signing_role;

/// Checks a payload of `kind` as devices of `fleet` will read it at `now`:
/// its shape (strict members, schedule, lifetime), its fleet when known,
/// and that it has not expired. The error says which rule fails and the fix.
pub fn check_payload(
    kind: &str,
    payload: &[u8],
    fleet: Option<&str>,
    now: Timestamp,
) -> anyhow::Result<()> {
    validate_payload(kind, payload).map_err(|why| anyhow!("{why}"))?;
    let document: Value = serde_json::from_slice(payload).context("the payload is not JSON")?;
    let named = document["fleet"].as_str().unwrap_or_default();
    if let Some(fleet) = fleet
        && named != fleet
    {
        bail!(
            "fleet {named:?} is not this keyring's fleet {fleet:?}: its screens would never \
             see it (the broker's ACL drops it); write \"fleet\": {fleet:?}"
        );
    }
    let expires_at: Timestamp = document["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .context("the payload has no expires_at")?;
    check_not_expired(expires_at, now).map_err(|_| {
        anyhow!("expires_at {expires_at} has passed (it is {now}): set a later expires_at")
    })
}

/// Checks that `key` is one the devices count for a `kind` document: one
/// of its role's keys in the root they hold. A root document is also
/// signed by the root keys it names itself (a rotation).
pub fn check_signer(
    kind: &str,
    payload: &[u8],
    key: &SigningKey,
    root: &Root,
) -> anyhow::Result<()> {
    let role = signing_role(kind)?;
    let keyid = key.keyid();
    let in_role = |root: &Root| {
        root.roles
            .get(role.as_str())
            .is_some_and(|r| r.keyids.contains(&keyid))
    };
    let next_root = (role == RoleName::Root)
        .then(|| serde_json::from_slice::<Root>(payload).ok())
        .flatten();
    if in_role(root) || next_root.as_ref().is_some_and(in_role) {
        return Ok(());
    }
    let roles: Vec<&str> = root
        .roles
        .iter()
        .filter(|(_, r)| r.keyids.contains(&keyid))
        .map(|(name, _)| name.as_str())
        .collect();
    let role = role.as_str();
    if roles.is_empty() {
        bail!(
            "key {keyid} is not in root version {} of fleet {:?} (retired by a rotation, \
             revoked, or another fleet's): devices ignore its signature; sign with a current \
             {role} key (`phare keys show` lists them)",
            root.version,
            root.fleet
        )
    }
    bail!(
        "key {keyid} is the fleet's {} key: devices count only {role} keys on a {kind} \
         document; sign with a {role} key (`phare keys show` lists them)",
        roles.join(" and ")
    )
}

/// How many of the role's signatures an envelope carries and needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signatures {
    pub valid: usize,
    pub threshold: usize,
}

/// Counts the valid signatures of the role that signs `kind`: a partial
/// envelope (threshold signing by key holders in several places) is not an
/// error while it is being signed, only when it is published.
pub fn count_signatures(
    envelope: &Envelope,
    kind: &str,
    root: &Root,
) -> anyhow::Result<Signatures> {
    let role = signing_role(kind)?;
    match root.verify(envelope, role, kind) {
        Ok(_) => {
            let threshold = root.roles.get(role.as_str()).map_or(0, |r| r.threshold);
            Ok(Signatures {
                valid: threshold,
                threshold,
            })
        }
        Err(Rejection::Threshold {
            valid, threshold, ..
        }) => Ok(Signatures { valid, threshold }),
        Err(other) => Err(anyhow!("{other}")),
    }
}

/// Checks an envelope as a device holding `root` takes it at `now`: the
/// threshold of its role's signatures, then the payload. A root is judged
/// by its predecessor (`previous`, the version devices hold before it), or
/// by itself when it is the first.
pub fn check_envelope(
    envelope: &Envelope,
    root: &Root,
    previous: Option<&Root>,
    now: Timestamp,
) -> anyhow::Result<String> {
    let payload = envelope.payload_bytes()?;
    let document: Value = serde_json::from_slice(&payload).context("the payload is not JSON")?;
    let kind = document["kind"]
        .as_str()
        .context("the payload has no \"kind\"")?
        .to_string();
    let role = signing_role(&kind)?;
    let judged = if kind == "root" {
        let next = match previous {
            Some(previous) => previous.verify_successor(envelope),
            None => Root::from_pinned(envelope),
        };
        next.map_err(|why| anyhow!("{why}"))?;
        Ok(())
    } else {
        root.verify(envelope, role, &kind).map(drop)
    };
    judged.map_err(|why| match why {
        Rejection::Threshold {
            valid, threshold, ..
        } => anyhow!(
            "it carries {valid} of the {threshold} {} signatures devices require: add \
             signatures with `phare sign --add-to <envelope> --key <{}-key.pk8>`",
            role.as_str(),
            role.as_str()
        ),
        other => anyhow!("{other}"),
    })?;
    // The root being published is what its own fleet and expiry are
    // judged by.
    let judge = match kind.as_str() {
        "root" => &serde_json::from_slice::<Root>(&payload)?,
        _ => root,
    };
    check_payload(&kind, &payload, Some(&judge.fleet), now)?;
    Ok(kind)
}

/// Checks that `new` supersedes what a broker retains on its topic, as
/// devices that hold the retained one judge it: a lower version, or the
/// same version with other bytes, is a rollback to them. A retained
/// document the root's keys did not sign (a broker's own) is no floor of
/// any device, and is ignored.
pub fn check_supersedes(new: &Envelope, retained: &[u8], root: &Root) -> anyhow::Result<()> {
    let Ok(retained) = Envelope::from_slice(retained) else {
        return Ok(());
    };
    let version = |envelope: &Envelope| -> Option<(String, u64, Vec<u8>)> {
        let payload = envelope.payload_bytes().ok()?;
        let document: Value = serde_json::from_slice(&payload).ok()?;
        let kind = document["kind"].as_str()?.to_string();
        Some((kind, document["version"].as_u64()?, payload))
    };
    let (Some((kind, new_version, new_payload)), Some((_, held, held_payload))) =
        (version(new), version(&retained))
    else {
        return Ok(());
    };
    let signed = signing_role(&kind).is_ok_and(|role| root.verify(&retained, role, &kind).is_ok());
    if !signed || new_version > held || (new_version == held && new_payload == held_payload) {
        return Ok(());
    }
    bail!(
        "the broker retains version {held} of this {kind}: devices holding it refuse version \
         {new_version} as a rollback; sign it as version {} (`phare sign --bump --broker …`)",
        held + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{InitSpec, Keyring};
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-12-08T10:00:00Z".parse().unwrap()
    }

    fn assignment() -> Value {
        json!({
            "kind": "assignment", "fleet": "acme", "target": "group:lobby", "version": 1,
            "issued_at": "2026-12-08T09:00:00Z", "expires_at": "2027-01-01T00:00:00Z",
            "assets": {}, "playlists": {"main": []}, "default_playlist": "main",
        })
    }

    fn keyring() -> (tempfile::TempDir, Keyring) {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::init(dir.path(), "acme", InitSpec::default()).unwrap();
        (dir, ring)
    }

    fn refusal(document: &Value, root: &Root) -> String {
        let payload = serde_json::to_vec(document).unwrap();
        format!(
            "{:#}",
            check_payload("assignment", &payload, Some(&root.fleet), now()).unwrap_err()
        )
    }

    #[test]
    fn a_payload_is_judged_by_the_fleet_and_the_clock() {
        let (_dir, ring) = keyring();
        let good = serde_json::to_vec(&assignment()).unwrap();
        check_payload("assignment", &good, Some("acme"), now()).unwrap();

        let mut past = assignment();
        past["issued_at"] = "2026-11-01T00:00:00Z".into();
        past["expires_at"] = "2026-12-01T00:00:00Z".into();
        let why = refusal(&past, ring.root());
        assert!(
            why.contains("expires_at 2026-12-01T00:00:00Z has passed"),
            "{why}"
        );

        let mut other_fleet = assignment();
        other_fleet["fleet"] = "acm".into();
        let why = refusal(&other_fleet, ring.root());
        assert!(
            why.contains("fleet \"acm\" is not this keyring's fleet \"acme\""),
            "{why}"
        );

        let mut bad_day = assignment();
        bad_day["schedule"] = json!([{"playlist": "main", "days": ["thurs"]}]);
        let why = refusal(&bad_day, ring.root());
        assert!(why.contains("unknown day \"thurs\""), "{why}");
    }

    #[test]
    fn only_the_roles_current_keys_may_sign() {
        let (_dir, mut ring) = keyring();
        let payload = serde_json::to_vec(&assignment()).unwrap();
        let publisher =
            SigningKey::from_pkcs8(ring.held_keys(RoleName::Publisher)[0].pkcs8()).unwrap();
        check_signer("assignment", &payload, &publisher, ring.root()).unwrap();

        let operator = ring.held_keys(RoleName::Operator)[0];
        let why = check_signer("assignment", &payload, operator, ring.root()).unwrap_err();
        assert!(
            why.to_string().contains("is the fleet's operator key"),
            "{why}"
        );
        let root_key = ring.held_keys(RoleName::Root)[0];
        let why = check_signer("assignment", &payload, root_key, ring.root()).unwrap_err();
        assert!(why.to_string().contains("is the fleet's root key"), "{why}");

        ring.rotate(RoleName::Publisher).unwrap();
        let why = check_signer("assignment", &payload, &publisher, ring.root()).unwrap_err();
        assert!(
            why.to_string().contains("is not in root version 2"),
            "{why}"
        );
        let stranger = SigningKey::generate().unwrap();
        assert!(check_signer("command", &payload, &stranger, ring.root()).is_err());
    }

    #[test]
    fn an_envelope_is_published_only_with_its_threshold() {
        let (_dir, ring) = keyring();
        let payload = serde_json::to_vec(&assignment()).unwrap();
        let kind = "assignment";
        let unsigned = Envelope::sign(&phare_protocol::envelope::payload_type(kind), &payload, &[]);
        assert_eq!(
            count_signatures(&unsigned, kind, ring.root()).unwrap(),
            Signatures {
                valid: 0,
                threshold: 1
            }
        );
        let why = check_envelope(&unsigned, ring.root(), None, now()).unwrap_err();
        assert!(
            why.to_string()
                .contains("carries 0 of the 1 publisher signatures"),
            "{why}"
        );
        let signed = ring.sign(kind, &assignment()).unwrap();
        assert_eq!(
            check_envelope(&signed, ring.root(), None, now()).unwrap(),
            kind
        );
        assert_eq!(
            count_signatures(&signed, kind, ring.root()).unwrap().valid,
            1
        );
    }

    #[test]
    fn a_document_must_supersede_the_signed_one_retained() {
        let (_dir, ring) = keyring();
        let at = |version: u64| {
            let mut document = assignment();
            document["version"] = version.into();
            ring.sign("assignment", &document).unwrap()
        };
        let retained = at(5).to_json().into_bytes();
        check_supersedes(&at(6), &retained, ring.root()).unwrap();
        check_supersedes(&at(5), &retained, ring.root()).unwrap();
        let why = check_supersedes(&at(4), &retained, ring.root()).unwrap_err();
        assert!(why.to_string().contains("retains version 5"), "{why}");
        assert!(why.to_string().contains("sign it as version 6"), "{why}");
        let mut other = assignment();
        other["version"] = 5.into();
        other["default_playlist"] = "main".into();
        other["playlists"]["extra"] = json!([]);
        let same_version = ring.sign("assignment", &other).unwrap();
        assert!(check_supersedes(&same_version, &retained, ring.root()).is_err());
        // What a broker made up itself holds no device back.
        let (_other_dir, stranger) = keyring();
        let mut forged = assignment();
        forged["version"] = 1_000_000.into();
        let forged = stranger.sign("assignment", &forged).unwrap().to_json();
        check_supersedes(&at(6), forged.as_bytes(), ring.root()).unwrap();
    }

    #[test]
    fn a_root_is_judged_by_the_one_before_it() {
        let (dir, mut ring) = keyring();
        let first = ring.root().clone();
        let written = ring.rotate(RoleName::Publisher).unwrap();
        let second = Envelope::from_slice(&std::fs::read(&written.path).unwrap()).unwrap();
        let now = Timestamp::now();
        assert_eq!(
            check_envelope(&second, ring.root(), Some(&first), now).unwrap(),
            "root"
        );
        // Devices holding another fleet's root would refuse it.
        let (_other_dir, stranger) = keyring();
        assert!(check_envelope(&second, ring.root(), Some(stranger.root()), now).is_err());
        drop(dir);
    }
}

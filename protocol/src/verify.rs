//! Signature thresholds and root rotation (docs/protocol.md §4–§5).
//!
//! A role is satisfied when at least `threshold` distinct keys of that role
//! produced a valid signature over the envelope's PAE. Signatures by keys
//! outside the role are ignored; a key that signs twice counts once.
//!
//! The cost of verifying is bounded whatever a hostile mirror sends: an
//! envelope carries at most [`MAX_SIGNATURES`] entries, a key is checked on
//! its first entry only, and checking stops once the threshold is met.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::Rejection;
use crate::document::{RoleName, Root, parse_document};
use crate::envelope::{Envelope, MAX_SIGNATURES, pae, payload_type};
use crate::keys::{keyid_of, verify_ed25519};

/// Highest threshold a role may have, so that an envelope signed by two
/// roots' thresholds (a root rotation) fits within [`MAX_SIGNATURES`].
pub const MAX_THRESHOLD: usize = MAX_SIGNATURES / 2;

impl Root {
    /// Checks the root is internally sound: every key is a well-formed
    /// Ed25519 key under its own id, and every role has a reachable threshold.
    pub fn validate(&self) -> Result<(), Rejection> {
        let malformed = |why: String| Err(Rejection::Malformed(why));
        if self.kind != "root" {
            return malformed(format!("expected a root document, got {:?}", self.kind));
        }
        for (keyid, key) in &self.keys {
            let public = BASE64.decode(&key.public).unwrap_or_default();
            if key.alg != "ed25519" || public.len() != 32 || keyid_of(&public) != *keyid {
                return malformed(format!(
                    "key {keyid} is not an ed25519 key under its own id"
                ));
            }
        }
        for role in [RoleName::Root, RoleName::Publisher, RoleName::Operator] {
            let Some(spec) = self.roles.get(role.as_str()) else {
                return malformed(format!("role {} is missing", role.as_str()));
            };
            let keys: BTreeSet<&String> = spec.keyids.iter().collect();
            if let Some(unknown) = keys.iter().find(|k| !self.keys.contains_key(k.as_str())) {
                return malformed(format!(
                    "role {} names unknown key {unknown}",
                    role.as_str()
                ));
            }
            if spec.threshold == 0 || spec.threshold > keys.len() {
                return malformed(format!(
                    "role {} has threshold {} with {} distinct keys",
                    role.as_str(),
                    spec.threshold,
                    keys.len()
                ));
            }
            // A rotation carries a threshold of the old root's keys and one
            // of the new root's, within the envelope's signature cap.
            if spec.threshold > MAX_THRESHOLD {
                return malformed(format!(
                    "role {} has threshold {}; at most {MAX_THRESHOLD} is supported",
                    role.as_str(),
                    spec.threshold
                ));
            }
        }
        Ok(())
    }

    /// Verifies that `envelope` carries a `kind` document signed by a
    /// threshold of `role`'s keys, and returns the verified payload bytes.
    pub fn verify(
        &self,
        envelope: &Envelope,
        role: RoleName,
        kind: &str,
    ) -> Result<Vec<u8>, Rejection> {
        self.verify_with(envelope, role, kind, verify_ed25519)
    }

    /// [`Root::verify`] with the signature check passed in, so that tests
    /// can count how many signatures an envelope costs.
    fn verify_with(
        &self,
        envelope: &Envelope,
        role: RoleName,
        kind: &str,
        mut check: impl FnMut(&[u8], &[u8], &[u8]) -> bool,
    ) -> Result<Vec<u8>, Rejection> {
        let expected_type = payload_type(kind);
        if envelope.payload_type != expected_type {
            return Err(Rejection::Malformed(format!(
                "payloadType {:?}, expected {expected_type:?}",
                envelope.payload_type
            )));
        }
        if envelope.signatures.len() > MAX_SIGNATURES {
            return Err(Rejection::Malformed(format!(
                "envelope carries {} signatures; at most {MAX_SIGNATURES} are accepted",
                envelope.signatures.len()
            )));
        }
        let spec = self
            .roles
            .get(role.as_str())
            .ok_or_else(|| Rejection::Malformed(format!("root has no {} role", role.as_str())))?;
        let body = envelope.payload_bytes()?;
        let message = pae(&envelope.payload_type, &body);
        // Each key is checked once, on its first entry, and checking stops
        // as soon as the threshold is met: the cost of an envelope is at
        // most one Ed25519 verification per distinct key of the role.
        let mut seen = BTreeSet::new();
        let mut valid = 0;
        let mut bad = None;
        for signature in &envelope.signatures {
            if !spec.keyids.contains(&signature.keyid) || !seen.insert(signature.keyid.as_str()) {
                continue;
            }
            let Some(key) = self.keys.get(&signature.keyid) else {
                continue;
            };
            let public = BASE64.decode(&key.public).unwrap_or_default();
            let sig = BASE64.decode(&signature.sig).unwrap_or_default();
            if check(&public, &message, &sig) {
                valid += 1;
                if valid >= spec.threshold {
                    return Ok(body);
                }
            } else {
                bad.get_or_insert_with(|| signature.keyid.clone());
            }
        }
        // A forged or tampered signature by a known key is the more useful
        // diagnosis than a bare count.
        match bad {
            Some(keyid) => Err(Rejection::BadSignature(keyid)),
            None => Err(Rejection::Threshold {
                role: role.as_str(),
                valid,
                threshold: spec.threshold,
            }),
        }
    }

    /// Accepts the root a device is born with: it must be sound and signed
    /// by a threshold of its own root keys.
    pub fn from_pinned(envelope: &Envelope) -> Result<Root, Rejection> {
        let root: Root = parse_document(&envelope.payload_bytes()?, "root")?;
        root.validate()?;
        root.verify(envelope, RoleName::Root, "root")?;
        Ok(root)
    }

    /// Accepts root N+1: signed by a threshold of this root's root keys and
    /// a threshold of its own, for the same fleet, version exactly N+1.
    pub fn verify_successor(&self, envelope: &Envelope) -> Result<Root, Rejection> {
        let body = self.verify(envelope, RoleName::Root, "root")?;
        let next: Root = parse_document(&body, "root")?;
        next.validate()?;
        next.verify(envelope, RoleName::Root, "root")?;
        if next.fleet != self.fleet {
            return Err(Rejection::WrongFleet {
                want: self.fleet.clone(),
                got: next.fleet,
            });
        }
        if next.version != self.version + 1 {
            return Err(Rejection::Rollback {
                have: self.version,
                got: next.version,
            });
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::SigningKey;
    use crate::document::{KeyEntry, Role};

    struct Fixture {
        root_keys: Vec<SigningKey>,
        publisher: SigningKey,
        operator: SigningKey,
    }

    fn fixture(root_count: usize) -> Fixture {
        Fixture {
            root_keys: (0..root_count)
                .map(|_| SigningKey::generate().unwrap())
                .collect(),
            publisher: SigningKey::generate().unwrap(),
            operator: SigningKey::generate().unwrap(),
        }
    }

    fn root_doc(
        f: &Fixture,
        version: u64,
        root_threshold: usize,
        publisher_threshold: usize,
    ) -> Root {
        let mut keys = BTreeMap::new();
        let all = f.root_keys.iter().chain([&f.publisher, &f.operator]);
        for k in all {
            keys.insert(
                k.keyid(),
                KeyEntry {
                    alg: "ed25519".into(),
                    public: BASE64.encode(k.public_key()),
                },
            );
        }
        let role = |ks: Vec<&SigningKey>, threshold| Role {
            keyids: ks.iter().map(|k| k.keyid()).collect(),
            threshold,
        };
        let roles = BTreeMap::from([
            (
                "root".to_string(),
                role(f.root_keys.iter().collect(), root_threshold),
            ),
            (
                "publisher".to_string(),
                role(vec![&f.publisher], publisher_threshold),
            ),
            ("operator".to_string(), role(vec![&f.operator], 1)),
        ]);
        Root {
            kind: "root".into(),
            fleet: "acme".into(),
            version,
            expires_at: "2030-01-01T00:00:00Z".parse().unwrap(),
            keys,
            roles,
        }
    }

    fn signed_root(root: &Root, keys: &[&SigningKey]) -> Envelope {
        Envelope::sign(
            &payload_type("root"),
            &serde_json::to_vec(root).unwrap(),
            keys,
        )
    }

    const ASSIGNMENT: &[u8] = br#"{"kind":"assignment"}"#;

    #[test]
    fn publisher_signature_verifies_and_returns_the_exact_payload() {
        let f = fixture(1);
        let root = root_doc(&f, 1, 1, 1);
        let env = Envelope::sign(&payload_type("assignment"), ASSIGNMENT, &[&f.publisher]);
        assert_eq!(
            root.verify(&env, RoleName::Publisher, "assignment")
                .unwrap(),
            ASSIGNMENT
        );
    }

    #[test]
    fn a_tampered_payload_is_a_bad_signature() {
        let f = fixture(1);
        let root = root_doc(&f, 1, 1, 1);
        let mut env = Envelope::sign(&payload_type("assignment"), ASSIGNMENT, &[&f.publisher]);
        env.payload = BASE64.encode(br#"{"kind":"assignmenT"}"#);
        assert_eq!(
            root.verify(&env, RoleName::Publisher, "assignment")
                .unwrap_err(),
            Rejection::BadSignature(f.publisher.keyid())
        );
    }

    #[test]
    fn a_wrong_signature_is_a_bad_signature() {
        let f = fixture(1);
        let root = root_doc(&f, 1, 1, 1);
        let mut env = Envelope::sign(&payload_type("assignment"), ASSIGNMENT, &[&f.publisher]);
        // A valid signature, but over other bytes.
        let other = Envelope::sign(&payload_type("assignment"), b"{}", &[&f.publisher]);
        env.signatures[0].sig = other.signatures[0].sig.clone();
        assert_eq!(
            root.verify(&env, RoleName::Publisher, "assignment")
                .unwrap_err()
                .code(),
            "bad_signature"
        );
    }

    #[test]
    fn an_unknown_key_does_not_count() {
        let f = fixture(1);
        let root = root_doc(&f, 1, 1, 1);
        let stranger = SigningKey::generate().unwrap();
        let env = Envelope::sign(&payload_type("assignment"), ASSIGNMENT, &[&stranger]);
        assert_eq!(
            root.verify(&env, RoleName::Publisher, "assignment")
                .unwrap_err(),
            Rejection::Threshold {
                role: "publisher",
                valid: 0,
                threshold: 1
            }
        );
    }

    #[test]
    fn a_key_of_another_role_does_not_count() {
        let f = fixture(1);
        let root = root_doc(&f, 1, 1, 1);
        let env = Envelope::sign(&payload_type("assignment"), ASSIGNMENT, &[&f.operator]);
        assert_eq!(
            root.verify(&env, RoleName::Publisher, "assignment")
                .unwrap_err()
                .code(),
            "threshold"
        );
    }

    #[test]
    fn the_payload_type_is_bound() {
        let f = fixture(1);
        let root = root_doc(&f, 1, 1, 1);
        let env = Envelope::sign(&payload_type("alert"), ASSIGNMENT, &[&f.publisher]);
        assert_eq!(
            root.verify(&env, RoleName::Publisher, "assignment")
                .unwrap_err()
                .code(),
            "malformed"
        );
    }

    /// A vector built outside this code base: RFC 8032 test key 1 signing
    /// the DSSE PAE of a fixed payload, computed with Python's
    /// `cryptography` package. Guards PAE, key ids and base64 against
    /// mistakes that a round trip through our own signer would hide.
    #[test]
    fn an_externally_built_envelope_verifies() {
        let public_hex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let public = hex::decode(public_hex).unwrap();
        let keyid = "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9";
        assert_eq!(keyid_of(&public), keyid);
        let json = format!(
            r#"{{"payloadType":"application/vnd.phare.assignment+json",
                "payload":"eyJraW5kIjoiYXNzaWdubWVudCIsInZlcnNpb24iOjF9",
                "signatures":[{{"keyid":"{keyid}","sig":"lN6pCP1C41nLCq5+CFSeAe6rgHP3IPreYBw5c9uvVSy1cmCVxalvzqg69p78dyzS+vm/Voad3xVa7bGDZoXyDg=="}}]}}"#
        );
        let envelope = Envelope::from_slice(json.as_bytes()).unwrap();
        let f = fixture(1);
        let mut root = root_doc(&f, 1, 1, 1);
        root.keys.insert(
            keyid.into(),
            KeyEntry {
                alg: "ed25519".into(),
                public: BASE64.encode(&public),
            },
        );
        root.roles.get_mut("publisher").unwrap().keyids = vec![keyid.into()];
        assert_eq!(
            root.verify(&envelope, RoleName::Publisher, "assignment")
                .unwrap(),
            br#"{"kind":"assignment","version":1}"#
        );
    }

    #[test]
    fn duplicate_signatures_count_once() {
        let f = fixture(3);
        let root = root_doc(&f, 1, 2, 1);
        let mut env = signed_root(&root, &[&f.root_keys[0]]);
        env.signatures.push(env.signatures[0].clone());
        assert_eq!(
            root.verify(&env, RoleName::Root, "root").unwrap_err(),
            Rejection::Threshold {
                role: "root",
                valid: 1,
                threshold: 2
            }
        );
        env.add_signature(&f.root_keys[2]);
        root.verify(&env, RoleName::Root, "root").unwrap();
    }

    /// Verifies `env` as the root role, counting the signatures checked.
    fn count_checks(root: &Root, env: &Envelope) -> (Result<(), Rejection>, usize) {
        let mut checks = 0;
        let verdict = root.verify_with(env, RoleName::Root, "root", |public, message, sig| {
            checks += 1;
            verify_ed25519(public, message, sig)
        });
        (verdict.map(drop), checks)
    }

    #[test]
    fn thousands_of_copies_of_a_real_signature_cost_nothing() {
        let f = fixture(3);
        let root = root_doc(&f, 1, 2, 1);
        let mut env = signed_root(&root, &[&f.root_keys[0], &f.root_keys[1]]);
        let copies = env.signatures[0].clone();
        env.signatures
            .splice(1..1, std::iter::repeat_n(copies, 5000));
        let (verdict, checks) = count_checks(&root, &env);
        let rejection = verdict.unwrap_err();
        assert_eq!(rejection.code(), "malformed");
        assert!(rejection.to_string().contains("signatures"), "{rejection}");
        assert_eq!(checks, 0, "refused before any signature is checked");
    }

    #[test]
    fn a_key_is_checked_once_and_checking_stops_at_the_threshold() {
        let f = fixture(3);
        let root = root_doc(&f, 1, 2, 1);
        // Two keys' worth of copies under the cap, then a third key.
        let mut env = signed_root(&root, &f.root_keys.iter().collect::<Vec<_>>());
        let (first, second) = (env.signatures[0].clone(), env.signatures[1].clone());
        let copies = [first, second].into_iter().cycle().take(MAX_SIGNATURES - 3);
        env.signatures.splice(2..2, copies);
        assert_eq!(env.signatures.len(), MAX_SIGNATURES);
        let (verdict, checks) = count_checks(&root, &env);
        verdict.unwrap();
        assert_eq!(checks, 2, "two distinct keys meet a threshold of 2");

        // The copies of a bad signature are not checked again either.
        let mut forged = signed_root(&root, &[&f.root_keys[0]]);
        let other = signed_root(&root_doc(&f, 2, 2, 1), &[&f.root_keys[0]]);
        forged.signatures[0].sig = other.signatures[0].sig.clone();
        let copy = forged.signatures[0].clone();
        forged
            .signatures
            .extend(std::iter::repeat_n(copy, MAX_SIGNATURES - 1));
        let (verdict, checks) = count_checks(&root, &forged);
        assert_eq!(verdict.unwrap_err().code(), "bad_signature");
        assert_eq!(checks, 1);
    }

    #[test]
    fn unreachable_thresholds_make_a_root_invalid() {
        let f = fixture(2);
        assert_eq!(
            root_doc(&f, 1, 0, 1).validate().unwrap_err().code(),
            "malformed"
        );
        assert_eq!(
            root_doc(&f, 1, 3, 1).validate().unwrap_err().code(),
            "malformed"
        );
        let mut twice = root_doc(&f, 1, 2, 1);
        let first = twice.roles["root"].keyids[0].clone();
        twice.roles.get_mut("root").unwrap().keyids = vec![first.clone(), first];
        assert_eq!(twice.validate().unwrap_err().code(), "malformed");
        root_doc(&f, 1, 2, 1).validate().unwrap();

        let many = fixture(MAX_THRESHOLD + 1);
        let count = many.root_keys.len();
        root_doc(&many, 1, MAX_THRESHOLD, 1).validate().unwrap();
        let err = root_doc(&many, 1, count, 1).validate().unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[test]
    fn pinned_root_must_be_self_signed() {
        let f = fixture(1);
        let root = root_doc(&f, 1, 1, 1);
        assert_eq!(
            Root::from_pinned(&signed_root(&root, &[&f.root_keys[0]])).unwrap(),
            root
        );
        assert_eq!(
            Root::from_pinned(&signed_root(&root, &[&f.publisher]))
                .unwrap_err()
                .code(),
            "threshold"
        );
    }

    #[test]
    fn rotation_needs_old_and_new_thresholds_and_the_next_version() {
        let old = fixture(1);
        let v1 = root_doc(&old, 1, 1, 1);
        let new = fixture(1);
        let v2 = root_doc(&new, 2, 1, 1);
        // Signed by both: accepted.
        let both = signed_root(&v2, &[&old.root_keys[0], &new.root_keys[0]]);
        assert_eq!(v1.verify_successor(&both).unwrap(), v2);
        // Only the new keys: an attacker's self-made root.
        let only_new = signed_root(&v2, &[&new.root_keys[0]]);
        assert_eq!(
            v1.verify_successor(&only_new).unwrap_err().code(),
            "threshold"
        );
        // Only the old keys: the new root does not vouch for itself.
        let only_old = signed_root(&v2, &[&old.root_keys[0]]);
        assert_eq!(
            v1.verify_successor(&only_old).unwrap_err().code(),
            "threshold"
        );
        // Skipping a version.
        let v3 = root_doc(&new, 3, 1, 1);
        let skip = signed_root(&v3, &[&old.root_keys[0], &new.root_keys[0]]);
        assert_eq!(v1.verify_successor(&skip).unwrap_err().code(), "rollback");
    }
}

//! What the device believes: the current root and the verification of every
//! document against it (DESIGN.md §3). Pure decisions; the agent persists
//! what this module accepts.

use std::collections::BTreeMap;

use jiff::Timestamp;
use phare_protocol::document::{check_not_expired, parse_document};
use phare_protocol::{Assignment, Envelope, Rejection, RoleName, Root};

use crate::store::StoredDocument;

/// The outcome of checking an assignment against the version floor.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A newer document, verified and bound to this device.
    New(Box<Assignment>),
    /// The exact document already accepted (a retained message seen again).
    Known,
}

/// The device's identity as documents must name it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub fleet: String,
    pub device_id: String,
    pub groups: Vec<String>,
}

pub struct Trust {
    root: Root,
    identity: Identity,
    /// Roots seen ahead of the chain (retained messages arrive in any
    /// order); applied as soon as their predecessor is.
    ahead: BTreeMap<u64, Envelope>,
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

    /// Offers a root seen on `trust/root/<N>`. Returns the roots newly
    /// accepted, in order, as (version, envelope JSON) to persist.
    pub fn offer_root(
        &mut self,
        version: u64,
        envelope: Envelope,
    ) -> Result<Vec<(u64, String)>, Rejection> {
        if version <= self.root.version {
            return Ok(Vec::new());
        }
        self.ahead.insert(version, envelope);
        let mut accepted = Vec::new();
        while let Some(next) = self.ahead.remove(&(self.root.version + 1)) {
            let root = self.root.verify_successor(&next)?;
            accepted.push((root.version, next.to_json()));
            self.root = root;
        }
        Ok(accepted)
    }

    /// Verifies an assignment envelope: publisher threshold, shape, binding
    /// to this device, version floor of its target, and expiry.
    pub fn verify_assignment(
        &self,
        envelope: &Envelope,
        floor: Option<&StoredDocument>,
        now: Timestamp,
    ) -> Result<Verdict, Rejection> {
        let body = self
            .root
            .verify(envelope, RoleName::Publisher, "assignment")?;
        let assignment: Assignment = parse_document(&body, "assignment")?;
        assignment.validate()?;
        assignment.check_binding(
            &self.identity.fleet,
            &self.identity.device_id,
            &self.identity.groups,
        )?;
        if let Some(floor) = floor {
            if assignment.version < floor.version {
                return Err(Rejection::Rollback {
                    have: floor.version,
                    got: assignment.version,
                });
            }
            if assignment.version == floor.version {
                let same = Envelope::from_slice(floor.envelope.as_bytes())
                    .and_then(|stored| stored.payload_bytes())
                    .is_ok_and(|stored| stored == body);
                return if same {
                    Ok(Verdict::Known)
                } else {
                    Err(Rejection::Rollback {
                        have: floor.version,
                        got: assignment.version,
                    })
                };
            }
        }
        check_not_expired(assignment.expires_at, now)?;
        Ok(Verdict::New(Box::new(assignment)))
    }

    /// Re-verifies a stored assignment at start-up. Expiry is not checked:
    /// the last verified assignment keeps playing after it expires.
    pub fn reverify_stored(&self, stored: &StoredDocument) -> Result<Assignment, Rejection> {
        let envelope = Envelope::from_slice(stored.envelope.as_bytes())?;
        let body = self
            .root
            .verify(&envelope, RoleName::Publisher, "assignment")?;
        let assignment: Assignment = parse_document(&body, "assignment")?;
        assignment.validate()?;
        assignment.check_binding(
            &self.identity.fleet,
            &self.identity.device_id,
            &self.identity.groups,
        )?;
        Ok(assignment)
    }
}

/// The durable stream an assignment's version floor belongs to.
pub fn assignment_stream(target: &str) -> String {
    format!("assignment:{target}")
}

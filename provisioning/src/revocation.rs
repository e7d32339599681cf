//! What the fleet CA issued and revoked: `keys/tls/issued.json`, from
//! which the certificate revocation list (CRL) is made that makes the
//! broker refuse a lost or stolen screen.
//!
//! Every certificate is recorded (serial number, name, fingerprint) before
//! it leaves the keyring, so any of them can be revoked later. The list's
//! dates follow what OpenSSL, and so Mosquitto, does with it:
//!
//! - a broker keeps every CRL it loaded since it started, and checks
//!   against the one with the latest `thisUpdate`, to the second: each
//!   list is dated at least a second after the one before;
//! - a list dated after the broker's clock is not used yet: lists are
//!   dated a day back, as certificates are, so a broker whose clock is
//!   behind the operator's still takes it;
//! - a list past its `nextUpdate` refuses every client: `nextUpdate` is
//!   the CA's own lifetime away, past the end of everything it signs.

use std::path::Path;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use phare_common::files::{Access, write_atomic};
use serde::{Deserialize, Serialize};

/// How far back a list is dated (see the module documentation).
const BACKDATE: SignedDuration = SignedDuration::from_hours(24);

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    /// A device's, the operator's or the collector's.
    Client,
    /// A broker's.
    Server,
}

/// One certificate the CA signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    /// Its serial number, hex.
    pub serial: String,
    /// Its common name: the device id, the operator's or the collector's
    /// name, or a broker's first host.
    pub name: String,
    pub usage: Usage,
    /// SHA-256 of the certificate (DER), hex.
    pub sha256: String,
    pub issued_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// `issued.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// In the order issued.
    pub certificates: Vec<IssuedRecord>,
    /// The number of the last list made; 0 before the first.
    pub crl_number: u64,
    /// The last list's `thisUpdate`.
    pub crl_this_update: Option<Timestamp>,
    /// How many certificates were revoked when the last list was made.
    /// Revocations are never undone, so while the count is the same the
    /// last list still names them all.
    #[serde(default)]
    pub crl_revoked: usize,
}

/// The dates and number of a list about to be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlDates {
    pub number: u64,
    pub this_update: Timestamp,
    pub next_update: Timestamp,
}

impl Ledger {
    /// The ledger at `path`, empty if there is none yet.
    pub fn load(path: &Path) -> anyhow::Result<Ledger> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a certificate ledger", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        write_atomic(path, &json, Access::Public)
    }

    /// Marks every client certificate of `name` not yet revoked as revoked
    /// at `now`; returns their serial numbers.
    pub fn revoke(&mut self, name: &str, now: Timestamp) -> Vec<String> {
        self.certificates
            .iter_mut()
            .filter(|c| c.name == name && c.usage == Usage::Client && c.revoked_at.is_none())
            .map(|c| {
                c.revoked_at = Some(now);
                c.serial.clone()
            })
            .collect()
    }

    /// The revoked certificates.
    pub fn revoked(&self) -> impl Iterator<Item = &IssuedRecord> {
        self.certificates.iter().filter(|c| c.revoked_at.is_some())
    }

    /// Whether the last list made names every certificate revoked.
    pub fn last_crl_is_current(&self) -> bool {
        self.crl_number > 0 && self.crl_revoked == self.revoked().count()
    }

    /// Numbers and dates the next list, `valid_for` long, and records it
    /// as the last one, naming every certificate revoked.
    pub fn next_crl(&mut self, now: Timestamp, valid_for: SignedDuration) -> CrlDates {
        let backdated = now - BACKDATE;
        let this_update = match self.crl_this_update {
            Some(last) if last + SignedDuration::from_secs(1) > backdated => {
                last + SignedDuration::from_secs(1)
            }
            _ => backdated,
        };
        // Whole seconds: that is all a CRL's dates hold.
        let this_update = Timestamp::from_second(this_update.as_second()).unwrap_or(this_update);
        self.crl_number += 1;
        self.crl_this_update = Some(this_update);
        self.crl_revoked = self.revoked().count();
        CrlDates {
            number: self.crl_number,
            this_update,
            next_update: this_update + valid_for,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(serial: &str, name: &str, usage: Usage) -> IssuedRecord {
        IssuedRecord {
            serial: serial.into(),
            name: name.into(),
            usage,
            sha256: String::new(),
            issued_at: Timestamp::UNIX_EPOCH,
            revoked_at: None,
        }
    }

    #[test]
    fn revoking_a_name_revokes_each_of_its_client_certificates_once() {
        let mut ledger = Ledger {
            certificates: vec![
                record("01", "lobby-1", Usage::Client),
                record("02", "lobby-2", Usage::Client),
                record("03", "lobby-1", Usage::Client),
                record("04", "lobby-1", Usage::Server),
            ],
            ..Ledger::default()
        };
        let now: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
        assert!(!ledger.last_crl_is_current(), "no list yet");
        ledger.next_crl(now, SignedDuration::from_hours(1));
        assert!(ledger.last_crl_is_current());
        assert_eq!(ledger.revoke("lobby-1", now), ["01", "03"]);
        assert!(!ledger.last_crl_is_current());
        ledger.next_crl(now, SignedDuration::from_hours(1));
        assert!(ledger.revoke("lobby-1", now).is_empty());
        assert!(ledger.last_crl_is_current());
        let revoked: Vec<&str> = ledger.revoked().map(|c| c.serial.as_str()).collect();
        assert_eq!(revoked, ["01", "03"]);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issued.json");
        assert_eq!(Ledger::load(&path).unwrap(), Ledger::default());
        ledger.save(&path).unwrap();
        assert_eq!(Ledger::load(&path).unwrap(), ledger);
    }

    #[test]
    fn each_list_is_numbered_backdated_and_a_second_newer_than_the_last() {
        let mut ledger = Ledger::default();
        let now: Timestamp = "2026-11-29T10:00:00.750Z".parse().unwrap();
        let year = SignedDuration::from_hours(24 * 365);
        let first = ledger.next_crl(now, year);
        assert_eq!(first.number, 1);
        assert_eq!(
            first.this_update,
            "2026-11-28T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(first.next_update, first.this_update + year);
        // Made in the same second: still a second newer.
        let second = ledger.next_crl(now, year);
        assert_eq!(second.number, 2);
        assert_eq!(
            second.this_update,
            first.this_update + SignedDuration::from_secs(1)
        );
        // Made a while later: dated by the clock again.
        let later = ledger.next_crl(now + SignedDuration::from_hours(1), year);
        assert_eq!(
            later.this_update,
            "2026-11-28T11:00:00Z".parse::<Timestamp>().unwrap()
        );
    }
}

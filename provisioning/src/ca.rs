//! The fleet's certificate authority, for mutual TLS with the brokers.
//!
//! Signed documents already make brokers untrusted for *content*; TLS adds
//! who may connect and what each connection may read or write: a device's
//! certificate names it (CN = device id), and the broker's ACL keys every
//! permission on that name. The CA lives in the keyring:
//!
//! ```text
//! keys/tls/ca.pem         the CA certificate (devices and brokers trust it)
//! keys/tls/ca.key         its private key (0600; never leaves the keyring)
//! keys/tls/operator.pem   the operator's client certificate (CN phare-operator)
//! keys/tls/operator.key
//! keys/tls/collector.pem  `phare pop collect`'s (CN phare-collector)
//! keys/tls/collector.key
//! keys/tls/issued.json    every certificate issued, and which are revoked
//! keys/tls/crl.pem        the last revocation list signed
//! ```
//!
//! Keys are ECDSA P-256 (ring: the one crypto provider of the workspace).
//! Serial numbers are random, and recorded before a certificate leaves the
//! keyring, so that any certificate can be revoked: `phare device revoke`
//! lists a lost screen's certificates in the CRL the broker checks
//! ([`crate::revocation`]). A reissued certificate does not revoke the old
//! one by itself (the screen uses it until its bundle is replaced).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use jiff::{ToSpan, tz::TimeZone};
use phare_common::files::{Access, create_private_dir, write_atomic};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber, date_time_ymd,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;

use crate::revocation::{IssuedRecord, Ledger, Usage};

/// The certificate name (and so the broker user) of the operator tool.
pub const OPERATOR_NAME: &str = "phare-operator";
/// The certificate name of `phare pop collect`.
pub const COLLECTOR_NAME: &str = "phare-collector";

/// The operator tool's identities on the broker. The broker names every
/// connection after its certificate (`use_username_as_clientid`), so two
/// connections under one identity take each other's place: the collector,
/// which stays connected, has an identity of its own, which also lets it
/// read proof of play and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Every command: publishing, watching, commanding.
    Operator,
    /// `phare pop collect`.
    Collector,
}

impl Tool {
    pub const ALL: [Tool; 2] = [Tool::Operator, Tool::Collector];

    /// Its certificate's common name: its broker username and client id.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Operator => OPERATOR_NAME,
            Tool::Collector => COLLECTOR_NAME,
        }
    }

    fn file_stem(self) -> &'static str {
        match self {
            Tool::Operator => "operator",
            Tool::Collector => "collector",
        }
    }
}

const CA_YEARS: i16 = 10;
/// Leaves are re-enrolled on a visit to the screen, so they last a while,
/// but not forever.
const LEAF_YEARS: i16 = 3;

/// Where the TLS material of a keyring lives.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    dir: PathBuf,
}

impl TlsPaths {
    pub fn new(keyring: &Path) -> TlsPaths {
        TlsPaths {
            dir: keyring.join("tls"),
        }
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    pub fn operator_cert(&self) -> PathBuf {
        self.tool_cert(Tool::Operator)
    }

    pub fn operator_key(&self) -> PathBuf {
        self.tool_key(Tool::Operator)
    }

    pub fn tool_cert(&self, tool: Tool) -> PathBuf {
        self.dir.join(format!("{}.pem", tool.file_stem()))
    }

    pub fn tool_key(&self, tool: Tool) -> PathBuf {
        self.dir.join(format!("{}.key", tool.file_stem()))
    }

    /// The record of every certificate issued ([`Ledger`]).
    pub fn ledger(&self) -> PathBuf {
        self.dir.join("issued.json")
    }

    /// The last revocation list signed.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
}

/// A certificate freshly issued, with its new private key (both PEM).
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the certificate (DER), lowercase hex: what
    /// `openssl x509 -fingerprint -sha256` shows, without the colons.
    pub sha256: String,
}

impl Issued {
    /// Writes the certificate and its key (0600).
    pub fn write(&self, cert: &Path, key: &Path) -> anyhow::Result<()> {
        write_atomic(key, self.key_pem.as_bytes(), Access::Private)?;
        write_atomic(cert, self.cert_pem.as_bytes(), Access::Public)
    }
}

/// The fleet CA, able to issue and revoke certificates.
pub struct FleetCa {
    paths: TlsPaths,
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl FleetCa {
    /// Opens the keyring's CA, creating it on first use. Returns whether it
    /// was created.
    pub fn open_or_create(keyring: &Path, fleet: &str) -> anyhow::Result<(FleetCa, bool)> {
        let paths = TlsPaths::new(keyring);
        // The certificate is written last: a CA exists once it does. A key
        // without one (a crash in between) never signed anything.
        if paths.ca_cert().exists() {
            return Ok((FleetCa::open(keyring, fleet)?, false));
        }
        create_private_dir(&paths.dir)?;
        let key = KeyPair::generate()?;
        let params = ca_params(fleet);
        let cert = params.self_signed(&key)?;
        write_atomic(
            &paths.ca_key(),
            key.serialize_pem().as_bytes(),
            Access::Private,
        )?;
        write_atomic(&paths.ca_cert(), cert.pem().as_bytes(), Access::Public)?;
        Ok((
            FleetCa {
                paths,
                pem: cert.pem(),
                der: cert.der().clone(),
                issuer: Issuer::new(params, key),
            },
            true,
        ))
    }

    /// Opens the keyring's CA.
    pub fn open(keyring: &Path, fleet: &str) -> anyhow::Result<FleetCa> {
        let paths = TlsPaths::new(keyring);
        let pem = std::fs::read_to_string(paths.ca_cert()).with_context(|| {
            format!(
                "reading {} (the fleet CA is created by `phare device add`)",
                paths.ca_cert().display()
            )
        })?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .with_context(|| format!("{} holds no certificate", paths.ca_cert().display()))?;
        let key_pem = std::fs::read_to_string(paths.ca_key())
            .with_context(|| format!("reading {}", paths.ca_key().display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("{} is not a private key", paths.ca_key().display()))?;
        // The issuer is rebuilt from the same parameters the CA was made
        // with: its subject must match ca.pem's byte for byte, which every
        // issue checks by verifying the new certificate against ca.pem.
        Ok(FleetCa {
            paths,
            pem,
            der,
            issuer: Issuer::new(ca_params(fleet), key),
        })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A client certificate for `name` (a device id, or [`OPERATOR_NAME`]).
    pub fn issue_client(&self, name: &str) -> anyhow::Result<Issued> {
        let mut params = leaf_params(name, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)?;
        params.distinguished_name.push(DnType::CommonName, name);
        let issued = self.issue(params, name, Usage::Client)?;
        self.verify_client(&issued.cert_pem)
            .context("the new certificate does not verify against ca.pem")?;
        Ok(issued)
    }

    /// A server certificate for a broker reachable under `hosts` (DNS
    /// names or IP addresses).
    pub fn issue_server(&self, hosts: &[String]) -> anyhow::Result<Issued> {
        let first = hosts.first().context("name at least one host")?;
        let params = leaf_params(first, hosts.to_vec(), ExtendedKeyUsagePurpose::ServerAuth)?;
        let issued = self.issue(params, first, Usage::Server)?;
        for host in hosts {
            self.verify_server(&issued.cert_pem, host)
                .context("the new certificate does not verify against ca.pem")?;
        }
        Ok(issued)
    }

    /// Signs a certificate under a fresh random serial number, recorded
    /// in the ledger before the certificate is returned.
    fn issue(
        &self,
        mut params: CertificateParams,
        name: &str,
        usage: Usage,
    ) -> anyhow::Result<Issued> {
        let mut serial = [0u8; 16];
        SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        // Positive, and 16 bytes long as encoded.
        serial[0] = (serial[0] & 0x7f) | 0x40;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, cert.der()));
        let mut ledger = Ledger::load(&self.paths.ledger())?;
        ledger.certificates.push(IssuedRecord {
            serial: hex::encode(serial),
            name: name.to_string(),
            usage,
            sha256: sha256.clone(),
            issued_at: Timestamp::now(),
            revoked_at: None,
        });
        ledger.save(&self.paths.ledger())?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            sha256,
        })
    }

    /// Revokes every client certificate issued to `name`; returns their
    /// serial numbers. The next [`FleetCa::crl`] lists them.
    pub fn revoke_client(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let mut ledger = Ledger::load(&self.paths.ledger())?;
        let known = ledger
            .certificates
            .iter()
            .any(|c| c.name == name && c.usage == Usage::Client);
        anyhow::ensure!(
            known,
            "no certificate issued to {name:?} is on record in {} (certificates issued \
             before phare kept that record cannot be listed: a new fleet CA cuts them off)",
            self.paths.ledger().display()
        );
        let serials = ledger.revoke(name, Timestamp::now());
        ledger.save(&self.paths.ledger())?;
        Ok(serials)
    }

    /// A new revocation list of every certificate revoked, signed by the
    /// CA, PEM; also kept as the keyring's `tls/crl.pem`.
    pub fn crl(&self) -> anyhow::Result<String> {
        let mut ledger = Ledger::load(&self.paths.ledger())?;
        let lifetime = SignedDuration::from_hours(24 * 366 * i64::from(CA_YEARS));
        let dates = ledger.next_crl(Timestamp::now(), lifetime);
        // rcgen takes the `time` crate's dates: built from the Unix epoch.
        let at = |t: Timestamp| {
            date_time_ymd(1970, 1, 1)
                + std::time::Duration::from_secs(t.as_second().try_into().unwrap_or(0))
        };
        let revoked = ledger
            .revoked()
            .map(|c| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(
                        &hex::decode(&c.serial).context("a serial number in the ledger")?,
                    ),
                    revocation_time: at(c.revoked_at.unwrap_or(dates.this_update)),
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let params = CertificateRevocationListParams {
            this_update: at(dates.this_update),
            next_update: at(dates.next_update),
            crl_number: SerialNumber::from(dates.number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            // As the CA's own key identifier was made.
            key_identifier_method: CertificateParams::default().key_identifier_method,
        };
        let pem = params.signed_by(&self.issuer)?.pem()?;
        ledger.save(&self.paths.ledger())?;
        write_atomic(&self.paths.crl(), pem.as_bytes(), Access::Public)?;
        Ok(pem)
    }

    /// The last revocation list (the keyring's `tls/crl.pem`) while it
    /// still names every certificate revoked, otherwise a new one ([`crl`]):
    /// a list unchanged spares the broker a restart.
    ///
    /// [`crl`]: FleetCa::crl
    pub fn current_crl(&self) -> anyhow::Result<String> {
        let ledger = Ledger::load(&self.paths.ledger())?;
        match std::fs::read_to_string(self.paths.crl()) {
            Ok(pem) if ledger.last_crl_is_current() => Ok(pem),
            _ => self.crl(),
        }
    }

    /// Checks that `cert_pem` chains to this CA, is valid now and may be
    /// used by a client, as a broker will check it.
    pub fn verify_client(&self, cert_pem: &str) -> anyhow::Result<()> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots()?, provider()).build()?;
        verifier.verify_client_cert(&leaf(cert_pem)?, &[], UnixTime::now())?;
        Ok(())
    }

    /// Checks that `cert_pem` chains to this CA, is valid now and names
    /// `host`, as a device connecting to `host` will check it.
    pub fn verify_server(&self, cert_pem: &str, host: &str) -> anyhow::Result<()> {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(self.roots()?, provider()).build()?;
        let name = ServerName::try_from(host.to_string())
            .with_context(|| format!("{host:?} is neither a DNS name nor an IP address"))?;
        verifier.verify_server_cert(&leaf(cert_pem)?, &[], &name, &[], UnixTime::now())?;
        Ok(())
    }

    fn roots(&self) -> anyhow::Result<Arc<RootCertStore>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone())?;
        Ok(Arc::new(roots))
    }

    /// Writes the operator tool's client certificates that are missing.
    /// Returns those written.
    pub fn ensure_tool_certs(&self) -> anyhow::Result<Vec<Tool>> {
        let mut written = Vec::new();
        for tool in Tool::ALL {
            let (cert, key) = (self.paths.tool_cert(tool), self.paths.tool_key(tool));
            if !(cert.exists() && key.exists()) {
                self.issue_client(tool.name())?.write(&cert, &key)?;
                written.push(tool);
            }
        }
        Ok(written)
    }
}

/// The CA's parameters. Deterministic in `fleet`: the issuer of every
/// certificate is rebuilt from them.
fn ca_params(fleet: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Phare");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Phare fleet {fleet} CA"));
    // It signs leaves only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_YEARS);
    params
}

fn leaf_params(
    common_name: &str,
    subject_alt_names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(subject_alt_names)
        .context("a host is neither a DNS name nor an IP address")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    // OpenSSL (Mosquitto) matches it against the CA's key identifier.
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_YEARS);
    Ok(params)
}

/// Valid from yesterday (a device clock a little behind still accepts
/// it) for `years`.
fn set_validity(params: &mut CertificateParams, years: i16) {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(TimeZone::UTC)
        .date();
    let midnight =
        |d: jiff::civil::Date| date_time_ymd(d.year().into(), d.month() as u8, d.day() as u8);
    let start = today.saturating_sub(1.day());
    params.not_before = midnight(start);
    params.not_after = midnight(start.saturating_add(years.years()));
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn leaf(cert_pem: &str) -> anyhow::Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).context("not a PEM certificate")
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateRevocationListDer;

    use super::*;

    /// Verifies `cert_pem` as a broker checking `crl_pem` would.
    fn check_with_crl(ca: &FleetCa, crl_pem: &str, cert_pem: &str) -> Result<(), rustls::Error> {
        let crl = CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(ca.roots().unwrap(), provider())
            .with_crls([crl])
            .build()
            .unwrap();
        verifier
            .verify_client_cert(&leaf(cert_pem).unwrap(), &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn a_revoked_device_fails_verification_against_the_signed_list() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, created) = FleetCa::open_or_create(dir.path(), "acme").unwrap();
        assert!(created);
        let lobby1 = ca.issue_client("lobby-1").unwrap();
        let lobby2 = ca.issue_client("lobby-2").unwrap();
        // Reopened, as `phare device revoke` does: the record is on disk.
        let ca = FleetCa::open(dir.path(), "acme").unwrap();
        let empty = ca.current_crl().unwrap();
        check_with_crl(&ca, &empty, &lobby1.cert_pem).unwrap();
        assert_eq!(ca.current_crl().unwrap(), empty, "nothing revoked since");

        let serials = ca.revoke_client("lobby-1").unwrap();
        assert_eq!(serials.len(), 1);
        let ledger = Ledger::load(&TlsPaths::new(dir.path()).ledger()).unwrap();
        let record = ledger
            .certificates
            .iter()
            .find(|c| c.serial == serials[0])
            .unwrap();
        assert_eq!(record.sha256, lobby1.sha256);
        let crl = ca.current_crl().unwrap();
        assert_ne!(crl, empty, "a new list once a certificate is revoked");
        assert_eq!(
            std::fs::read_to_string(TlsPaths::new(dir.path()).crl()).unwrap(),
            crl
        );
        let err = check_with_crl(&ca, &crl, &lobby1.cert_pem).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
            ),
            "{err:?}"
        );
        check_with_crl(&ca, &crl, &lobby2.cert_pem).unwrap();
        // A name never issued to is refused, not silently listed.
        assert!(ca.revoke_client("lobby-9").is_err());
        // Serial numbers differ from one certificate to the next.
        assert_eq!(
            ledger
                .certificates
                .iter()
                .map(|c| &c.serial)
                .collect::<std::collections::HashSet<_>>()
                .len(),
            2
        );
    }
}

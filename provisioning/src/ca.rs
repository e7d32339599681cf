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
//! ```
//!
//! Keys are ECDSA P-256 (ring: the one crypto provider of the workspace).
//! There is no revocation list: a reissued certificate does not invalidate
//! the old one, so a lost device is cut off by renaming it (its CN then has
//! no ACL entries) or by a new CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use jiff::{ToSpan, tz::TimeZone};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;

use crate::files::{Access, create_private_dir, write_atomic};

/// The certificate name (and so the broker user) of the operator tool.
pub const OPERATOR_NAME: &str = "phare-operator";

const CA_YEARS: i16 = 10;
/// Leaves are re-enrolled on a visit to the screen, so they last a while,
/// but not forever: there is no revocation.
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
        self.dir.join("operator.pem")
    }

    pub fn operator_key(&self) -> PathBuf {
        self.dir.join("operator.key")
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

/// The fleet CA, able to issue certificates.
pub struct FleetCa {
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
        let issued = self.issue(params)?;
        self.verify_client(&issued.cert_pem)
            .context("the new certificate does not verify against ca.pem")?;
        Ok(issued)
    }

    /// A server certificate for a broker reachable under `hosts` (DNS
    /// names or IP addresses).
    pub fn issue_server(&self, hosts: &[String]) -> anyhow::Result<Issued> {
        let first = hosts.first().context("name at least one host")?;
        let params = leaf_params(first, hosts.to_vec(), ExtendedKeyUsagePurpose::ServerAuth)?;
        let issued = self.issue(params)?;
        for host in hosts {
            self.verify_server(&issued.cert_pem, host)
                .context("the new certificate does not verify against ca.pem")?;
        }
        Ok(issued)
    }

    fn issue(&self, params: CertificateParams) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, cert.der())),
        })
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

    /// Writes the operator's client certificate unless there is one.
    /// Returns whether it was written.
    pub fn ensure_operator_cert(&self, keyring: &Path) -> anyhow::Result<bool> {
        let paths = TlsPaths::new(keyring);
        if paths.operator_cert().exists() && paths.operator_key().exists() {
            return Ok(false);
        }
        self.issue_client(OPERATOR_NAME)?
            .write(&paths.operator_cert(), &paths.operator_key())?;
        Ok(true)
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

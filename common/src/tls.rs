//! How the device (and the operator tool) authenticate to brokers:
//! TLS with the server verified against the fleet's CA, a client
//! certificate for mutual TLS, or a username and password (ARCHITECTURE.md).
//!
//! One rustls provider only: ring. Secrets are read from files here and
//! never logged; errors name the file, not its content. Credentials go to
//! `mqtts://` brokers only: over plain `mqtt://` a password would cross
//! the network in clear and a client certificate is never shown, so either
//! is refused as a configuration error rather than used or ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use phare_protocol::broker::BrokerAddr;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `[mqtt]` in the config: credentials for the brokers. Relative paths
/// are relative to the config file, so a bundle dropped on a boot
/// partition is self-contained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttAuth {
    /// PEM CA certificate(s) that `mqtts://` brokers must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Its PEM private key (PKCS#8, SEC1 or PKCS#1); mode 0600.
    pub key_file: Option<PathBuf>,
    /// A username, for brokers that authenticate by password.
    pub username: Option<String>,
    /// A file holding the password (trailing newline ignored); mode 0600.
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("{path} is readable by other users (mode {mode:o}); chmod 600 it")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{key}: {why}")]
    Config { key: &'static str, why: String },
}

impl MqttAuth {
    /// Makes relative paths relative to `dir` (the config file's folder).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for path in [
            &mut self.ca_file,
            &mut self.cert_file,
            &mut self.key_file,
            &mut self.password_file,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// The first inconsistency, as (key, why).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(("mqtt.key_file", "cert_file and key_file go together".into()));
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err(("mqtt.username", "a password_file needs a username".into()));
        }
        Ok(())
    }

    /// What `broker`'s scheme requires of these credentials, as (key,
    /// why): an `mqtts://` broker a CA to verify it against; a plain
    /// `mqtt://` one no password (it would travel in clear) and no client
    /// certificate (it would never be shown).
    pub fn check_for(&self, broker: &BrokerAddr) -> Result<(), (&'static str, String)> {
        if broker.tls {
            if self.ca_file.is_none() {
                return Err((
                    "mqtt.ca_file",
                    format!("{broker} is mqtts://: name the CA that its certificate chains to"),
                ));
            }
        } else if self.username.is_some() || self.password_file.is_some() {
            return Err((
                "mqtt.username",
                format!(
                    "{broker} is plain mqtt://: the username and password would cross the \
                     network in clear (phare: --username, --password-file); use mqtts://"
                ),
            ));
        } else if self.cert_file.is_some() {
            return Err((
                "mqtt.cert_file",
                format!(
                    "{broker} is plain mqtt://, where no client certificate is ever shown \
                     (phare: --cert); use mqtts://"
                ),
            ));
        }
        Ok(())
    }

    /// The rustls client configuration for `mqtts://` brokers.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots()?);
        let config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// The password, if one is configured.
    pub fn password(&self) -> Result<Option<String>, TlsError> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        check_private(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
            path: path.clone(),
            source,
        })?;
        Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
    }

    fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let Some(ca) = &self.ca_file else {
            return Err(TlsError::Pem {
                path: PathBuf::from("mqtt.ca_file"),
                what: "mqtts:// brokers need a CA to verify them against".into(),
            });
        };
        for cert in read_certs(ca)? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                path: ca.clone(),
                what: format!("not a usable CA certificate: {e}"),
            })?;
        }
        Ok(roots)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "holds no PEM certificate".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    check_private(path)?;
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: format!("no usable PEM private key ({e})"),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Secrets must not be readable by group or others.
fn check_private(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// rumqttc options for `broker`, with TLS and credentials from `auth`;
/// credentials the broker's scheme cannot carry are refused
/// ([`MqttAuth::check_for`]).
pub fn mqtt_options(
    client_id: &str,
    broker: &BrokerAddr,
    auth: &MqttAuth,
) -> Result<rumqttc::MqttOptions, TlsError> {
    auth.check_for(broker)
        .map_err(|(key, why)| TlsError::Config { key, why })?;
    let mut options = rumqttc::MqttOptions::new(client_id, &broker.host, broker.port);
    if broker.tls {
        let config = auth.client_config()?;
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config),
        ));
    }
    if let Some(username) = &auth.username {
        options.set_credentials(username, auth.password()?.unwrap_or_default());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_without_a_certificate_is_named() {
        let auth = MqttAuth {
            key_file: Some("device.key".into()),
            ..MqttAuth::default()
        };
        assert_eq!(auth.check().unwrap_err().0, "mqtt.key_file");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let mut auth = MqttAuth {
            ca_file: Some("ca.pem".into()),
            cert_file: Some("/etc/phare/device.pem".into()),
            ..MqttAuth::default()
        };
        auth.resolve_paths(Path::new("/boot/firmware/phare"));
        assert_eq!(
            auth.ca_file.unwrap(),
            Path::new("/boot/firmware/phare/ca.pem")
        );
        assert_eq!(auth.cert_file.unwrap(), Path::new("/etc/phare/device.pem"));
    }

    #[test]
    fn a_world_readable_password_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let auth = MqttAuth {
            username: Some("lobby-1".into()),
            password_file: Some(path.clone()),
            ..MqttAuth::default()
        };
        let err = auth.password().unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("s3cret"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(auth.password().unwrap().as_deref(), Some("s3cret"));
    }

    #[test]
    fn credentials_are_refused_over_plain_mqtt_and_named() {
        let plain = phare_protocol::broker::parse_broker("mqtt://10.0.0.2").unwrap();
        let tls = phare_protocol::broker::parse_broker("mqtts://10.0.0.2").unwrap();
        let password = MqttAuth {
            username: Some("lobby-1".into()),
            password_file: Some("mqtt.password".into()),
            ..MqttAuth::default()
        };
        let certificate = MqttAuth {
            ca_file: Some("ca.pem".into()),
            cert_file: Some("device.pem".into()),
            key_file: Some("device.key".into()),
            ..MqttAuth::default()
        };
        for (auth, key) in [
            (&password, "mqtt.username"),
            (&certificate, "mqtt.cert_file"),
        ] {
            let (named, why) = auth.check_for(&plain).unwrap_err();
            assert_eq!(named, key);
            assert!(why.contains("mqtt://10.0.0.2:1883"), "{why}");
            // Refused before any file is read or option built.
            let err = mqtt_options("lobby-1", &plain, auth)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{err}");
        }
        certificate.check_for(&tls).unwrap();
        assert_eq!(password.check_for(&tls).unwrap_err().0, "mqtt.ca_file");
        // A CA alone is no credential: harmless over plain MQTT.
        let ca_only = MqttAuth {
            ca_file: Some("ca.pem".into()),
            ..MqttAuth::default()
        };
        ca_only.check_for(&plain).unwrap();
        assert!(mqtt_options("lobby-1", &plain, &ca_only).is_ok());
    }

    #[test]
    fn mqtts_without_a_ca_is_an_error() {
        let err = MqttAuth::default().client_config().unwrap_err();
        assert!(err.to_string().contains("ca_file"), "{err}");
    }
}

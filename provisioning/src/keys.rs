//! Operator keys and the root document that names them.
//!
//! Private keys are PKCS#8 files created with mode 0600; they are never
//! printed or logged.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::{Timestamp, ToSpan};
use phare_protocol::document::{KeyEntry, Role};
use phare_protocol::envelope::payload_type;
use phare_protocol::{Envelope, Root, SigningKey};

/// A fleet's keys: root, publisher and operator.
#[derive(Debug)]
pub struct FleetKeys {
    pub fleet: String,
    pub root: SigningKey,
    pub publisher: SigningKey,
    pub operator: SigningKey,
}

const ROOT_FILE: &str = "root.pk8";
const PUBLISHER_FILE: &str = "publisher.pk8";
const OPERATOR_FILE: &str = "operator.pk8";
/// The signed root envelope, as devices pin it and brokers carry it.
pub const ROOT_ENVELOPE_FILE: &str = "root.json";

impl FleetKeys {
    pub fn generate(fleet: &str) -> anyhow::Result<FleetKeys> {
        Ok(FleetKeys {
            fleet: fleet.to_string(),
            root: SigningKey::generate()?,
            publisher: SigningKey::generate()?,
            operator: SigningKey::generate()?,
        })
    }

    /// Root document version `version`, valid for a year.
    pub fn root_document(&self, version: u64) -> Root {
        let mut keys = BTreeMap::new();
        for key in [&self.root, &self.publisher, &self.operator] {
            keys.insert(
                key.keyid(),
                KeyEntry {
                    alg: "ed25519".into(),
                    public: BASE64.encode(key.public_key()),
                },
            );
        }
        let role = |key: &SigningKey| Role {
            keyids: vec![key.keyid()],
            threshold: 1,
        };
        Root {
            kind: "root".into(),
            fleet: self.fleet.clone(),
            version,
            expires_at: Timestamp::now()
                .checked_add((365 * 24).hours())
                .unwrap_or(Timestamp::MAX),
            keys,
            roles: BTreeMap::from([
                ("root".to_string(), role(&self.root)),
                ("publisher".to_string(), role(&self.publisher)),
                ("operator".to_string(), role(&self.operator)),
            ]),
        }
    }

    /// The signed root envelope (version 1), as a device pins it.
    pub fn root_envelope(&self) -> Envelope {
        let root = serde_json::to_vec(&self.root_document(1)).expect("a root always serialises");
        Envelope::sign(&payload_type("root"), &root, &[&self.root])
    }

    /// Signs a document with the publisher key.
    pub fn sign_as_publisher(&self, kind: &str, document: &serde_json::Value) -> Envelope {
        let payload = serde_json::to_vec(document).expect("JSON values always serialise");
        Envelope::sign(&payload_type(kind), &payload, &[&self.publisher])
    }

    /// Writes the keys and the root envelope into `dir`, refusing to
    /// overwrite existing keys.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_private_key(&dir.join(ROOT_FILE), &self.root)?;
        write_private_key(&dir.join(PUBLISHER_FILE), &self.publisher)?;
        write_private_key(&dir.join(OPERATOR_FILE), &self.operator)?;
        let path = dir.join(ROOT_ENVELOPE_FILE);
        std::fs::write(&path, self.root_envelope().to_json())
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Creates a private key file with mode 0600; never overwrites.
pub fn write_private_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (existing keys are never overwritten)",
                path.display()
            )
        })?;
    file.write_all(key.pkcs8())?;
    file.sync_all()?;
    Ok(())
}

pub fn read_private_key(path: &Path) -> anyhow::Result<SigningKey> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pkcs8(&bytes)
        .with_context(|| format!("{} is not an Ed25519 PKCS#8 key", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn saved_keys_are_private_and_the_root_is_self_signed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = FleetKeys::generate("acme").unwrap();
        keys.save(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(PUBLISHER_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let publisher = read_private_key(&dir.path().join(PUBLISHER_FILE)).unwrap();
        assert_eq!(publisher.keyid(), keys.publisher.keyid());
        let pinned = std::fs::read(dir.path().join(ROOT_ENVELOPE_FILE)).unwrap();
        let root = Root::from_pinned(&Envelope::from_slice(&pinned).unwrap()).unwrap();
        assert_eq!(root.fleet, "acme");
        assert!(
            keys.save(dir.path()).is_err(),
            "keys must never be overwritten"
        );
    }
}

//! The operator's keyring: a directory holding the fleet's private keys
//! (PKCS#8, mode 0600) and every version of its signed root.
//!
//! ```text
//! keys/root.json          the current root envelope (what devices pin)
//! keys/root-<N>.json      every root version, published at trust/root/<N>
//! keys/<role>-<id>.pk8    private keys held here (<id>: first 16 hex of the keyid)
//! ```
//!
//! In a real fleet the root keys live with different people, offline: a
//! new root is written with the signatures available here, and the others
//! add theirs with `phare sign --add-to`. Private keys are never printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::{Timestamp, ToSpan};
use phare_protocol::document::{KeyEntry, Role, parse_document};
use phare_protocol::envelope::payload_type;
use phare_protocol::{Envelope, RoleName, Root, SigningKey};

/// The current root envelope, as devices pin it.
pub const ROOT_ENVELOPE_FILE: &str = "root.json";

const ROLES: [RoleName; 3] = [RoleName::Root, RoleName::Publisher, RoleName::Operator];

/// How many keys each role gets at `init`, and how many must sign.
#[derive(Debug, Clone, Copy)]
pub struct InitSpec {
    pub root_keys: usize,
    pub root_threshold: usize,
    pub publisher_keys: usize,
    pub publisher_threshold: usize,
    pub operator_keys: usize,
    pub operator_threshold: usize,
}

impl Default for InitSpec {
    fn default() -> InitSpec {
        InitSpec {
            root_keys: 1,
            root_threshold: 1,
            publisher_keys: 1,
            publisher_threshold: 1,
            operator_keys: 1,
            operator_threshold: 1,
        }
    }
}

/// A fleet's keyring directory.
#[derive(Debug)]
pub struct Keyring {
    dir: PathBuf,
    /// The newest root, whether or not it has all its signatures yet.
    root: Root,
    /// Private keys held here, by keyid.
    held: BTreeMap<String, SigningKey>,
}

/// A root version written by the keyring.
#[derive(Debug)]
pub struct RootWritten {
    pub version: u64,
    pub path: PathBuf,
    /// Signatures still needed from root keys held elsewhere; when empty
    /// the root is complete and `root.json` points at it.
    pub missing: Vec<String>,
}

impl Keyring {
    /// Creates a keyring with fresh keys and root version 1.
    pub fn init(dir: &Path, fleet: &str, spec: InitSpec) -> anyhow::Result<Keyring> {
        ensure!(
            !dir.join(ROOT_ENVELOPE_FILE).exists(),
            "{} already holds a keyring; keys are never overwritten",
            dir.display()
        );
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut keyring = Keyring {
            dir: dir.to_path_buf(),
            root: Root {
                kind: "root".into(),
                fleet: fleet.to_string(),
                version: 0,
                expires_at: Timestamp::now(),
                keys: BTreeMap::new(),
                roles: BTreeMap::new(),
            },
            held: BTreeMap::new(),
        };
        let counts = [
            (RoleName::Root, spec.root_keys, spec.root_threshold),
            (
                RoleName::Publisher,
                spec.publisher_keys,
                spec.publisher_threshold,
            ),
            (
                RoleName::Operator,
                spec.operator_keys,
                spec.operator_threshold,
            ),
        ];
        let mut next = keyring.root.clone();
        for (role, count, threshold) in counts {
            next.roles.insert(
                role.as_str().into(),
                Role {
                    keyids: Vec::new(),
                    threshold,
                },
            );
            for _ in 0..count {
                keyring.add_key_to(&mut next, role)?;
            }
        }
        keyring.write_root(next)?;
        Ok(keyring)
    }

    /// Opens a keyring: its newest root and the private keys it holds.
    pub fn open(dir: &Path) -> anyhow::Result<Keyring> {
        let mut newest: Option<(u64, Root)> = None;
        let mut held = BTreeMap::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".pk8") {
                let key = read_private_key(&path)?;
                held.insert(key.keyid(), key);
            } else if let Some(version) = name
                .strip_prefix("root-")
                .and_then(|n| n.strip_suffix(".json"))
            {
                let version: u64 = version
                    .parse()
                    .with_context(|| format!("{name}: not root-<N>.json"))?;
                if newest.as_ref().is_none_or(|(v, _)| version > *v) {
                    newest = Some((version, read_root(&path)?));
                }
            }
        }
        let (_, root) =
            newest.with_context(|| format!("{} holds no root-<N>.json", dir.display()))?;
        Ok(Keyring {
            dir: dir.to_path_buf(),
            root,
            held,
        })
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The current root envelope file (what devices pin).
    pub fn root_path(&self) -> PathBuf {
        self.dir.join(ROOT_ENVELOPE_FILE)
    }

    /// The file of one root version.
    pub fn root_version_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("root-{version}.json"))
    }

    /// The private keys held here for a role.
    pub fn held_keys(&self, role: RoleName) -> Vec<&SigningKey> {
        let Some(spec) = self.root.roles.get(role.as_str()) else {
            return Vec::new();
        };
        spec.keyids
            .iter()
            .filter_map(|id| self.held.get(id))
            .collect()
    }

    /// Signs a document with every key held for the role that signs `kind`.
    pub fn sign(&self, kind: &str, document: &serde_json::Value) -> anyhow::Result<Envelope> {
        let role = signing_role(kind)?;
        let keys = self.held_keys(role);
        ensure!(
            !keys.is_empty(),
            "no {} key is held in {}",
            role.as_str(),
            self.dir.display()
        );
        let payload = serde_json::to_vec(document)?;
        Ok(Envelope::sign(&payload_type(kind), &payload, &keys))
    }

    /// Adds a fresh key to `role` (and optionally sets its threshold):
    /// a new root version.
    pub fn add(&mut self, role: RoleName, threshold: Option<usize>) -> anyhow::Result<RootWritten> {
        let mut next = self.root.clone();
        self.add_key_to(&mut next, role)?;
        if let Some(threshold) = threshold {
            role_mut(&mut next, role).threshold = threshold;
        }
        self.write_root(next)
    }

    /// Replaces every key of `role` with as many fresh ones: a new root
    /// version. Documents signed only by the old keys stop verifying.
    pub fn rotate(&mut self, role: RoleName) -> anyhow::Result<RootWritten> {
        let mut next = self.root.clone();
        let old = std::mem::take(&mut role_mut(&mut next, role).keyids);
        for keyid in &old {
            forget_key_if_unused(&mut next, keyid);
        }
        self.retire_unlisted(&next)?;
        for _ in 0..old.len().max(1) {
            self.add_key_to(&mut next, role)?;
        }
        self.write_root(next)
    }

    /// Removes a key from every role: a new root version.
    pub fn revoke(&mut self, keyid: &str) -> anyhow::Result<RootWritten> {
        ensure!(
            self.root.keys.contains_key(keyid),
            "key {keyid} is not in root version {}",
            self.root.version
        );
        let mut next = self.root.clone();
        for role in ROLES {
            role_mut(&mut next, role).keyids.retain(|k| k != keyid);
        }
        forget_key_if_unused(&mut next, keyid);
        self.retire_unlisted(&next)?;
        self.write_root(next)
    }

    /// Renames the files of held keys that `next` no longer lists to
    /// `*.pk8.retired`: out of use, but not destroyed by a typo.
    ///
    /// Retired root keys still sign the transition itself (the new root
    /// needs the old root's threshold), so they stay in memory until then.
    fn retire_unlisted(&self, next: &Root) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pk8") {
                let keyid = read_private_key(&path)?.keyid();
                if !next.keys.contains_key(&keyid) {
                    let mut retired = path.clone().into_os_string();
                    retired.push(".retired");
                    std::fs::rename(&path, retired)?;
                }
            }
        }
        Ok(())
    }

    /// Generates a key, saves it, and lists it under `role` in `root`.
    fn add_key_to(&mut self, root: &mut Root, role: RoleName) -> anyhow::Result<()> {
        let key = SigningKey::generate()?;
        let keyid = key.keyid();
        write_private_key(
            &self
                .dir
                .join(format!("{}-{}.pk8", role.as_str(), &keyid[..16])),
            &key,
        )?;
        root.keys.insert(
            keyid.clone(),
            KeyEntry {
                alg: "ed25519".into(),
                public: BASE64.encode(key.public_key()),
            },
        );
        role_mut(root, role).keyids.push(keyid.clone());
        self.held.insert(keyid, key);
        Ok(())
    }

    /// Writes `next` as the following root version, signed by every root
    /// key held here of the current and the next root (a new root needs
    /// thresholds of both), and makes it current once complete.
    fn write_root(&mut self, mut next: Root) -> anyhow::Result<RootWritten> {
        next.version = self.root.version + 1;
        next.expires_at = Timestamp::now().checked_add((365 * 24).hours())?;
        next.validate()
            .map_err(|e| anyhow::anyhow!("the new root would be invalid: {e}"))?;
        let mut signers: Vec<&SigningKey> = Vec::new();
        for root in [&self.root, &next] {
            for keyid in root
                .roles
                .get("root")
                .map(|r| r.keyids.as_slice())
                .unwrap_or_default()
            {
                if let Some(key) = self.held.get(keyid)
                    && !signers.iter().any(|s| s.keyid() == *keyid)
                {
                    signers.push(key);
                }
            }
        }
        let envelope = Envelope::sign(&payload_type("root"), &serde_json::to_vec(&next)?, &signers);
        let path = self.root_version_path(next.version);
        std::fs::write(&path, envelope.to_json())
            .with_context(|| format!("writing {}", path.display()))?;
        let missing = missing_root_signatures(&self.root, &next, &envelope);
        if missing.is_empty() {
            std::fs::write(self.root_path(), envelope.to_json())?;
        }
        let version = next.version;
        self.root = next;
        Ok(RootWritten {
            version,
            path,
            missing,
        })
    }
}

/// What a root envelope still lacks: a description per unmet threshold.
pub fn missing_root_signatures(previous: &Root, next: &Root, envelope: &Envelope) -> Vec<String> {
    let mut missing = Vec::new();
    // Version 1 has no predecessor: only its own threshold applies.
    let checks: &[(&str, &Root)] = if previous.version == 0 {
        &[("its own", next)]
    } else {
        &[("the previous", previous), ("its own", next)]
    };
    for (which, root) in checks {
        if let Err(e) = root.verify(envelope, RoleName::Root, "root") {
            missing.push(format!("{which} root keys: {e}"));
        }
    }
    missing
}

fn role_mut(root: &mut Root, role: RoleName) -> &mut Role {
    root.roles.entry(role.as_str().into()).or_insert(Role {
        keyids: Vec::new(),
        threshold: 1,
    })
}

fn forget_key_if_unused(root: &mut Root, keyid: &str) {
    if !root
        .roles
        .values()
        .any(|r| r.keyids.iter().any(|k| k == keyid))
    {
        root.keys.remove(keyid);
    }
}

/// The role whose keys sign a document kind.
pub fn signing_role(kind: &str) -> anyhow::Result<RoleName> {
    Ok(match kind {
        "root" => RoleName::Root,
        "assignment" | "alert" => RoleName::Publisher,
        "command" => RoleName::Operator,
        other => bail!("unknown document kind {other:?}"),
    })
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

/// Reads a root envelope file (`root.json`, `root-<N>.json`) as the root
/// it carries, without judging its signatures: the keyring's own files, or
/// the public root a key holder elsewhere was given.
pub fn read_root(path: &Path) -> anyhow::Result<Root> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let payload = Envelope::from_slice(&bytes)
        .and_then(|envelope| envelope.payload_bytes())
        .with_context(|| format!("{} is not a root envelope", path.display()))?;
    parse_document(&payload, "root").with_context(|| format!("{}", path.display()))
}

pub fn read_private_key(path: &Path) -> anyhow::Result<SigningKey> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("{} does not exist{}", path.display(), keys_beside(path))
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    SigningKey::from_pkcs8(&bytes)
        .with_context(|| format!("{} is not an Ed25519 PKCS#8 key", path.display()))
}

/// The private keys in the folder of a key file that is not there (key
/// files are named `<role>-<key id>.pk8`), for the error to list; or how
/// to make some.
fn keys_beside(path: &Path) -> String {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let mut keys: Vec<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pk8"))
        .map(|p| p.display().to_string())
        .collect();
    keys.sort();
    if keys.is_empty() {
        format!(
            "; {} holds no key (.pk8): `phare keys init` makes a keyring, or use --keyring",
            folder.display()
        )
    } else {
        format!(
            "; the keys there: {} (or sign with --keyring {})",
            keys.join(", "),
            folder.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn pinned(keyring: &Keyring) -> Root {
        let bytes = std::fs::read(keyring.root_path()).unwrap();
        Root::from_pinned(&Envelope::from_slice(&bytes).unwrap()).unwrap()
    }

    fn version_envelope(keyring: &Keyring, version: u64) -> Envelope {
        Envelope::from_slice(&std::fs::read(keyring.root_version_path(version)).unwrap()).unwrap()
    }

    #[test]
    fn init_writes_private_keys_and_a_self_signed_root() {
        let dir = tempfile::tempdir().unwrap();
        let spec = InitSpec {
            root_keys: 3,
            root_threshold: 2,
            ..InitSpec::default()
        };
        let keyring = Keyring::init(dir.path(), "acme", spec).unwrap();
        let root = pinned(&keyring);
        assert_eq!((root.fleet.as_str(), root.version), ("acme", 1));
        assert_eq!(root.roles["root"].keyids.len(), 3);
        assert_eq!(root.roles["root"].threshold, 2);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pk8") {
                assert_eq!(
                    std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                    0o600
                );
            }
        }
        assert!(
            Keyring::init(dir.path(), "acme", InitSpec::default()).is_err(),
            "never overwrites"
        );
    }

    #[test]
    fn rotation_and_revocation_chain_from_the_pinned_root() {
        let dir = tempfile::tempdir().unwrap();
        let mut keyring = Keyring::init(dir.path(), "acme", InitSpec::default()).unwrap();
        let v1 = pinned(&keyring);
        let old_publisher = keyring.held_keys(RoleName::Publisher)[0].keyid();

        let written = keyring.rotate(RoleName::Root).unwrap();
        assert!(written.missing.is_empty(), "{:?}", written.missing);
        let v2 = v1.verify_successor(&version_envelope(&keyring, 2)).unwrap();
        assert_ne!(v2.roles["root"].keyids, v1.roles["root"].keyids);

        keyring.add(RoleName::Publisher, None).unwrap();
        let v3 = v2.verify_successor(&version_envelope(&keyring, 3)).unwrap();
        assert_eq!(v3.roles["publisher"].keyids.len(), 2);

        keyring.revoke(&old_publisher).unwrap();
        let v4 = v3.verify_successor(&version_envelope(&keyring, 4)).unwrap();
        assert!(!v4.keys.contains_key(&old_publisher));

        // Reopening finds the newest root and the keys held.
        let reopened = Keyring::open(dir.path()).unwrap();
        assert_eq!(reopened.root().version, 4);
        assert_eq!(reopened.held_keys(RoleName::Publisher).len(), 1);
    }

    #[test]
    fn a_root_needing_absent_keys_is_written_but_not_made_current() {
        let dir = tempfile::tempdir().unwrap();
        let spec = InitSpec {
            root_keys: 2,
            root_threshold: 2,
            ..InitSpec::default()
        };
        let mut keyring = Keyring::init(dir.path(), "acme", spec).unwrap();
        // One root key holder is elsewhere.
        let away = keyring.held_keys(RoleName::Root)[1].keyid();
        let away_key = keyring.held.remove(&away).unwrap();
        let written = keyring.add(RoleName::Operator, None).unwrap();
        assert!(!written.missing.is_empty());
        assert_eq!(
            pinned(&keyring).version,
            1,
            "root.json still names version 1"
        );
        // The absent holder adds a signature: now complete.
        let mut envelope = version_envelope(&keyring, 2);
        envelope.add_signature(&away_key);
        pinned(&keyring).verify_successor(&envelope).unwrap();
    }
}

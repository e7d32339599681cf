//! `phare device add`: a device's identity and its boot-partition bundle;
//! `phare device revoke`: its certificates listed as revoked.
//!
//! The bundle is one directory, copied to a Raspberry Pi's boot partition
//! as `phare/`: everything the player needs, with paths relative to its
//! `player.toml`, and nothing any other device could use (its own key).
//!
//! ```text
//! player.toml   device id, fleet, groups, brokers, origins, [mqtt] files
//! root.json     the fleet's root envelope, pinned
//! ca.pem        the fleet CA: brokers must chain to it
//! device.pem    the device's client certificate (CN = its id)
//! device.key    its private key (0600)
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use jiff::Timestamp;
use phare_common::files::{Access, create_private_dir, write_atomic};
use phare_protocol::broker::parse_broker;
use serde::Serialize;

use crate::ca::FleetCa;
use crate::keys::Keyring;
use crate::registry::{DeviceRecord, Registry, check_device_name, check_name};

pub const CONFIG_FILE: &str = "player.toml";
pub const ROOT_FILE: &str = "root.json";
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "device.pem";
pub const KEY_FILE: &str = "device.key";

/// What a device is told about itself.
#[derive(Debug, Clone, Default)]
pub struct DeviceSpec {
    pub name: String,
    /// In order of preference.
    pub groups: Vec<String>,
    /// In order of preference.
    pub brokers: Vec<String>,
    pub origins: Vec<String>,
}

/// What `add_device` did.
#[derive(Debug)]
pub struct Enrolled {
    pub bundle: PathBuf,
    pub cert_sha256: String,
    /// The fleet CA was created by this enrolment.
    pub ca_created: bool,
}

/// `player.toml` as the bundle writes it.
#[derive(Serialize)]
struct BundleConfig<'a> {
    device_id: &'a str,
    fleet: &'a str,
    groups: &'a [String],
    brokers: &'a [String],
    origins: &'a [String],
    root: &'static str,
    video_sink: &'static str,
    mqtt: BundleMqtt,
}

#[derive(Serialize)]
struct BundleMqtt {
    ca_file: &'static str,
    cert_file: &'static str,
    key_file: &'static str,
}

/// The default bundle directory of a device.
pub fn default_bundle_dir(keyring: &Path, name: &str) -> PathBuf {
    keyring.join("devices").join(name)
}

/// Enrols a device: a key and certificate from the fleet CA (created on
/// first use), its bundle in `out` (default `<keyring>/devices/<name>/`),
/// and its record in `devices.json`. An enrolled device is only enrolled
/// again with `reissue` (a new key and certificate).
pub fn add_device(
    keyring_dir: &Path,
    spec: &DeviceSpec,
    out: Option<&Path>,
    reissue: bool,
) -> anyhow::Result<Enrolled> {
    let keyring = Keyring::open(keyring_dir)?;
    let fleet = &keyring.root().fleet;
    check_device_name(&spec.name)?;
    for group in &spec.groups {
        check_name("group", group)?;
    }
    ensure!(!spec.brokers.is_empty(), "name at least one broker");
    for broker in &spec.brokers {
        parse_broker(broker).map_err(anyhow::Error::msg)?;
    }
    let out = out.map_or_else(
        || default_bundle_dir(keyring_dir, &spec.name),
        Path::to_path_buf,
    );
    let mut registry = Registry::load(keyring_dir)?;
    if !reissue {
        if let Some(known) = registry.get(&spec.name) {
            anyhow::bail!(
                "{} is already enrolled (since {}); --reissue gives it a new key and certificate",
                spec.name,
                known.added_at
            );
        }
        ensure!(
            !out.exists(),
            "{} already exists; --reissue replaces it",
            out.display()
        );
    }

    let (ca, ca_created) = FleetCa::open_or_create(keyring_dir, fleet)?;
    let issued = ca.issue_client(&spec.name)?;

    // Built aside, checked as the player will read it, then moved into place.
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(parent)?;
    let staging = parent.join(format!(".{}.{}.partial", spec.name, std::process::id()));
    let built = write_bundle(&staging, &keyring, spec, &ca, &issued).and_then(|()| {
        phare_common::config::Config::load(&staging.join(CONFIG_FILE))
            .context("the bundle's player.toml does not load")?;
        Ok(())
    });
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    replace_dir(&staging, &out)?;

    registry.upsert(DeviceRecord {
        name: spec.name.clone(),
        groups: spec.groups.clone(),
        added_at: Timestamp::now(),
        cert_sha256: issued.sha256.clone(),
    });
    registry.save(keyring_dir)?;
    Ok(Enrolled {
        bundle: out,
        cert_sha256: issued.sha256,
        ca_created,
    })
}

/// What `revoke_device` did.
#[derive(Debug)]
pub struct Revoked {
    /// Serial numbers (hex) of the certificates newly revoked; empty if
    /// they all were already.
    pub serials: Vec<String>,
    /// The new revocation list, among the broker's files.
    pub crl: PathBuf,
}

/// Revokes every certificate issued to device `name` and writes a new
/// revocation list into `broker_out` (the broker files of `phare broker
/// config`), to be installed on the broker.
pub fn revoke_device(keyring_dir: &Path, name: &str, broker_out: &Path) -> anyhow::Result<Revoked> {
    let keyring = Keyring::open(keyring_dir)?;
    check_device_name(name)?;
    let ca = FleetCa::open(keyring_dir, &keyring.root().fleet)?;
    let serials = ca.revoke_client(name)?;
    let crl = crate::mosquitto::write_crl(&ca, broker_out)?;
    Ok(Revoked { serials, crl })
}

fn write_bundle(
    dir: &Path,
    keyring: &Keyring,
    spec: &DeviceSpec,
    ca: &FleetCa,
    issued: &crate::ca::Issued,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    create_private_dir(dir)?;
    let config = BundleConfig {
        device_id: &spec.name,
        fleet: &keyring.root().fleet,
        groups: &spec.groups,
        brokers: &spec.brokers,
        origins: &spec.origins,
        root: ROOT_FILE,
        video_sink: "auto",
        mqtt: BundleMqtt {
            ca_file: CA_FILE,
            cert_file: CERT_FILE,
            key_file: KEY_FILE,
        },
    };
    let toml = format!(
        "# Phare screen {:?} of fleet {:?}, written by `phare device add`.\n\
         # Paths are relative to this file. See `phare-player --help`.\n\n{}",
        spec.name,
        keyring.root().fleet,
        toml::to_string(&config)?
    );
    write_atomic(&dir.join(CONFIG_FILE), toml.as_bytes(), Access::Public)?;
    let root = std::fs::read(keyring.root_path())
        .with_context(|| format!("reading {}", keyring.root_path().display()))?;
    write_atomic(&dir.join(ROOT_FILE), &root, Access::Public)?;
    write_atomic(&dir.join(CA_FILE), ca.pem().as_bytes(), Access::Public)?;
    issued.write(&dir.join(CERT_FILE), &dir.join(KEY_FILE))
}

/// Puts `staging` at `out`, replacing what was there.
fn replace_dir(staging: &Path, out: &Path) -> anyhow::Result<()> {
    let mut old = staging.as_os_str().to_owned();
    old.push(".old");
    let old = PathBuf::from(old);
    let had_one = out.exists();
    if had_one {
        std::fs::rename(out, &old).with_context(|| format!("moving {} aside", out.display()))?;
    }
    std::fs::rename(staging, out).with_context(|| format!("writing {}", out.display()))?;
    if had_one {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::keys::InitSpec;

    pub(crate) fn spec(name: &str, groups: &[&str]) -> DeviceSpec {
        DeviceSpec {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            brokers: vec![
                "mqtts://broker-a.example".into(),
                "mqtts://10.0.0.2:8883".into(),
            ],
            origins: vec!["https://cdn.example/media/".into()],
        }
    }

    #[test]
    fn the_bundle_loads_as_a_player_config_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        Keyring::init(&keys, "acme", InitSpec::default()).unwrap();
        let enrolled =
            add_device(&keys, &spec("lobby-1", &["lobby", "hall"]), None, false).unwrap();
        assert!(enrolled.ca_created);
        assert_eq!(enrolled.bundle, keys.join("devices/lobby-1"));

        let config =
            phare_common::config::Config::load(&enrolled.bundle.join(CONFIG_FILE)).unwrap();
        assert_eq!(config.device_id, "lobby-1");
        assert_eq!(config.fleet, "acme");
        assert_eq!(config.groups, ["lobby", "hall"]);
        assert_eq!(config.brokers[1], "mqtts://10.0.0.2:8883");
        assert_eq!(config.root, enrolled.bundle.join(ROOT_FILE));
        assert_eq!(config.mqtt.key_file, Some(enrolled.bundle.join(KEY_FILE)));
        assert_eq!(
            std::fs::read(config.root).unwrap(),
            std::fs::read(keys.join("root.json")).unwrap()
        );
        // The device's TLS files are usable as the player uses them.
        config.mqtt.client_config().unwrap();
        for secret in [enrolled.bundle.join(KEY_FILE), keys.join("tls/ca.key")] {
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", secret.display());
        }
        let registry = Registry::load(&keys).unwrap();
        assert_eq!(
            registry.get("lobby-1").unwrap().cert_sha256,
            enrolled.cert_sha256
        );
    }

    #[test]
    fn an_enrolled_device_is_replaced_only_on_reissue() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        Keyring::init(&keys, "acme", InitSpec::default()).unwrap();
        let first = add_device(&keys, &spec("lobby-1", &["lobby"]), None, false).unwrap();
        let err = add_device(&keys, &spec("lobby-1", &["lobby"]), None, false).unwrap_err();
        assert!(err.to_string().contains("--reissue"), "{err}");
        let again = add_device(&keys, &spec("lobby-1", &["hall"]), None, true).unwrap();
        assert!(!again.ca_created, "the CA is made once");
        assert_ne!(again.cert_sha256, first.cert_sha256);
        let record = Registry::load(&keys)
            .unwrap()
            .get("lobby-1")
            .unwrap()
            .clone();
        assert_eq!(record.groups, ["hall"]);
        assert_eq!(record.cert_sha256, again.cert_sha256);
        // Nothing is left over from the replacement.
        let left: Vec<_> = std::fs::read_dir(keys.join("devices")).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn bad_names_and_brokers_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        Keyring::init(&keys, "acme", InitSpec::default()).unwrap();
        let mut bad_broker = spec("lobby-1", &[]);
        bad_broker.brokers = vec!["tcp://broker".into()];
        for bad in [spec("lobby/1", &[]), spec("lobby-1", &["a b"]), bad_broker] {
            assert!(add_device(&keys, &bad, None, false).is_err());
        }
        assert!(!keys.join("tls").exists() && !keys.join("devices").exists());
    }
}

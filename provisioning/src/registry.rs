//! The enrolled devices, `<keyring>/devices.json`: what `phare broker
//! config` turns into per-device ACL entries (a device's groups cannot be
//! read from its certificate), and which certificate each device holds.

use std::path::{Path, PathBuf};

use anyhow::Context;
use jiff::Timestamp;
use phare_common::files::{Access, write_atomic};
use phare_protocol::topics::is_topic_level;
use serde::{Deserialize, Serialize};

use crate::ca::Tool;

/// One enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub name: String,
    pub groups: Vec<String>,
    /// When it was first enrolled (a reissue keeps it).
    pub added_at: Timestamp,
    /// SHA-256 of its current certificate (DER), hex.
    pub cert_sha256: String,
}

/// `devices.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// Sorted by name.
    pub devices: Vec<DeviceRecord>,
}

impl Registry {
    pub fn path(keyring: &Path) -> PathBuf {
        keyring.join("devices.json")
    }

    /// The registry, empty before the first enrolment.
    pub fn load(keyring: &Path) -> anyhow::Result<Registry> {
        let path = Registry::path(keyring);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a device registry", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, keyring: &Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        write_atomic(&Registry::path(keyring), &json, Access::Public)
    }

    pub fn get(&self, name: &str) -> Option<&DeviceRecord> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// Adds a device, or replaces its record keeping when it was added.
    pub fn upsert(&mut self, mut record: DeviceRecord) {
        match self.devices.binary_search_by(|d| d.name.cmp(&record.name)) {
            Ok(i) => {
                record.added_at = self.devices[i].added_at;
                self.devices[i] = record;
            }
            Err(i) => self.devices.insert(i, record),
        }
    }
}

/// Checks a device, group or fleet name: one MQTT topic level, and one
/// word of a Mosquitto ACL line (no spaces), since it becomes both.
pub fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_topic_level(name) && !name.chars().any(|c| c.is_whitespace() || c.is_control()),
        "{what} {name:?} must be non-empty, without spaces, / + or #"
    );
    Ok(())
}

/// Checks a device name: a valid name, and not one of the operator
/// tool's (the broker would grant the device the tool's rights).
pub fn check_device_name(name: &str) -> anyhow::Result<()> {
    check_name("device name", name)?;
    if let Some(tool) = Tool::ALL.iter().find(|t| t.name() == name) {
        anyhow::bail!(
            "{name:?} is the name of the operator tool's {tool:?} identity, not a device's"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, added_at: &str) -> DeviceRecord {
        DeviceRecord {
            name: name.into(),
            groups: vec!["lobby".into()],
            added_at: added_at.parse().unwrap(),
            cert_sha256: "00".into(),
        }
    }

    #[test]
    fn a_reissue_keeps_the_enrolment_date_and_the_order_is_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::load(dir.path()).unwrap();
        registry.upsert(record("lobby-2", "2026-01-02T00:00:00Z"));
        registry.upsert(record("lobby-1", "2026-01-01T00:00:00Z"));
        let mut again = record("lobby-2", "2026-03-01T00:00:00Z");
        again.cert_sha256 = "ff".into();
        registry.upsert(again);
        registry.save(dir.path()).unwrap();
        let loaded = Registry::load(dir.path()).unwrap();
        assert_eq!(loaded, registry);
        let names: Vec<&str> = loaded.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["lobby-1", "lobby-2"]);
        let lobby2 = loaded.get("lobby-2").unwrap();
        assert_eq!(lobby2.cert_sha256, "ff");
        assert_eq!(lobby2.added_at.to_string(), "2026-01-02T00:00:00Z");
    }

    #[test]
    fn names_are_topic_levels_and_acl_words() {
        check_device_name("lobby-1").unwrap();
        for bad in [
            "",
            "a/b",
            "lobby+",
            "#",
            "two words",
            "phare-operator",
            "phare-collector",
        ] {
            assert!(check_device_name(bad).is_err(), "{bad:?}");
        }
    }
}

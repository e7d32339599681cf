//! Alerts as the operator sends them (docs/protocol.md §8): each has its own id,
//! topic and versions, so sending or clearing one never touches another,
//! and before it goes out the operator learns which screens it reaches.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use phare_protocol::document::{Alert, is_valid_alert_id, target_names};
use phare_protocol::report::Status;

use crate::registry::Registry;

/// What a `phare alert send` asks for.
pub struct AlertSpec {
    /// None: a new id, from the time.
    pub id: Option<String>,
    pub message: String,
    pub style: String,
    /// None: by style (see [`default_priority`]).
    pub priority: Option<u32>,
    pub targets: Vec<String>,
    pub lasts: SignedDuration,
    pub asset: Option<String>,
}

/// A full-screen alert (an evacuation) outranks a banner (a notice) unless
/// told otherwise: a later banner must not hide it.
pub fn default_priority(style: &str) -> u32 {
    if style == "banner" { 50 } else { 100 }
}

/// Versions are milliseconds since the epoch: each is newer than the one
/// before from the same clock.
fn version_at(now: Timestamp) -> u64 {
    u64::try_from(now.as_millisecond()).unwrap_or(0)
}

/// The alert document to sign, checked as devices will check it.
pub fn new_alert(fleet: &str, spec: AlertSpec, now: Timestamp) -> anyhow::Result<Alert> {
    let id = spec
        .id
        .unwrap_or_else(|| format!("alert-{}", now.strftime("%Y%m%d-%H%M%S")));
    let alert = Alert {
        kind: "alert".into(),
        fleet: fleet.into(),
        id,
        version: version_at(now),
        issued_at: now,
        expires_at: now.checked_add(spec.lasts)?,
        active: true,
        priority: spec
            .priority
            .unwrap_or_else(|| default_priority(&spec.style)),
        targets: (!spec.targets.is_empty()).then_some(spec.targets),
        message: spec.message,
        style: spec.style,
        asset: spec
            .asset
            .map(phare_protocol::document::AssetId::try_from)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    alert.validate()?;
    for target in alert.targets.iter().flatten() {
        anyhow::ensure!(
            target.starts_with("device:") || target.starts_with("group:"),
            "target {target:?} is neither device:<id> nor group:<name>"
        );
    }
    Ok(alert)
}

/// The document that clears alert `id` (and only it).
pub fn clearing(fleet: &str, id: &str, now: Timestamp) -> anyhow::Result<Alert> {
    anyhow::ensure!(
        is_valid_alert_id(id),
        "alert id {id:?} is not 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'"
    );
    Ok(Alert {
        kind: "alert".into(),
        fleet: fleet.into(),
        id: id.into(),
        version: version_at(now),
        issued_at: now,
        expires_at: now.checked_add(SignedDuration::from_hours(24))?,
        active: false,
        priority: 0,
        targets: None,
        message: String::new(),
        style: "fullscreen".into(),
        asset: None,
    })
}

/// Which screens a document's targets reach (an alert's, an assignment's),
/// as far as the operator knows them: the enrolled devices (with their
/// groups) and those with a retained status.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reach {
    pub screens: BTreeSet<String>,
    /// Of those, the ones whose retained status says online.
    pub online: BTreeSet<String>,
    /// Targets that match no screen (a typo, or nobody enrolled there yet).
    pub unmatched: Vec<String>,
}

/// `targets`: `device:<id>` or `group:<name>` entries; `None` is the whole
/// fleet.
pub fn reach(targets: Option<&[String]>, registry: &Registry, statuses: &[Status]) -> Reach {
    let online_now: BTreeSet<&str> = statuses
        .iter()
        .filter(|s| s.online)
        .map(|s| s.device.as_str())
        .collect();
    // Devices known only by their status: no groups to match.
    let known: Vec<(&str, &[String])> = registry
        .devices
        .iter()
        .map(|d| (d.name.as_str(), d.groups.as_slice()))
        .chain(
            statuses
                .iter()
                .map(|s| s.device.as_str())
                .filter(|name| registry.get(name).is_none())
                .map(|name| (name, &[][..])),
        )
        .collect();
    let screens: BTreeSet<String> = known
        .iter()
        .filter(|(name, groups)| {
            targets.is_none_or(|targets| targets.iter().any(|t| target_names(t, name, groups)))
        })
        .map(|(name, _)| name.to_string())
        .collect();
    let unmatched = targets
        .into_iter()
        .flatten()
        .filter(|target| {
            !known
                .iter()
                .any(|(name, groups)| target_names(target, name, groups))
        })
        .cloned()
        .collect();
    Reach {
        online: screens
            .iter()
            .filter(|s| online_now.contains(s.as_str()))
            .cloned()
            .collect(),
        screens,
        unmatched,
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::registry::DeviceRecord;

    fn status(device: &str, online: bool) -> Status {
        Status {
            device: device.into(),
            online,
            ..Status::default()
        }
    }

    fn registry() -> Registry {
        let device = |name: &str, groups: &[&str]| DeviceRecord {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            added_at: Timestamp::UNIX_EPOCH,
            cert_sha256: String::new(),
        };
        Registry {
            devices: vec![
                device("hall-1", &["hall"]),
                device("lobby-1", &["lobby"]),
                device("lobby-2", &["lobby"]),
            ],
        }
    }

    fn spec(targets: &[&str], style: &str) -> AlertSpec {
        AlertSpec {
            id: Some("evac".into()),
            message: "Évacuation".into(),
            style: style.into(),
            priority: None,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            lasts: SignedDuration::from_mins(30),
            asset: None,
        }
    }

    #[test]
    fn a_group_reaches_its_screens_and_says_which_are_online() {
        let alert = new_alert(
            "acme",
            spec(&["group:lobby"], "fullscreen"),
            Timestamp::now(),
        )
        .unwrap();
        let statuses = [
            status("lobby-1", true),
            status("lobby-2", false),
            status("kiosk-9", true),
        ];
        let reach = reach(alert.targets.as_deref(), &registry(), &statuses);
        assert_eq!(
            reach.screens,
            ["lobby-1", "lobby-2"].map(String::from).into()
        );
        assert_eq!(reach.online, ["lobby-1".to_string()].into());
        assert!(reach.unmatched.is_empty());
    }

    #[test]
    fn a_target_nobody_matches_is_named() {
        let alert = new_alert(
            "acme",
            spec(&["group:loby", "device:hall-1"], "banner"),
            Timestamp::now(),
        )
        .unwrap();
        let reach = reach(alert.targets.as_deref(), &registry(), &[]);
        assert_eq!(reach.screens, ["hall-1".to_string()].into());
        assert_eq!(reach.unmatched, ["group:loby"]);
    }

    #[test]
    fn the_whole_fleet_includes_screens_known_only_by_their_status() {
        let alert = new_alert("acme", spec(&[], "fullscreen"), Timestamp::now()).unwrap();
        let reach = reach(
            alert.targets.as_deref(),
            &registry(),
            &[status("kiosk-9", true)],
        );
        assert_eq!(reach.screens.len(), 4);
        assert_eq!(reach.online, ["kiosk-9".to_string()].into());
    }

    #[test]
    fn a_fullscreen_alert_outranks_a_banner_unless_told_otherwise() {
        let now = Timestamp::now();
        let full = new_alert("acme", spec(&[], "fullscreen"), now).unwrap();
        let banner = new_alert("acme", spec(&[], "banner"), now).unwrap();
        assert!(full.priority > banner.priority);
        let told = new_alert(
            "acme",
            AlertSpec {
                priority: Some(500),
                ..spec(&[], "banner")
            },
            now,
        )
        .unwrap();
        assert_eq!(told.priority, 500);
    }

    #[test]
    fn bad_ids_targets_and_styles_are_refused_before_signing() {
        let now = Timestamp::now();
        let bad = |spec: AlertSpec| new_alert("acme", spec, now).unwrap_err().to_string();
        assert!(
            bad(AlertSpec {
                id: Some("evac/all".into()),
                ..spec(&[], "banner")
            })
            .contains("alert id")
        );
        assert!(bad(spec(&["lobby"], "banner")).contains("device:<id> nor group:<name>"));
        assert!(bad(spec(&[], "popup")).contains("popup"));
        assert!(clearing("acme", "+", now).is_err());
    }
}

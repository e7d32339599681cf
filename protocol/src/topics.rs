//! MQTT topic names (docs/protocol.md §3). Every topic lives under a prefix,
//! `phare/<fleet>/` by default.

use crate::document::Target;

/// Topic names for one fleet under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// `prefix` is used as given, with a trailing `/` added if missing.
    pub fn new(prefix: &str) -> Topics {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Topics { prefix }
    }

    /// The default prefix for a fleet: `phare/<fleet>/`.
    pub fn for_fleet(fleet: &str) -> Topics {
        Topics::new(&format!("phare/{fleet}/"))
    }

    pub fn root(&self, version: u64) -> String {
        format!("{}trust/root/{version}", self.prefix)
    }

    /// Filter matching every root version.
    pub fn root_filter(&self) -> String {
        format!("{}trust/root/+", self.prefix)
    }

    /// The root version a topic carries, if it is a root topic.
    pub fn root_version(&self, topic: &str) -> Option<u64> {
        topic
            .strip_prefix(&self.prefix)?
            .strip_prefix("trust/root/")?
            .parse()
            .ok()
    }

    pub fn device_assignment(&self, device: &str) -> String {
        format!("{}device/{device}/assignment", self.prefix)
    }

    pub fn group_assignment(&self, group: &str) -> String {
        format!("{}group/{group}/assignment", self.prefix)
    }

    /// The assignment topic for a target (`device:<id>` or `group:<name>`).
    pub fn assignment_for_target(&self, target: &str) -> Option<String> {
        Target::parse(target).map(|target| self.assignment(&target))
    }

    /// A target's assignment topic.
    pub fn assignment(&self, target: &Target) -> String {
        match target {
            Target::Device(device) => self.device_assignment(device),
            Target::Group(group) => self.group_assignment(group),
        }
    }

    /// One alert's retained topic.
    pub fn alert(&self, id: &str) -> String {
        format!("{}alert/{id}", self.prefix)
    }

    /// Every alert of the fleet.
    pub fn alert_filter(&self) -> String {
        self.alert("+")
    }

    /// The alert id an alert topic stands for.
    pub fn alert_id<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("alert/")
            .filter(|id| crate::document::is_valid_alert_id(id))
    }

    /// Everything of the fleet (the operator tool's ACL).
    pub fn fleet_filter(&self) -> String {
        format!("{}#", self.prefix)
    }

    pub fn command(&self, device: &str) -> String {
        format!("{}device/{device}/command", self.prefix)
    }

    pub fn status(&self, device: &str) -> String {
        format!("{}device/{device}/status", self.prefix)
    }

    pub fn events(&self, device: &str) -> String {
        format!("{}device/{device}/events", self.prefix)
    }

    pub fn pop(&self, device: &str) -> String {
        format!("{}device/{device}/pop", self.prefix)
    }

    /// Where a collector acknowledges a device's proof-of-play batches.
    pub fn pop_ack(&self, device: &str) -> String {
        format!("{}device/{device}/pop/ack", self.prefix)
    }

    pub fn response(&self, device: &str) -> String {
        format!("{}device/{device}/response", self.prefix)
    }

    /// The device and leaf of `<prefix>device/<id>/<leaf>`, e.g.
    /// `("lobby-1", "status")`. Behind the broker's ACL the topic, unlike
    /// a payload, names who published.
    pub fn device_leaf<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix("device/")?;
        let (device, leaf) = rest.split_once('/')?;
        (is_topic_level(device) && is_topic_level(leaf)).then_some((device, leaf))
    }
}

/// Whether a name can be one MQTT topic level: no wildcards, no separators.
pub fn is_topic_level(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '+', '#', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let t = Topics::for_fleet("acme");
        assert_eq!(t.root(3), "phare/acme/trust/root/3");
        assert_eq!(t.root_version("phare/acme/trust/root/12"), Some(12));
        assert_eq!(t.root_version("phare/other/trust/root/12"), None);
        assert_eq!(
            t.assignment_for_target("group:lobby").unwrap(),
            "phare/acme/group/lobby/assignment"
        );
        assert_eq!(t.status("lobby-1"), "phare/acme/device/lobby-1/status");
        let topics = Topics::new("x/y");
        assert_eq!(topics.alert("evac"), "x/y/alert/evac");
        assert_eq!(topics.alert_filter(), "x/y/alert/+");
        assert_eq!(topics.alert_id("x/y/alert/evac-1"), Some("evac-1"));
        assert_eq!(topics.alert_id("x/y/alert/a/b"), None);
        assert_eq!(topics.alert_id("x/y/alert/"), None);
        assert_eq!(topics.alert_id("x/z/alert/evac"), None);
    }

    #[test]
    fn a_device_topic_names_its_device_and_leaf() {
        let t = Topics::for_fleet("acme");
        assert_eq!(t.device_leaf(&t.pop("lobby-1")), Some(("lobby-1", "pop")));
        for other in [
            "phare/rival/device/lobby-1/pop",
            "phare/acme/device/lobby-1",
            "phare/acme/device//pop",
            "phare/acme/device/lobby-1/pop/extra",
            "phare/acme/group/lobby/assignment",
        ] {
            assert_eq!(t.device_leaf(other), None, "{other}");
        }
    }

    #[test]
    fn topic_levels_refuse_wildcards() {
        assert!(is_topic_level("lobby-1"));
        for bad in ["", "a/b", "+", "a#"] {
            assert!(!is_topic_level(bad), "{bad}");
        }
    }
}

//! The files of the Debian package (player/debian/) agree with the player.

use std::path::{Path, PathBuf};

use phare_player::config::Config;

fn debian(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("debian")
        .join(file)
}

/// The placeholder /etc/phare/player.toml parses: an unenrolled device
/// fails on its missing pinned root, which the unit's condition names,
/// never on its configuration.
#[test]
fn the_packaged_default_config_parses() {
    let path = debian("player.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.root, path.parent().unwrap().join("root.json"));
    assert_eq!(config.data_dir, Path::new("/var/lib/phare"));
    assert_eq!(config.reboot_command, ["systemctl", "reboot"]);
}

/// The unit waits for the pinned root that the default config names, and
/// lets the player write where its data goes.
#[test]
fn the_unit_matches_the_default_config() {
    let unit = std::fs::read_to_string(debian("phare-player.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    assert!(has("ConditionPathExists=/etc/phare/root.json"));
    assert!(has(
        "ExecStart=/usr/bin/phare-player --config /etc/phare/player.toml"
    ));
    assert!(has("StateDirectory=phare"), "data_dir is /var/lib/phare");
    assert!(has("Type=notify") && unit.contains("\nWatchdogSec="));
}

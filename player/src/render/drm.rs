//! The DRM device that drives the panel, for `video_sink = "kms"`.
//!
//! Left alone, kmssink looks for a device by trying a fixed list of driver
//! names, and GStreamer 1.22's list misses common ones (virtio_gpu,
//! simpledrm…): it then fails with "Could not open DRM module". The player
//! picks the card itself from sysfs instead: the first one with a connected
//! connector, else the first one with any connector. That also skips
//! render-only devices, such as the Raspberry Pi 5's v3d next to its vc4
//! display controller. The card is opened for each start of the output and
//! its descriptor handed to kmssink, which does not close it (and forgets
//! it when stopped).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Where the kernel lists DRM devices and their connectors.
pub const SYSFS: &str = "/sys/class/drm";
/// Where their device nodes are.
pub const DEV: &str = "/dev/dri";

/// The card (`card1`) that drives a panel, by the state of its connectors
/// (`card1-HDMI-A-1/status`) under `sysfs`.
pub fn display_card(sysfs: &Path) -> Option<String> {
    let mut connectors: Vec<(u32, bool)> = std::fs::read_dir(sysfs)
        .ok()?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let (card, _connector) = name.strip_prefix("card")?.split_once('-')?;
            let card = card.parse().ok()?;
            let status = std::fs::read_to_string(sysfs.join(&name).join("status")).ok();
            Some((card, status.is_some_and(|s| s.trim() == "connected")))
        })
        .collect();
    // Connected first, then by card number.
    connectors.sort_by_key(|&(card, connected)| (!connected, card));
    connectors.first().map(|(card, _)| format!("card{card}"))
}

/// Opens the display card, read-write as modesetting needs.
pub fn open_display_card(sysfs: &Path, dev: &Path) -> Result<(PathBuf, File), String> {
    let card = display_card(sysfs).ok_or_else(|| {
        format!(
            "no DRM device with a display connector in {}",
            sysfs.display()
        )
    })?;
    let path = dev.join(card);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs `drm` class directory with these entries; a connector's
    /// status is given after a colon.
    fn sysfs(entries: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for entry in entries {
            let (name, status) = entry.split_once(':').unwrap_or((entry, ""));
            std::fs::create_dir(dir.path().join(name)).unwrap();
            if !status.is_empty() {
                std::fs::write(dir.path().join(name).join("status"), format!("{status}\n"))
                    .unwrap();
            }
        }
        dir
    }

    #[test]
    fn the_card_with_a_connected_panel_is_chosen() {
        // Raspberry Pi 5: v3d renders (no connector), vc4 displays.
        let pi5 = sysfs(&[
            "card0",
            "card1",
            "card1-HDMI-A-1:disconnected",
            "card1-HDMI-A-2:connected",
            "renderD128",
            "version",
        ]);
        assert_eq!(display_card(pi5.path()).as_deref(), Some("card1"));

        let two_cards = sysfs(&[
            "card0",
            "card0-DP-1:disconnected",
            "card1",
            "card1-Virtual-1:connected",
        ]);
        assert_eq!(display_card(two_cards.path()).as_deref(), Some("card1"));
    }

    #[test]
    fn with_nothing_connected_the_first_card_with_a_connector_is_chosen() {
        // The panel may be plugged in later: KMS still needs a card.
        let unplugged = sysfs(&["card0", "card1", "card1-HDMI-A-1:disconnected"]);
        assert_eq!(display_card(unplugged.path()).as_deref(), Some("card1"));

        let render_only = sysfs(&["card0", "renderD128"]);
        assert_eq!(display_card(render_only.path()), None);
        let error = open_display_card(render_only.path(), Path::new(DEV)).unwrap_err();
        assert!(
            error.contains("no DRM device with a display connector"),
            "{error}"
        );
    }
}

//! The `[display]` section of `player.toml` and the top-level `video_sink`
//! key: which sink drives the screen, on which connector, turned how, at
//! what size and rate, with or without sound.
//!
//! Settings only, free of GStreamer, so that `phare` checks the bundles it
//! writes without linking it; the player's `display` module builds the sink
//! from them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Which GStreamer video sink renders the output (config key `video_sink`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoSink {
    Auto,
    /// DRM/KMS straight to the connector: no X or Wayland (Raspberry Pi).
    Kms,
    Gl,
    Wayland,
    X,
    /// Renders nowhere, in real time: headless tests and benchmarks.
    Fake,
}

impl VideoSink {
    /// The GStreamer element factory implementing this sink.
    pub fn element_name(self) -> &'static str {
        match self {
            VideoSink::Auto => "autovideosink",
            VideoSink::Kms => "kmssink",
            VideoSink::Gl => "glimagesink",
            VideoSink::Wayland => "waylandsink",
            VideoSink::X => "ximagesink",
            VideoSink::Fake => "fakesink",
        }
    }

    /// The audio sink that goes with it: a headless video sink gets a
    /// headless audio sink, so tests exercise the audio path without a
    /// sound card.
    pub fn audio_element_name(self) -> &'static str {
        match self {
            VideoSink::Fake => "fakesink",
            _ => "autoaudiosink",
        }
    }
}

/// Clockwise rotation of the picture on the panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u16")]
pub enum Rotation {
    #[default]
    None,
    Quarter,
    Half,
    ThreeQuarters,
}

impl TryFrom<u16> for Rotation {
    type Error = String;

    fn try_from(degrees: u16) -> Result<Rotation, String> {
        match degrees {
            0 => Ok(Rotation::None),
            90 => Ok(Rotation::Quarter),
            180 => Ok(Rotation::Half),
            270 => Ok(Rotation::ThreeQuarters),
            other => Err(format!("rotation must be 0, 90, 180 or 270, not {other}")),
        }
    }
}

impl Rotation {
    /// Whether the canvas is the panel turned on its side.
    pub fn swaps_axes(self) -> bool {
        matches!(self, Rotation::Quarter | Rotation::ThreeQuarters)
    }
}

/// `[display]`: the panel and how the picture reaches it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    /// The panel's mode, in pixels, before rotation. Every item is scaled
    /// (aspect kept, letterboxed) to it; matching the content's size spares
    /// the CPU a rescale per frame.
    pub width: u32,
    pub height: u32,
    /// Output frame rate; every item is converted to it.
    pub fps: u32,
    /// Rotation used unless the assignment says otherwise.
    pub rotation: Rotation,
    /// KMS connector id (`modetest -c` lists them); absent = the first
    /// connected one. Only for `video_sink = "kms"`.
    pub connector: Option<u32>,
    /// Play the items' sound.
    pub audio: bool,
    /// 0.0 (mute) to 1.0 (unchanged); up to 4.0 amplifies.
    pub volume: f64,
    /// How long a live stream may stall before its fallback shows.
    pub live_fallback_timeout_ms: u64,
    /// Where `SIGUSR1` writes screenshots (also `--screenshot-dir`).
    pub screenshot_dir: Option<PathBuf>,
}

impl Default for DisplayConfig {
    fn default() -> DisplayConfig {
        DisplayConfig {
            width: 1920,
            height: 1080,
            fps: 30,
            rotation: Rotation::None,
            connector: None,
            audio: false,
            volume: 1.0,
            live_fallback_timeout_ms: 3000,
            screenshot_dir: None,
        }
    }
}

impl DisplayConfig {
    /// The first bad value, as (key, why).
    pub fn check(&self, sink: VideoSink) -> Result<(), (&'static str, String)> {
        for (key, value) in [
            ("display.width", self.width),
            ("display.height", self.height),
        ] {
            if !(16..=8192).contains(&value) {
                return Err((key, "must be from 16 to 8192".into()));
            }
            // I420 needs even dimensions.
            if value % 2 != 0 {
                return Err((key, "must be even".into()));
            }
        }
        if !(1..=120).contains(&self.fps) {
            return Err(("display.fps", "must be from 1 to 120".into()));
        }
        if !phare_protocol::document::VOLUME.contains(&self.volume) {
            return Err(("display.volume", "must be from 0.0 to 4.0".into()));
        }
        if !(100..=60_000).contains(&self.live_fallback_timeout_ms) {
            return Err((
                "display.live_fallback_timeout_ms",
                "must be from 100 to 60000".into(),
            ));
        }
        if self.connector.is_some() && sink != VideoSink::Kms {
            return Err((
                "display.connector",
                "only applies to video_sink = \"kms\"".into(),
            ));
        }
        Ok(())
    }

    /// The canvas items are laid out on: the panel, turned by `rotation`.
    pub fn canvas(&self, rotation: Rotation) -> (u32, u32) {
        if rotation.swaps_axes() {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }

    pub fn live_fallback_timeout(&self) -> Duration {
        Duration::from_millis(self.live_fallback_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_turns_the_canvas() {
        let config = DisplayConfig {
            width: 1920,
            height: 1080,
            ..DisplayConfig::default()
        };
        assert_eq!(config.canvas(Rotation::None), (1920, 1080));
        assert_eq!(config.canvas(Rotation::Quarter), (1080, 1920));
        assert_eq!(config.canvas(Rotation::Half), (1920, 1080));
        assert_eq!(Rotation::try_from(270), Ok(Rotation::ThreeQuarters));
        assert!(
            Rotation::try_from(45)
                .unwrap_err()
                .contains("0, 90, 180 or 270")
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |config: DisplayConfig, sink| config.check(sink).unwrap_err().0;
        let base = DisplayConfig::default();
        assert_eq!(base.check(VideoSink::Fake), Ok(()));
        assert_eq!(
            bad(
                DisplayConfig {
                    width: 1921,
                    ..base.clone()
                },
                VideoSink::Fake
            ),
            "display.width"
        );
        assert_eq!(
            bad(
                DisplayConfig {
                    fps: 0,
                    ..base.clone()
                },
                VideoSink::Fake
            ),
            "display.fps"
        );
        assert_eq!(
            bad(
                DisplayConfig {
                    volume: 9.0,
                    ..base.clone()
                },
                VideoSink::Fake
            ),
            "display.volume"
        );
        let on_connector = DisplayConfig {
            connector: Some(32),
            ..base
        };
        assert_eq!(bad(on_connector.clone(), VideoSink::X), "display.connector");
        assert_eq!(on_connector.check(VideoSink::Kms), Ok(()));
    }
}

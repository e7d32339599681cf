//! The physical output: which GStreamer sink drives the screen, on which
//! connector, turned how, at what size and rate, with or without sound.
//!
//! Pure settings and the sink factory; the renderer owns the pipeline. The
//! `[display]` section of `player.toml` deserialises straight into
//! [`DisplayConfig`]; the top-level `video_sink` key picks the [`VideoSink`].

use std::path::PathBuf;
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;
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
    /// The `videoflip` method turning the canvas onto the panel.
    pub fn method(self) -> gst_video::VideoOrientationMethod {
        match self {
            Rotation::None => gst_video::VideoOrientationMethod::Identity,
            Rotation::Quarter => gst_video::VideoOrientationMethod::_90r,
            Rotation::Half => gst_video::VideoOrientationMethod::_180,
            Rotation::ThreeQuarters => gst_video::VideoOrientationMethod::_90l,
        }
    }

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

    pub fn frame_duration(&self) -> gst::ClockTime {
        gst::ClockTime::from_nseconds(1_000_000_000 / u64::from(self.fps))
    }

    pub fn live_fallback_timeout(&self) -> Duration {
        Duration::from_millis(self.live_fallback_timeout_ms)
    }
}

/// Builds the video sink: real time (`sync`), on the configured connector.
pub fn video_sink(sink: VideoSink, config: &DisplayConfig) -> Result<gst::Element, String> {
    let name = sink.element_name();
    let element = gst::ElementFactory::make(name)
        .build()
        .map_err(|_| format!("GStreamer element `{name}` is not available (missing plugin?)"))?;
    // Every sink we offer has the property except wrappers such as
    // autovideosink, which sync by default anyway.
    if element.find_property("sync").is_some() {
        element.set_property("sync", true);
    }
    if let Some(connector) = config.connector {
        element.set_property("connector-id", i32::try_from(connector).unwrap_or(i32::MAX));
    }
    if sink == VideoSink::Kms {
        // Scale on the display controller, for free, when the panel's mode
        // differs from the canvas.
        element.set_property("force-modesetting", false);
        element.set_property("can-scale", true);
        // Every KMS driver today is atomic: setting the plane already waits
        // for the flip. kmssink's own extra wait asks for vblank events,
        // which some drivers lack (virtio-gpu: "drmWaitVBlank failed:
        // Operation not supported", every frame refused).
        element.set_property("skip-vsync", true);
    }
    if sink == VideoSink::Wayland {
        // The player owns the screen: otherwise the compositor's shell puts
        // the window wherever it likes, under its own panel.
        ask_fullscreen(&element);
    }
    Ok(element)
}

/// Sets waylandsink's `fullscreen`. GStreamer 1.22 asserts (a GLib
/// CRITICAL on stderr, "gst_wl_window_ensure_fullscreen: assertion 'self'
/// failed") when it is set before the sink has a window, which is always
/// the case here, yet keeps the setting for the window it then makes:
/// that false alarm is kept out of the log.
fn ask_fullscreen(element: &gst::Element) {
    use gst::glib;
    let domain = Some("GStreamer-Wayland");
    let quiet = glib::log_set_handler(
        domain,
        glib::LogLevels::LEVEL_CRITICAL,
        false,
        false,
        |_, _, _| {},
    );
    element.set_property("fullscreen", true);
    glib::log_remove_handler(domain, quiet);
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

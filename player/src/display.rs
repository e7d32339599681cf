//! The physical output: the GStreamer side of the `[display]` settings
//! ([`DisplayConfig`], in `phare-common` so that `phare` reads them
//! without GStreamer): the sink factory, the flip and the frame duration
//! the renderer uses.

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;

pub use phare_common::display::{DisplayConfig, Rotation, VideoSink};

/// The `videoflip` method turning the canvas onto the panel.
pub fn flip_method(rotation: Rotation) -> gst_video::VideoOrientationMethod {
    match rotation {
        Rotation::None => gst_video::VideoOrientationMethod::Identity,
        Rotation::Quarter => gst_video::VideoOrientationMethod::_90r,
        Rotation::Half => gst_video::VideoOrientationMethod::_180,
        Rotation::ThreeQuarters => gst_video::VideoOrientationMethod::_90l,
    }
}

/// How long one output frame shows at the configured rate.
pub fn frame_duration(config: &DisplayConfig) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(1_000_000_000 / u64::from(config.fps))
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

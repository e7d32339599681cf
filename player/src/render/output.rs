//! The persistent output pipeline: the appsrc every producer feeds, the
//! overlays, the rotation and the sink.
//!
//! ```text
//! appsrc ! overlaycomposition ! videoflip ! videoconvert ! videoscale ! capsfilter ! sink
//! ```
//!
//! `overlaycomposition` hands the overlays to sinks that blend them on the
//! GPU and blends them in software for the others. `videoflip` is linked in
//! only while the picture is turned: even set to identity it copies every
//! frame. The capsfilter holds the sink to the panel's mode whatever
//! reaches it (see [`panel_caps`]). A probe on the appsrc's pad drops the
//! leftovers of an interruption (see [`Timeline`]); one on the sink's pad
//! tells when items start and keeps the last frame for screenshots.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_video::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tracing::{error, info, warn};

use super::drm;
use super::timeline::Timeline;
use super::{RenderError, RenderSettings, lock, make};
use crate::display::{DisplayConfig, Rotation, flip_method};
use crate::overlay::{AlertOverlay, Canvas, Painter};

/// Frames the output appsrc may hold. Small, so that backpressure reaches
/// the producer quickly and an interruption has little to discard; enough
/// to cover the hand-over to a prepared producer many times over.
const QUEUED_FRAMES: u64 = 3;

pub(super) struct Output {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    /// Linked between `overlay` and `convert` only while turned.
    overlay: gst::Element,
    flip: gst::Element,
    convert: gst::Element,
    display: DisplayConfig,
    rotation: Rotation,
    sink: gst::Element,
    sink_name: String,
    /// kmssink's DRM device, opened by us for each start (see [`drm`]).
    ///
    /// [`drm`]: super::drm
    display_card: Option<std::fs::File>,
    /// The last error the output posted, to say why it would not start.
    last_error: Arc<Mutex<Option<String>>>,
    /// Written by the sink probe, read by screenshots; emptied when off.
    last_frame: Arc<Mutex<Option<gst::Sample>>>,
}

impl Output {
    pub fn start(
        settings: &RenderSettings,
        sink: gst::Element,
        alert: Arc<Mutex<Option<AlertOverlay>>>,
        last_frame: Arc<Mutex<Option<gst::Sample>>>,
        timeline: &Arc<Mutex<Timeline>>,
    ) -> Result<Output, RenderError> {
        let pipeline_error = |e: gst::glib::BoolError| RenderError::Pipeline(e.to_string());
        let appsrc = gst_app::AppSrc::builder()
            .name("feed")
            .format(gst::Format::Time)
            .is_live(false)
            .block(true)
            .build();
        let overlay = make("overlaycomposition")?;
        let flip = make("videoflip")?;
        let convert = make("videoconvert")?;
        let scale = make("videoscale")?;
        let panel = make("capsfilter")?;
        panel.set_property("caps", panel_caps(&settings.display));
        let sink_name = sink
            .factory()
            .map_or_else(|| sink.name().to_string(), |f| f.name().to_string());
        connect_painter(&overlay, settings, alert);

        let pipeline = gst::Pipeline::with_name("phare-output");
        pipeline
            .add_many([
                appsrc.upcast_ref(),
                &overlay,
                &flip,
                &convert,
                &scale,
                &panel,
                &sink,
            ])
            .map_err(pipeline_error)?;
        gst::Element::link_many([appsrc.upcast_ref(), &overlay])
            .and_then(|()| gst::Element::link_many([&convert, &scale, &panel, &sink]))
            .map_err(pipeline_error)?;

        let head = appsrc
            .static_pad("src")
            .ok_or_else(|| RenderError::Pipeline("the output appsrc has no src pad".into()))?;
        let head_timeline = Arc::clone(timeline);
        head.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let admitted = buffer.pts().is_none_or(|pts| {
                lock(&head_timeline).admit(
                    buffer.offset(),
                    pts,
                    buffer.duration().unwrap_or(gst::ClockTime::ZERO),
                )
            });
            if admitted {
                gst::PadProbeReturn::Ok
            } else {
                // Handled, not Drop: the bindings release the buffer
                // themselves, and with Drop the core would release it again.
                gst::PadProbeReturn::Handled
            }
        });
        let sink_pad = sink
            .static_pad("sink")
            .ok_or_else(|| RenderError::Pipeline(format!("{sink_name} has no sink pad")))?;
        let probe_timeline = Arc::clone(timeline);
        let probe_frame = Arc::clone(&last_frame);
        sink_pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            if let Some(pts) = buffer.pts() {
                lock(&probe_timeline).on_sink_buffer(pts);
            }
            if let Some(caps) = pad.current_caps() {
                let sample = gst::Sample::builder()
                    .buffer(&buffer.to_owned())
                    .caps(&caps)
                    .build();
                *lock(&probe_frame) = Some(sample);
            }
            gst::PadProbeReturn::Ok
        });

        let mut output = Output {
            pipeline,
            appsrc,
            overlay,
            flip,
            convert,
            display: settings.display.clone(),
            rotation: settings.display.rotation,
            sink,
            sink_name,
            display_card: None,
            last_error: Arc::default(),
            last_frame,
        };
        output.apply_rotation()?;
        output.watch_bus()?;
        output.set_on(true)?;
        Ok(output)
    }

    /// The format every producer delivers: the canvas, in I420.
    pub fn caps(&self) -> gst::Caps {
        let (width, height) = self.display.canvas(self.rotation);
        gst_video::VideoCapsBuilder::new()
            .format(gst_video::VideoFormat::I420)
            .width(width as i32)
            .height(height as i32)
            .framerate(gst::Fraction::new(self.display.fps as i32, 1))
            .pixel_aspect_ratio(gst::Fraction::new(1, 1))
            .build()
    }

    pub fn canvas(&self) -> (u32, u32) {
        self.display.canvas(self.rotation)
    }

    pub fn appsrc(&self) -> &gst_app::AppSrc {
        &self.appsrc
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// Turns the canvas. Leaves the output off (NULL), to relink it: the
    /// caller turns it back on and restarts what plays, since producers
    /// must now deliver the new canvas size.
    pub fn set_rotation(&mut self, rotation: Rotation) -> Result<(), RenderError> {
        self.set_on(false)?;
        self.rotation = rotation;
        self.apply_rotation()
    }

    /// Links `videoflip` in or out, sets the canvas caps. In NULL only.
    fn apply_rotation(&mut self) -> Result<(), RenderError> {
        self.overlay.unlink(&self.flip);
        self.overlay.unlink(&self.convert);
        self.flip.unlink(&self.convert);
        let linked = if self.rotation == Rotation::None {
            self.overlay.link(&self.convert)
        } else {
            self.flip
                .set_property("video-direction", flip_method(self.rotation));
            gst::Element::link_many([&self.overlay, &self.flip, &self.convert])
        };
        linked.map_err(|e| RenderError::Pipeline(e.to_string()))?;
        let caps = self.caps();
        let frame_bytes = gst_video::VideoInfo::from_caps(&caps)
            .map_err(|e| RenderError::Pipeline(e.to_string()))?
            .size() as u64;
        self.appsrc.set_caps(Some(&caps));
        self.appsrc.set_max_bytes(frame_bytes * QUEUED_FRAMES);
        Ok(())
    }

    /// On: PLAYING (the running time starts over from zero). Off: NULL, no
    /// thread left running, no frame kept.
    pub fn set_on(&mut self, on: bool) -> Result<(), RenderError> {
        if !on {
            let _ = self.pipeline.set_state(gst::State::Null);
            *lock(&self.last_frame) = None;
            self.display_card = None;
            return Ok(());
        }
        if self.sink_name == "kmssink" {
            self.hand_display_card_to_sink()?;
        }
        if self.pipeline.set_state(gst::State::Playing).is_ok() {
            return Ok(());
        }
        let reason = lock(&self.last_error)
            .take()
            .unwrap_or_else(|| "state change failed".into());
        let _ = self.pipeline.set_state(gst::State::Null);
        Err(RenderError::OutputStart {
            sink: self.sink_name.clone(),
            reason,
        })
    }

    /// Opens the card that drives the panel and gives kmssink its
    /// descriptor, kept open here until the output stops.
    fn hand_display_card_to_sink(&mut self) -> Result<(), RenderError> {
        let (path, card) = drm::open_display_card(Path::new(drm::SYSFS), Path::new(drm::DEV))
            .map_err(|reason| RenderError::OutputStart {
                sink: self.sink_name.clone(),
                reason,
            })?;
        info!(card = %path.display(), "KMS output");
        // kmssink keeps the name of the last device it was given and then
        // refuses a new descriptor: clearing the name makes room for it.
        self.sink.set_property("driver-name", None::<&str>);
        self.sink.set_property("fd", card.as_raw_fd());
        self.display_card = Some(card);
        Ok(())
    }

    /// Logs output errors and warnings as they happen. Nobody pops this
    /// bus, so messages are dropped after handling instead of piling up for
    /// the renderer's whole life; the last error is kept for [`set_on`].
    ///
    /// [`set_on`]: Output::set_on
    fn watch_bus(&self) -> Result<(), RenderError> {
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| RenderError::Pipeline("pipeline has no bus".into()))?;
        let feed = self.appsrc.downgrade();
        let last_error = Arc::clone(&self.last_error);
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    let running = feed
                        .upgrade()
                        .is_some_and(|appsrc| appsrc.current_state() == gst::State::Playing);
                    let source = err.src().map(|s| s.path_string());
                    if running {
                        error!(?source, debug = ?err.debug(), "output error: {}", err.error());
                    } else {
                        // A failed start: the caller reports it and tries again.
                        warn!(?source, debug = ?err.debug(), "output error: {}", err.error());
                    }
                    *lock(&last_error) = Some(err.error().to_string());
                    // The output's streaming thread has stopped, so its full
                    // queue would never drain and a producer pushing into it
                    // would block forever (hanging play/stop/shutdown).
                    // Flushing makes every push fail instead: items then fail
                    // fast and the renderer idles. Not when the output failed
                    // to start (the sink refused its state change): nothing
                    // pushes then, and the flush would outlive the failed
                    // start, leaving the next start that works with an appsrc
                    // that never sends a frame (seen on Xvfb under load).
                    if let Some(appsrc) = feed.upgrade().filter(|_| running) {
                        appsrc.send_event(gst::event::FlushStart::new());
                    }
                }
                gst::MessageView::Warning(w) => {
                    warn!(debug = ?w.debug(), "output warning: {}", w.error())
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        Ok(())
    }

    /// The output's running time, or `None` while it is still waiting for
    /// its very first frame (its clock only runs once it is playing).
    pub fn running_time(pipeline: &gst::Pipeline) -> Option<gst::ClockTime> {
        (pipeline.current_state() == gst::State::Playing)
            .then(|| pipeline.current_running_time())
            .flatten()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// What the sink is held to: the panel's mode, in any format, memory and
/// pixel aspect ratio (GPU sinks keep the overlays to blend themselves; an
/// X display may claim non-square pixels).
///
/// Whatever the canvas, the sink must only ever see the panel's size: a
/// window sink (ximagesink) makes its window the size of the first caps it
/// gets and later fits every frame into that window. And after a rotation
/// it would get a wrong size first: the appsrc, started again, negotiates
/// the caps it had before being stopped (the old canvas) before the new
/// ones queued, so the turned old canvas reached the sink first and the
/// picture showed letterboxed in a window on its side (found by
/// tests/tests/outputs.rs on Xvfb).
fn panel_caps(display: &DisplayConfig) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .any_features()
        .field("width", display.width as i32)
        .field("height", display.height as i32)
        .build()
}

/// Draws the overlays on each frame through `overlaycomposition`'s
/// signals, which run on the output's streaming thread.
fn connect_painter(
    overlay: &gst::Element,
    settings: &RenderSettings,
    alert: Arc<Mutex<Option<AlertOverlay>>>,
) {
    let logo = settings.overlay.logo.as_ref().and_then(|path| {
        load_image(path)
            .inspect_err(|e| warn!(path = %path.display(), "logo not shown: {e}"))
            .ok()
    });
    let painter = Arc::new(Mutex::new(Painter::new(
        settings.overlay.clone(),
        logo,
        alert,
    )));
    let on_caps = Arc::clone(&painter);
    overlay.connect("caps-changed", false, move |args| {
        if let Some(info) = args
            .get(1)
            .and_then(|v| v.get::<gst::Caps>().ok())
            .and_then(|caps| gst_video::VideoInfo::from_caps(&caps).ok())
        {
            let fps = info.fps();
            let fps = (fps.numer() / fps.denom().max(1)).max(1) as u32;
            lock(&on_caps).set_canvas(info.width(), info.height(), fps);
        }
        None
    });
    overlay.connect("draw", false, move |_| {
        Some(lock(&painter).compose().to_value())
    });
}

/// Decodes an image file (PNG, JPEG, …) into a BGRA canvas.
pub(super) fn load_image(path: &std::path::Path) -> Result<Canvas, String> {
    let location = path.to_str().ok_or("the path is not UTF-8")?;
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=BGRA ! appsink name=out",
    )
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let element = |name| pipeline.by_name(name).ok_or("incomplete pipeline");
    element("src")?.set_property("location", location);
    let appsink = element("out")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "not an appsink")?;
    let decoded = pipeline
        .set_state(gst::State::Paused)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            appsink
                .try_pull_preroll(gst::ClockTime::from_seconds(10))
                .ok_or_else(|| "cannot decode the image".to_string())
        });
    let _ = pipeline.set_state(gst::State::Null);
    let sample = decoded?;
    let caps = sample.caps().ok_or("no caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    let buffer = sample.buffer_owned().ok_or("no buffer")?;
    let frame = gst_video::VideoFrame::from_buffer_readable(buffer, &info)
        .map_err(|_| "cannot map the image")?;
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).map_err(|e| e.to_string())?;
    let row = info.width() as usize * 4;
    let pixels = data
        .chunks(stride)
        .take(info.height() as usize)
        .flat_map(|line| &line[..row])
        .copied()
        .collect();
    Ok(Canvas::from_pixels(info.width(), info.height(), pixels))
}

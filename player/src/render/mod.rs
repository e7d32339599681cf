//! Video output: one persistent output pipeline fed by short-lived producers.
//!
//! The screen must never drop back to the console, nor show black, between
//! items, so the output is a single pipeline that lives as long as the
//! [`Renderer`] (only [`Renderer::set_display`] takes it down):
//!
//! ```text
//! appsrc (canvas format, time, not live, blocking, few-frame max-bytes)
//!     ! overlaycomposition ! videoflip ! videoconvert ! videoscale ! <sink, sync=true>
//! ```
//!
//! Each playlist item gets its own producer pipeline that decodes it and
//! normalises it to the canvas format (I420, the panel's size turned by the
//! rotation, the output rate, square pixels, letterboxed), so the output
//! never renegotiates:
//!
//! ```text
//! video: filesrc ! decodebin ! videoconvert ! videoscale ! videorate   ! appsink
//! image: filesrc ! decodebin ! videoconvert ! videoscale ! imagefreeze ! appsink
//! live:  fallbacksrc(uri, fallback) ! videoconvert ! videoscale ! videorate ! appsink
//! status screen: appsrc(one drawn frame) ! videoconvert ! videoscale ! imagefreeze ! appsink
//! ```
//!
//! Audio, when enabled, plays from the producer (`volume ! audio sink`),
//! offset by the video's queue so the two stay together; otherwise it goes
//! to a fakesink. The appsink's streaming thread restamps every sample onto
//! one continuous output timeline (`anchor + (pts - anchor_pts)`, see
//! [`timeline`]) and pushes it into the appsrc, which blocks when its small
//! queue is full: the screen paces the producer. A sample whose timestamp
//! jumps (a live stream switching from its fallback to the stream, whose
//! clock started a minute earlier; a file with a hole) is placed anew at
//! the screen's next frame: otherwise the sink would hold the output until
//! its time came, and with it every interruption.
//!
//! Gapless: while an item plays, the next one is already built and
//! prerolled (decoder open, first frame decoded) in PAUSED; when the current
//! one pushes its last frame, the next goes to PLAYING and continues the
//! timeline from the frames still queued, so the first frame of an item
//! follows the last frame of the previous one without a gap. Live items are
//! not prepared ahead (a second connection, or a second socket bound to the
//! same UDP port, would be wrong); while they start, the screen holds the
//! previous frame, and `fallbacksrc` shows the fallback at once.
//!
//! A new playlist (a new assignment, a schedule edge, an alert's clip) takes
//! over the same way: its first item is built and prerolled while the old
//! one plays on; then the old producer stops stamping frames, what it
//! queued is dropped at the head of the output (an epoch, see
//! [`timeline`]), and the new item's first frame follows the last frame the
//! screen took. The old producer is torn down only after that, since its
//! teardown waits for a frame it may still be pushing.
//!
//! A control thread ([`control`]) owns the playlist and the producers. It
//! sleeps on one channel that carries both the API commands and "producer
//! finished" notices, so nothing polls. On-screen events come from a probe
//! on the output sink's pad (see [`timeline`]); it also keeps the last frame
//! for [`Renderer::screenshot`]. Leftovers of an interruption are dropped by
//! a probe on the output appsrc's pad, before any work is spent on them.
//!
//! When nothing plays (no playlist, or every item of it failed) the status
//! screen shows: a drawn frame (see [`crate::overlay`]) fed like a still.
//! An output error (e.g. the display went away) is logged and turns every
//! later item into a failure; rebuilding the output is left to the caller
//! (a new [`Renderer`]).

mod control;
mod drm;
mod output;
mod producer;
mod screenshot;
#[cfg(test)]
mod tests;
mod timeline;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{error, info};

use crate::display::{DisplayConfig, Rotation, VideoSink};
pub use crate::overlay::{AlertOverlay, AlertStyle, OverlayConfig, StatusScreen};
pub use screenshot::{Screenshot, ThumbnailFormat};

use control::Control;
use output::Output;
use timeline::Timeline;

/// What a playlist item is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// A video file (H.264/H.265/VP9 in MP4/MKV/WebM, …).
    Video,
    /// A still (PNG/JPEG), shown for the item's duration.
    Image,
    /// A live stream (HLS, RTSP, SRT, UDP/RTP) with a cached fallback
    /// (clip or still) shown whenever the stream is down.
    Live {
        uri: String,
        fallback: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlayItem {
    /// Position in the playlist, echoed in events.
    pub index: usize,
    /// The verified local file of videos and images; unused for live items.
    pub path: PathBuf,
    pub kind: MediaKind,
    /// Images: required. Videos: `None` = natural end, `Some` = cut at
    /// duration. Live: `None` = until the next `play()`.
    pub duration: Option<Duration>,
}

pub use phare_protocol::report::LiveState;

#[derive(Debug, Clone, PartialEq)]
pub enum RenderEvent {
    /// The first frame of this item reached the sink.
    ItemStarted { index: usize },
    /// The item ended (completed = played to its end/duration; false =
    /// interrupted by a new playlist/stop).
    ItemEnded { index: usize, completed: bool },
    /// The item could not be played (broken file, decoder error); the
    /// renderer moved on.
    ItemFailed { index: usize, reason: String },
    /// A live item switched between its stream and its fallback.
    LiveState { index: usize, state: LiveState },
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot initialise GStreamer: {0}")]
    Init(#[from] gst::glib::Error),
    #[error("GStreamer element `{0}` is not available (missing plugin?)")]
    MissingElement(&'static str),
    #[error("cannot build the output pipeline: {0}")]
    Pipeline(String),
    #[error("cannot start the output ({sink}): {reason}")]
    OutputStart { sink: String, reason: String },
    #[error("cannot spawn the render thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("no frame to capture: {0}")]
    NoFrame(&'static str),
    #[error("cannot encode the screenshot: {0}")]
    Encode(String),
}

/// Everything the renderer needs to know at start.
#[derive(Debug, Clone)]
pub struct RenderSettings {
    pub sink: VideoSink,
    pub display: DisplayConfig,
    pub overlay: OverlayConfig,
    /// What the status screen says until [`Renderer::show_status_screen`]
    /// says otherwise (also shown, with the error, when every item fails).
    pub status: StatusScreen,
}

/// Plays playlists on the persistent output; see the module docs.
pub struct Renderer {
    backend: Backend,
    /// Read by the overlay at every frame.
    alert: Arc<Mutex<Option<AlertOverlay>>>,
    screenshots: Screenshots,
}

enum Backend {
    /// The control thread driving the GStreamer output.
    Output {
        commands: mpsc::Sender<Msg>,
        thread: Option<JoinHandle<()>>,
    },
    /// No output at all: a simulated device (`phare-player --simulate`)
    /// runs the real link, trust and cache code, and an item "starts" as
    /// soon as it is asked for.
    Simulated {
        events: UnboundedSender<RenderEvent>,
    },
}

/// Takes screenshots of a renderer from any thread; cheap to clone.
#[derive(Clone)]
pub struct Screenshots {
    /// The last frame that reached the sink.
    last_frame: Arc<Mutex<Option<gst::Sample>>>,
}

impl Screenshots {
    /// See [`Renderer::screenshot`].
    pub fn take(&self) -> Result<Screenshot, RenderError> {
        Screenshot::of(&self.last_frame()?)
    }

    /// The last frame, reduced to fit a command response (≤ 512 KiB).
    /// Blocking (a fraction of a second): call it off the async threads.
    pub fn thumbnail(&self, format: ThumbnailFormat) -> Result<Vec<u8>, RenderError> {
        screenshot::thumbnail(&self.last_frame()?, format)
    }

    fn last_frame(&self) -> Result<gst::Sample, RenderError> {
        lock(&self.last_frame).clone().ok_or(RenderError::NoFrame(
            "nothing was shown yet, or the display is off",
        ))
    }
}

impl Renderer {
    /// Starts the output (persistent) on its own thread(s), with the sink
    /// `settings.sink` names. Events go to `events`.
    pub fn start(
        settings: RenderSettings,
        events: UnboundedSender<RenderEvent>,
    ) -> Result<Renderer, RenderError> {
        gst::init()?;
        let sink = crate::display::video_sink(settings.sink, &settings.display)
            .map_err(|_| RenderError::MissingElement(settings.sink.element_name()))?;
        Renderer::start_with_sink(settings, sink, events)
    }

    /// Like [`Renderer::start`], on a sink element of the caller's (e.g. a
    /// `fakesink` with `signal-handoffs` that a benchmark times frames on).
    pub fn start_with_sink(
        settings: RenderSettings,
        sink: gst::Element,
        events: UnboundedSender<RenderEvent>,
    ) -> Result<Renderer, RenderError> {
        gst::init()?;
        // fallbacksrc is linked in, not installed: register it once.
        static REGISTERED: std::sync::Once = std::sync::Once::new();
        REGISTERED.call_once(|| {
            if let Err(e) = gstfallbackswitch::plugin_register_static() {
                error!(error = %e, "cannot register fallbacksrc: live items will fail");
            }
        });
        producer::check_elements()?;

        let alert = Arc::new(Mutex::new(None));
        let last_frame = Arc::new(Mutex::new(None));
        let timeline = Arc::new(Mutex::new(Timeline::new(events)));
        let output = Output::start(
            &settings,
            sink,
            Arc::clone(&alert),
            Arc::clone(&last_frame),
            &timeline,
        )?;
        let (commands, rx) = mpsc::channel();
        let control = Control::new(settings, output, timeline, commands.clone());
        let thread = std::thread::Builder::new()
            .name("phare-render".into())
            .spawn(move || control.run(rx))?;
        info!("renderer started");
        Ok(Renderer {
            backend: Backend::Output {
                commands,
                thread: Some(thread),
            },
            alert,
            screenshots: Screenshots { last_frame },
        })
    }

    /// A renderer that shows nothing (see [`Backend::Simulated`]); it
    /// takes no screenshot.
    pub fn simulated(events: UnboundedSender<RenderEvent>) -> Renderer {
        Renderer {
            backend: Backend::Simulated { events },
            alert: Arc::new(Mutex::new(None)),
            screenshots: Screenshots {
                last_frame: Arc::new(Mutex::new(None)),
            },
        }
    }

    /// Replace what plays: loop over `items` forever, starting at items[0].
    /// Takes effect promptly (interrupts the current item).
    pub fn play(&self, items: Vec<PlayItem>) {
        self.send(Msg::Play(items));
    }

    /// Stop playing; the output keeps the last frame.
    pub fn stop(&self) {
        self.send(Msg::Stop);
    }

    /// Replace what plays by the status screen; calling it again updates it.
    pub fn show_status_screen(&self, info: StatusScreen) {
        self.send(Msg::Status(info));
    }

    /// Shows `alert` over everything (a full-screen one hides the video)
    /// from the next frame on, until set to `None`.
    pub fn set_alert(&self, alert: Option<AlertOverlay>) {
        *lock(&self.alert) = alert;
    }

    /// Off: every pipeline goes to NULL and the renderer sleeps. On: what
    /// played resumes (the interrupted item from its start).
    pub fn set_display(&self, on: bool) {
        self.send(Msg::Display(on));
    }

    /// Turns the picture (e.g. the assignment's `display.rotation`); the
    /// current item restarts on the turned canvas.
    pub fn set_rotation(&self, rotation: Rotation) {
        self.send(Msg::Rotate(rotation));
    }

    /// Sound level from 0.0 (mute) to 1.0 (unchanged), for the item playing
    /// and those after it.
    pub fn set_volume(&self, volume: f64) {
        self.send(Msg::Volume(volume));
    }

    /// The last frame shown, overlays included, as a PNG and a JPEG
    /// thumbnail of at most 512 KiB. Takes a fraction of a second.
    pub fn screenshot(&self) -> Result<Screenshot, RenderError> {
        self.screenshots.take()
    }

    /// A handle that takes screenshots from another thread or task.
    pub fn screenshots(&self) -> Screenshots {
        self.screenshots.clone()
    }

    /// Stop everything and join threads; also done on Drop.
    pub fn shutdown(self) {
        drop(self);
    }

    fn send(&self, msg: Msg) {
        match (&self.backend, msg) {
            (Backend::Output { commands, .. }, msg) => {
                if commands.send(msg).is_err() {
                    error!("render thread is gone; command ignored");
                }
            }
            (Backend::Simulated { events }, Msg::Play(items)) => {
                if let Some(first) = items.first() {
                    let _ = events.send(RenderEvent::ItemStarted { index: first.index });
                }
            }
            (Backend::Simulated { .. }, _) => {}
        }
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        let Backend::Output { commands, thread } = &mut self.backend else {
            return;
        };
        // The control thread may already be gone (panic); joining reports it.
        let _ = commands.send(Msg::Shutdown);
        if let Some(thread) = thread.take()
            && thread.join().is_err()
        {
            error!("render thread panicked");
        }
    }
}

/// What the control thread waits for: API commands and producer notices.
enum Msg {
    Play(Vec<PlayItem>),
    Stop,
    Status(StatusScreen),
    Display(bool),
    Rotate(Rotation),
    Volume(f64),
    Shutdown,
    /// The producer of this generation is done (EOS, duration reached or
    /// error); its feed says which.
    ProducerFinished {
        generation: u64,
    },
}

/// Locks even if another thread panicked while holding the lock: the state
/// stays consistent enough to keep the screen going, which beats cascading
/// panics across GStreamer streaming threads.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn make(name: &'static str) -> Result<gst::Element, RenderError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|_| RenderError::MissingElement(name))
}

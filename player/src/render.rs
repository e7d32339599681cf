//! Video output: one persistent output pipeline fed by short-lived producers.
//!
//! The screen must never drop back to the console between items, so the
//! output is a single pipeline that lives as long as the [`Renderer`]:
//!
//! ```text
//! appsrc (time, not live, blocking, few-frame max-bytes)
//!     ! videoconvert ! videoscale ! <video sink, sync=true>
//! ```
//!
//! Each playlist item gets its own producer pipeline that decodes the file
//! and normalises it to one fixed raw format (I420, 1280x720, 25 fps, square
//! pixels, letterboxed), so the output never renegotiates:
//!
//! ```text
//! filesrc ! decodebin ! [imagefreeze !] videoconvert
//!     ! videoscale add-borders=true ! videorate ! appsink caps=<output format>
//! ```
//!
//! Non-video streams (audio, for now) go to fakesinks. The appsink's streaming
//! thread restamps every sample onto one continuous output timeline
//! (`offset + (pts - first_pts)`) and pushes it into the appsrc. Because the
//! appsrc blocks when its small queue is full and the output sink runs in
//! real time, the producer is paced by the screen and never runs far ahead;
//! gapless playback will only have to start the next producer early.
//!
//! A control thread owns the playlist and the current producer. It sleeps on
//! one channel that carries both the API commands and "producer finished"
//! notices (from the appsink's EOS, the duration cut, or the producer's bus on
//! error), so nothing polls. On-screen events come from a buffer probe on the
//! output sink's pad: each item registers a marker with the output PTS of its
//! first frame, and the probe emits [`RenderEvent::ItemStarted`] when that
//! frame arrives. Events raised while an earlier marker is still in flight
//! are held behind it, so consumers see events in on-screen order.
//! Interruptions drop the queued leftovers at that probe instead of letting
//! them play out, which keeps `play()`/`stop()` prompt.
//!
//! A playlist whose every item fails in a row is not retried until the next
//! `play()`. An output error (e.g. the display went away) is logged and turns
//! every later item into a failure; rebuilding the output is left to the
//! caller (a new [`Renderer`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, error, info, warn};

/// Output frame size; every item is scaled (letterboxed) to it.
const OUTPUT_WIDTH: u32 = 1280;
const OUTPUT_HEIGHT: u32 = 720;
/// Output frame rate; every item is converted to it by `videorate`.
const OUTPUT_FPS: i32 = 25;
const FRAME_DURATION: gst::ClockTime = gst::ClockTime::from_mseconds(1000 / OUTPUT_FPS as u64);
/// Frames the output appsrc may hold. Small, so that backpressure reaches the
/// producer quickly and an interruption has little to discard; still enough
/// to cover a producer's start-up between items most of the time.
const QUEUED_FRAMES: u64 = 3;
/// When the output has run dry (start-up of a slow item, or after idling),
/// the next first frame is stamped this far ahead of the output's current
/// running time so it reaches the sink before its deadline instead of late.
const RESTART_MARGIN: gst::ClockTime = FRAME_DURATION;

/// Elements the producers need; checked at start so a missing plugin is
/// reported once, clearly, instead of failing every item.
const PRODUCER_ELEMENTS: &[&str] = &[
    "filesrc",
    "decodebin",
    "imagefreeze",
    "videoconvert",
    "videoscale",
    "videorate",
    "appsink",
    "fakesink",
];
/// Elements of the output pipeline besides the sink itself.
const OUTPUT_ELEMENTS: &[&str] = &["appsrc", "videoconvert", "videoscale"];

/// Which GStreamer video sink renders the output (config key `video_sink`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoSink {
    Auto,
    Kms,
    Gl,
    Wayland,
    X,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Image,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlayItem {
    /// Position in the playlist, echoed in events.
    pub index: usize,
    /// A verified local file.
    pub path: PathBuf,
    pub kind: MediaKind,
    /// Images: required. Videos: `None` = natural end, `Some` = cut at duration.
    pub duration: Option<Duration>,
}

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
    OutputStart { sink: &'static str, reason: String },
    #[error("cannot spawn the render thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Plays playlists on the persistent output; see the module docs.
pub struct Renderer {
    commands: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Renderer {
    /// Starts the output (persistent) on its own thread(s). Events go to `events`.
    pub fn start(
        sink: VideoSink,
        events: UnboundedSender<RenderEvent>,
    ) -> Result<Renderer, RenderError> {
        gst::init()?;
        let sink_name = sink.element_name();
        for &name in OUTPUT_ELEMENTS
            .iter()
            .chain(PRODUCER_ELEMENTS)
            .chain([&sink_name])
        {
            if gst::ElementFactory::find(name).is_none() {
                return Err(RenderError::MissingElement(name));
            }
        }

        let timeline = Arc::new(Mutex::new(Timeline {
            events,
            next_pts: gst::ClockTime::ZERO,
            discard_below: gst::ClockTime::ZERO,
            pending: VecDeque::new(),
        }));
        let output = Output::start(sink_name, &timeline)?;
        let (commands, rx) = mpsc::channel();
        let control = Control {
            output,
            timeline,
            notices: commands.clone(),
            playlist: Vec::new(),
            next: 0,
            failures_in_row: 0,
            current: None,
            generation: 0,
        };
        let thread = std::thread::Builder::new()
            .name("phare-render".into())
            .spawn(move || control.run(rx))?;
        info!(sink = sink_name, "renderer started");
        Ok(Renderer {
            commands,
            thread: Some(thread),
        })
    }

    /// Replace what plays: loop over `items` forever, starting at items[0].
    /// Takes effect promptly (interrupts the current item).
    pub fn play(&self, items: Vec<PlayItem>) {
        self.send(Msg::Play(items));
    }

    /// Stop playing (output idle; later issue will show a status screen).
    pub fn stop(&self) {
        self.send(Msg::Stop);
    }

    /// Stop everything and join threads; also done on Drop.
    pub fn shutdown(self) {
        drop(self);
    }

    fn send(&self, msg: Msg) {
        if self.commands.send(msg).is_err() {
            error!("render thread is gone; command ignored");
        }
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        // The control thread may already be gone (panic); joining reports it.
        let _ = self.commands.send(Msg::Shutdown);
        if let Some(thread) = self.thread.take()
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
    Shutdown,
    /// The producer of this generation is done (EOS, duration reached or
    /// error); its [`Feed`] says which.
    ProducerFinished {
        generation: u64,
    },
}

/// The fixed format every producer delivers and the output accepts.
fn output_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::I420)
        .width(OUTPUT_WIDTH as i32)
        .height(OUTPUT_HEIGHT as i32)
        .framerate(gst::Fraction::new(OUTPUT_FPS, 1))
        .pixel_aspect_ratio(gst::Fraction::new(1, 1))
        .build()
}

fn make(name: &'static str) -> Result<gst::Element, RenderError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|_| RenderError::MissingElement(name))
}

/// Locks even if another thread panicked while holding the lock: the state
/// stays consistent enough to keep the screen going, which beats cascading
/// panics across GStreamer streaming threads.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The output timeline, shared by the control thread, the producers'
/// streaming threads and the output sink's pad probe.
struct Timeline {
    events: UnboundedSender<RenderEvent>,
    /// End of the last buffer handed to the appsrc: where the next item
    /// continues the timeline.
    next_pts: gst::ClockTime,
    /// Buffers stamped below this are leftovers of an interrupted item and
    /// are dropped at the sink.
    discard_below: gst::ClockTime,
    /// Items whose first frame is on its way to the sink, in timeline order.
    pending: VecDeque<StartMarker>,
}

struct StartMarker {
    /// Output PTS of the item's first frame.
    pts: gst::ClockTime,
    index: usize,
    /// Events that happened while this frame was in flight, released right
    /// after its `ItemStarted` to keep on-screen order.
    then: Vec<RenderEvent>,
}

impl Timeline {
    /// Emits `event` after every in-flight `ItemStarted`.
    fn emit(&mut self, event: RenderEvent) {
        match self.pending.back_mut() {
            Some(marker) => marker.then.push(event),
            None => self.send(event),
        }
    }

    fn send(&self, event: RenderEvent) {
        debug!(?event, "render event");
        // A closed receiver means the daemon is shutting down; nothing to tell.
        let _ = self.events.send(event);
    }

    /// Called for each buffer reaching the sink; false = drop it.
    fn on_sink_buffer(&mut self, pts: gst::ClockTime) -> bool {
        if pts < self.discard_below {
            return false;
        }
        while let Some(marker) = self.pending.pop_front_if(|m| m.pts <= pts) {
            self.send(RenderEvent::ItemStarted {
                index: marker.index,
            });
            for event in marker.then {
                self.send(event);
            }
        }
        true
    }

    /// Drops everything queued for the output so far (after the producer
    /// that fed it is gone). Items that never reached the screen get no
    /// `ItemStarted`, but their deferred events still go out.
    fn discard_queued(&mut self) {
        self.discard_below = self.next_pts;
        for marker in std::mem::take(&mut self.pending) {
            for event in marker.then {
                self.send(event);
            }
        }
    }
}

/// The persistent output pipeline.
struct Output {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
}

impl Output {
    fn start(
        sink_name: &'static str,
        timeline: &Arc<Mutex<Timeline>>,
    ) -> Result<Output, RenderError> {
        let caps = output_caps();
        let frame_bytes = gst_video::VideoInfo::from_caps(&caps)
            .map_err(|e| RenderError::Pipeline(e.to_string()))?
            .size() as u64;
        let appsrc = gst_app::AppSrc::builder()
            .name("feed")
            .caps(&caps)
            .format(gst::Format::Time)
            .is_live(false)
            .block(true)
            .max_bytes(frame_bytes * QUEUED_FRAMES)
            .build();
        let convert = make("videoconvert")?;
        let scale = make("videoscale")?;
        let sink = make(sink_name)?;
        // Real-time playback; every sink we offer has the property except
        // possibly wrappers, which sync by default anyway.
        if sink.find_property("sync").is_some() {
            sink.set_property("sync", true);
        }

        let pipeline = gst::Pipeline::with_name("phare-output");
        let elements = [appsrc.upcast_ref::<gst::Element>(), &convert, &scale, &sink];
        pipeline
            .add_many(elements)
            .and_then(|()| gst::Element::link_many(elements))
            .map_err(|e| RenderError::Pipeline(e.to_string()))?;

        let sink_pad = sink
            .static_pad("sink")
            .ok_or_else(|| RenderError::Pipeline(format!("{sink_name} has no sink pad")))?;
        let probe_timeline = Arc::clone(timeline);
        sink_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let keep = match info.buffer().and_then(|b| b.pts()) {
                Some(pts) => lock(&probe_timeline).on_sink_buffer(pts),
                None => true,
            };
            if keep {
                gst::PadProbeReturn::Ok
            } else {
                gst::PadProbeReturn::Drop
            }
        });

        let output = Output { pipeline, appsrc };
        let bus = output
            .pipeline
            .bus()
            .ok_or_else(|| RenderError::Pipeline("pipeline has no bus".into()))?;
        if output.pipeline.set_state(gst::State::Playing).is_err() {
            let reason = bus
                .pop_filtered(&[gst::MessageType::Error])
                .and_then(|msg| match msg.view() {
                    gst::MessageView::Error(err) => Some(err.error().to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "state change failed".into());
            return Err(RenderError::OutputStart {
                sink: sink_name,
                reason,
            });
        }
        // From here on nobody pops this bus: log in place and drop, so
        // messages do not pile up for the renderer's whole life.
        let feed = output.appsrc.downgrade();
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    error!(
                        source = ?err.src().map(|s| s.path_string()),
                        debug = ?err.debug(),
                        "output error: {}",
                        err.error()
                    );
                    // The output's streaming thread has stopped, so its full
                    // queue would never drain and a producer pushing into it
                    // would block forever (hanging play/stop/shutdown).
                    // Flushing makes every push fail instead: items then fail
                    // fast and the renderer idles.
                    if let Some(appsrc) = feed.upgrade() {
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
        while bus.pop().is_some() {}
        Ok(output)
    }

    /// The output's running time, or `None` while it is still waiting for
    /// its very first frame (its clock only runs once it is playing).
    fn running_time(pipeline: &gst::Pipeline) -> Option<gst::ClockTime> {
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

/// Per-producer bookkeeping, written by its streaming threads and read by
/// the control thread once the producer is torn down.
#[derive(Default)]
struct Feed {
    /// Producer PTS of the first sample; later samples are relative to it.
    first_pts: Option<gst::ClockTime>,
    /// Output PTS the first sample was restamped to.
    offset: gst::ClockTime,
    /// Frames handed to the output.
    frames: u64,
    /// EOS or duration reached: push nothing more, notify once.
    finished: bool,
    /// First error posted by the producer.
    error: Option<String>,
}

/// A short-lived pipeline decoding one item into the output; torn down on drop.
struct Producer {
    pipeline: gst::Pipeline,
    generation: u64,
    index: usize,
    feed: Arc<Mutex<Feed>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Null waits for the streaming threads, so no sample of this item is
        // pushed after this returns.
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Producer {
    /// Builds and starts the producer for `item`. Errors are reasons for
    /// `ItemFailed`.
    fn start(
        item: &PlayItem,
        generation: u64,
        output: &Output,
        timeline: &Arc<Mutex<Timeline>>,
        notices: &mpsc::Sender<Msg>,
    ) -> Result<Producer, String> {
        let cut = match (item.kind, item.duration) {
            (MediaKind::Image, None) => return Err("image item has no duration".into()),
            (_, duration) => {
                duration.map(|d| gst::ClockTime::try_from(d).unwrap_or(gst::ClockTime::MAX))
            }
        };
        let location = item
            .path
            .to_str()
            .ok_or_else(|| format!("path is not UTF-8: {}", item.path.display()))?;
        let element = |name| make(name).map_err(|e| e.to_string());

        let producer = Producer {
            pipeline: gst::Pipeline::with_name(&format!("producer-{generation}")),
            generation,
            index: item.index,
            feed: Arc::new(Mutex::new(Feed::default())),
        };
        let pusher = Pusher {
            generation,
            index: item.index,
            cut,
            feed: Arc::clone(&producer.feed),
            notices: notices.clone(),
            timeline: Arc::clone(timeline),
            appsrc: output.appsrc.clone(),
            output: output.pipeline.clone(),
        };

        let src = element("filesrc")?;
        src.set_property("location", location);
        let decode = element("decodebin")?;
        let mut tail = Vec::new();
        if item.kind == MediaKind::Image {
            // A still decodes to one frame; imagefreeze repeats it so the
            // rest of the chain sees an ordinary 25 fps stream.
            tail.push(element("imagefreeze")?);
        }
        let scale = element("videoscale")?;
        scale.set_property("add-borders", true);
        tail.extend([element("videoconvert")?, scale, element("videorate")?]);
        let appsink = gst_app::AppSink::builder()
            .caps(&output_caps())
            // Pacing comes from the blocking appsrc, not from this clock.
            .sync(false)
            .enable_last_sample(false)
            .build();
        let (at_eos, on_error) = (pusher.clone(), pusher.clone());
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |appsink| pusher.on_sample(appsink))
                .eos(move |_| at_eos.finish(&mut lock(&at_eos.feed)))
                .build(),
        );
        tail.push(appsink.upcast());

        producer
            .pipeline
            .add_many([&src, &decode])
            .and_then(|()| producer.pipeline.add_many(&tail))
            .and_then(|()| src.link(&decode))
            .and_then(|()| gst::Element::link_many(&tail))
            .map_err(|e| e.to_string())?;
        let tail_sink = tail[0]
            .static_pad("sink")
            .ok_or("producer tail has no sink pad")?;
        connect_decoded_pads(&decode, tail_sink);
        producer.watch_bus(on_error)?;

        if producer.pipeline.set_state(gst::State::Playing).is_err() {
            // The element that refused usually posted why, synchronously,
            // into the feed via the bus handler.
            let reason = lock(&producer.feed).error.take();
            return Err(reason.unwrap_or_else(|| "cannot start the producer pipeline".into()));
        }
        Ok(producer)
    }

    /// Routes producer errors to the feed and the control thread. Nobody
    /// pops this bus, so every message is dropped after handling.
    fn watch_bus(&self, pusher: Pusher) -> Result<(), String> {
        let bus = self.pipeline.bus().ok_or("producer pipeline has no bus")?;
        let index = self.index;
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    debug!(index, debug = ?err.debug(), "producer error: {}", err.error());
                    pusher.fail(err.error().to_string());
                }
                gst::MessageView::Warning(w) => {
                    debug!(index, debug = ?w.debug(), "producer warning: {}", w.error())
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        Ok(())
    }
}

/// Moves one producer's samples into the output, on the producer's
/// streaming thread.
#[derive(Clone)]
struct Pusher {
    generation: u64,
    index: usize,
    /// Item duration: samples from this far past the first are not shown.
    cut: Option<gst::ClockTime>,
    feed: Arc<Mutex<Feed>>,
    notices: mpsc::Sender<Msg>,
    timeline: Arc<Mutex<Timeline>>,
    appsrc: gst_app::AppSrc,
    output: gst::Pipeline,
}

impl Pusher {
    fn on_sample(&self, appsink: &gst_app::AppSink) -> Result<gst::FlowSuccess, gst::FlowError> {
        let sample = appsink
            .pull_sample()
            .map_err(|_| gst::FlowError::Flushing)?;
        let Some(mut buffer) = sample.buffer_owned() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let Some(pts) = buffer.pts() else {
            // videorate stamps everything; an unstamped buffer has no place
            // on the timeline.
            warn!(index = self.index, "producer sample without PTS dropped");
            return Ok(gst::FlowSuccess::Ok);
        };
        let duration = buffer.duration().unwrap_or(FRAME_DURATION);
        let out_pts = self.restamp(pts, duration)?;
        // The buffer is shared with the sample, so this copies only the
        // header; the frame memory is not copied.
        let header = buffer.make_mut();
        header.set_pts(out_pts);
        header.set_dts(gst::ClockTime::NONE);
        // Blocks while the output queue is full: this is the pacing.
        let pushed = self.appsrc.push_buffer(buffer);
        if let Err(flow) = pushed {
            // Only a broken output refuses frames (see its bus handler):
            // fail the item rather than stall silently, and release the
            // events waiting for frames that will never reach the screen.
            lock(&self.timeline).discard_queued();
            self.fail(format!("the output refused the frame ({flow:?})"));
        }
        pushed
    }

    /// Output PTS for a sample stamped `pts`; `Err(Eos)` once the item is
    /// over.
    fn restamp(
        &self,
        pts: gst::ClockTime,
        duration: gst::ClockTime,
    ) -> Result<gst::ClockTime, gst::FlowError> {
        let mut feed = lock(&self.feed);
        if feed.finished {
            return Err(gst::FlowError::Eos);
        }
        let relative = pts.saturating_sub(*feed.first_pts.get_or_insert(pts));
        if self.cut.is_some_and(|cut| relative >= cut) {
            self.finish(&mut feed);
            return Err(gst::FlowError::Eos);
        }
        let mut timeline = lock(&self.timeline);
        if feed.frames == 0 {
            // Continue the timeline seamlessly if the output still has
            // frames queued, else restart just ahead of "now".
            let earliest = Output::running_time(&self.output)
                .map_or(gst::ClockTime::ZERO, |now| now + RESTART_MARGIN);
            feed.offset = timeline.next_pts.max(earliest);
            timeline.pending.push_back(StartMarker {
                pts: feed.offset,
                index: self.index,
                then: Vec::new(),
            });
        }
        feed.frames += 1;
        let out_pts = feed.offset + relative;
        timeline.next_pts = out_pts + duration;
        Ok(out_pts)
    }

    /// Records the item's first error and ends it.
    fn fail(&self, reason: String) {
        let mut feed = lock(&self.feed);
        feed.error.get_or_insert(reason);
        self.finish(&mut feed);
    }

    /// Marks the item over and tells the control thread, once.
    fn finish(&self, feed: &mut Feed) {
        if !std::mem::replace(&mut feed.finished, true) {
            // A closed channel means the renderer is shutting down.
            let _ = self.notices.send(Msg::ProducerFinished {
                generation: self.generation,
            });
        }
    }
}

/// Links decodebin's first video stream to the producer tail and every other
/// stream (audio, for now) to a fakesink: an unlinked pad would make the
/// demuxer fail or stall. A file without video is an error.
fn connect_decoded_pads(decode: &gst::Element, tail_sink: gst::Pad) {
    let video_sink = tail_sink.clone();
    decode.connect_pad_added(move |decode, pad| {
        let is_video = pad
            .current_caps()
            .unwrap_or_else(|| pad.query_caps(None))
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if is_video && !video_sink.is_linked() && pad.link(&video_sink).is_ok() {
            return;
        }
        if let Err(reason) = discard_stream(decode, pad) {
            gst::element_error!(
                decode,
                gst::CoreError::Pad,
                ("cannot discard stream: {reason}")
            );
        }
    });
    decode.connect_no_more_pads(move |decode| {
        if !tail_sink.is_linked() {
            gst::element_error!(decode, gst::StreamError::WrongType, ("no video stream"));
        }
    });
}

fn discard_stream(decode: &gst::Element, pad: &gst::Pad) -> Result<(), String> {
    let bin = decode
        .parent()
        .and_downcast::<gst::Bin>()
        .ok_or("decodebin has no parent bin")?;
    let sink = make("fakesink").map_err(|e| e.to_string())?;
    // Consume as fast as it comes: a clock-synced or prerolling sink here
    // would hold up the demuxer, and with it the video.
    sink.set_property("sync", false);
    sink.set_property("async", false);
    bin.add(&sink).map_err(|e| e.to_string())?;
    sink.sync_state_with_parent().map_err(|e| e.to_string())?;
    let sink_pad = sink.static_pad("sink").ok_or("fakesink has no sink pad")?;
    pad.link(&sink_pad).map_err(|e| e.to_string())?;
    Ok(())
}

/// The control thread: owns the playlist and the current producer.
struct Control {
    output: Output,
    timeline: Arc<Mutex<Timeline>>,
    /// Handed to producers so their notices arrive on the command channel.
    notices: mpsc::Sender<Msg>,
    playlist: Vec<PlayItem>,
    /// Playlist position of the item to start next.
    next: usize,
    /// Consecutive failures; a whole playlist's worth stops the loop.
    failures_in_row: usize,
    current: Option<Producer>,
    /// Tags producers so notices from torn-down ones are ignored.
    generation: u64,
}

impl Control {
    fn run(mut self, commands: mpsc::Receiver<Msg>) {
        // `self.notices` keeps the channel open, so only Shutdown ends this.
        while let Ok(msg) = commands.recv() {
            match msg {
                Msg::Play(items) => {
                    self.interrupt();
                    info!(items = items.len(), "new playlist");
                    self.playlist = items;
                    self.next = 0;
                    self.failures_in_row = 0;
                    self.start_next();
                }
                Msg::Stop => {
                    self.interrupt();
                    self.playlist.clear();
                    info!("playback stopped");
                }
                Msg::Shutdown => break,
                Msg::ProducerFinished { generation }
                    if self
                        .current
                        .as_ref()
                        .is_some_and(|p| p.generation == generation) =>
                {
                    self.finish_current();
                }
                // From a producer already torn down by an interruption.
                Msg::ProducerFinished { .. } => {}
            }
        }
        info!("renderer shutting down");
    }

    /// Tears down the current producer and discards what it queued; the item
    /// ends uncompleted.
    fn interrupt(&mut self) {
        // Drop at the sink while tearing down, so a producer blocked on the
        // full output queue is released at once.
        lock(&self.timeline).discard_below = gst::ClockTime::MAX;
        let interrupted = self.current.take().map(|producer| producer.index);
        let mut timeline = lock(&self.timeline);
        timeline.discard_queued();
        if let Some(index) = interrupted {
            timeline.send(RenderEvent::ItemEnded {
                index,
                completed: false,
            });
        }
    }

    /// The current producer is done: report how, then move on.
    fn finish_current(&mut self) {
        let Some(producer) = self.current.take() else {
            return;
        };
        let (index, feed) = (producer.index, Arc::clone(&producer.feed));
        // Tear down first: afterwards no streaming thread touches the feed.
        drop(producer);
        let (frames, error) = {
            let feed = lock(&feed);
            (feed.frames, feed.error.clone())
        };
        // Counting a frameless item as played would let a playlist of such
        // items spin without ever waiting on the screen.
        match error.or_else(|| (frames == 0).then(|| "no video frames".to_owned())) {
            None => {
                debug!(index, frames, "item completed");
                self.failures_in_row = 0;
                lock(&self.timeline).emit(RenderEvent::ItemEnded {
                    index,
                    completed: true,
                });
            }
            Some(reason) => self.fail(index, reason),
        }
        self.start_next();
    }

    fn fail(&mut self, index: usize, reason: String) {
        warn!(index, %reason, "item failed");
        self.failures_in_row += 1;
        lock(&self.timeline).emit(RenderEvent::ItemFailed { index, reason });
    }

    /// Starts the next playable item, skipping (and reporting) those whose
    /// producer cannot even be built, unless the whole playlist failed.
    fn start_next(&mut self) {
        while !self.playlist.is_empty() {
            if self.failures_in_row >= self.playlist.len() {
                warn!("every item of the playlist failed; idle until the next playlist");
                return;
            }
            let item = &self.playlist[self.next];
            self.next = (self.next + 1) % self.playlist.len();
            self.generation += 1;
            match Producer::start(
                item,
                self.generation,
                &self.output,
                &self.timeline,
                &self.notices,
            ) {
                Ok(producer) => {
                    debug!(index = item.index, path = %item.path.display(), "item producing");
                    self.current = Some(producer);
                    return;
                }
                Err(reason) => {
                    let index = item.index;
                    self.fail(index, reason);
                }
            }
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // Runs on shutdown and on a panic alike: producers go before the
        // output they feed (the Output field drops after this body).
        self.interrupt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Instant;
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    /// Runs a `... ! filesink name=out` pipeline to completion, writing `path`.
    fn generate(description: &str, path: &Path) {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(description)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        pipeline
            .by_name("out")
            .unwrap()
            .set_property("location", path.to_str().unwrap());
        pipeline.set_state(gst::State::Playing).unwrap();
        let msg = pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("media generation timed out");
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
    }

    /// A one-second H.264 MP4.
    fn video(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        generate(
            "videotestsrc num-buffers=25 ! video/x-raw,width=320,height=240,framerate=25/1 \
             ! videoconvert ! openh264enc ! h264parse ! mp4mux ! filesink name=out",
            &path,
        );
        path
    }

    /// A one-second H.264 + AAC MP4: the audio stream must not disturb video.
    fn video_with_audio(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        generate(
            "videotestsrc num-buffers=25 ! video/x-raw,width=320,height=240,framerate=25/1 \
             ! videoconvert ! openh264enc ! h264parse ! mp4mux name=mux ! filesink name=out \
             audiotestsrc num-buffers=43 ! audioconvert ! avenc_aac ! mux.",
            &path,
        );
        path
    }

    fn png(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        generate(
            "videotestsrc num-buffers=1 pattern=ball ! video/x-raw,width=320,height=180 \
             ! videoconvert ! pngenc ! filesink name=out",
            &path,
        );
        path
    }

    fn item(index: usize, path: &Path, kind: MediaKind, duration_ms: Option<u64>) -> PlayItem {
        PlayItem {
            index,
            path: path.to_owned(),
            kind,
            duration: duration_ms.map(Duration::from_millis),
        }
    }

    fn start() -> (Renderer, UnboundedReceiver<RenderEvent>) {
        let (tx, rx) = unbounded_channel();
        (Renderer::start(VideoSink::Fake, tx).unwrap(), rx)
    }

    async fn next_event(rx: &mut UnboundedReceiver<RenderEvent>) -> RenderEvent {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no render event within 10 s")
            .expect("event channel closed")
    }

    fn started(index: usize) -> RenderEvent {
        RenderEvent::ItemStarted { index }
    }

    fn ended(index: usize, completed: bool) -> RenderEvent {
        RenderEvent::ItemEnded { index, completed }
    }

    #[tokio::test]
    async fn playlist_plays_in_order_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let clip = video(dir.path(), "clip.mp4");
        let clip_with_audio = video_with_audio(dir.path(), "av.mp4");
        let still = png(dir.path(), "still.png");
        let (renderer, mut rx) = start();
        renderer.play(vec![
            item(0, &clip_with_audio, MediaKind::Video, None),
            item(1, &still, MediaKind::Image, Some(500)),
            item(2, &clip, MediaKind::Video, Some(400)),
        ]);
        let expected = [
            started(0),
            ended(0, true),
            started(1),
            ended(1, true),
            started(2),
            ended(2, true),
            started(0),
        ];
        let begin = Instant::now();
        for want in expected {
            assert_eq!(next_event(&mut rx).await, want);
        }
        // Real time: 1 s + 0.5 s + 0.4 s of content before item 0 returns.
        assert!(
            begin.elapsed() >= Duration::from_millis(1700),
            "{:?}",
            begin.elapsed()
        );
        renderer.shutdown();
        assert_eq!(rx.recv().await, Some(ended(0, false)));
    }

    #[tokio::test]
    async fn broken_items_fail_and_playback_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let clip = video(dir.path(), "clip.mp4");
        let garbage = dir.path().join("garbage.mp4");
        std::fs::write(
            &garbage,
            b"this is not a video file at all, just bytes".repeat(100),
        )
        .unwrap();
        let empty = dir.path().join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();

        let (renderer, mut rx) = start();
        renderer.play(vec![
            item(0, &garbage, MediaKind::Video, None),
            item(1, &clip, MediaKind::Video, Some(400)),
            item(2, &empty, MediaKind::Video, None),
        ]);
        let mut failed = Vec::new();
        let mut starts = 0;
        while starts < 2 {
            match next_event(&mut rx).await {
                RenderEvent::ItemFailed { index, reason } => {
                    assert!(!reason.is_empty());
                    failed.push(index);
                }
                RenderEvent::ItemStarted { index } => {
                    assert_eq!(index, 1);
                    starts += 1;
                }
                RenderEvent::ItemEnded { index, completed } => assert!(index == 1 && completed),
            }
        }
        assert_eq!(failed, [0, 2, 0]);

        // A playlist where everything fails reports each failure once, then idles.
        renderer.play(vec![
            item(0, &garbage, MediaKind::Video, None),
            item(1, &empty, MediaKind::Image, Some(500)),
        ]);
        assert_eq!(next_event(&mut rx).await, ended(1, false));
        for index in [0, 1] {
            match next_event(&mut rx).await {
                RenderEvent::ItemFailed { index: i, .. } => assert_eq!(i, index),
                other => panic!("unexpected {other:?}"),
            }
        }
        let quiet = tokio::time::timeout(Duration::from_millis(700), rx.recv()).await;
        assert!(quiet.is_err(), "renderer kept going: {quiet:?}");
    }

    #[tokio::test]
    async fn new_playlist_interrupts_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let clip = video(dir.path(), "clip.mp4");
        let still = png(dir.path(), "still.png");
        let (renderer, mut rx) = start();
        renderer.play(vec![item(0, &still, MediaKind::Image, Some(10_000))]);
        assert_eq!(next_event(&mut rx).await, started(0));
        tokio::time::sleep(Duration::from_millis(300)).await;

        let begin = Instant::now();
        renderer.play(vec![item(7, &clip, MediaKind::Video, None)]);
        assert_eq!(next_event(&mut rx).await, ended(0, false));
        let interrupted = begin.elapsed();
        assert_eq!(next_event(&mut rx).await, started(7));
        let switched = begin.elapsed();
        assert!(
            interrupted < Duration::from_millis(200),
            "interrupt took {interrupted:?}"
        );
        assert!(
            switched < Duration::from_millis(600),
            "switch took {switched:?}"
        );

        renderer.stop();
        assert_eq!(next_event(&mut rx).await, ended(7, false));
    }
}

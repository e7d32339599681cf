//! Producers: one short-lived pipeline per item (or status screen) that
//! decodes it into the canvas format and pushes its frames, restamped onto
//! the output timeline, into the output's appsrc.
//!
//! A producer is built in NULL, may be prepared (PAUSED: the decoder opens
//! the file and decodes the first frame) while the item before it plays,
//! and goes to PLAYING when its turn comes. Its streaming threads record
//! what happens in its [`Feed`]; the control thread is told once, with a
//! [`Msg::ProducerFinished`] notice, when it is done.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tracing::{debug, info, warn};

use super::output::Output;
use super::timeline::Timeline;
use super::{LiveState, MediaKind, Msg, PlayItem, RenderError, RenderEvent, lock, make};
use crate::display::VideoSink;
use crate::overlay::Canvas;

/// Elements the producers need; checked at start so a missing plugin is
/// reported once, clearly, instead of failing every item.
const ELEMENTS: &[&str] = &[
    "filesrc",
    "decodebin",
    "imagefreeze",
    "videoconvert",
    "videoscale",
    "videorate",
    "appsrc",
    "appsink",
    "fakesink",
    "queue",
    "audioconvert",
    "audioresample",
    "volume",
    "overlaycomposition",
    "videoflip",
];

pub(super) fn check_elements() -> Result<(), RenderError> {
    match ELEMENTS
        .iter()
        .find(|name| gst::ElementFactory::find(name).is_none())
    {
        Some(name) => Err(RenderError::MissingElement(name)),
        None => Ok(()),
    }
}

/// What a producer decodes.
pub(super) enum Source<'a> {
    Item(&'a PlayItem),
    /// The status screen, already drawn.
    Status(Canvas),
}

/// What every producer shares: where its frames and notices go, and how.
pub(super) struct Context<'a> {
    pub output: &'a Output,
    pub timeline: &'a Arc<Mutex<Timeline>>,
    pub notices: &'a mpsc::Sender<Msg>,
    pub sink: VideoSink,
    pub audio: bool,
    pub volume: f64,
    /// One output frame.
    pub frame: gst::ClockTime,
    /// How long a live stream may stall before its fallback shows.
    pub live_timeout: gst::ClockTime,
}

/// Per-producer bookkeeping, written by its streaming threads and read by
/// the control thread.
#[derive(Default)]
struct Feed {
    /// Producer PTS of the first sample: the item's duration counts from it.
    first_pts: Option<gst::ClockTime>,
    /// How producer PTS map onto the output timeline; set by the first
    /// sample, moved when the producer's timestamps jump.
    anchor: Option<Anchor>,
    /// Frames handed to the output.
    frames: u64,
    /// EOS or duration reached: push nothing more, notify once.
    finished: bool,
    /// First error posted by the producer.
    error: Option<String>,
    /// When it last showed it was alive: started playing or pushed a frame.
    progress: Option<Instant>,
}

/// A short-lived pipeline decoding one item into the output; torn down on drop.
pub(super) struct Producer {
    pipeline: gst::Pipeline,
    pub generation: u64,
    /// The playlist item; `None` for the status screen.
    pub index: Option<usize>,
    /// Playlist position, to match a prepared producer with its turn.
    pub position: usize,
    /// Files only: a live source has its own stall handling (its fallback),
    /// and the status screen nothing to wait for.
    watched: bool,
    feed: Arc<Mutex<Feed>>,
    /// The audio branch's sink and volume, when sound is on.
    audio: Arc<Mutex<Option<(gst::Element, gst::Element)>>>,
    output: gst::Pipeline,
    timeline: Arc<Mutex<Timeline>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Null waits for the streaming threads, so no sample of this item is
        // pushed after this returns.
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Producer {
    /// Builds the producer for `source` (in NULL). Errors are reasons for
    /// `ItemFailed`.
    pub fn build(
        source: Source<'_>,
        position: usize,
        generation: u64,
        ctx: &Context<'_>,
    ) -> Result<Producer, String> {
        let (index, cut) = match &source {
            Source::Item(item) => match (&item.kind, item.duration) {
                (MediaKind::Image, None) => return Err("image item has no duration".into()),
                (_, duration) => (
                    Some(item.index),
                    duration.map(|d| gst::ClockTime::try_from(d).unwrap_or(gst::ClockTime::MAX)),
                ),
            },
            Source::Status(_) => (None, None),
        };
        let producer = Producer {
            pipeline: gst::Pipeline::with_name(&format!("producer-{generation}")),
            generation,
            index,
            position,
            watched: matches!(&source, Source::Item(item) if !matches!(item.kind, MediaKind::Live { .. })),
            feed: Arc::new(Mutex::new(Feed::default())),
            audio: Arc::default(),
            output: ctx.output.pipeline().clone(),
            timeline: Arc::clone(ctx.timeline),
        };
        let pusher = Pusher {
            generation,
            index,
            cut,
            frame: ctx.frame,
            feed: Arc::clone(&producer.feed),
            notices: ctx.notices.clone(),
            timeline: Arc::clone(ctx.timeline),
            appsrc: ctx.output.appsrc().clone(),
            output: ctx.output.pipeline().clone(),
        };
        producer.watch_bus(pusher.clone())?;
        one_decoding_thread_up_to_full_hd(&producer.pipeline);

        let still = match &source {
            Source::Item(item) => item.kind == MediaKind::Image,
            Source::Status(_) => true,
        };
        let tail = producer.tail(still, pusher, ctx)?;
        match source {
            Source::Item(item) => match &item.kind {
                MediaKind::Video | MediaKind::Image => {
                    producer.file_source(&item.path, tail, ctx)?
                }
                MediaKind::Live { uri, fallback } => {
                    producer.live_source(uri, fallback.as_deref(), tail, ctx)?
                }
            },
            Source::Status(canvas) => producer.status_source(canvas, &tail)?,
        }
        Ok(producer)
    }

    /// `filesrc ! decodebin`, its video into `tail`.
    fn file_source(
        &self,
        path: &Path,
        tail: gst::Element,
        ctx: &Context<'_>,
    ) -> Result<(), String> {
        let src = element("filesrc")?;
        src.set_property("location", utf8(path)?);
        let decode = element("decodebin")?;
        self.add(&[&src, &decode])?;
        src.link(&decode).map_err(|e| e.to_string())?;
        self.connect_streams(&decode, tail, ctx);
        Ok(())
    }

    /// An appsrc holding the one drawn frame of the status screen.
    fn status_source(&self, canvas: Canvas, tail: &gst::Element) -> Result<(), String> {
        let (width, height) = (canvas.width(), canvas.height());
        let src = gst_app::AppSrc::builder()
            .caps(
                &gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::Bgra)
                    .width(width as i32)
                    .height(height as i32)
                    .framerate(gst::Fraction::new(0, 1))
                    .build(),
            )
            .format(gst::Format::Time)
            .build();
        self.add(&[src.upcast_ref()])?;
        src.link(tail).map_err(|e| e.to_string())?;
        let mut frame = canvas.into_buffer();
        frame
            .get_mut()
            .expect("a new buffer is writable")
            .set_pts(gst::ClockTime::ZERO);
        src.push_buffer(frame).map_err(|e| format!("{e:?}"))?;
        src.end_of_stream().map_err(|e| format!("{e:?}"))?;
        Ok(())
    }

    /// Decodes up to the first frame, in the background, so that playing
    /// starts at once.
    pub fn prepare(&self) -> Result<(), String> {
        self.pipeline
            .set_state(gst::State::Paused)
            .map(drop)
            .map_err(|_| self.error_or("cannot prepare the producer pipeline"))
    }

    /// Waits, at most `limit`, for [`Producer::prepare`] to finish.
    pub fn wait_prepared(&self, limit: Duration) {
        let limit = gst::ClockTime::try_from(limit).unwrap_or(gst::ClockTime::ZERO);
        let _ = self.pipeline.state(limit);
    }

    /// Starts pushing frames. Sound is delayed by the video still queued
    /// ahead of this item's first frame, so the two go out together.
    pub fn play(&self) -> Result<(), String> {
        if let Some((sink, _)) = &*lock(&self.audio) {
            let queued = Output::running_time(&self.output).map_or(gst::ClockTime::ZERO, |now| {
                lock(&self.timeline).next_pts.saturating_sub(now)
            });
            sink.set_property("ts-offset", queued.nseconds() as i64);
        }
        lock(&self.feed).progress = Some(Instant::now());
        self.pipeline
            .set_state(gst::State::Playing)
            .map(drop)
            .map_err(|_| self.error_or("cannot start the producer pipeline"))
    }

    /// When a watched producer that keeps pushing nothing counts as stuck.
    pub fn stall_deadline(&self, after: Duration) -> Option<Instant> {
        let feed = lock(&self.feed);
        (self.watched && !feed.finished)
            .then_some(feed.progress)
            .flatten()
            .map(|progress| progress + after)
    }

    /// Gives up on a stuck producer: the item ends with `reason`, as if it
    /// had posted it (no notice: the caller handles the end itself).
    pub fn abandon(&self, reason: String) {
        let mut feed = lock(&self.feed);
        feed.error.get_or_insert(reason);
        feed.finished = true;
    }

    /// Stamps no frame more, without ending the item: once this returns,
    /// a frame it stamped is at most being pushed (see
    /// [`Timeline::discard_queued`]).
    pub fn stop_feeding(&self) {
        lock(&self.feed).finished = true;
    }

    pub fn set_volume(&self, volume: f64) {
        if let Some((_, control)) = &*lock(&self.audio) {
            control.set_property("volume", volume);
        }
    }

    /// Why a producer that has not played yet is already over (it failed
    /// or ended while being prepared, its notice ignored then), if it is.
    pub fn ended_unplayed(&self) -> Option<String> {
        let feed = lock(&self.feed);
        feed.finished.then(|| {
            // Prepared producers push no frames: ended means frameless.
            feed.error
                .clone()
                .unwrap_or_else(|| "no video frames".into())
        })
    }

    /// How it went: frames shown and the first error. Final once the
    /// producer finished, since a finished feed takes no more frames.
    pub fn outcome(&self) -> (u64, Option<String>) {
        let feed = lock(&self.feed);
        (feed.frames, feed.error.clone())
    }

    /// The element that refused a state change usually posted why,
    /// synchronously, into the feed via the bus handler.
    fn error_or(&self, fallback: &str) -> String {
        lock(&self.feed)
            .error
            .clone()
            .unwrap_or_else(|| fallback.into())
    }

    fn add(&self, elements: &[&gst::Element]) -> Result<(), String> {
        self.pipeline
            .add_many(elements.iter().copied())
            .map_err(|e| e.to_string())
    }

    /// The chain from decoded video to the appsink, normalising to the
    /// canvas: rate first (cheapest to drop frames before converting), then
    /// format and size; stills are converted once, then repeated.
    fn tail(&self, still: bool, pusher: Pusher, ctx: &Context<'_>) -> Result<gst::Element, String> {
        let scale = element("videoscale")?;
        scale.set_property("add-borders", true);
        let mut chain = Vec::new();
        if still {
            chain.extend([element("videoconvert")?, scale, element("imagefreeze")?]);
        } else {
            chain.extend([element("videorate")?, element("videoconvert")?, scale]);
        }
        let appsink = gst_app::AppSink::builder()
            .caps(&ctx.output.caps())
            // Pacing comes from the blocking appsrc, not from this clock.
            .sync(false)
            .enable_last_sample(false)
            .build();
        let at_eos = pusher.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |appsink| pusher.on_sample(appsink))
                .eos(move |_| at_eos.finish(&mut lock(&at_eos.feed)))
                .build(),
        );
        chain.push(appsink.upcast());
        self.pipeline.add_many(&chain).map_err(|e| e.to_string())?;
        gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
        Ok(chain.swap_remove(0))
    }

    /// `fallbacksrc`: the stream, replaced by the fallback (or by the last
    /// frame, held on screen, when there is none) whenever it stalls for
    /// the timeout, and restarted until it comes back.
    fn live_source(
        &self,
        uri: &str,
        fallback: Option<&Path>,
        tail: gst::Element,
        ctx: &Context<'_>,
    ) -> Result<(), String> {
        let src = gst::ElementFactory::make("fallbacksrc")
            .build()
            .map_err(|_| "fallbacksrc is not available".to_string())?;
        let timeout = ctx.live_timeout.nseconds();
        src.set_property("uri", uri);
        src.set_property("timeout", timeout);
        src.set_property("restart-timeout", timeout);
        // Never give up on the stream: the screen has its fallback.
        src.set_property("retry-timeout", u64::MAX - 1);
        src.set_property("restart-on-eos", true);
        src.set_property("immediate-fallback", true);
        // Its dummy source is black frames: better hold the last frame.
        src.set_property("enable-dummy", false);
        src.set_property("enable-audio", ctx.audio);
        if let Some(path) = fallback {
            let uri = gst::glib::filename_to_uri(path, None).map_err(|e| e.to_string())?;
            src.set_property("fallback-uri", uri.as_str());
        }
        let index = self.index.unwrap_or_default();
        let timeline = Arc::clone(ctx.timeline);
        let shown = Mutex::new(None);
        let live_uri = uri.to_owned();
        src.connect_notify(Some("status"), move |src, _| {
            let status = src.property::<gstfallbackswitch::Status>("status");
            let state = match status {
                gstfallbackswitch::Status::Running => LiveState::Playing,
                _ => LiveState::Fallback,
            };
            if lock(&shown).replace(state) != Some(state) {
                info!(index, uri = %live_uri, ?status, "live source");
                lock(&timeline).emit(RenderEvent::LiveState { index, state });
            }
        });
        // fallbacksrc pushes while holding its output's stream lock;
        // blocked on the paced output, it starved its own switching (a
        // stream restart waited a minute). A leaky queue takes each frame
        // at once, dropping the oldest if the screen falls behind.
        let queue = element("queue")?;
        queue.set_property_from_str("leaky", "downstream");
        queue.set_property("max-size-buffers", 3u32);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 0u64);
        self.add(&[&src, &queue])?;
        queue.link(&tail).map_err(|e| e.to_string())?;
        self.connect_streams(&src, queue, ctx);
        Ok(())
    }

    /// Links the source's first video stream to `tail` and every other
    /// stream to the audio branch or a fakesink: an unlinked pad would make
    /// the demuxer fail or stall. A source without video is an error.
    fn connect_streams(&self, src: &gst::Element, tail: gst::Element, ctx: &Context<'_>) {
        let Some(video_sink) = tail.static_pad("sink") else {
            return;
        };
        let tail_sink = video_sink.clone();
        let audio = ctx
            .audio
            .then(|| (ctx.sink.audio_element_name(), ctx.volume));
        let audio_branch = Arc::clone(&self.audio);
        src.connect_pad_added(move |src, pad| {
            // decodebin's pads say what they carry in their caps;
            // fallbacksrc's, in their names (their caps come later).
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let media = caps
                .structure(0)
                .map(|s| s.name().to_string())
                .unwrap_or_default();
            let is =
                |kind: &str| media.starts_with(&format!("{kind}/")) || pad.name().starts_with(kind);
            if is("video") && !video_sink.is_linked() && pad.link(&video_sink).is_ok() {
                return;
            }
            let linked = match audio {
                Some((sink, volume)) if is("audio") && lock(&audio_branch).is_none() => {
                    play_sound(src, pad, sink, volume)
                        .map(|branch| *lock(&audio_branch) = Some(branch))
                }
                _ => discard_stream(src, pad),
            };
            if let Err(reason) = linked {
                gst::element_error!(src, gst::CoreError::Pad, ("cannot link a stream: {reason}"));
            }
        });
        src.connect_no_more_pads(move |src| {
            if !tail_sink.is_linked() {
                gst::element_error!(src, gst::StreamError::WrongType, ("no video stream"));
            }
        });
    }

    /// Routes producer errors to the feed and the control thread. Nobody
    /// pops this bus, so every message is dropped after handling.
    fn watch_bus(&self, pusher: Pusher) -> Result<(), String> {
        let bus = self.pipeline.bus().ok_or("producer pipeline has no bus")?;
        let index = self.index;
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    debug!(?index, debug = ?err.debug(), "producer error: {}", err.error());
                    pusher.fail(err.error().to_string());
                }
                gst::MessageView::Warning(w) => {
                    debug!(?index, debug = ?w.debug(), "producer warning: {}", w.error())
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        Ok(())
    }
}

/// Pictures up to this many pixels (1920x1088, full HD as coded) decode on
/// one thread.
const ONE_THREAD_PIXELS: u64 = 1920 * 1088;

/// Software decoders (libav) thread by frames: each extra thread holds a
/// frame in flight and its own context, about 10 MB at 1080p, for a
/// throughput a 1080p stream never needs (one core decodes it several
/// times over in real time). Full HD and below decodes on one thread;
/// larger pictures keep libav's automatic count. The count must be set
/// before the decoder opens, which it does on its first caps: a probe on
/// its sink pad sees them first. Hardware decoders have no such property.
fn one_decoding_thread_up_to_full_hd(pipeline: &gst::Pipeline) {
    pipeline.connect_deep_element_added(|_, _, element| {
        if element.find_property("max-threads").is_none() {
            return;
        }
        let Some(sink) = element.static_pad("sink") else {
            return;
        };
        let decoder = element.downgrade();
        sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            let Some(gst::EventView::Caps(caps)) = info.event().map(|e| e.view()) else {
                return gst::PadProbeReturn::Ok;
            };
            let size = caps.caps().structure(0).and_then(|s| {
                Some(
                    u64::try_from(s.get::<i32>("width").ok()?).ok()?
                        * u64::try_from(s.get::<i32>("height").ok()?).ok()?,
                )
            });
            // Caps without a size come before the parser has read one.
            let (Some(pixels), Some(decoder)) = (size, decoder.upgrade()) else {
                return gst::PadProbeReturn::Ok;
            };
            let threads = if pixels <= ONE_THREAD_PIXELS { 1 } else { 0 };
            decoder.set_property("max-threads", threads);
            gst::PadProbeReturn::Remove
        });
    });
}

fn element(name: &'static str) -> Result<gst::Element, String> {
    make(name).map_err(|e| e.to_string())
}

fn utf8(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("path is not UTF-8: {}", path.display()))
}

/// Adds `elements` after `pad`, linked in a chain, playing along.
fn branch(src: &gst::Element, pad: &gst::Pad, elements: &[gst::Element]) -> Result<(), String> {
    let bin = src
        .parent()
        .and_downcast::<gst::Bin>()
        .ok_or("the source has no parent bin")?;
    bin.add_many(elements).map_err(|e| e.to_string())?;
    gst::Element::link_many(elements).map_err(|e| e.to_string())?;
    for element in elements {
        element
            .sync_state_with_parent()
            .map_err(|e| e.to_string())?;
    }
    let first = elements[0].static_pad("sink").ok_or("no sink pad")?;
    pad.link(&first).map_err(|e| e.to_string())?;
    Ok(())
}

fn discard_stream(src: &gst::Element, pad: &gst::Pad) -> Result<(), String> {
    let sink = element("fakesink")?;
    // Consume as fast as it comes: a clock-synced or prerolling sink here
    // would hold up the demuxer, and with it the video.
    sink.set_property("sync", false);
    sink.set_property("async", false);
    branch(src, pad, &[sink])
}

/// `queue ! audioconvert ! audioresample ! volume ! <sink>`; the queue lets
/// the demuxer go on feeding video while the sound waits for its time.
/// Returns the sink and the volume element.
fn play_sound(
    src: &gst::Element,
    pad: &gst::Pad,
    sink: &'static str,
    volume: f64,
) -> Result<(gst::Element, gst::Element), String> {
    let control = element("volume")?;
    control.set_property("volume", volume);
    let sink = gst::ElementFactory::make(sink)
        .build()
        .map_err(|_| format!("audio sink {sink} is not available"))?;
    sink.set_property("sync", true);
    branch(
        src,
        pad,
        &[
            element("queue")?,
            element("audioconvert")?,
            element("audioresample")?,
            control.clone(),
            sink.clone(),
        ],
    )?;
    Ok((sink, control))
}

/// Moves one producer's samples into the output, on the producer's
/// streaming thread.
#[derive(Clone)]
struct Pusher {
    generation: u64,
    index: Option<usize>,
    /// Item duration: samples from this far past the first are not shown.
    cut: Option<gst::ClockTime>,
    /// One output frame.
    frame: gst::ClockTime,
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
            // videorate and imagefreeze stamp everything; an unstamped
            // buffer has no place on the timeline.
            warn!(index = ?self.index, "producer sample without PTS dropped");
            return Ok(gst::FlowSuccess::Ok);
        };
        let duration = buffer.duration().unwrap_or(self.frame);
        let (out_pts, epoch) = self.restamp(pts, duration)?;
        // The buffer is shared with the sample, so this copies only the
        // header; the frame memory is not copied.
        let header = buffer.make_mut();
        header.set_pts(out_pts);
        header.set_dts(gst::ClockTime::NONE);
        header.set_offset(epoch);
        // Blocks while the output queue is full: this is the pacing.
        let pushed = self.appsrc.push_buffer(buffer);
        if let Err(flow) = pushed {
            // Only a broken or stopped output refuses frames: fail the item
            // rather than stall silently, and release the events waiting
            // for frames that will never reach the screen.
            lock(&self.timeline).discard_queued();
            self.fail(format!("the output refused the frame ({flow:?})"));
        }
        pushed
    }

    /// Output PTS and timeline epoch for a sample stamped `pts`;
    /// `Err(Eos)` once the item is over.
    fn restamp(
        &self,
        pts: gst::ClockTime,
        duration: gst::ClockTime,
    ) -> Result<(gst::ClockTime, u64), gst::FlowError> {
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
        let earliest =
            Output::running_time(&self.output).map_or(gst::ClockTime::ZERO, |now| now + self.frame);
        let (out_pts, placed) = place(&mut feed.anchor, pts, timeline.next_pts, earliest);
        match placed {
            Placed::First => timeline.mark_start(out_pts, self.index),
            Placed::Follows => {}
            // A hole in the timestamps is news; a decoder slower than the
            // screen falls behind every second, which only debugging needs.
            Placed::Jumped { by_ms } if by_ms.unsigned_abs() > MAX_JUMP.mseconds() => {
                info!(index = ?self.index, by_ms, "the item's timestamps jumped: it goes on from the screen's next frame");
            }
            Placed::Jumped { by_ms } => {
                debug!(index = ?self.index, by_ms, "the item fell behind the screen: it goes on from its next frame");
            }
        }
        feed.frames += 1;
        feed.progress = Some(Instant::now());
        timeline.next_pts = out_pts + duration;
        Ok((out_pts, timeline.epoch()))
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

/// How far a sample may land from where the output timeline goes on (or
/// behind the screen) before its timestamps count as a jump. Far above
/// any jitter; a frame never waits longer than this at the sink, so an
/// interruption never does either.
const MAX_JUMP: gst::ClockTime = gst::ClockTime::from_seconds(1);

/// Producer PTS `source` goes out at output PTS `output`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Anchor {
    source: gst::ClockTime,
    output: gst::ClockTime,
}

#[derive(Debug, PartialEq)]
enum Placed {
    /// The item's first sample.
    First,
    /// Where the timeline goes on, give or take jitter.
    Follows,
    /// Far ahead of the timeline, behind it or behind the screen (a live
    /// stream that switched sources or resumed, a file with a hole in its
    /// timestamps): placed as a first sample would be, so the screen never
    /// waits for it nor drops what follows as late. `by_ms`: how far from
    /// the timeline it would have landed.
    Jumped { by_ms: i64 },
}

/// The output PTS of a sample stamped `pts`: continuing the timeline at
/// `next_pts` (frames still queued), else from `earliest` (a frame ahead
/// of the screen's running time); later samples keep their spacing from
/// the anchor, unless they jump.
fn place(
    anchor: &mut Option<Anchor>,
    pts: gst::ClockTime,
    next_pts: gst::ClockTime,
    earliest: gst::ClockTime,
) -> (gst::ClockTime, Placed) {
    let fresh = Anchor {
        source: pts,
        output: next_pts.max(earliest),
    };
    let Some(current) = *anchor else {
        *anchor = Some(fresh);
        return (fresh.output, Placed::First);
    };
    let mapped = pts
        .checked_sub(current.source)
        .map(|since| current.output + since);
    match mapped {
        Some(at) if at.absdiff(next_pts) <= MAX_JUMP && at + MAX_JUMP >= earliest => {
            (at, Placed::Follows)
        }
        _ => {
            let signed_ms = |t: gst::ClockTime| i64::try_from(t.mseconds()).unwrap_or(i64::MAX);
            let by_ms = match mapped {
                Some(at) => signed_ms(at) - signed_ms(next_pts),
                None => -signed_ms(current.source - pts),
            };
            *anchor = Some(fresh);
            (fresh.output, Placed::Jumped { by_ms })
        }
    }
}

#[cfg(test)]
mod placing {
    use super::*;

    fn ms(ms: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(ms)
    }

    #[test]
    fn the_first_sample_continues_the_queued_timeline_or_starts_a_frame_ahead() {
        let mut anchor = None;
        assert_eq!(
            place(&mut anchor, ms(5000), ms(900), ms(440)),
            (ms(900), Placed::First)
        );
        let mut anchor = None;
        assert_eq!(
            place(&mut anchor, ms(5000), ms(100), ms(440)),
            (ms(440), Placed::First)
        );
    }

    #[test]
    fn later_samples_keep_their_spacing() {
        let mut anchor = None;
        place(&mut anchor, ms(5000), ms(900), ms(440));
        assert_eq!(
            place(&mut anchor, ms(5040), ms(940), ms(480)),
            (ms(940), Placed::Follows)
        );
        // Jitter and a dropped frame are not jumps.
        assert_eq!(
            place(&mut anchor, ms(5120), ms(980), ms(520)),
            (ms(1020), Placed::Follows)
        );
    }

    #[test]
    fn a_jump_ahead_goes_on_from_the_timeline_instead_of_holding_the_screen() {
        let mut anchor = None;
        place(&mut anchor, ms(0), ms(900), ms(440));
        // 50 s ahead: the sink would have waited 50 s for it.
        let (at, placed) = place(&mut anchor, ms(50_040), ms(940), ms(480));
        assert_eq!((at, placed), (ms(940), Placed::Jumped { by_ms: 50_000 }));
        // And the spacing is kept from there.
        assert_eq!(
            place(&mut anchor, ms(50_080), ms(980), ms(520)),
            (ms(980), Placed::Follows)
        );
    }

    #[test]
    fn a_jump_back_or_a_sample_far_behind_the_screen_is_placed_anew() {
        let mut anchor = None;
        place(&mut anchor, ms(10_000), ms(900), ms(440));
        assert_eq!(
            place(&mut anchor, ms(2_000), ms(940), ms(480)),
            (ms(940), Placed::Jumped { by_ms: -8_000 })
        );
        // The screen ran on for 5 s while the stream stalled: its next
        // sample, where the timeline left off, would be late.
        assert_eq!(
            place(&mut anchor, ms(2_040), ms(980), ms(6_000)),
            (ms(6_000), Placed::Jumped { by_ms: 0 })
        );
    }
}

//! The control thread: owns what should be on screen (a playlist, the
//! status screen, or nothing), the producer playing and the one prepared
//! to follow it, and the display's power and rotation.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use tracing::{debug, error, info, warn};

use super::output::Output;
use super::producer::{Context, Producer, Source};
use super::timeline::Timeline;
use super::{MediaKind, Msg, PlayItem, RenderEvent, RenderSettings, lock};
use crate::display::{Rotation, frame_duration};
use crate::overlay::{self, StatusScreen};

/// A file item that pushes no frame for this long is stuck (some demuxers
/// hang on some broken files instead of failing): it is skipped, so the
/// playlist goes on. Far above any decoder's start-up.
const STALL: Duration = Duration::from_secs(10);

/// How long a new playlist's first item may take to decode its first
/// frame while the old one plays on; past it, the switch goes on and the
/// item shows when it can. Far above a picture's or a video's start-up.
const READY_WAIT: Duration = Duration::from_secs(2);

/// The first wait before trying again to start an output that would not
/// start, doubled at each failure up to [`OUTPUT_RETRY_MAX`].
const OUTPUT_RETRY_FIRST: Duration = Duration::from_millis(200);
const OUTPUT_RETRY_MAX: Duration = Duration::from_secs(10);

/// What the screen should show.
#[derive(Debug, Clone, PartialEq)]
enum Showing {
    /// Nothing new: the output holds its last frame.
    Nothing,
    Playlist,
    /// The status screen, with this message instead of the caller's when
    /// every item of the playlist failed.
    Status(Option<String>),
}

pub(super) struct Control {
    settings: RenderSettings,
    output: Output,
    timeline: Arc<Mutex<Timeline>>,
    /// Handed to producers so their notices arrive on the command channel.
    notices: mpsc::Sender<Msg>,
    showing: Showing,
    playlist: Vec<PlayItem>,
    /// Playlist position of the item to start next.
    next: usize,
    /// Consecutive failures; a whole playlist's worth stops the loop.
    failures_in_row: usize,
    current: Option<Producer>,
    /// The item at `next`, prepared (prerolled) while `current` plays.
    prepared: Option<Producer>,
    /// Tags producers so notices from torn-down ones are ignored.
    generation: u64,
    display_on: bool,
    /// The output failed to start: when to try again, and the wait before
    /// the try after that.
    output_retry: Option<(Instant, Duration)>,
}

impl Control {
    pub fn new(
        settings: RenderSettings,
        output: Output,
        timeline: Arc<Mutex<Timeline>>,
        notices: mpsc::Sender<Msg>,
    ) -> Control {
        Control {
            settings,
            output,
            timeline,
            notices,
            showing: Showing::Nothing,
            playlist: Vec::new(),
            next: 0,
            failures_in_row: 0,
            current: None,
            prepared: None,
            generation: 0,
            display_on: true,
            output_retry: None,
        }
    }

    pub fn run(mut self, commands: mpsc::Receiver<Msg>) {
        // `self.notices` keeps the channel open, so only Shutdown ends this.
        // The only timed waits are the stall watch of a playing file item
        // and the next try at starting an output that would not start.
        loop {
            let stall = self.current.as_ref().and_then(|p| p.stall_deadline(STALL));
            let retry = self.output_retry.map(|(at, _)| at);
            let deadline = stall.into_iter().chain(retry).min();
            let msg = match deadline {
                None => commands
                    .recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(at) => commands.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            let msg = match msg {
                Ok(msg) => msg,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.check_stall();
                    self.retry_output();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                Msg::Play(items) => {
                    info!(items = items.len(), "new playlist");
                    self.playlist = items;
                    self.next = 0;
                    // Its first item is made ready while the old one plays
                    // on, which is torn down only once the new one started:
                    // the switch costs the screen about a frame.
                    let incoming = self.ready_first_item();
                    let retired = self.retire();
                    self.prepared = incoming;
                    self.show(Showing::Playlist);
                    drop(retired);
                }
                Msg::Stop => {
                    self.interrupt();
                    self.playlist.clear();
                    self.showing = Showing::Nothing;
                    info!("playback stopped");
                }
                // Unchanged: the screen already says it.
                Msg::Status(info)
                    if self.showing == Showing::Status(None) && self.settings.status == info => {}
                Msg::Status(info) => {
                    self.interrupt();
                    self.playlist.clear();
                    self.settings.status = info;
                    self.show(Showing::Status(None));
                }
                Msg::Display(on) => self.set_display(on),
                Msg::Rotate(rotation) => self.set_rotation(rotation),
                Msg::Volume(volume) => {
                    self.settings.display.volume = volume;
                    for producer in self.current.iter().chain(&self.prepared) {
                        producer.set_volume(volume);
                    }
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
                // From a producer torn down or only prepared.
                Msg::ProducerFinished { .. } => {}
            }
        }
        info!("renderer shutting down");
    }

    fn context(&self) -> Context<'_> {
        let display = &self.settings.display;
        Context {
            output: &self.output,
            timeline: &self.timeline,
            notices: &self.notices,
            sink: self.settings.sink,
            audio: display.audio,
            volume: display.volume,
            frame: frame_duration(display),
            live_timeout: gst::ClockTime::try_from(display.live_fallback_timeout())
                .unwrap_or(gst::ClockTime::from_seconds(3)),
        }
    }

    /// Starts showing `showing` (if the display is on).
    fn show(&mut self, showing: Showing) {
        self.showing = showing;
        if !self.display_on {
            return;
        }
        match self.showing.clone() {
            Showing::Nothing => {}
            Showing::Playlist => {
                self.failures_in_row = 0;
                self.start_next();
            }
            Showing::Status(message) => self.show_status(message),
        }
    }

    fn set_display(&mut self, on: bool) {
        if !on {
            // Off is off, even while an output that would not start waits
            // for its next try.
            self.output_retry = None;
        }
        if on == self.display_on {
            return;
        }
        info!(on, "display");
        if on {
            if !self.restart_output() {
                return;
            }
            self.display_on = true;
            // After a failed playlist, try it again: a night off is a good
            // time for a second chance.
            let showing = match &self.showing {
                Showing::Status(Some(_)) if !self.playlist.is_empty() => Showing::Playlist,
                other => other.clone(),
            };
            self.show(showing);
        } else {
            self.rewind();
            self.interrupt();
            let _ = self.output.set_on(false);
            self.display_on = false;
        }
    }

    fn set_rotation(&mut self, rotation: Rotation) {
        if rotation == self.output.rotation() {
            return;
        }
        self.rewind();
        self.interrupt();
        if let Err(e) = self.output.set_rotation(rotation) {
            error!(error = %e, "cannot turn the picture");
        }
        if self.display_on {
            self.display_on = self.restart_output();
            self.show(self.showing.clone());
        }
    }

    /// Brings the output back from NULL; its running time starts over. A
    /// display server or a KMS device may refuse for a moment (an X server
    /// under load has refused a connection): when it fails, it is tried
    /// again, sooner first, then every [`OUTPUT_RETRY_MAX`], until it
    /// starts or the display is turned off.
    fn restart_output(&mut self) -> bool {
        match self.output.set_on(true) {
            Ok(()) => {
                lock(&self.timeline).restart();
                self.output_retry = None;
                true
            }
            Err(e) => {
                let wait = self.output_retry.map_or(OUTPUT_RETRY_FIRST, |(_, wait)| {
                    (wait * 2).min(OUTPUT_RETRY_MAX)
                });
                let retry_in_ms = wait.as_millis() as u64;
                if wait < OUTPUT_RETRY_MAX {
                    warn!(error = %e, retry_in_ms, "cannot start the output");
                } else {
                    error!(error = %e, retry_in_ms, "cannot start the output");
                }
                self.output_retry = Some((Instant::now() + wait, wait));
                false
            }
        }
    }

    /// Tries again to start an output that would not start, when it is time.
    fn retry_output(&mut self) {
        let due = self
            .output_retry
            .is_some_and(|(at, _)| at <= Instant::now());
        if due && self.restart_output() {
            info!("the output started");
            self.display_on = true;
            self.show(self.showing.clone());
        }
    }

    /// The interrupted item will start again from its beginning.
    fn rewind(&mut self) {
        if let Some(current) = self.current.as_ref().filter(|p| p.index.is_some()) {
            self.next = current.position;
        }
    }

    /// Tears down the producers and discards what they queued; the item
    /// playing ends uncompleted.
    fn interrupt(&mut self) {
        drop(self.retire());
    }

    /// Stops the producers and drops what they queued for the output; the
    /// item playing ends uncompleted. Returns them for the caller to tear
    /// down, which waits for a frame still being pushed (the output drops
    /// it), so it can start what replaces them first.
    fn retire(&mut self) -> Vec<Producer> {
        let interrupted = self.current.as_ref().and_then(|producer| producer.index);
        let producers: Vec<Producer> = self
            .current
            .take()
            .into_iter()
            .chain(self.prepared.take())
            .collect();
        for producer in &producers {
            producer.stop_feeding();
        }
        let mut timeline = lock(&self.timeline);
        timeline.discard_queued();
        if let Some(index) = interrupted {
            timeline.send(RenderEvent::ItemEnded {
                index,
                completed: false,
            });
        }
        producers
    }

    /// Skips the current item if it is stuck.
    fn check_stall(&mut self) {
        let stuck = self
            .current
            .as_ref()
            .and_then(|p| p.stall_deadline(STALL))
            .is_some_and(|at| at <= Instant::now());
        if let (true, Some(current)) = (stuck, &self.current) {
            current.abandon(format!("stalled: no frame for {} s", STALL.as_secs()));
            self.finish_current();
        }
    }

    /// The current producer is done: report how, start the next, and only
    /// then tear it down, so the next item's first frame is not delayed.
    fn finish_current(&mut self) {
        let Some(finished) = self.current.take() else {
            return;
        };
        let (frames, error) = finished.outcome();
        let Some(index) = finished.index else {
            // The status screen never ends by itself: it broke.
            return error!(?error, "the status screen stopped");
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
        drop(finished);
    }

    fn fail(&mut self, index: usize, reason: String) {
        warn!(index, %reason, "item failed");
        self.failures_in_row += 1;
        lock(&self.timeline).emit(RenderEvent::ItemFailed { index, reason });
    }

    /// Starts the next playable item, skipping (and reporting) those that
    /// fail to start; when the whole playlist failed in a row, shows the
    /// status screen with the last reason instead.
    fn start_next(&mut self) {
        let mut last_reason = String::new();
        while !self.playlist.is_empty() {
            if self.failures_in_row >= self.playlist.len() {
                warn!("every item of the playlist failed; showing the status screen");
                let message = format!("Nothing can be played: {last_reason}");
                return self.show(Showing::Status(Some(message)));
            }
            let position = self.next;
            self.next = (position + 1) % self.playlist.len();
            let producer = match self.prepared.take() {
                Some(prepared) if prepared.position == position => Ok(prepared),
                _ => self.build_item(position),
            };
            let started = producer.and_then(|producer| match producer.ended_unplayed() {
                Some(reason) => Err(reason),
                None => producer.play().map(|()| producer),
            });
            match started {
                Ok(producer) => {
                    debug!(position, "item producing");
                    self.current = Some(producer);
                    return self.prepare_next();
                }
                Err(reason) => {
                    last_reason.clone_from(&reason);
                    self.fail(self.playlist[position].index, reason);
                }
            }
        }
    }

    fn build_item(&mut self, position: usize) -> Result<Producer, String> {
        self.generation += 1;
        let source = Source::Item(&self.playlist[position]);
        Producer::build(source, position, self.generation, &self.context())
    }

    /// The new playlist's first item, built and prepared (waiting for its
    /// first frame a little), for [`Control::start_next`] to play: not a
    /// live one (see [`Control::prepare_next`]), nor while the display is
    /// off. One that fails is reported when it is started.
    fn ready_first_item(&mut self) -> Option<Producer> {
        if !self.display_on
            || self
                .playlist
                .first()
                .is_none_or(|item| matches!(item.kind, MediaKind::Live { .. }))
        {
            return None;
        }
        let producer = self.build_item(0).ok()?;
        if producer.prepare().is_ok() {
            producer.wait_prepared(READY_WAIT);
        }
        Some(producer)
    }

    /// Prepares the item after the current one. Live items are not: a
    /// second connection to the stream (or a second socket on its UDP port)
    /// while the first plays would be wrong. A preparation that fails is
    /// reported when the item's turn comes.
    fn prepare_next(&mut self) {
        if matches!(self.playlist[self.next].kind, MediaKind::Live { .. }) {
            return;
        }
        match self.build_item(self.next) {
            Ok(producer) => {
                if let Err(reason) = producer.prepare() {
                    debug!(position = self.next, %reason, "preparation failed");
                }
                self.prepared = Some(producer);
            }
            Err(reason) => debug!(position = self.next, %reason, "cannot prepare"),
        }
    }

    /// Draws the status screen and shows it, until something replaces it.
    fn show_status(&mut self, message: Option<String>) {
        let (width, height) = self.output.canvas();
        let info = StatusScreen {
            message: message.or_else(|| self.settings.status.message.clone()),
            ..self.settings.status.clone()
        };
        let frame =
            overlay::status_screen(&info, width, height).upscale(overlay::scale(width, height));
        self.generation += 1;
        let shown = Producer::build(
            Source::Status(frame),
            usize::MAX,
            self.generation,
            &self.context(),
        )
        .and_then(|producer| producer.play().map(|()| producer));
        match shown {
            Ok(producer) => self.current = Some(producer),
            Err(reason) => error!(%reason, "cannot show the status screen"),
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

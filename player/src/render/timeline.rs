//! The output timeline, shared by the control thread, the producers'
//! streaming threads and the output's pad probes.
//!
//! Producers stamp their frames one after the other on it; each item
//! registers a marker with the output PTS of its first frame, and the sink
//! probe emits [`RenderEvent::ItemStarted`] when that frame reaches the
//! sink. Events raised while an earlier marker is still in flight are held
//! behind it, so consumers see events in on-screen order.
//!
//! Interruptions drop what is queued for the output instead of letting it
//! play out, which keeps `play()`/`stop()` prompt: every frame carries the
//! epoch it was stamped in (in its buffer offset, which no element of the
//! output uses for video), an interruption starts a new epoch, and the probe
//! at the head of the output drops frames of earlier ones before any work
//! is spent on them. What comes next goes on right after the last frame the
//! screen took, not after the dropped ones, so it is not held back by them.

use std::collections::VecDeque;

use gstreamer as gst;
use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;

use super::RenderEvent;

pub(super) struct Timeline {
    events: UnboundedSender<RenderEvent>,
    /// End of the last buffer handed to the appsrc: where the next item
    /// continues the timeline.
    pub next_pts: gst::ClockTime,
    /// Frames stamped in an earlier epoch are leftovers of an interruption.
    epoch: u64,
    /// End of the last frame the output took: where the timeline goes on
    /// once the leftovers after it are dropped.
    taken_end: gst::ClockTime,
    /// Items whose first frame is on its way to the sink, in timeline order.
    pending: VecDeque<StartMarker>,
}

struct StartMarker {
    /// Output PTS of the item's first frame.
    pts: gst::ClockTime,
    /// `None` for what is not a playlist item (the status screen).
    index: Option<usize>,
    /// Events that happened while this frame was in flight, released right
    /// after its `ItemStarted` to keep on-screen order.
    then: Vec<RenderEvent>,
}

impl Timeline {
    pub fn new(events: UnboundedSender<RenderEvent>) -> Timeline {
        Timeline {
            events,
            next_pts: gst::ClockTime::ZERO,
            epoch: 0,
            taken_end: gst::ClockTime::ZERO,
            pending: VecDeque::new(),
        }
    }

    /// The first frame of an item (or of the status screen) goes out at `pts`.
    pub fn mark_start(&mut self, pts: gst::ClockTime, index: Option<usize>) {
        self.pending.push_back(StartMarker {
            pts,
            index,
            then: Vec::new(),
        });
    }

    /// Emits `event` after every in-flight `ItemStarted`.
    pub fn emit(&mut self, event: RenderEvent) {
        match self.pending.back_mut() {
            Some(marker) => marker.then.push(event),
            None => self.send(event),
        }
    }

    pub fn send(&self, event: RenderEvent) {
        debug!(?event, "render event");
        // A closed receiver means the daemon is shutting down; nothing to tell.
        let _ = self.events.send(event);
    }

    /// The epoch to stamp frames with now.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Called for each buffer entering the output; false = drop it.
    pub fn admit(&mut self, epoch: u64, pts: gst::ClockTime, duration: gst::ClockTime) -> bool {
        if epoch != self.epoch {
            return false;
        }
        self.taken_end = self.taken_end.max(pts + duration);
        true
    }

    /// Called for each buffer reaching the sink.
    pub fn on_sink_buffer(&mut self, pts: gst::ClockTime) {
        while let Some(marker) = self.pending.pop_front_if(|m| m.pts <= pts) {
            if let Some(index) = marker.index {
                self.send(RenderEvent::ItemStarted { index });
            }
            for event in marker.then {
                self.send(event);
            }
        }
    }

    /// Drops everything queued for the output so far; the timeline goes on
    /// after the last frame the output took. Callers first stop the
    /// producers that fed it, so none stamps another frame of this epoch.
    /// Items that never reached the screen get no `ItemStarted`, but their
    /// deferred events still go out.
    pub fn discard_queued(&mut self) {
        self.epoch += 1;
        self.next_pts = self.taken_end;
        for marker in std::mem::take(&mut self.pending) {
            for event in marker.then {
                self.send(event);
            }
        }
    }

    /// The output restarted from NULL: its running time starts over.
    pub fn restart(&mut self) {
        self.discard_queued();
        self.next_pts = gst::ClockTime::ZERO;
        self.taken_end = gst::ClockTime::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(ms)
    }

    #[test]
    fn after_an_interruption_the_leftovers_drop_and_the_timeline_goes_on_from_the_screen() {
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let mut timeline = Timeline::new(events);
        let old = timeline.epoch();
        // Five frames of 40 ms queued; the output took the first two.
        timeline.mark_start(ms(0), Some(0));
        timeline.next_pts = ms(200);
        assert!(timeline.admit(old, ms(0), ms(40)));
        timeline.on_sink_buffer(ms(0));
        assert!(timeline.admit(old, ms(40), ms(40)));
        timeline.mark_start(ms(200), Some(1));
        timeline.emit(RenderEvent::ItemEnded {
            index: 0,
            completed: false,
        });

        timeline.discard_queued();
        assert_eq!(timeline.next_pts, ms(80), "goes on after the frames taken");
        assert!(!timeline.admit(old, ms(80), ms(40)), "a leftover");
        assert!(timeline.admit(timeline.epoch(), ms(80), ms(40)));
        assert_eq!(
            received.try_recv().ok(),
            Some(RenderEvent::ItemStarted { index: 0 })
        );
        // Item 1 never showed: no ItemStarted, but its deferred event.
        assert_eq!(
            received.try_recv().ok(),
            Some(RenderEvent::ItemEnded {
                index: 0,
                completed: false
            })
        );
        assert!(received.try_recv().is_err());
    }
}

//! The output timeline, shared by the control thread, the producers'
//! streaming threads and the output sink's pad probe.
//!
//! Producers stamp their frames one after the other on it; each item
//! registers a marker with the output PTS of its first frame, and the probe
//! emits [`RenderEvent::ItemStarted`] when that frame reaches the sink.
//! Events raised while an earlier marker is still in flight are held behind
//! it, so consumers see events in on-screen order. Interruptions drop the
//! queued leftovers at the probe instead of letting them play out, which
//! keeps `play()`/`stop()` prompt.

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
    /// Buffers stamped below this are leftovers of an interrupted item and
    /// are dropped at the sink.
    pub discard_below: gst::ClockTime,
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
            discard_below: gst::ClockTime::ZERO,
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

    /// Called for each buffer reaching the sink; false = drop it.
    pub fn on_sink_buffer(&mut self, pts: gst::ClockTime) -> bool {
        if pts < self.discard_below {
            return false;
        }
        while let Some(marker) = self.pending.pop_front_if(|m| m.pts <= pts) {
            if let Some(index) = marker.index {
                self.send(RenderEvent::ItemStarted { index });
            }
            for event in marker.then {
                self.send(event);
            }
        }
        true
    }

    /// Drops everything queued for the output so far (after the producer
    /// that fed it is gone). Items that never reached the screen get no
    /// `ItemStarted`, but their deferred events still go out.
    pub fn discard_queued(&mut self) {
        self.discard_below = self.next_pts;
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
        self.discard_below = gst::ClockTime::ZERO;
    }
}

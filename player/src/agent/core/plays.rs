//! What the renderer reports: the item on screen in the status, and proof
//! of play, recorded durably and sent in acknowledged batches.
//!
//! A record is opened when an item's first frame reaches the screen and
//! closed once: when the item ends by itself (completed), or at once by
//! whatever cuts it short (a new playlist, an alert, the display going
//! off, a shutdown), which gives the reason there and then.

use std::time::{Duration, Instant};

use phare_protocol::report::{
    Event, EventKind, Interruption, LiveState, LiveStatus, PlayBatch, PlayingStatus, PopAck,
};

use super::{Core, Effect, Now};
use crate::render::RenderEvent;
use crate::store::{MAX_HELD_PLAYS, OpenPlay, PLAY_BATCH};

/// How long a batch waits for a collector's acknowledgement before it goes
/// again (a collector that was not running gets it then).
const PLAY_ACK_WAIT: Duration = Duration::from_secs(15);

/// The playlist item on screen and its open proof-of-play record.
#[derive(Debug, Clone, Copy)]
struct OnScreen {
    /// The renderer's index of the item.
    index: usize,
    /// Its proof-of-play record.
    seq: i64,
    /// A full-screen text alert covered it at some point: it was not seen
    /// whole, so it does not count as completed.
    hidden: bool,
}

/// A proof-of-play batch on its way (one at a time). Its records are
/// forgotten only once a collector acknowledged them on `pop/ack`: the
/// broker's acknowledgement is not enough, since with no collector session
/// it drops what nobody subscribed to.
#[derive(Debug, Clone, Copy)]
enum InFlight {
    /// Published; waiting for the broker. `last`: its last record.
    Publishing { batch: u64, last: i64 },
    /// The broker has it; waiting for a collector, until `resend_at`.
    AwaitingCollector { last: i64, resend_at: Instant },
}

/// The proof-of-play state that is not in storage.
#[derive(Debug, Default)]
pub(super) struct PlayLog {
    on_screen: Option<OnScreen>,
    in_flight: Option<InFlight>,
    /// Batches published so far (their numbers).
    batches: u64,
}

impl PlayLog {
    /// Whatever was in flight goes again on the next connection.
    pub(super) fn connection_changed(&mut self) {
        self.in_flight = None;
    }

    /// The broker has batch `batch`: now a collector must acknowledge it.
    pub(super) fn broker_has(&mut self, batch: u64, now: Now) {
        if let Some(InFlight::Publishing { batch: sent, last }) = self.in_flight
            && sent == batch
        {
            self.in_flight = Some(InFlight::AwaitingCollector {
                last,
                resend_at: now.monotonic + PLAY_ACK_WAIT,
            });
        }
    }

    /// When the batch the broker has goes again, no collector having
    /// acknowledged it.
    pub(super) fn resend_at(&self) -> Option<Instant> {
        match self.in_flight {
            Some(InFlight::AwaitingCollector { resend_at, .. }) => Some(resend_at),
            _ => None,
        }
    }

    /// The batch waited long enough: it is no longer in flight.
    pub(super) fn resend_due(&mut self, now: Now) -> bool {
        let due = self.resend_at().is_some_and(|at| at <= now.monotonic);
        if due {
            self.in_flight = None;
        }
        due
    }

    /// A full-screen alert covers the item on screen.
    pub(super) fn hide_on_screen(&mut self) {
        if let Some(shown) = &mut self.on_screen {
            shown.hidden = true;
        }
    }
}

impl<S: super::Storage> Core<S> {
    pub(super) fn on_render(&mut self, event: RenderEvent, now: Now) {
        let Some(active) = &self.active else { return };
        match event {
            RenderEvent::ItemStarted { index } => {
                let Some(item) = active.items.get(index).cloned() else {
                    return;
                };
                let playlist = active.playlist.clone().unwrap_or_default();
                let play = OpenPlay {
                    playlist: playlist.clone(),
                    item: index,
                    asset: item.asset().map(ToString::to_string),
                    live: item.live().map(str::to_string),
                    started_at: now.system,
                };
                self.screen.playing = Some(PlayingStatus {
                    playlist,
                    item: index,
                    asset: play.asset.clone(),
                    since: play.started_at,
                });
                // A live item says whether it shows its stream as soon as it
                // knows; until then it shows its fallback.
                self.screen.live = match item.live() {
                    Some(uri) if self.screen.live.as_ref().is_some_and(|l| l.uri == uri) => {
                        self.screen.live.take()
                    }
                    Some(uri) => Some(LiveStatus {
                        uri: uri.to_string(),
                        state: LiveState::Fallback,
                    }),
                    None => None,
                };
                // It plays now: its earlier failures are over.
                let shown = item.to_string();
                self.resolve_errors(|e| {
                    e.kind == EventKind::PlayFailed && e.subject.as_deref() == Some(shown.as_str())
                });
                // A record still open missed its end: it was cut short.
                self.close_play(Some(Interruption::Interrupted), now);
                match self.storage.open_play(&play) {
                    Ok(seq) => {
                        self.plays.on_screen = Some(OnScreen {
                            index,
                            seq,
                            hidden: self.screen.alert_covers,
                        })
                    }
                    Err(e) => tracing::error!(error = %e, "recording proof of play"),
                }
                self.publish_status(now);
            }
            RenderEvent::ItemFailed { index, reason } => {
                let mut event = Event::new(now.system, EventKind::PlayFailed, reason);
                event.subject = active.items.get(index).map(|item| item.to_string().into());
                self.emit(event);
                self.publish_status(now);
            }
            RenderEvent::LiveState { index, state } => {
                if let Some(uri) = active.items.get(index).and_then(|item| item.live()) {
                    self.screen.live = Some(LiveStatus {
                        uri: uri.to_string(),
                        state,
                    });
                    self.publish_status(now);
                }
            }
            RenderEvent::ItemEnded { index, completed } => {
                if self
                    .plays
                    .on_screen
                    .is_some_and(|shown| shown.index == index)
                {
                    let cut = (!completed).then_some(Interruption::Interrupted);
                    self.close_play(cut, now);
                }
            }
        }
    }

    /// Closes the proof-of-play record of the item on screen, if any:
    /// completed, or cut short for a reason (`cut`). An item a full-screen
    /// alert covered did not complete: the alert interrupted its showing.
    /// Then sends what is ready.
    pub(super) fn close_play(&mut self, cut: Option<Interruption>, now: Now) {
        let Some(OnScreen { seq, hidden, .. }) = self.plays.on_screen.take() else {
            return;
        };
        let reason = if hidden {
            Some(Interruption::Alert)
        } else {
            cut
        };
        let completed = reason.is_none();
        let reason = reason.map(Interruption::as_str);
        if let Err(e) = self.storage.close_play(seq, now.system, completed, reason) {
            tracing::error!(error = %e, "closing a proof-of-play record");
        }
        match self.storage.fold_oldest_plays(MAX_HELD_PLAYS) {
            Ok(0) => {}
            Ok(folded) => tracing::warn!(
                folded,
                held = MAX_HELD_PLAYS,
                "no collector took the proof of play: its oldest records are now summaries"
            ),
            Err(e) => tracing::error!(error = %e, "summarising proof of play"),
        }
        self.send_plays();
    }

    /// Publishes the oldest closed proof-of-play records, one batch at a
    /// time; they are deleted only once a collector acknowledged them.
    pub(super) fn send_plays(&mut self) {
        if self.broker.is_none() || self.plays.in_flight.is_some() {
            return;
        }
        let records = match self.storage.closed_plays(PLAY_BATCH) {
            Ok(records) => records,
            Err(e) => return tracing::error!(error = %e, "reading proof of play"),
        };
        let topic = self.settings.topics.pop(&self.settings.device_id);
        let mut batch = PlayBatch {
            device: self.settings.device_id.clone(),
            records,
        };
        // Halved until it fits one packet (records quote live URIs).
        let payload = loop {
            let json = serde_json::to_vec(&batch).expect("records always serialise");
            if crate::link::fits_in_packet(&topic, &json) || batch.records.len() <= 1 {
                break json;
            }
            batch.records.truncate(batch.records.len() / 2);
        };
        let Some(last) = batch.records.last().map(|r| r.seq) else {
            return;
        };
        if !crate::link::fits_in_packet(&topic, &payload) {
            tracing::error!(
                seq = last,
                "a proof-of-play record over the packet cap dropped"
            );
            if let Err(e) = self.storage.forget_plays_through(last) {
                return tracing::error!(error = %e, "forgetting an unsendable record");
            }
            return self.send_plays();
        }
        self.plays.batches += 1;
        let batch = self.plays.batches;
        self.effects.push(Effect::PublishPlays {
            topic,
            payload,
            batch,
        });
        self.plays.in_flight = Some(InFlight::Publishing { batch, last });
    }

    /// A collector stored the records through `through`: they are
    /// forgotten (never past the batch in flight), and the next batch goes.
    /// Unsigned: the broker's ACL lets only the collector write here, and
    /// a false acknowledgement can only cost records, never show anything.
    pub(super) fn on_pop_ack(&mut self, payload: &[u8]) {
        let last = match self.plays.in_flight {
            Some(InFlight::Publishing { last, .. } | InFlight::AwaitingCollector { last, .. }) => {
                last
            }
            None => return,
        };
        let Some(ack) = (payload.len() <= PopAck::MAX_BYTES)
            .then(|| serde_json::from_slice::<PopAck>(payload).ok())
            .flatten()
        else {
            return tracing::warn!("an unreadable proof-of-play acknowledgement ignored");
        };
        if let Err(e) = self.storage.forget_plays_through(ack.through.min(last)) {
            return tracing::error!(error = %e, "forgetting collected proof of play");
        }
        if ack.through >= last {
            self.plays.in_flight = None;
            self.send_plays();
        }
    }
}

//! What the renderer reports: the item on screen in the status, and proof
//! of play, recorded durably and sent in acknowledged batches.

use super::*;
use crate::store::{MAX_HELD_PLAYS, PLAY_BATCH};

impl Agent {
    pub(super) fn on_render(&mut self, event: RenderEvent) {
        let Some(active) = &self.active else { return };
        match event {
            RenderEvent::ItemStarted { index } => {
                let Some((position, source)) = active.items.get(index) else {
                    return;
                };
                let playlist = active.playlist.clone().unwrap_or_default();
                let play = OpenPlay {
                    playlist: playlist.clone(),
                    item: *position,
                    asset: source.asset(),
                    live: source.live(),
                    started_at: Timestamp::now(),
                };
                self.status.playing = Some(PlayingStatus {
                    playlist,
                    item: *position,
                    asset: source.asset(),
                    since: play.started_at,
                });
                // A live item says whether it shows its stream as soon as it
                // knows; until then it shows its fallback.
                self.status.live = match source.live() {
                    Some(uri) if self.status.live.as_ref().is_some_and(|l| l.uri == uri) => {
                        self.status.live.take()
                    }
                    Some(uri) => Some(LiveStatus {
                        uri,
                        state: LiveState::Fallback.as_str(),
                    }),
                    None => None,
                };
                // It plays now: its earlier failures are over.
                let shown = source.to_string();
                self.status.resolve_errors(|e| {
                    e.kind == "play_failed" && e.subject.as_deref() == Some(shown.as_str())
                });
                self.close_play(false);
                match self.store.open_play(&play) {
                    Ok(seq) => {
                        self.on_screen = Some(OnScreen {
                            index,
                            seq,
                            hidden: self.alert_covers_programme,
                        })
                    }
                    Err(e) => tracing::error!(error = %e, "recording proof of play"),
                }
                self.publish_status();
            }
            RenderEvent::ItemFailed { index, reason } => {
                let subject = active
                    .items
                    .get(index)
                    .map(|(_, source)| source.to_string().into());
                self.emit(Event {
                    at: Timestamp::now(),
                    kind: "play_failed",
                    reason: None,
                    detail: reason.into(),
                    subject,
                });
                self.publish_status();
            }
            RenderEvent::LiveState { index, state } => {
                if let Some((_, ItemSource::Live(uri))) = active.items.get(index) {
                    self.status.live = Some(LiveStatus {
                        uri: uri.clone(),
                        state: state.as_str(),
                    });
                    self.publish_status();
                }
            }
            RenderEvent::ItemEnded { index, completed } => {
                if self.on_screen.is_some_and(|shown| shown.index == index) {
                    self.close_play(completed);
                }
            }
        }
    }

    /// Closes the proof-of-play record of the item on screen, if any, and
    /// sends what is ready. An item a full-screen alert covered did not
    /// complete: the alert interrupted its showing.
    pub(super) fn close_play(&mut self, completed: bool) {
        let Some(OnScreen { seq, hidden, .. }) = self.on_screen.take() else {
            return;
        };
        let reason = match (completed, hidden) {
            (true, false) => None,
            (_, true) => Some("alert"),
            (false, false) => Some(self.interrupt_reason.unwrap_or("interrupted")),
        };
        let completed = reason.is_none();
        if let Err(e) = self
            .store
            .close_play(seq, Timestamp::now(), completed, reason)
        {
            tracing::error!(error = %e, "closing a proof-of-play record");
        }
        match self.store.fold_oldest_plays(MAX_HELD_PLAYS) {
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
        if self.status.broker.is_none() || self.plays_in_flight.is_some() {
            return;
        }
        let mut batch = match self.store.closed_plays(PLAY_BATCH) {
            Ok(batch) => batch,
            Err(e) => return tracing::error!(error = %e, "reading proof of play"),
        };
        let topic = self.topics.pop(&self.config.device_id);
        // Halved until it fits one packet (records quote live URIs).
        let json = loop {
            let payload = serde_json::json!({"device": self.config.device_id, "records": batch});
            let json = serde_json::to_vec(&payload).expect("records always serialise");
            if crate::link::fits_in_packet(&topic, &json) || batch.len() <= 1 {
                break json;
            }
            batch.truncate(batch.len() / 2);
        };
        let Some(last) = batch.last().map(|r| r.seq) else {
            return;
        };
        if !crate::link::fits_in_packet(&topic, &json) {
            tracing::error!(
                seq = last,
                "a proof-of-play record over the packet cap dropped"
            );
            if let Err(e) = self.store.forget_plays_through(last) {
                return tracing::error!(error = %e, "forgetting an unsendable record");
            }
            return self.send_plays();
        }
        self.play_token += 1;
        self.link.publish_acked(topic, json, self.play_token);
        self.plays_in_flight = Some(PlaysInFlight::Publishing {
            token: self.play_token,
            last,
        });
    }

    /// When the batch the broker has goes again, no collector having
    /// acknowledged it.
    pub(super) fn plays_resend_at(&self) -> Option<tokio::time::Instant> {
        match self.plays_in_flight {
            Some(PlaysInFlight::AwaitingCollector { resend_at, .. }) => Some(resend_at),
            _ => None,
        }
    }

    /// A collector stored the records through `through`: they are
    /// forgotten (never past the batch in flight), and the next batch goes.
    /// Unsigned: the broker's ACL lets only the collector write here, and
    /// a false acknowledgement can only cost records, never show anything.
    pub(super) fn on_pop_ack(&mut self, payload: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Ack {
            through: i64,
        }
        let last = match self.plays_in_flight {
            Some(
                PlaysInFlight::Publishing { last, .. }
                | PlaysInFlight::AwaitingCollector { last, .. },
            ) => last,
            None => return,
        };
        // A few bytes: anything longer is not an acknowledgement.
        let Some(ack) = (payload.len() <= 64)
            .then(|| serde_json::from_slice::<Ack>(payload).ok())
            .flatten()
        else {
            return tracing::warn!("an unreadable proof-of-play acknowledgement ignored");
        };
        if let Err(e) = self.store.forget_plays_through(ack.through.min(last)) {
            return tracing::error!(error = %e, "forgetting collected proof of play");
        }
        if ack.through >= last {
            self.plays_in_flight = None;
            self.send_plays();
        }
    }
}

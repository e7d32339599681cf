//! The durable outbox: events and command responses wait in SQLite (the
//! `outbox` table of `state.db`) until a broker acknowledges them, so that
//! an outage or a power cut loses none of them and they arrive in order.
//!
//! Bounded: past [`SOFT_LIMIT`] messages the oldest low-value ones
//! (download progress and the like) are dropped first; past
//! [`HARD_LIMIT`] the oldest of any kind go, so a device offline for
//! months cannot fill its card. Proof of play is not here: it has its own
//! table and is never dropped.
//!
//! The agent owns the outbox; the outbox owns its connection and which
//! messages are in flight.

use std::collections::BTreeSet;
use std::path::Path;

use phare_protocol::report::Importance;
use rusqlite::{Connection, params};

use crate::store::{StoreError, open_durable};

/// Above this many queued messages, low-value ones are dropped.
pub const SOFT_LIMIT: usize = 1_000;
/// Above this many, the oldest messages of any kind are dropped.
pub const HARD_LIMIT: usize = 10_000;
/// Messages sent before the first is acknowledged; QoS 1 keeps their order.
const WINDOW: usize = 16;

/// A message to hand to the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub seq: i64,
    pub topic: String,
    pub payload: Vec<u8>,
}

pub struct Outbox {
    db: Connection,
    /// Sent on the current connection, not yet acknowledged.
    in_flight: BTreeSet<i64>,
    /// The newest message sent on the current connection.
    sent_through: i64,
    /// Messages dropped to stay within bounds since start-up.
    dropped: u64,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, StoreError> {
        Ok(Outbox {
            db: open_durable(path)?,
            in_flight: BTreeSet::new(),
            sent_through: 0,
            dropped: 0,
        })
    }

    /// Queues a message durably, then trims the queue to its bounds:
    /// routine messages are dropped first.
    pub fn push(
        &mut self,
        topic: &str,
        payload: &[u8],
        importance: Importance,
    ) -> Result<(), StoreError> {
        let low_value = importance == Importance::Routine;
        self.db.execute(
            "INSERT INTO outbox (topic, payload, low_value) VALUES (?1, ?2, ?3)",
            params![topic, payload, low_value],
        )?;
        self.trim()
    }

    fn trim(&mut self) -> Result<(), StoreError> {
        let queued = self.queued()?;
        let over_soft = queued.saturating_sub(SOFT_LIMIT);
        if over_soft > 0 {
            self.dropped += self.db.execute(
                "DELETE FROM outbox WHERE seq IN
                 (SELECT seq FROM outbox WHERE low_value ORDER BY seq LIMIT ?1)",
                [over_soft as i64],
            )? as u64;
        }
        let over_hard = self.queued()?.saturating_sub(HARD_LIMIT);
        if over_hard > 0 {
            self.dropped += self.db.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?1)",
                [over_hard as i64],
            )? as u64;
        }
        if queued > SOFT_LIMIT {
            tracing::warn!(
                queued,
                dropped = self.dropped,
                "outbox full: oldest messages dropped"
            );
        }
        Ok(())
    }

    pub fn queued(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .db
            .query_row("SELECT COUNT(*) FROM outbox", [], |row| row.get(0))?;
        Ok(n as usize)
    }

    /// Messages dropped to stay within bounds since start-up.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The next messages to send on this connection, oldest first, while
    /// the window has room; they count as in flight from now on.
    pub fn next_batch(&mut self) -> Result<Vec<Outgoing>, StoreError> {
        let room = WINDOW.saturating_sub(self.in_flight.len());
        if room == 0 {
            return Ok(Vec::new());
        }
        let mut stmt = self.db.prepare_cached(
            "SELECT seq, topic, payload FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let batch = stmt
            .query_map(params![self.sent_through, room as i64], |row| {
                Ok(Outgoing {
                    seq: row.get(0)?,
                    topic: row.get(1)?,
                    payload: row.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for message in &batch {
            self.in_flight.insert(message.seq);
            self.sent_through = message.seq;
        }
        Ok(batch)
    }

    /// The broker has this message: it is forgotten.
    pub fn acked(&mut self, seq: i64) -> Result<(), StoreError> {
        self.in_flight.remove(&seq);
        self.db
            .execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// The connection is gone: whatever was not acknowledged goes again,
    /// in order, on the next one.
    pub fn connection_lost(&mut self) {
        self.in_flight.clear();
        self.sent_through = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("state.db")).unwrap();
        (dir, outbox)
    }

    fn payloads(batch: &[Outgoing]) -> Vec<String> {
        batch
            .iter()
            .map(|m| String::from_utf8(m.payload.clone()).unwrap())
            .collect()
    }

    #[test]
    fn messages_go_in_order_and_again_after_a_lost_connection() {
        let (_dir, mut outbox) = open();
        for i in 0..3 {
            outbox
                .push("t", format!("m{i}").as_bytes(), Importance::Error)
                .unwrap();
        }
        let first = outbox.next_batch().unwrap();
        assert_eq!(payloads(&first), ["m0", "m1", "m2"]);
        assert!(outbox.next_batch().unwrap().is_empty(), "nothing new");
        outbox.acked(first[0].seq).unwrap();
        outbox.connection_lost();
        let again = outbox.next_batch().unwrap();
        assert_eq!(payloads(&again), ["m1", "m2"], "unacknowledged ones again");
    }

    #[test]
    fn the_window_limits_what_is_in_flight() {
        let (_dir, mut outbox) = open();
        for i in 0..WINDOW + 4 {
            outbox
                .push("t", format!("m{i}").as_bytes(), Importance::Error)
                .unwrap();
        }
        let first = outbox.next_batch().unwrap();
        assert_eq!(first.len(), WINDOW);
        outbox.acked(first[0].seq).unwrap();
        outbox.acked(first[1].seq).unwrap();
        let more = outbox.next_batch().unwrap();
        assert_eq!(
            payloads(&more),
            [format!("m{WINDOW}"), format!("m{}", WINDOW + 1)]
        );
    }

    #[test]
    fn it_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Outbox::open(&path)
            .unwrap()
            .push("t", b"kept", Importance::Error)
            .unwrap();
        let mut reopened = Outbox::open(&path).unwrap();
        assert_eq!(payloads(&reopened.next_batch().unwrap()), ["kept"]);
    }

    #[test]
    fn low_value_messages_are_dropped_first_when_full() {
        let (_dir, mut outbox) = open();
        outbox.push("t", b"error-0", Importance::Error).unwrap();
        for i in 0..SOFT_LIMIT {
            outbox
                .push("t", format!("progress-{i}").as_bytes(), Importance::Routine)
                .unwrap();
        }
        outbox.push("t", b"error-1", Importance::Error).unwrap();
        assert_eq!(outbox.queued().unwrap(), SOFT_LIMIT);
        assert_eq!(outbox.dropped(), 2);
        let sent = payloads(&outbox.next_batch().unwrap());
        assert_eq!(sent[0], "error-0", "high-value messages are kept");
        assert_eq!(sent[1], "progress-2", "the oldest low-value ones went");
    }

    #[test]
    fn the_hard_limit_holds_for_any_message() {
        let (_dir, mut outbox) = open();
        for i in 0..HARD_LIMIT + 5 {
            outbox
                .push("t", format!("e{i}").as_bytes(), Importance::Error)
                .unwrap();
        }
        assert_eq!(outbox.queued().unwrap(), HARD_LIMIT);
        assert_eq!(payloads(&outbox.next_batch().unwrap())[0], "e5");
    }
}

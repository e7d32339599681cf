//! Proof-of-play collection on the operator side (docs/protocol.md §12).
//!
//! `phare pop collect` is a durable subscriber: a persistent MQTT session
//! (so batches published while it is away wait at the broker), manual
//! acknowledgements sent only after the batch is committed to its own
//! SQLite file, and records keyed by (device, seq) so a batch delivered
//! twice is stored once. `phare pop export --csv` prints them.
//!
//! The device a batch is stored under is the one its topic names: the
//! broker's ACL lets a screen publish on its own topic only, while the
//! payload says whatever its sender wants. A batch whose `device` field
//! disagrees with its topic (a stolen screen writing records for another,
//! which would then shadow that screen's real ones) is refused, logged and
//! counted.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use phare_common::mqtt::disconnect;
use phare_common::sqlite::{Migration, migrate};
use phare_protocol::report::{PlayBatch, PopAck};
use phare_protocol::topics::Topics;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use rusqlite::{Connection, params};

use crate::connect::Endpoint;
use crate::terminal::{MAX_SHOWN, printable, without_controls};

/// The collector's schema, oldest first (see `phare_common::sqlite`).
const SCHEMA: &[Migration] = &[
    Migration {
        brings: "the plays table of phare 0.1",
        sql: "
CREATE TABLE IF NOT EXISTS plays (
    device     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    playlist   TEXT NOT NULL,
    item       INTEGER NOT NULL,
    asset      TEXT,
    live       TEXT,
    start      TEXT NOT NULL,
    end        TEXT NOT NULL,
    completed  INTEGER NOT NULL,
    reason     TEXT,
    received   TEXT NOT NULL,
    PRIMARY KEY (device, seq)
);
",
    },
    Migration {
        brings: "proof-of-play summaries: how many showings a record stands for",
        sql: "
ALTER TABLE plays ADD COLUMN plays INTEGER NOT NULL DEFAULT 1;
ALTER TABLE plays ADD COLUMN completed_plays INTEGER;
",
    },
];

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("not a proof-of-play batch: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("published on {topic_device}'s topic, it claims to come from {}",
        printable(.claimed, MAX_SHOWN))]
    WrongDevice {
        topic_device: String,
        claimed: String,
    },
    #[error("storing it: {0}")]
    Database(#[from] rusqlite::Error),
}

/// The collector's database.
pub struct PlayLog {
    db: Connection,
}

impl PlayLog {
    pub fn open(path: &Path) -> anyhow::Result<PlayLog> {
        let mut db =
            Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut db, SCHEMA)?;
        Ok(PlayLog { db })
    }

    /// Stores a batch that arrived on `device`'s topic, in one
    /// transaction; records already stored are skipped. Returns how many
    /// were new, and the highest sequence number it carried (what the
    /// device may now forget).
    pub fn store_batch(
        &mut self,
        device: &str,
        payload: &[u8],
    ) -> Result<(usize, Option<i64>), BatchError> {
        let batch: PlayBatch = serde_json::from_slice(payload)?;
        if batch.device != device {
            return Err(BatchError::WrongDevice {
                topic_device: device.to_string(),
                claimed: batch.device,
            });
        }
        let received = jiff::Timestamp::now().to_string();
        let tx = self.db.transaction()?;
        let mut new = 0;
        // SQLite's integers are signed: a device's count past them is capped.
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for r in &batch.records {
            new += tx.execute(
                "INSERT OR IGNORE INTO plays
                 (device, seq, playlist, item, asset, live, start, end, completed, reason, received,
                  plays, completed_plays)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    device,
                    r.seq,
                    r.playlist,
                    count(r.item as u64),
                    r.asset,
                    r.live,
                    r.start,
                    r.end,
                    r.completed,
                    r.reason,
                    received,
                    r.summary.map_or(1, |s| count(s.plays)),
                    r.summary.map(|s| count(s.completed)),
                ],
            )?;
        }
        tx.commit()?;
        Ok((new, batch.records.iter().map(|r| r.seq).max()))
    }

    /// How many records are stored.
    pub fn count(&self) -> anyhow::Result<i64> {
        Ok(self
            .db
            .query_row("SELECT COUNT(*) FROM plays", [], |row| row.get(0))?)
    }

    /// A device's sequence numbers in the order they arrived.
    pub fn sequences_in_arrival_order(&self, device: &str) -> anyhow::Result<Vec<i64>> {
        let mut stmt = self
            .db
            .prepare("SELECT seq FROM plays WHERE device = ?1 ORDER BY rowid")?;
        let seqs = stmt
            .query_map([device], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(seqs)
    }

    /// Every record, by device and sequence, as CSV. What devices wrote is
    /// exported whole but for control characters, which no real record
    /// holds and which would reach the terminal the CSV is printed on.
    pub fn export_csv(&self, out: impl std::io::Write) -> anyhow::Result<()> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record([
            "device",
            "seq",
            "playlist",
            "item",
            "asset",
            "live",
            "start",
            "end",
            "completed",
            "reason",
            "plays",
            "completed_plays",
        ])?;
        // A plain record is one showing; `completed_plays` says for it too
        // how many played through, so a sum over the column is the total.
        let mut stmt = self.db.prepare(
            "SELECT device, seq, playlist, item, asset, live, start, end, completed, reason,
                    plays, COALESCE(completed_plays, completed)
             FROM plays ORDER BY device, seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let text = |i: usize| -> rusqlite::Result<String> {
                let value = row.get::<_, Option<String>>(i)?.unwrap_or_default();
                Ok(without_controls(&value).into_owned())
            };
            writer.write_record([
                text(0)?,
                row.get::<_, i64>(1)?.to_string(),
                text(2)?,
                row.get::<_, i64>(3)?.to_string(),
                text(4)?,
                text(5)?,
                text(6)?,
                text(7)?,
                row.get::<_, bool>(8)?.to_string(),
                text(9)?,
                row.get::<_, i64>(10)?.to_string(),
                row.get::<_, i64>(11)?.to_string(),
            ])?;
        }
        writer.flush()?;
        Ok(())
    }
}

/// What became of one message on a proof-of-play topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// A batch from `device`, of which `new` records were not stored yet.
    Stored { device: String, new: usize },
    /// Refused and dropped (it is acknowledged all the same: it would be
    /// refused again); `refused` counts the refusals so far.
    Refused { why: String, refused: u64 },
}

/// Collects proof of play for a fleet into `db` until `stop` resolves.
/// `on_arrival` is told what became of each message; device-provided
/// text in it is safe to print.
pub async fn collect(
    broker: impl Into<Endpoint>,
    fleet: &str,
    db: &Path,
    stop: impl std::future::Future<Output = ()>,
    mut on_arrival: impl FnMut(Arrival),
) -> anyhow::Result<()> {
    let broker: Endpoint = broker.into();
    let mut log = PlayLog::open(db)?;
    // A fixed client id and a persistent session: batches published while
    // the collector is away are kept for it by the broker.
    let mut options = broker.options_as(&format!("phare-pop-{fleet}"))?;
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_keep_alive(Duration::from_secs(15));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let topics = Topics::for_fleet(fleet);
    let filter = topics.pop("+");
    let mut refused = 0;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = eventloop.poll() => match event {
                // Subscribe on every connection: a restarted broker forgot us.
                Ok(Event::Incoming(Packet::ConnAck(_))) => client.subscribe(&filter, QoS::AtLeastOnce).await?,
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let stored = match topics.device_leaf(&publish.topic) {
                        Some((device, "pop")) => log
                            .store_batch(device, &publish.payload)
                            .map(|(new, through)| (device.to_string(), new, through))
                            // Parse errors may quote the payload.
                            .map_err(|e| printable(&e.to_string(), 2 * MAX_SHOWN)),
                        _ => Err(format!(
                            "{} is no device's proof-of-play topic",
                            printable(&publish.topic, MAX_SHOWN)
                        )),
                    };
                    let arrival = match stored {
                        Ok((device, new, through)) => {
                            // Durable here: the device may forget them. Its
                            // records stay on it until this arrives.
                            if let Some(through) = through {
                                let ack = serde_json::to_vec(&PopAck { through })
                                    .expect("an acknowledgement always serialises");
                                client
                                    .publish(topics.pop_ack(&device), QoS::AtLeastOnce, false, ack)
                                    .await?;
                            }
                            Arrival::Stored { device, new }
                        }
                        Err(why) => {
                            refused += 1;
                            tracing::warn!(refused, "proof-of-play batch refused: {why}");
                            Arrival::Refused { why, refused }
                        }
                    };
                    on_arrival(arrival);
                    // Acknowledged only once durable (or hopeless).
                    client.ack(&publish).await?;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("{}; retrying", broker.explain(e));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
    disconnect(&client, &mut eventloop).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(device: &str, seqs: &[i64]) -> Vec<u8> {
        let records: Vec<_> = seqs
            .iter()
            .map(|s| {
                serde_json::json!({"seq": s, "playlist": "main", "item": 0, "asset": "sha256:a",
                    "start": "2026-11-29T10:00:00Z", "end": "2026-11-29T10:00:05Z", "completed": true})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({"device": device, "records": records})).unwrap()
    }

    fn exported(log: &PlayLog) -> String {
        let mut csv = Vec::new();
        log.export_csv(&mut csv).unwrap();
        String::from_utf8(csv).unwrap()
    }

    #[test]
    fn a_batch_delivered_twice_is_stored_once_and_exports_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PlayLog::open(&dir.path().join("pop.db")).unwrap();
        assert_eq!(
            log.store_batch("lobby-1", &batch("lobby-1", &[2, 1]))
                .unwrap(),
            (2, Some(2))
        );
        assert_eq!(
            log.store_batch("lobby-1", &batch("lobby-1", &[2, 3]))
                .unwrap(),
            (1, Some(3))
        );
        assert!(matches!(
            log.store_batch("lobby-1", b"nonsense"),
            Err(BatchError::Malformed(_))
        ));
        let text = exported(&log);
        let seqs: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        assert_eq!(seqs, ["1", "2", "3"]);
    }

    /// A summary a device folded while no collector listened is stored and
    /// exported with its counts, also into a database of an earlier
    /// collector, whose records keep counting one showing each.
    #[test]
    fn summaries_are_stored_with_their_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pop.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE plays (device TEXT NOT NULL, seq INTEGER NOT NULL,
                 playlist TEXT NOT NULL, item INTEGER NOT NULL, asset TEXT, live TEXT,
                 start TEXT NOT NULL, end TEXT NOT NULL, completed INTEGER NOT NULL,
                 reason TEXT, received TEXT NOT NULL, PRIMARY KEY (device, seq));
             INSERT INTO plays VALUES ('lobby-1', 1, 'main', 0, 'sha256:a',
                 NULL, '2026-11-29T09:00:00Z', '2026-11-29T09:00:05Z', 1, NULL, 'x');",
        )
        .unwrap();
        drop(old);
        let mut log = PlayLog::open(&path).unwrap();
        let summary = serde_json::json!({"device": "lobby-1", "records": [
            {"seq": 2, "playlist": "main", "item": 0, "asset": "sha256:a",
             "start": "2026-11-29T10:00:00Z", "end": "2026-11-30T10:00:00Z", "completed": false,
             "summary": {"plays": 1200, "completed": 1150}}]});
        log.store_batch("lobby-1", &serde_json::to_vec(&summary).unwrap())
            .unwrap();
        let text = exported(&log);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(rows[0][10..], ["plays", "completed_plays"]);
        assert_eq!(rows[1][10..], ["1", "1"]);
        assert_eq!(rows[2][10..], ["1200", "1150"]);
    }

    #[test]
    fn a_batch_speaking_for_another_device_cannot_shadow_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PlayLog::open(&dir.path().join("pop.db")).unwrap();
        // lobby-1, stolen, publishes on its own topic (the only one the ACL
        // lets it write) records that claim to be lobby-2's seq 1 and 2.
        let err = log
            .store_batch("lobby-1", &batch("lobby-2", &[1, 2]))
            .unwrap_err();
        assert!(matches!(err, BatchError::WrongDevice { .. }), "{err}");
        assert_eq!(log.count().unwrap(), 0);
        // lobby-2's real records are all stored.
        assert_eq!(
            log.store_batch("lobby-2", &batch("lobby-2", &[1, 2]))
                .unwrap(),
            (2, Some(2))
        );
        assert_eq!(log.sequences_in_arrival_order("lobby-2").unwrap(), [1, 2]);
        // A claimed name is shown harmless in the refusal.
        let err = log
            .store_batch("lobby-1", &batch("\u{1b}[2Jlobby-2", &[3]))
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }

    #[test]
    fn the_export_carries_no_control_characters() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PlayLog::open(&dir.path().join("pop.db")).unwrap();
        let hostile = serde_json::json!({"device": "lobby-1", "records": [
            {"seq": 1, "playlist": "main\u{1b}]0;owned\u{7}", "item": 0, "reason": "x\ry",
             "start": "2026-11-29T10:00:00Z", "end": "2026-11-29T10:00:05Z", "completed": false}]});
        log.store_batch("lobby-1", &serde_json::to_vec(&hostile).unwrap())
            .unwrap();
        let text = exported(&log);
        assert!(!text.contains(['\u{1b}', '\u{7}', '\r']), "{text:?}");
        assert!(text.contains("main\u{FFFD}]0;owned\u{FFFD}"), "{text:?}");
    }
}

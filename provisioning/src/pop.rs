//! Proof-of-play collection on the operator side (DESIGN.md §7).
//!
//! `phare pop collect` is a durable subscriber: a persistent MQTT session
//! (so batches published while it is away wait at the broker), manual
//! acknowledgements sent only after the batch is committed to its own
//! SQLite file, and records keyed by (device, seq) so a batch delivered
//! twice is stored once. `phare pop export --csv` prints them.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use phare_protocol::topics::Topics;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use rusqlite::{Connection, params};
use serde::Deserialize;

use crate::connect::{Endpoint, disconnect};

const SCHEMA: &str = "
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
";

#[derive(Debug, Deserialize)]
struct Batch {
    device: String,
    records: Vec<Record>,
}

#[derive(Debug, Deserialize)]
struct Record {
    seq: i64,
    playlist: String,
    item: i64,
    asset: Option<String>,
    live: Option<String>,
    start: String,
    end: String,
    completed: bool,
    reason: Option<String>,
}

/// The collector's database.
pub struct PlayLog {
    db: Connection,
}

impl PlayLog {
    pub fn open(path: &Path) -> anyhow::Result<PlayLog> {
        let db = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(SCHEMA)?;
        Ok(PlayLog { db })
    }

    /// Stores a batch in one transaction; records already stored are
    /// skipped. Returns how many were new.
    pub fn store_batch(&mut self, payload: &[u8]) -> anyhow::Result<usize> {
        let batch: Batch = serde_json::from_slice(payload).context("not a proof-of-play batch")?;
        let received = jiff::Timestamp::now().to_string();
        let tx = self.db.transaction()?;
        let mut new = 0;
        for r in &batch.records {
            new += tx.execute(
                "INSERT OR IGNORE INTO plays
                 (device, seq, playlist, item, asset, live, start, end, completed, reason, received)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    batch.device,
                    r.seq,
                    r.playlist,
                    r.item,
                    r.asset,
                    r.live,
                    r.start,
                    r.end,
                    r.completed,
                    r.reason,
                    received
                ],
            )?;
        }
        tx.commit()?;
        Ok(new)
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

    /// Every record, by device and sequence, as CSV.
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
        ])?;
        let mut stmt = self.db.prepare(
            "SELECT device, seq, playlist, item, asset, live, start, end, completed, reason
             FROM plays ORDER BY device, seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let text = |i: usize| -> rusqlite::Result<String> {
                Ok(row.get::<_, Option<String>>(i)?.unwrap_or_default())
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
            ])?;
        }
        writer.flush()?;
        Ok(())
    }
}

/// Collects proof of play for a fleet into `db` until `stop` resolves.
/// `on_batch` is told how many new records each batch brought.
pub async fn collect(
    broker: impl Into<Endpoint>,
    fleet: &str,
    db: &Path,
    stop: impl std::future::Future<Output = ()>,
    mut on_batch: impl FnMut(&str, usize),
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
    let filter = Topics::for_fleet(fleet).pop("+");
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = eventloop.poll() => match event {
                // Subscribe on every connection: a restarted broker forgot us.
                Ok(Event::Incoming(Packet::ConnAck(_))) => client.subscribe(&filter, QoS::AtLeastOnce).await?,
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    match log.store_batch(&publish.payload) {
                        Ok(new) => on_batch(&publish.topic, new),
                        Err(e) => tracing::warn!(topic = %publish.topic, error = %e, "batch refused"),
                    }
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

    #[test]
    fn a_batch_delivered_twice_is_stored_once_and_exports_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PlayLog::open(&dir.path().join("pop.db")).unwrap();
        let batch = |seqs: &[i64]| {
            let records: Vec<_> = seqs
                .iter()
                .map(|s| {
                    serde_json::json!({"seq": s, "playlist": "main", "item": 0, "asset": "sha256:a",
                        "start": "2026-11-29T10:00:00Z", "end": "2026-11-29T10:00:05Z", "completed": true})
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({"device": "lobby-1", "records": records}))
                .unwrap()
        };
        assert_eq!(log.store_batch(&batch(&[2, 1])).unwrap(), 2);
        assert_eq!(log.store_batch(&batch(&[2, 3])).unwrap(), 1);
        assert!(log.store_batch(b"nonsense").is_err());
        let mut csv = Vec::new();
        log.export_csv(&mut csv).unwrap();
        let text = String::from_utf8(csv).unwrap();
        let seqs: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        assert_eq!(seqs, ["1", "2", "3"]);
    }
}

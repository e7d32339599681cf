//! Durable device state in SQLite (`<data_dir>/state.db`).
//!
//! WAL journal with `synchronous=FULL`: an accepted document or a version
//! floor must survive a power cut, since a Pi is unplugged, not shut down.
//! The agent is the only owner of the connection; the content index, in
//! the same file, belongs to the cache (`cache::index`) through its own.

use std::path::Path;

use jiff::Timestamp;
use phare_protocol::report::{PlayRecord, PlaySummary};
use rusqlite::{Connection, OptionalExtension, params};

use crate::migrations;

#[derive(Debug, thiserror::Error)]
#[error("state database: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

pub struct Store {
    db: Connection,
}

/// An accepted document as it arrived: the envelope is kept whole so that
/// it can be re-verified after a restart rather than trusted from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    pub version: u64,
    pub envelope: String,
}

/// A proof-of-play record being opened.
#[derive(Debug, Clone)]
pub struct OpenPlay {
    pub playlist: String,
    pub item: usize,
    pub asset: Option<String>,
    pub live: Option<String>,
    pub started_at: Timestamp,
}

/// How many closed proof-of-play records a device holds for a collector
/// before it folds the oldest into summaries: about ten days of 8-second
/// items, a few tens of MB.
pub const MAX_HELD_PLAYS: usize = 100_000;

/// How many of the oldest records one fold takes.
const PLAYS_PER_FOLD: usize = MAX_HELD_PLAYS / 10;

/// The oldest closed records a fold never touches: a batch sent and not yet
/// acknowledged is among them (it was the oldest batch when sent, and only
/// records open then can close before it later). Folding one of them could
/// count a showing twice: once as itself, once in a summary.
pub const UNFOLDED_PLAYS: usize = 2 * PLAY_BATCH;

/// Records in one proof-of-play batch, at most.
pub const PLAY_BATCH: usize = 100;

/// Opens `state.db` (WAL, `synchronous=FULL`) and brings its schema up to
/// date ([`crate::migrations`]). The outbox and the cache's index open
/// their own connections the same way.
pub fn open_durable(path: &Path) -> Result<Connection, StoreError> {
    lean_connections();
    let mut db = Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    migrations::migrate(&mut db, migrations::STATE)?;
    Ok(db)
}

/// Drops two preallocations SQLite makes for every connection, sized for
/// large databases and busy query loads: a 48 KiB lookaside pool for small
/// allocations, and a 20-page block of page cache (88 KiB) on its first
/// read. `state.db` is a few pages, read a few times a minute, through
/// three connections (store, outbox, content index): those blocks were
/// 400 KiB of the device's memory, more than the rest of its state and
/// link together (`make bench-fleet`, measured with heaptrack). Pages are
/// then allocated as they are read, up to the usual `cache_size`.
///
/// Process-wide settings, valid only before SQLite initialises: made once,
/// before the process's first connection, which is always opened here.
fn lean_connections() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rusqlite::ffi;
        use std::ffi::{c_int, c_void};
        // SAFETY: sqlite3_config may only run while no other SQLite call
        // does: every connection of the process is opened past this Once,
        // so none exists yet and none opens meanwhile. Both options take
        // these argument types (C int, and a pointer for PAGECACHE). Were
        // SQLite initialised already, it would refuse (SQLITE_MISUSE) and
        // keep its defaults, which only cost memory.
        let codes = unsafe {
            [
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_LOOKASIDE, 0 as c_int, 0 as c_int),
                ffi::sqlite3_config(
                    ffi::SQLITE_CONFIG_PAGECACHE,
                    std::ptr::null_mut::<c_void>(),
                    0 as c_int,
                    0 as c_int,
                ),
            ]
        };
        if codes.iter().any(|&code| code != ffi::SQLITE_OK) {
            tracing::warn!(?codes, "SQLite keeps its default per-connection memory");
        }
    });
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            db: open_durable(path)?,
        })
    }

    pub fn document(&self, stream: &str) -> Result<Option<StoredDocument>, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT version, envelope FROM documents WHERE stream = ?1",
                [stream],
                |row| {
                    Ok(StoredDocument {
                        version: row.get::<_, i64>(0)? as u64,
                        envelope: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn put_document(
        &self,
        stream: &str,
        version: u64,
        envelope: &str,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO documents (stream, version, envelope, accepted_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (stream) DO UPDATE SET version = ?2, envelope = ?3, accepted_at = ?4",
            params![
                stream,
                version as i64,
                envelope,
                jiff::Timestamp::now().to_string()
            ],
        )?;
        Ok(())
    }

    /// Accepted roots beyond the pinned one, oldest first.
    pub fn roots(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT envelope FROM roots ORDER BY version")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn put_root(&self, version: u64, envelope: &str) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT OR REPLACE INTO roots (version, envelope) VALUES (?1, ?2)",
            params![version as i64, envelope],
        )?;
        Ok(())
    }

    /// The stored documents of publisher streams (assignments and alerts),
    /// by stream.
    pub fn publisher_documents(&self) -> Result<Vec<(String, StoredDocument)>, StoreError> {
        let mut stmt = self.db.prepare(
            "SELECT stream, version, envelope FROM documents
             WHERE stream LIKE 'assignment:%' OR stream LIKE 'alert:%'",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get(0)?,
                StoredDocument {
                    version: row.get::<_, i64>(1)? as u64,
                    envelope: row.get(2)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets a stream: its document and its version floor.
    pub fn forget_document(&self, stream: &str) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM documents WHERE stream = ?1", [stream])?;
        Ok(())
    }

    /// Resets a stream's version floor to 0, keeping its document: its
    /// signer's key is gone, and the new key may start again from any
    /// version.
    pub fn reset_floor(&self, stream: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE documents SET version = 0 WHERE stream = ?1",
            [stream],
        )?;
        Ok(())
    }

    /// Records a command id; false if it was already recorded (a replay).
    /// Ids of commands expired before `now` are forgotten: an expired
    /// command is refused anyway, and the time floor never goes back.
    pub fn record_command(
        &self,
        id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.db.execute(
            "DELETE FROM commands_seen WHERE expires_at < ?1",
            [now.to_string()],
        )?;
        let inserted = self.db.execute(
            "INSERT OR IGNORE INTO commands_seen (id, expires_at) VALUES (?1, ?2)",
            params![id, expires_at.to_string()],
        )?;
        Ok(inserted == 1)
    }

    /// Opens a proof-of-play record for an item that just reached the
    /// screen; returns its sequence number (never reused).
    pub fn open_play(&self, play: &OpenPlay) -> Result<i64, StoreError> {
        self.db.execute(
            "INSERT INTO pop (playlist, item, asset, live, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                play.playlist,
                play.item as i64,
                play.asset,
                play.live,
                play.started_at.to_string()
            ],
        )?;
        Ok(self.db.last_insert_rowid())
    }

    /// Closes a record: the item ended, played through or interrupted.
    pub fn close_play(
        &self,
        seq: i64,
        ended_at: Timestamp,
        completed: bool,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE pop SET ended_at = ?2, completed = ?3, reason = ?4 WHERE seq = ?1 AND ended_at IS NULL",
            params![seq, ended_at.to_string(), completed, reason],
        )?;
        Ok(())
    }

    /// Closes records left open by a crash or power cut, at `at`.
    pub fn close_abandoned_plays(&self, at: Timestamp) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE pop SET ended_at = MAX(started_at, ?1), reason = 'power_loss' WHERE ended_at IS NULL",
            [at.to_string()],
        )?;
        Ok(())
    }

    /// The oldest closed records, in order, at most `limit`.
    pub fn closed_plays(&self, limit: usize) -> Result<Vec<PlayRecord>, StoreError> {
        let mut stmt = self.db.prepare(
            "SELECT seq, playlist, item, asset, live, started_at, ended_at, completed, reason,
                    plays, completed_plays
             FROM pop WHERE ended_at IS NOT NULL ORDER BY seq LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |row| {
            let plays: i64 = row.get(9)?;
            let completed_plays: Option<i64> = row.get(10)?;
            Ok(PlayRecord {
                seq: row.get(0)?,
                playlist: row.get(1)?,
                item: row.get::<_, i64>(2)? as usize,
                asset: row.get(3)?,
                live: row.get(4)?,
                start: row.get(5)?,
                end: row.get(6)?,
                completed: row.get(7)?,
                reason: row.get(8)?,
                summary: completed_plays.map(|completed| PlaySummary {
                    plays: plays as u64,
                    completed: completed as u64,
                }),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Past `max_held` closed records, folds the oldest (but the
    /// [`UNFOLDED_PLAYS`] that a batch in flight may hold) into one summary
    /// per item: the showings are counted, never silently dropped. Each
    /// summary takes the lowest `seq` of what it folds, a number no
    /// collector has seen; a record alone for its item stays as it was.
    /// Returns how many records it took.
    pub fn fold_oldest_plays(&self, max_held: usize) -> Result<usize, StoreError> {
        // Called at every item's end: the span of sequence numbers held (two
        // lookups in the key's b-tree) bounds their count, so the count,
        // a scan of the table, is made only when the span could exceed it.
        let span: i64 = self.db.query_row(
            "SELECT COALESCE(MAX(seq) - MIN(seq) + 1, 0) FROM pop",
            [],
            |row| row.get(0),
        )?;
        if span as usize <= max_held {
            return Ok(0);
        }
        let held: i64 = self.db.query_row(
            "SELECT COUNT(*) FROM pop WHERE ended_at IS NOT NULL",
            [],
            |row| row.get(0),
        )?;
        if held as usize <= max_held {
            return Ok(0);
        }
        let tx = self.db.unchecked_transaction()?;
        tx.execute_batch(&format!(
            "CREATE TEMP TABLE folding AS
                 SELECT * FROM pop WHERE ended_at IS NOT NULL ORDER BY seq
                 LIMIT {PLAYS_PER_FOLD} OFFSET {UNFOLDED_PLAYS};
             DELETE FROM pop WHERE seq IN (SELECT seq FROM folding);
             INSERT INTO pop (seq, playlist, item, asset, live, started_at, ended_at,
                              completed, reason, plays, completed_plays)
                 SELECT MIN(seq), playlist, item, asset, live, MIN(started_at), MAX(ended_at),
                        SUM(plays) = SUM(COALESCE(completed_plays, completed)),
                        CASE WHEN COUNT(*) = 1 THEN MAX(reason) END,
                        SUM(plays),
                        CASE WHEN COUNT(*) = 1 THEN MAX(completed_plays)
                             ELSE SUM(COALESCE(completed_plays, completed)) END
                 FROM folding GROUP BY playlist, item, asset, live;"
        ))?;
        let folded: i64 = tx.query_row("SELECT COUNT(*) FROM folding", [], |row| row.get(0))?;
        tx.execute_batch("DROP TABLE folding")?;
        tx.commit()?;
        Ok(folded as usize)
    }

    /// Forgets closed records up to `seq`, once the broker has them.
    pub fn forget_plays_through(&self, seq: i64) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM pop WHERE seq <= ?1 AND ended_at IS NOT NULL",
            [seq],
        )?;
        Ok(())
    }

    /// The durable time floor: the latest signed `issued_at` accepted.
    pub fn time_floor(&self) -> Result<Option<Timestamp>, StoreError> {
        self.time_setting(TimeSetting::SignedFloor)
    }

    pub fn put_time_floor(&self, floor: Timestamp) -> Result<(), StoreError> {
        self.put_time_setting(TimeSetting::SignedFloor, floor)
    }

    /// The system clock when the player was last seen running: untrusted,
    /// only where a record left open by a power cut ends.
    pub fn last_alive(&self) -> Result<Option<Timestamp>, StoreError> {
        self.time_setting(TimeSetting::LastAlive)
    }

    pub fn put_last_alive(&self, at: Timestamp) -> Result<(), StoreError> {
        self.put_time_setting(TimeSetting::LastAlive, at)
    }

    fn time_setting(&self, key: TimeSetting) -> Result<Option<Timestamp>, StoreError> {
        let value: Option<String> = self
            .db
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                [key.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    fn put_time_setting(&self, key: TimeSetting, at: Timestamp) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = ?2",
            [key.as_str(), &at.to_string()],
        )?;
        Ok(())
    }
}

/// The times kept in the `settings` table.
#[derive(Debug, Clone, Copy)]
enum TimeSetting {
    SignedFloor,
    LastAlive,
}

impl TimeSetting {
    fn as_str(self) -> &'static str {
        match self {
            TimeSetting::SignedFloor => "signed_time_floor",
            TimeSetting::LastAlive => "last_alive",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays `items` (playlist item numbers) one after the other from
    /// 10:00, each 8 s, the `n`th completed unless `interrupted(n)`.
    fn play(store: &Store, items: &[usize], interrupted: impl Fn(usize) -> bool) {
        let start: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
        for (n, &item) in items.iter().enumerate() {
            let at = |s: i64| {
                start
                    .checked_add(jiff::SignedDuration::from_secs(s))
                    .unwrap()
            };
            let seq = store
                .open_play(&OpenPlay {
                    playlist: "main".into(),
                    item,
                    asset: Some(format!("sha256:{item}")),
                    live: None,
                    started_at: at(8 * n as i64),
                })
                .unwrap();
            let done = !interrupted(n);
            let reason = (!done).then_some("schedule");
            store
                .close_play(seq, at(8 * n as i64 + 8), done, reason)
                .unwrap();
        }
    }

    #[test]
    fn past_the_bound_the_oldest_plays_are_summarised_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        // Three items in turn, every tenth showing cut short.
        let shown = UNFOLDED_PLAYS + PLAYS_PER_FOLD + 30;
        let items: Vec<usize> = (0..shown).map(|n| n % 3).collect();
        play(&store, &items, |n| n % 10 == 9);
        assert_eq!(
            store.fold_oldest_plays(shown).unwrap(),
            0,
            "within the bound"
        );

        assert_eq!(store.fold_oldest_plays(shown - 1).unwrap(), PLAYS_PER_FOLD);
        let held = store.closed_plays(usize::MAX).unwrap();
        assert_eq!(held.len(), UNFOLDED_PLAYS + 3 + 30);
        // What a batch in flight may hold is untouched, in order.
        let untouched = &held[..UNFOLDED_PLAYS];
        assert!(untouched.iter().all(|r| r.summary.is_none()));
        assert_eq!(
            untouched.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=UNFOLDED_PLAYS as i64).collect::<Vec<_>>()
        );
        // One summary per item, at the lowest seq it folded, counting every
        // showing and those that played through.
        let summaries = &held[UNFOLDED_PLAYS..UNFOLDED_PLAYS + 3];
        let folded = &items[UNFOLDED_PLAYS..UNFOLDED_PLAYS + PLAYS_PER_FOLD];
        for (k, summary) in summaries.iter().enumerate() {
            let first = UNFOLDED_PLAYS + k;
            assert_eq!(summary.seq, first as i64 + 1);
            assert_eq!(summary.item, items[first]);
            let counted = summary.summary.unwrap();
            let mine = (UNFOLDED_PLAYS..UNFOLDED_PLAYS + PLAYS_PER_FOLD)
                .filter(|&n| items[n] == summary.item);
            assert_eq!(
                counted.plays,
                folded.iter().filter(|&&i| i == summary.item).count() as u64
            );
            assert_eq!(
                counted.completed,
                mine.filter(|n| n % 10 != 9).count() as u64
            );
            assert!(!summary.completed);
            assert_eq!(summary.reason, None);
        }
        let total: u64 = held.iter().map(|r| r.summary.map_or(1, |s| s.plays)).sum();
        assert_eq!(total, shown as u64);
        // The newest are as they were.
        assert!(
            held[UNFOLDED_PLAYS + 3..]
                .iter()
                .all(|r| r.summary.is_none())
        );

        // Summaries fold again with what follows, still counting all.
        store.fold_oldest_plays(UNFOLDED_PLAYS).unwrap();
        let held = store.closed_plays(usize::MAX).unwrap();
        assert_eq!(held.len(), UNFOLDED_PLAYS + 3);
        let total: u64 = held.iter().map(|r| r.summary.map_or(1, |s| s.plays)).sum();
        assert_eq!(total, shown as u64);
    }

    #[test]
    fn a_record_alone_for_its_item_is_not_turned_into_a_summary() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let mut items = vec![0; UNFOLDED_PLAYS];
        items.push(7);
        play(&store, &items, |n| n == UNFOLDED_PLAYS);
        store.fold_oldest_plays(0).unwrap();
        let lone = store.closed_plays(usize::MAX).unwrap().pop().unwrap();
        assert_eq!((lone.item, lone.summary), (7, None));
        assert_eq!(lone.reason.as_deref(), Some("schedule"));
    }

    #[test]
    fn plays_are_kept_in_order_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let open = |item| OpenPlay {
            playlist: "main".into(),
            item,
            asset: Some("sha256:x".into()),
            live: None,
            started_at: t("2026-11-29T10:00:00Z"),
        };
        {
            let store = Store::open(&path).unwrap();
            let a = store.open_play(&open(0)).unwrap();
            store
                .close_play(a, t("2026-11-29T10:00:05Z"), true, None)
                .unwrap();
            let b = store.open_play(&open(1)).unwrap();
            store
                .close_play(b, t("2026-11-29T10:00:06Z"), false, Some("schedule"))
                .unwrap();
            store.open_play(&open(0)).unwrap(); // the power goes out
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.closed_plays(10).unwrap().len(),
            2,
            "the open record is not sent"
        );
        store
            .close_abandoned_plays(t("2026-11-29T10:00:09Z"))
            .unwrap();
        let plays = store.closed_plays(10).unwrap();
        assert_eq!(
            plays.iter().map(|p| p.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(plays[2].reason.as_deref(), Some("power_loss"));
        store.forget_plays_through(2).unwrap();
        assert_eq!(store.closed_plays(10).unwrap()[0].seq, 3);
        let next = store.open_play(&open(1)).unwrap();
        assert_eq!(next, 4, "sequence numbers are never reused");
    }

    #[test]
    fn documents_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .put_document("assignment:device:a", 3, "{env3}")
                .unwrap();
            store
                .put_document("assignment:device:a", 4, "{env4}")
                .unwrap();
            store.put_root(2, "{root2}").unwrap();
            store.put_root(3, "{root3}").unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.document("assignment:device:a").unwrap(),
            Some(StoredDocument {
                version: 4,
                envelope: "{env4}".into()
            })
        );
        assert_eq!(store.document("assignment:group:x").unwrap(), None);
        assert_eq!(
            store.roots().unwrap(),
            vec!["{root2}".to_string(), "{root3}".to_string()]
        );
    }
}

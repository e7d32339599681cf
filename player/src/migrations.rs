//! The schema of `state.db`, as the ordered list of changes that made it.
//!
//! `PRAGMA user_version` counts the migrations a database has had; opening
//! it applies the rest, each in its own transaction with the count, so a
//! power cut leaves it at one version or the next. The first migration is
//! the schema of the players that came before versioning (0.1): written
//! with `IF NOT EXISTS`, it finds their tables there and changes nothing,
//! and it runs the clean-ups they ran at every start, once.
//!
//! Invariant: a migration only adds (tables, columns with a default or
//! nullable, rows), never renames or drops. A player rolled back to an
//! older version (a system update that did not take) then still opens a
//! database a newer one migrated: it warns and goes on.
//!
//! The collector of `phare pop collect` keeps its own file with its own
//! list, through the same [`migrate`].

use rusqlite::{Connection, TransactionBehavior};

use crate::store::StoreError;

/// One change of a schema, applied once.
#[derive(Debug)]
pub struct Migration {
    /// What it brings, for the log.
    pub brings: &'static str,
    pub sql: &'static str,
}

/// `state.db`'s schema, oldest first: the store's documents, roots,
/// command ids, proof of play and settings, the outbox, the cache index.
pub const STATE: &[Migration] = &[
    Migration {
        brings: "the tables of phare-player 0.1",
        sql: "
CREATE TABLE IF NOT EXISTS documents (
    stream      TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    envelope    TEXT NOT NULL,
    accepted_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS roots (
    version  INTEGER PRIMARY KEY,
    envelope TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commands_seen (
    id         TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pop (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    playlist   TEXT NOT NULL,
    item       INTEGER NOT NULL,
    asset      TEXT,
    live       TEXT,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    completed  INTEGER NOT NULL DEFAULT 0,
    reason     TEXT
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    topic     TEXT NOT NULL,
    payload   BLOB NOT NULL,
    low_value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS content (
    id          TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('partial', 'present')),
    source      TEXT,
    validator   TEXT,
    last_used   INTEGER NOT NULL,
    verified_at INTEGER,
    pinned      INTEGER NOT NULL DEFAULT 0
);
-- The single alert stream of before alert ids: such an alert has no id
-- and would be refused now.
DELETE FROM documents WHERE stream = 'alert';
-- Players before 0.1 raised this floor from the unauthenticated system
-- clock: one spoofed clock could have frozen it in the future for good.
DELETE FROM settings WHERE key = 'time_floor';
",
    },
    Migration {
        brings: "proof-of-play summaries (records folded past the bound)",
        sql: "
ALTER TABLE pop ADD COLUMN plays INTEGER NOT NULL DEFAULT 1;
ALTER TABLE pop ADD COLUMN completed_plays INTEGER;
",
    },
];

/// Brings `db` to the end of `migrations`. Each step reads the version and
/// applies the next migration under the database's write lock, so that
/// two connections opening it at once (a collector and a reader of its
/// file) never apply one twice.
pub fn migrate(db: &mut Connection, migrations: &[Migration]) -> Result<(), StoreError> {
    loop {
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let applied = usize::try_from(applied).unwrap_or(0);
        let Some(migration) = migrations.get(applied) else {
            if applied > migrations.len() {
                tracing::warn!(
                    schema = applied,
                    known = migrations.len(),
                    "the database was migrated by a newer version: its additions are left alone"
                );
            }
            return Ok(());
        };
        tx.execute_batch(migration.sql)?;
        tx.pragma_update(None, "user_version", (applied + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = applied + 1, "{}", migration.brings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::{Index, State};
    use crate::outbox::Outbox;
    use crate::store::Store;

    fn count(db: &Connection, sql: &str) -> i64 {
        db.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    /// A `state.db` as 0.1 left it (checked in as SQL): opened by this
    /// player, it is migrated with its floors, cache index, outbox and
    /// proof of play intact, and the records gain what summaries need.
    #[test]
    fn a_database_of_the_last_release_is_upgraded_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(include_str!("../tests/fixtures/state-0.1.sql"))
            .unwrap();
        let before = |sql| count(&old, sql);
        let (floors, content, queued, plays) = (
            before("SELECT COUNT(*) FROM documents"),
            before("SELECT COUNT(*) FROM content"),
            before("SELECT COUNT(*) FROM outbox"),
            before("SELECT COUNT(*) FROM pop"),
        );
        assert!(floors > 0 && content > 0 && queued > 0 && plays > 0);
        let floor = old
            .query_row("SELECT stream, version FROM documents", [], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .unwrap();
        drop(old);

        let store = Store::open(&path).unwrap();
        let document = store.document(&floor.0).unwrap().unwrap();
        assert_eq!(document.version as i64, floor.1);
        let held = store.closed_plays(usize::MAX).unwrap();
        assert_eq!(held.len() as i64, plays);
        assert!(held.iter().all(|record| record.summary.is_none()));
        assert!(store.time_floor().unwrap().is_some());
        let index = Index::open(&path).unwrap();
        let rows = index.rows().unwrap();
        assert_eq!(rows.len() as i64, content);
        assert!(rows.iter().any(|row| row.state == State::Present));
        let outbox = Outbox::open(&path).unwrap();
        assert_eq!(outbox.queued().unwrap() as i64, queued);

        let db = Connection::open(&path).unwrap();
        assert_eq!(
            count(&db, "PRAGMA user_version"),
            STATE.len() as i64,
            "every migration recorded"
        );
    }

    /// Two connections opening a new file at once: each migration is
    /// applied once, by whichever takes the lock first.
    #[test]
    fn connections_opening_at_once_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut db = Connection::open(path).unwrap();
                    migrate(&mut db, STATE)
                })
            })
            .collect();
        for opener in openers {
            opener.join().unwrap().unwrap();
        }
        let db = Connection::open(&path).unwrap();
        assert_eq!(count(&db, "PRAGMA user_version"), STATE.len() as i64);
    }

    #[test]
    fn migrations_run_once_and_a_newer_database_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Connection::open(dir.path().join("state.db")).unwrap();
        migrate(&mut db, STATE).unwrap();
        // A second run would fail: the columns exist.
        migrate(&mut db, STATE).unwrap();
        assert_eq!(count(&db, "PRAGMA user_version"), STATE.len() as i64);
        // Rolled back: an older player knows fewer migrations.
        migrate(&mut db, &STATE[..1]).unwrap();
        assert_eq!(count(&db, "PRAGMA user_version"), STATE.len() as i64);
    }
}

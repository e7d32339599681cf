//! The schema of `state.db`, as the ordered list of changes that made it.
//!
//! [`migrate`] (in `phare-common`, which the collector of `phare pop
//! collect` shares for its own file and list) applies them, each once,
//! counted by `PRAGMA user_version`. The first migration is the schema of
//! the players that came before versioning (0.1): written with `IF NOT
//! EXISTS`, it finds their tables there and changes nothing, and it runs
//! the clean-ups they ran at every start, once. A migration only adds, so
//! a player rolled back to an older version still opens the database.

pub use phare_common::sqlite::{Migration, migrate};

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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

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
}

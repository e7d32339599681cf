//! Durable device state in SQLite (`<data_dir>/state.db`).
//!
//! WAL journal with `synchronous=FULL`: an accepted document or a version
//! floor must survive a power cut, since a Pi is unplugged, not shut down.
//! The agent is the only owner of the connection.

use std::path::Path;

use jiff::Timestamp;
use phare_protocol::AssetId;
use rusqlite::{Connection, OptionalExtension, params};

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

const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assets (
    id          TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    verified_at TEXT NOT NULL
);
";

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(SCHEMA)?;
        Ok(Store { db })
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

    /// Resets the version floors of publisher documents (assignments and
    /// alerts) to 0, keeping the documents: after the publisher key was
    /// rotated, the new key may start again from any version.
    pub fn reset_publisher_floors(&self) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE documents SET version = 0 WHERE stream LIKE 'assignment:%' OR stream = 'alert'",
            [],
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

    /// The durable time floor: the latest trustworthy time seen.
    pub fn time_floor(&self) -> Result<Option<Timestamp>, StoreError> {
        let value: Option<String> = self
            .db
            .query_row(
                "SELECT value FROM settings WHERE key = 'time_floor'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    pub fn put_time_floor(&self, floor: Timestamp) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO settings (key, value) VALUES ('time_floor', ?1)
             ON CONFLICT (key) DO UPDATE SET value = ?1",
            [floor.to_string()],
        )?;
        Ok(())
    }

    pub fn has_asset(&self, id: &AssetId) -> Result<bool, StoreError> {
        Ok(self
            .db
            .query_row("SELECT 1 FROM assets WHERE id = ?1", [id.as_str()], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    pub fn put_asset(&self, id: &AssetId, size: u64) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT OR REPLACE INTO assets (id, size, verified_at) VALUES (?1, ?2, ?3)",
            params![id.as_str(), size as i64, jiff::Timestamp::now().to_string()],
        )?;
        Ok(())
    }

    pub fn forget_asset(&self, id: &AssetId) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM assets WHERE id = ?1", [id.as_str()])?;
        Ok(())
    }

    /// Number of cached assets and their total size.
    pub fn cache_totals(&self) -> Result<(u64, u64), StoreError> {
        Ok(self.db.query_row(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM assets",
            [],
            |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn asset_totals_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let a = AssetId::from_digest(&[1; 32]);
        let b = AssetId::from_digest(&[2; 32]);
        store.put_asset(&a, 10).unwrap();
        store.put_asset(&b, 32).unwrap();
        assert!(store.has_asset(&a).unwrap());
        assert_eq!(store.cache_totals().unwrap(), (2, 42));
        store.forget_asset(&a).unwrap();
        assert_eq!(store.cache_totals().unwrap(), (1, 32));
    }
}

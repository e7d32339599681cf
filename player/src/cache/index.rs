//! The content index: one row per asset the cache holds or is fetching, in
//! the `content` table of `state.db`.
//!
//! A row is `present` only once its file was verified and durably renamed
//! into place, so a crash at any moment leaves at worst a `partial` row
//! whose file the start-up reconciliation checks. The row of a partial
//! download keeps the validator (ETag or Last-Modified) of the response it
//! came from, so that a resumed download can send `If-Range`.
//!
//! The cache owns this table through its own connection; nothing else
//! touches it.

use std::collections::BTreeSet;
use std::path::Path;

use phare_protocol::AssetId;
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{StoreError, open_durable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Partial,
    Present,
}

/// One row of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: AssetId,
    pub size: u64,
    pub state: State,
    /// Unix seconds of the last time an assignment needed the asset.
    pub last_used: i64,
    pub pinned: bool,
}

/// Where a partial download came from: the URL and its validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub url: String,
    pub validator: String,
}

pub struct Index {
    db: Connection,
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Index {
    pub fn open(path: &Path) -> Result<Index, StoreError> {
        // Durable like the rest of the state: a row marked present must
        // never outlive a power cut that the file did not.
        Ok(Index {
            db: open_durable(path)?,
        })
    }

    pub fn rows(&self) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT id, size, state, last_used, pinned FROM content ORDER BY id")?;
        let rows = stmt.query_map([], |row| {
            let id: String = row.get(0)?;
            let state: String = row.get(2)?;
            Ok((id, row.get::<_, i64>(1)?, state, row.get(3)?, row.get(4)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, size, state, last_used, pinned) = row?;
            // Rows are only ever written from valid ids; skip any other.
            let Ok(id) = AssetId::try_from(id) else {
                continue;
            };
            out.push(Row {
                id,
                size: size as u64,
                state: if state == "present" {
                    State::Present
                } else {
                    State::Partial
                },
                last_used,
                pinned,
            });
        }
        Ok(out)
    }

    /// Notes that a download starts (a `partial` row unless the asset is
    /// present) and returns where an earlier attempt left off, if it did.
    pub fn begin(&self, id: &AssetId, size: u64) -> Result<Option<Resume>, StoreError> {
        self.db.execute(
            "INSERT INTO content (id, size, state, last_used) VALUES (?1, ?2, 'partial', ?3)
             ON CONFLICT (id) DO UPDATE SET size = ?2 WHERE state = 'partial'",
            params![id.as_str(), size as i64, unix_now()],
        )?;
        Ok(self
            .db
            .query_row(
                "SELECT source, validator FROM content
                 WHERE id = ?1 AND source IS NOT NULL AND validator IS NOT NULL",
                [id.as_str()],
                |row| {
                    Ok(Resume {
                        url: row.get(0)?,
                        validator: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Remembers the validator of the response a partial file now follows.
    pub fn set_resume(&self, id: &AssetId, resume: &Resume) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE content SET source = ?2, validator = ?3 WHERE id = ?1 AND state = 'partial'",
            params![id.as_str(), resume.url, resume.validator],
        )?;
        Ok(())
    }

    /// Records a verified file, already durably in place.
    pub fn mark_present(&self, id: &AssetId, size: u64, pinned: bool) -> Result<(), StoreError> {
        let now = unix_now();
        self.db.execute(
            "INSERT INTO content (id, size, state, last_used, verified_at, pinned)
             VALUES (?1, ?2, 'present', ?3, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET size = ?2, state = 'present', source = NULL,
                 validator = NULL, last_used = ?3, verified_at = ?3, pinned = ?4",
            params![id.as_str(), size as i64, now, pinned],
        )?;
        Ok(())
    }

    /// Records that a re-hash found the file intact.
    pub fn mark_verified(&self, id: &AssetId) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE content SET verified_at = ?2 WHERE id = ?1",
            params![id.as_str(), unix_now()],
        )?;
        Ok(())
    }

    pub fn forget(&self, id: &AssetId) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM content WHERE id = ?1", [id.as_str()])?;
        Ok(())
    }

    /// Pins exactly `pins` (what plays and what will play) and marks them
    /// used now: least-recently-used means least recently needed.
    pub fn pin(&mut self, pins: &BTreeSet<AssetId>) -> Result<(), StoreError> {
        let now = unix_now();
        let tx = self.db.transaction()?;
        tx.execute("UPDATE content SET pinned = 0 WHERE pinned = 1", [])?;
        {
            let mut stmt =
                tx.prepare("UPDATE content SET pinned = 1, last_used = ?2 WHERE id = ?1")?;
            for id in pins {
                stmt.execute(params![id.as_str(), now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The present asset verified longest ago, with that time (unix s).
    pub fn least_recently_verified(&self) -> Result<Option<(AssetId, i64)>, StoreError> {
        let found: Option<(String, i64)> = self
            .db
            .query_row(
                "SELECT id, COALESCE(verified_at, 0) FROM content WHERE state = 'present'
                 ORDER BY COALESCE(verified_at, 0) LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(found.and_then(|(id, at)| Some((AssetId::try_from(id).ok()?, at))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> AssetId {
        AssetId::from_digest(&[n; 32])
    }

    #[test]
    fn a_download_goes_from_partial_with_its_validator_to_present() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let resume = Resume {
            url: "http://o/a".into(),
            validator: "\"etag\"".into(),
        };
        {
            let index = Index::open(&path).unwrap();
            assert_eq!(index.begin(&id(1), 10).unwrap(), None);
            index.set_resume(&id(1), &resume).unwrap();
        }
        // Across a restart the partial download knows where it came from.
        let mut index = Index::open(&path).unwrap();
        assert_eq!(index.begin(&id(1), 10).unwrap(), Some(resume));
        index.mark_present(&id(1), 10, true).unwrap();
        assert_eq!(index.begin(&id(1), 10).unwrap(), None);
        index.mark_present(&id(2), 5, false).unwrap();
        index.pin(&BTreeSet::from([id(2)])).unwrap();
        let rows = index.rows().unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.state == State::Present));
        assert_eq!(
            rows.iter().map(|r| r.pinned).collect::<Vec<_>>(),
            [false, true]
        );
        index.forget(&id(1)).unwrap();
        assert_eq!(index.rows().unwrap().len(), 1);
        assert_eq!(index.least_recently_verified().unwrap().unwrap().0, id(2));
    }
}

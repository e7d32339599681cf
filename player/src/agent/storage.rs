//! What the core keeps durably, as a small trait: `state.db` ([`Store`])
//! on a device, [`MemoryStorage`] in the core's tests. A document is
//! accepted only once `put_document` returned `Ok`.

use jiff::Timestamp;
use phare_protocol::report::PlayRecord;

use crate::store::{OpenPlay, Store, StoreError, StoredDocument};

pub trait Storage {
    /// The accepted document of a stream (its version floor), if any.
    fn document(&mut self, stream: &str) -> Result<Option<StoredDocument>, StoreError>;
    fn put_document(
        &mut self,
        stream: &str,
        version: u64,
        envelope: &str,
    ) -> Result<(), StoreError>;
    /// The stored assignments and alerts, by stream.
    fn publisher_documents(&mut self) -> Result<Vec<(String, StoredDocument)>, StoreError>;
    /// Forgets a stream, floor and all.
    fn forget_document(&mut self, stream: &str) -> Result<(), StoreError>;
    /// Sets a stream's version floor to 0, keeping its document.
    fn reset_floor(&mut self, stream: &str) -> Result<(), StoreError>;
    fn put_root(&mut self, version: u64, envelope: &str) -> Result<(), StoreError>;
    /// Records a command id; false if it was recorded already.
    fn record_command(
        &mut self,
        id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Opens a proof-of-play record; its sequence number is never reused.
    fn open_play(&mut self, play: &OpenPlay) -> Result<i64, StoreError>;
    fn close_play(
        &mut self,
        seq: i64,
        ended_at: Timestamp,
        completed: bool,
        reason: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The oldest closed records, in order, at most `limit`.
    fn closed_plays(&mut self, limit: usize) -> Result<Vec<PlayRecord>, StoreError>;
    fn forget_plays_through(&mut self, seq: i64) -> Result<(), StoreError>;
    /// Past `max_held` closed records, folds the oldest into summaries;
    /// returns how many it took.
    fn fold_oldest_plays(&mut self, max_held: usize) -> Result<usize, StoreError>;
    fn put_time_floor(&mut self, floor: Timestamp) -> Result<(), StoreError>;
    fn put_last_alive(&mut self, at: Timestamp) -> Result<(), StoreError>;
}

impl Storage for Store {
    fn document(&mut self, stream: &str) -> Result<Option<StoredDocument>, StoreError> {
        Store::document(self, stream)
    }

    fn put_document(
        &mut self,
        stream: &str,
        version: u64,
        envelope: &str,
    ) -> Result<(), StoreError> {
        Store::put_document(self, stream, version, envelope)
    }

    fn publisher_documents(&mut self) -> Result<Vec<(String, StoredDocument)>, StoreError> {
        Store::publisher_documents(self)
    }

    fn forget_document(&mut self, stream: &str) -> Result<(), StoreError> {
        Store::forget_document(self, stream)
    }

    fn reset_floor(&mut self, stream: &str) -> Result<(), StoreError> {
        Store::reset_floor(self, stream)
    }

    fn put_root(&mut self, version: u64, envelope: &str) -> Result<(), StoreError> {
        Store::put_root(self, version, envelope)
    }

    fn record_command(
        &mut self,
        id: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Store::record_command(self, id, expires_at, now)
    }

    fn open_play(&mut self, play: &OpenPlay) -> Result<i64, StoreError> {
        Store::open_play(self, play)
    }

    fn close_play(
        &mut self,
        seq: i64,
        ended_at: Timestamp,
        completed: bool,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        Store::close_play(self, seq, ended_at, completed, reason)
    }

    fn closed_plays(&mut self, limit: usize) -> Result<Vec<PlayRecord>, StoreError> {
        Store::closed_plays(self, limit)
    }

    fn forget_plays_through(&mut self, seq: i64) -> Result<(), StoreError> {
        Store::forget_plays_through(self, seq)
    }

    fn fold_oldest_plays(&mut self, max_held: usize) -> Result<usize, StoreError> {
        Store::fold_oldest_plays(self, max_held)
    }

    fn put_time_floor(&mut self, floor: Timestamp) -> Result<(), StoreError> {
        Store::put_time_floor(self, floor)
    }

    fn put_last_alive(&mut self, at: Timestamp) -> Result<(), StoreError> {
        Store::put_last_alive(self, at)
    }
}

/// [`Storage`] in memory, for the core's tests; `failing` makes every
/// write fail (a full or broken disk).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryStorage {
    pub documents: std::collections::BTreeMap<String, StoredDocument>,
    pub roots: std::collections::BTreeMap<u64, String>,
    pub commands: std::collections::BTreeSet<String>,
    /// Every record opened, closed or not, by sequence number.
    pub plays: std::collections::BTreeMap<i64, PlayRecord>,
    next_seq: i64,
    pub time_floor: Option<Timestamp>,
    pub failing: bool,
}

#[cfg(test)]
impl MemoryStorage {
    fn write(&self) -> Result<(), StoreError> {
        match self.failing {
            true => Err(rusqlite::Error::InvalidQuery.into()),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
impl Storage for MemoryStorage {
    fn document(&mut self, stream: &str) -> Result<Option<StoredDocument>, StoreError> {
        Ok(self.documents.get(stream).cloned())
    }

    fn put_document(
        &mut self,
        stream: &str,
        version: u64,
        envelope: &str,
    ) -> Result<(), StoreError> {
        self.write()?;
        let document = StoredDocument {
            version,
            envelope: envelope.to_string(),
        };
        self.documents.insert(stream.to_string(), document);
        Ok(())
    }

    fn publisher_documents(&mut self) -> Result<Vec<(String, StoredDocument)>, StoreError> {
        Ok(self
            .documents
            .iter()
            .filter(|(stream, _)| stream.starts_with("assignment:") || stream.starts_with("alert:"))
            .map(|(stream, document)| (stream.clone(), document.clone()))
            .collect())
    }

    fn forget_document(&mut self, stream: &str) -> Result<(), StoreError> {
        self.write()?;
        self.documents.remove(stream);
        Ok(())
    }

    fn reset_floor(&mut self, stream: &str) -> Result<(), StoreError> {
        self.write()?;
        if let Some(document) = self.documents.get_mut(stream) {
            document.version = 0;
        }
        Ok(())
    }

    fn put_root(&mut self, version: u64, envelope: &str) -> Result<(), StoreError> {
        self.write()?;
        self.roots.insert(version, envelope.to_string());
        Ok(())
    }

    fn record_command(
        &mut self,
        id: &str,
        _expires_at: Timestamp,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write()?;
        Ok(self.commands.insert(id.to_string()))
    }

    fn open_play(&mut self, play: &OpenPlay) -> Result<i64, StoreError> {
        self.write()?;
        self.next_seq += 1;
        let record = PlayRecord {
            seq: self.next_seq,
            playlist: play.playlist.clone(),
            item: play.item,
            asset: play.asset.clone(),
            live: play.live.clone(),
            start: play.started_at.to_string(),
            end: String::new(),
            completed: false,
            reason: None,
            summary: None,
        };
        self.plays.insert(self.next_seq, record);
        Ok(self.next_seq)
    }

    fn close_play(
        &mut self,
        seq: i64,
        ended_at: Timestamp,
        completed: bool,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write()?;
        if let Some(record) = self.plays.get_mut(&seq).filter(|r| r.end.is_empty()) {
            record.end = ended_at.to_string();
            record.completed = completed;
            record.reason = reason.map(str::to_string);
        }
        Ok(())
    }

    fn closed_plays(&mut self, limit: usize) -> Result<Vec<PlayRecord>, StoreError> {
        Ok(self
            .plays
            .values()
            .filter(|r| !r.end.is_empty())
            .take(limit)
            .cloned()
            .collect())
    }

    fn forget_plays_through(&mut self, seq: i64) -> Result<(), StoreError> {
        self.write()?;
        self.plays.retain(|&s, r| s > seq || r.end.is_empty());
        Ok(())
    }

    /// Never reached by the tests' few records: `state.db`'s folding is
    /// tested in `store`.
    fn fold_oldest_plays(&mut self, _max_held: usize) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn put_time_floor(&mut self, floor: Timestamp) -> Result<(), StoreError> {
        self.write()?;
        self.time_floor = Some(floor);
        Ok(())
    }

    fn put_last_alive(&mut self, _at: Timestamp) -> Result<(), StoreError> {
        self.write()
    }
}

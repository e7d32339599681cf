//! The files of the content store: `content/<sha256 hex>` for verified
//! content, `content/.partial/<sha256 hex>` for downloads in progress.
//!
//! A file reaches its final name only once its size and SHA-256 matched the
//! signed entry: it is fsynced, renamed, and the directory fsynced, so a
//! power cut leaves either the whole verified file or none of it.

use std::io::Read;
use std::path::{Path, PathBuf};

use phare_protocol::AssetId;

/// Where content lives on disk. Holds no state beyond the directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    dir: PathBuf,
}

impl ContentStore {
    pub fn open(data_dir: &Path) -> std::io::Result<ContentStore> {
        let dir = data_dir.join("content");
        std::fs::create_dir_all(dir.join(".partial"))?;
        Ok(ContentStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of an asset. Safe: an [`AssetId`] is validated hex.
    pub fn path(&self, id: &AssetId) -> PathBuf {
        self.dir.join(id.hex())
    }

    pub fn partial_path(&self, id: &AssetId) -> PathBuf {
        self.dir.join(".partial").join(id.hex())
    }

    /// The size of the verified file, if there is one.
    pub fn size(&self, id: &AssetId) -> Option<u64> {
        std::fs::metadata(self.path(id))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Bytes downloaded so far into the partial file.
    pub fn partial_size(&self, id: &AssetId) -> u64 {
        std::fs::metadata(self.partial_path(id)).map_or(0, |m| m.len())
    }

    /// Moves a verified partial file to its final name, durably. The caller
    /// has fsynced the file itself.
    pub fn commit(&self, id: &AssetId) -> std::io::Result<()> {
        std::fs::rename(self.partial_path(id), self.path(id))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    pub fn remove(&self, id: &AssetId) {
        remove_quietly(&self.path(id));
    }

    pub fn remove_partial(&self, id: &AssetId) {
        remove_quietly(&self.partial_path(id));
    }

    /// The assets that have a verified file, then those with a partial one.
    /// Anything else in the directories (temporary files of an older
    /// version, stray copies) is deleted: nothing but the cache writes here.
    pub fn sweep(&self) -> std::io::Result<(Vec<AssetId>, Vec<AssetId>)> {
        Ok((self.sweep_dir(&self.dir)?, self.partials()?))
    }

    /// The assets with a partial download.
    pub fn partials(&self) -> std::io::Result<Vec<AssetId>> {
        self.sweep_dir(&self.dir.join(".partial"))
    }

    fn sweep_dir(&self, dir: &Path) -> std::io::Result<Vec<AssetId>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".partial" && dir == self.dir {
                continue;
            }
            match AssetId::try_from(format!("sha256:{name}")) {
                Ok(id) if entry.file_type()?.is_file() => ids.push(id),
                _ => {
                    let path = entry.path();
                    tracing::info!(path = %path.display(), "removing a stray file from the cache");
                    if entry.file_type()?.is_dir() {
                        std::fs::remove_dir_all(&path)?;
                    } else {
                        remove_quietly(&path);
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Whether the verified file still hashes to its name. Blocking.
    pub fn is_intact(&self, id: &AssetId, pace: Option<&Pace<'_>>) -> std::io::Result<bool> {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        hash_prefix(&self.path(id), u64::MAX, &mut digest, pace)?;
        Ok(AssetId::from_digest(digest.finish().as_ref()) == *id)
    }
}

/// A background read: slow, so that playback never waits for the disk,
/// and abandoned as soon as it is no longer `wanted` (the player stops).
pub struct Pace<'a> {
    pub bytes_per_s: u64,
    pub wanted: &'a dyn Fn() -> bool,
}

/// Feeds the first `len` bytes of a file (all of it if shorter) to `digest`,
/// at `pace` when given. Blocking.
pub fn hash_prefix(
    path: &Path,
    len: u64,
    digest: &mut ring::digest::Context,
    pace: Option<&Pace<'_>>,
) -> std::io::Result<u64> {
    let mut file = std::fs::File::open(path)?.take(len);
    let mut buffer = vec![0; 1 << 16];
    let mut total = 0;
    let started = std::time::Instant::now();
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(total);
        }
        digest.update(&buffer[..n]);
        total += n as u64;
        if let Some(pace) = pace {
            if !(pace.wanted)() {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let due = std::time::Duration::from_secs_f64(total as f64 / pace.bytes_per_s as f64);
            std::thread::sleep(due.saturating_sub(started.elapsed()));
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a cache file");
    }
}

//! Writing files whole or not at all.
//!
//! A file is written to a temporary sibling, synced, and renamed over its
//! name: a crash or a full disk never leaves half a certificate (the
//! operator tool's files for devices and brokers) or half a screenshot (the
//! player's) behind. Secrets are created with mode 0600 from the first byte
//! (never chmod-ed after the fact, when they would already have been
//! readable for a moment).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

/// Who may read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Mode 0600: private keys.
    Private,
    /// Mode 0644: certificates, configs, images.
    Public,
}

impl Access {
    fn mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Public => 0o644,
        }
    }
}

/// Writes `bytes` to `path` atomically (replacing any file there), and
/// durably: synced, and the rename too, before it returns.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> anyhow::Result<()> {
    write_whole(path, bytes, access, true)
}

/// Like [`write_atomic`], without waiting for the disk: for a file
/// rewritten often whose last version a power cut may cost (the player's
/// `status.json`, a copy of what it publishes). A sync there would stall
/// the player's loop on a slow SD card at every status.
pub fn replace_file(path: &Path, bytes: &[u8], access: Access) -> anyhow::Result<()> {
    write_whole(path, bytes, access, false)
}

fn write_whole(path: &Path, bytes: &[u8], access: Access, durable: bool) -> anyhow::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let temp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(access.mode())
            .open(&temp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        std::fs::rename(&temp, path)?;
        if durable {
            // The rename itself must survive a power cut.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// Creates `dir` (and its parents) readable by its owner only, for
/// directories that hold secrets.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secrets_are_private_and_files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("device.key");
        write_atomic(&key, b"one", Access::Private).unwrap();
        write_atomic(&key, b"two", Access::Private).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"two");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

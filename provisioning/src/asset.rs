//! Signed asset entries (docs/protocol.md §7): what `phare asset add` prints.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use phare_protocol::{AssetEntry, AssetId};

/// The media type of a file, from its extension.
pub fn media_type_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => return None,
    })
}

/// Hashes `path` and builds its entry; each origin gets a URL for the
/// file's name under it. Without origins, the URL is the file's name
/// alone: a relative reference, which each device resolves against the
/// origins of its own config.
pub fn entry_for(
    path: &Path,
    origins: &[String],
    media_type: Option<&str>,
) -> anyhow::Result<(AssetId, AssetEntry)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
        size += n as u64;
    }
    let media_type = match media_type {
        Some(t) => t.to_string(),
        None => media_type_of(path)
            .with_context(|| {
                format!(
                    "unknown media type for {}; pass --media-type",
                    path.display()
                )
            })?
            .to_string(),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file has no UTF-8 name")?;
    let urls = if origins.is_empty() {
        vec![name.to_string()]
    } else {
        origins
            .iter()
            .map(|o| format!("{}/{name}", o.trim_end_matches('/')))
            .collect()
    };
    Ok((
        AssetId::from_digest(digest.finish().as_ref()),
        AssetEntry {
            size,
            media_type,
            urls,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_has_hash_size_type_and_urls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        std::fs::write(&path, b"abc").unwrap();
        let (id, entry) = entry_for(
            &path,
            &["http://o1/media/".into(), "http://o2".into()],
            None,
        )
        .unwrap();
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            id.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(entry.size, 3);
        assert_eq!(entry.media_type, "video/mp4");
        assert_eq!(
            entry.urls,
            ["http://o1/media/clip.mp4", "http://o2/clip.mp4"]
        );
        let (_, relative) = entry_for(&path, &[], None).unwrap();
        assert_eq!(relative.urls, ["clip.mp4"]);
        assert!(entry_for(&dir.path().join("x.bin"), &[], None).is_err());
    }
}

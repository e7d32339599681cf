//! The content-addressed store (`<data_dir>/content/<sha256 hex>`) and the
//! fetcher that fills it.
//!
//! A file appears under its final name only once its size and SHA-256 match
//! the signed entry: it is written to `content/.partial/`, fsynced, renamed,
//! and the directory fsynced. So anything under `content/` is playable, and
//! a power cut leaves at worst a partial file that is never read.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use phare_protocol::{AssetEntry, AssetId};
use reqwest::Url;
use tokio::sync::mpsc;
use tokio::time::Instant;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(120);

/// Where verified content lives on disk.
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

    /// The path of an asset. Safe: an [`AssetId`] is validated hex.
    pub fn path(&self, id: &AssetId) -> PathBuf {
        self.dir.join(id.hex())
    }

    fn partial_path(&self, id: &AssetId) -> PathBuf {
        self.dir.join(".partial").join(id.hex())
    }

    /// Whether the asset's file is present with its signed size.
    pub fn has(&self, id: &AssetId, size: u64) -> bool {
        std::fs::metadata(self.path(id)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Moves a verified partial file to its final name, durably.
    fn commit(&self, id: &AssetId) -> std::io::Result<()> {
        std::fs::rename(self.partial_path(id), self.path(id))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// What the fetcher reports to the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchEvent {
    /// The asset is on disk and verified.
    Ready { id: AssetId, size: u64 },
    /// Every mirror failed this round; the fetcher will try again later.
    Failed { id: AssetId, reason: String },
}

/// Handle to the fetcher task.
#[derive(Clone)]
pub struct Fetcher {
    wanted: mpsc::UnboundedSender<BTreeMap<AssetId, AssetEntry>>,
}

impl Fetcher {
    /// Starts the fetcher task. `origins` resolve relative asset URLs.
    pub fn spawn(
        store: ContentStore,
        origins: Vec<Url>,
        events: mpsc::UnboundedSender<FetchEvent>,
    ) -> Fetcher {
        let (wanted, requests) = mpsc::unbounded_channel();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .expect("the HTTP client configuration is static");
        tokio::spawn(run(store, origins, client, requests, events));
        Fetcher { wanted }
    }

    /// Replaces the set of assets to fetch; assets no longer wanted are not
    /// fetched any more.
    pub fn want(&self, assets: BTreeMap<AssetId, AssetEntry>) {
        // The task only stops when every handle is gone.
        let _ = self.wanted.send(assets);
    }
}

struct Retry {
    at: Instant,
    delay: Duration,
}

async fn run(
    store: ContentStore,
    origins: Vec<Url>,
    client: reqwest::Client,
    mut requests: mpsc::UnboundedReceiver<BTreeMap<AssetId, AssetEntry>>,
    events: mpsc::UnboundedSender<FetchEvent>,
) {
    let mut wanted = BTreeMap::new();
    let mut retries: BTreeMap<AssetId, Retry> = BTreeMap::new();
    loop {
        // Take the newest wish list without waiting.
        while let Ok(next) = requests.try_recv() {
            wanted = next;
            retries.retain(|id, _| wanted.contains_key(id));
        }
        let now = Instant::now();
        let due = wanted.iter().find(|(id, entry)| {
            !store.has(id, entry.size) && retries.get(*id).is_none_or(|r| r.at <= now)
        });
        let Some((id, entry)) = due.map(|(id, e)| (id.clone(), e.clone())) else {
            let next_retry = retries.values().map(|r| r.at).min();
            tokio::select! {
                next = requests.recv() => match next {
                    Some(next) => wanted = next,
                    None => return,
                },
                _ = sleep_until_opt(next_retry) => {}
            }
            continue;
        };
        match fetch(&store, &origins, &client, &id, &entry).await {
            Ok(()) => {
                retries.remove(&id);
                let _ = events.send(FetchEvent::Ready {
                    id,
                    size: entry.size,
                });
            }
            Err(reason) => {
                let delay = retries
                    .get(&id)
                    .map_or(FIRST_RETRY, |r| (r.delay * 2).min(MAX_RETRY));
                tracing::warn!(asset = %id, %reason, retry_in = ?delay, "download failed");
                retries.insert(
                    id.clone(),
                    Retry {
                        at: Instant::now() + delay,
                        delay,
                    },
                );
                let _ = events.send(FetchEvent::Failed { id, reason });
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The URLs to try for an asset, in order: absolute mirrors as given,
/// relative ones against every configured origin.
pub fn mirrors(entry: &AssetEntry, origins: &[Url]) -> Vec<Url> {
    let mut out = Vec::new();
    for url in &entry.urls {
        match Url::parse(url) {
            Ok(absolute) => out.push(absolute),
            Err(_) => out.extend(origins.iter().filter_map(|origin| origin.join(url).ok())),
        }
    }
    out.retain(|u| matches!(u.scheme(), "http" | "https"));
    out
}

async fn fetch(
    store: &ContentStore,
    origins: &[Url],
    client: &reqwest::Client,
    id: &AssetId,
    entry: &AssetEntry,
) -> Result<(), String> {
    let urls = mirrors(entry, origins);
    if urls.is_empty() {
        return Err("no usable mirror".into());
    }
    let mut errors = Vec::new();
    for url in urls {
        match download(store, client, &url, id, entry.size).await {
            Ok(()) => return Ok(()),
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    Err(errors.join("; "))
}

async fn download(
    store: &ContentStore,
    client: &reqwest::Client,
    url: &Url,
    id: &AssetId,
    size: u64,
) -> Result<(), String> {
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let partial = store.partial_path(id);
    let mut file = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        received += chunk.len() as u64;
        // Never store more than was signed for: a hostile mirror could
        // otherwise fill the disk.
        if received > size {
            return Err(format!("served more than the signed {size} bytes"));
        }
        digest.update(&chunk);
        file.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    if received != size {
        return Err(format!("served {received} bytes, {size} signed"));
    }
    if AssetId::from_digest(digest.finish().as_ref()) != *id {
        let _ = std::fs::remove_file(&partial);
        return Err("content does not match its SHA-256".into());
    }
    file.sync_all().map_err(|e| e.to_string())?;
    store.commit(id).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_against_every_origin() {
        let entry = AssetEntry {
            size: 1,
            media_type: "video/mp4".into(),
            urls: vec!["https://cdn/a.mp4".into(), "media/a.mp4".into()],
        };
        let origins = vec![
            Url::parse("http://o1/base/").unwrap(),
            Url::parse("http://o2/").unwrap(),
        ];
        let got: Vec<String> = mirrors(&entry, &origins)
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "https://cdn/a.mp4",
                "http://o1/base/media/a.mp4",
                "http://o2/media/a.mp4"
            ]
        );
    }
}

//! The content cache: verified, content-addressed files that a screen plays
//! from, and the downloads that fill it.
//!
//! [`Cache`] is owned by the agent and is the one owner of the cache's
//! state: the files ([`content`]), their SQLite index ([`index`]), origin
//! health ([`health`]), the running downloads and the re-hash schedule.
//! The work that blocks or waits runs in tasks ([`fetch`] jobs, re-hashes)
//! that report back as [`FetchEvent`]s through the agent's loop, so every
//! decision is taken in one place, in order.
//!
//! - Start-up: leftovers swept, index and files reconciled (a file of the
//!   wrong size is dropped, one left by a crash is checked), partial
//!   downloads kept for resuming.
//! - [`Cache::want`]: the assets the pending assignment lacks and the pins
//!   (everything the active and pending assignments use, fallbacks
//!   included). Room is made by evicting unpinned content, least recently
//!   used first ([`space`]); a set that cannot fit is refused whole
//!   (`insufficient_space`) and evicts nothing.
//! - Downloads: at most `parallel_downloads` at once, mirrors in order,
//!   those held back by [`health`] skipped (a failure is pinned on the
//!   origin, the URL or the asset's entry, as the evidence says), failed
//!   assets retried with backoff. The status names bad entries and
//!   quarantined origins.
//! - Re-hash: every file is re-read at low speed at least once per
//!   `rehash_interval_s`; a rotten one is dropped and fetched again.

mod content;
mod fetch;
mod health;
pub(crate) mod index;
mod space;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use governor::{Quota, RateLimiter};
use jiff::Timestamp;
use phare_protocol::{AssetEntry, AssetId};
use reqwest::Url;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::report::{CacheIssue, CacheIssueKind, CacheStatus, Event, EventKind, free_bytes};
use content::{ContentStore, Pace};
use fetch::{Fetcher, Job};
use health::{Choice, Health, Issue, Judgement, mirrors};
use index::{Index, Resume, State};

pub use fetch::{Failure, FailureKind};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(120);

/// What the cache's tasks report; the agent hands each to [`Cache::on_event`].
#[derive(Debug)]
pub enum FetchEvent {
    /// A download now continues the response with this validator.
    Resume { id: AssetId, resume: Resume },
    /// Bytes of the asset on disk so far.
    Progress { id: AssetId, received: u64 },
    /// One mirror was tried.
    Attempt {
        id: AssetId,
        url: Url,
        result: Result<(), Failure>,
    },
    /// The job ended: the file is verified and in place, or every mirror
    /// failed this round.
    Done { id: AssetId, ok: bool },
    /// A re-hash ended: intact or not, or the file was gone (evicted).
    Rehashed { id: AssetId, intact: Option<bool> },
}

/// What the agent learns from the cache after a call.
#[derive(Debug, Default)]
pub struct Outcome {
    /// To publish on the events topic.
    pub events: Vec<Event>,
    /// An asset appeared or disappeared: the activation rule may now decide
    /// otherwise.
    pub changed: bool,
}

/// Why a wanted set is refused whole.
#[derive(Debug)]
enum Unfit {
    /// It needs more room than the cache can free.
    Short(space::Shortfall),
    /// Its signed sizes add up past `u64::MAX`.
    Overflow,
}

struct Running {
    task: AbortHandle,
    received: u64,
}

struct Retry {
    at: Instant,
    delay: Duration,
}

pub struct Cache {
    content: ContentStore,
    index: Index,
    config: CacheConfig,
    origins: Vec<Url>,
    fetcher: Arc<Fetcher>,
    health: Health,
    /// Verified files and their sizes: the index's `present` rows.
    present: BTreeMap<AssetId, u64>,
    /// What to fetch: the missing assets of the pending assignment, unless
    /// they cannot fit.
    wanted: BTreeMap<AssetId, AssetEntry>,
    pins: BTreeSet<AssetId>,
    /// The wanted set last refused for lack of space, so it is reported once.
    refused: Option<BTreeSet<AssetId>>,
    running: BTreeMap<AssetId, Running>,
    retries: BTreeMap<AssetId, Retry>,
    /// When a download held back by backoff may start.
    deferred_until: Option<Instant>,
    next_rehash: Option<Instant>,
}

impl Cache {
    /// Opens the store under `data_dir` and reconciles it with its index.
    /// Blocking: runs before the player shows anything.
    pub fn open(
        data_dir: &Path,
        config: &CacheConfig,
        origins: Vec<Url>,
        events: UnboundedSender<FetchEvent>,
    ) -> anyhow::Result<Cache> {
        let content = ContentStore::open(data_dir).context("opening the content store")?;
        let mut index = Index::open(&data_dir.join("state.db"))?;
        let present = recover(&content, &mut index).context("reconciling the content store")?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.connect_timeout_s))
            .read_timeout(Duration::from_secs(config.read_timeout_s))
            .redirect(fetch::redirect_policy())
            .build()
            .context("building the HTTP client")?;
        let limiter = config.bandwidth_bytes_per_s.map(|rate| {
            let rate = u32::try_from(rate).ok().and_then(std::num::NonZeroU32::new);
            RateLimiter::direct(Quota::per_second(rate.expect("checked by the config")))
        });
        let fetcher = Arc::new(Fetcher {
            client,
            content: content.clone(),
            limiter,
            min_throughput: config.min_throughput_bytes_per_s,
            throughput_window: Duration::from_secs(config.throughput_window_s),
            events,
        });
        let mut cache = Cache {
            content,
            index,
            config: config.clone(),
            origins,
            fetcher,
            health: Health::new(Duration::from_secs(config.quarantine_s)),
            present,
            wanted: BTreeMap::new(),
            pins: BTreeSet::new(),
            refused: None,
            running: BTreeMap::new(),
            retries: BTreeMap::new(),
            deferred_until: None,
            next_rehash: None,
        };
        cache.plan_rehash();
        Ok(cache)
    }

    /// Where an asset's verified file lives.
    pub fn path(&self, id: &AssetId) -> PathBuf {
        self.content.path(id)
    }

    /// Whether the asset is on disk and verified with this signed size.
    pub fn has(&self, id: &AssetId, size: u64) -> bool {
        self.present.get(id) == Some(&size)
    }

    /// Bytes of the asset already downloaded by a running job.
    pub fn fetched(&self, id: &AssetId) -> u64 {
        self.running.get(id).map_or(0, |r| r.received)
    }

    /// Cache figures for the status, with what holds downloads back.
    pub fn figures(&self) -> CacheStatus {
        let now = Instant::now();
        CacheStatus {
            assets: self.present.len() as u64,
            bytes: self.present.values().sum(),
            free_bytes: free_bytes(self.content.dir()),
            issues: self
                .health
                .issues(now)
                .iter()
                .map(|i| describe(i, now))
                .collect(),
        }
    }

    /// When [`Cache::on_timer`] has something to do.
    pub fn wakeup(&self) -> Option<Instant> {
        [self.deferred_until, self.next_rehash]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sets what to fetch (`missing`, the assets `subject` lacks) and what
    /// must stay (`pins`). Makes room by evicting unpinned content if need
    /// be; if `missing` cannot fit even so, nothing is evicted or fetched
    /// and an `insufficient_space` event says so.
    pub fn want(
        &mut self,
        subject: &str,
        missing: BTreeMap<AssetId, AssetEntry>,
        pins: BTreeSet<AssetId>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        if pins != self.pins {
            if let Err(e) = self.index.pin(&pins) {
                tracing::error!(error = %e, "recording pins");
            }
            self.pins = pins;
        }
        self.drop_unwanted(&missing);
        self.health.retain_assets(|id| missing.contains_key(id));
        match self.make_room(&missing) {
            Ok(evicted) => {
                for (id, size) in evicted {
                    outcome.events.push(event(
                        EventKind::Evicted,
                        None,
                        format!("{size} bytes, least recently used"),
                        &id,
                    ));
                }
                self.refused = None;
                self.wanted = missing;
            }
            Err(unfit) => {
                let ids: BTreeSet<AssetId> = missing.keys().cloned().collect();
                if self.refused.as_ref() != Some(&ids) {
                    let detail = match unfit {
                        Unfit::Short(shortfall) => format!(
                            "{} bytes to fetch, {} more than the cache can free without \
                             touching what plays",
                            shortfall.needed, shortfall.short_by
                        ),
                        Unfit::Overflow => format!(
                            "the signed sizes of the assets to fetch add up to more than \
                             {} bytes: no disk can hold them",
                            u64::MAX
                        ),
                    };
                    tracing::warn!(subject, detail, "the pending content cannot fit");
                    outcome.events.push(
                        Event::new(Timestamp::now(), EventKind::CacheFull, detail)
                            .with_reason("insufficient_space")
                            .with_subject(subject),
                    );
                    self.refused = Some(ids);
                }
                // Partial files stay: they already count as room taken.
                self.wanted.clear();
                for (_, running) in std::mem::take(&mut self.running) {
                    running.task.abort();
                }
            }
        }
        self.schedule(&mut outcome);
        outcome
    }

    /// Applies what a task reported.
    pub fn on_event(&mut self, report: FetchEvent) -> Outcome {
        let mut outcome = Outcome::default();
        match report {
            FetchEvent::Resume { id, resume } => {
                if let Err(e) = self.index.set_resume(&id, &resume) {
                    tracing::error!(error = %e, "recording a download validator");
                }
            }
            FetchEvent::Progress { id, received } => {
                if let Some(running) = self.running.get_mut(&id) {
                    running.received = received;
                    let size = self.wanted.get(&id).map_or(0, |e| e.size);
                    outcome.events.push(event(
                        EventKind::DownloadProgress,
                        None,
                        format!("{received} of {size} bytes"),
                        &id,
                    ));
                }
            }
            FetchEvent::Attempt { id, url, result } => {
                let judgements =
                    self.health
                        .record(&id, &url, result.as_ref().map(|_| ()), Instant::now());
                if let Err(failure) = result {
                    let then: String = judgements
                        .iter()
                        .filter_map(|j| consequence(j).map(|c| format!("; {c}")))
                        .collect();
                    tracing::warn!(asset = %id, %url, reason = failure.code(), detail = %failure.detail, then, "download attempt failed");
                    outcome.events.push(event(
                        EventKind::DownloadFailed,
                        Some(failure.code()),
                        format!("{url}: {}{then}", failure.detail),
                        &id,
                    ));
                }
                for judgement in judgements {
                    if let Judgement::Quarantined {
                        origin,
                        evidence,
                        duration,
                    } = judgement
                    {
                        tracing::warn!(%origin, %evidence, "origin quarantined");
                        let detail = format!(
                            "{evidence}; it comes after every other mirror for {} s",
                            duration.as_secs()
                        );
                        outcome.events.push(
                            Event::new(Timestamp::now(), EventKind::OriginQuarantined, detail)
                                .with_reason("bad_origin")
                                .with_subject(origin.as_str()),
                        );
                    }
                }
            }
            FetchEvent::Done { id, ok } => {
                self.running.remove(&id);
                if ok {
                    self.on_downloaded(&id, &mut outcome);
                } else {
                    let delay = self
                        .retries
                        .get(&id)
                        .map_or(FIRST_RETRY, |r| (r.delay * 2).min(MAX_RETRY));
                    self.retries.insert(
                        id,
                        Retry {
                            at: Instant::now() + delay,
                            delay,
                        },
                    );
                }
            }
            FetchEvent::Rehashed { id, intact } => {
                match intact {
                    Some(true) => {
                        if let Err(e) = self.index.mark_verified(&id) {
                            tracing::error!(error = %e, "recording a re-hash");
                        }
                    }
                    // Evicted meanwhile: nothing to say.
                    _ if !self.present.contains_key(&id) => {}
                    // Rotten, or unreadable, which plays no better.
                    _ => {
                        let why = match intact {
                            Some(false) => "no longer matches its SHA-256",
                            _ => "cannot be read",
                        };
                        tracing::error!(asset = %id, "bit rot: the cached file {why}");
                        self.drop_present(&id);
                        outcome.changed = true;
                        outcome.events.push(event(
                            EventKind::ContentCorrupt,
                            Some("bit_rot"),
                            format!("the cached file {why}; fetching it again"),
                            &id,
                        ));
                    }
                }
                self.plan_rehash();
            }
        }
        self.schedule(&mut outcome);
        outcome
    }

    /// Starts what waited for a backoff or a re-hash time.
    pub fn on_timer(&mut self) -> Outcome {
        let mut outcome = Outcome::default();
        if self.next_rehash.is_some_and(|at| at <= Instant::now()) {
            self.start_rehash();
        }
        self.schedule(&mut outcome);
        outcome
    }

    fn on_downloaded(&mut self, id: &AssetId, outcome: &mut Outcome) {
        self.retries.remove(id);
        let Some(size) = self.content.size(id) else {
            return;
        };
        if let Err(e) = self.index.mark_present(id, size, self.pins.contains(id)) {
            // The file is verified and in place; the start-up check adopts
            // it if this row is lost.
            tracing::error!(error = %e, "recording a downloaded asset");
        }
        self.present.insert(id.clone(), size);
        outcome.changed = true;
        outcome.events.push(event(
            EventKind::Downloaded,
            None,
            format!("{size} bytes"),
            id,
        ));
    }

    /// Stops fetching what is no longer wanted and deletes its partial file.
    fn drop_unwanted(&mut self, missing: &BTreeMap<AssetId, AssetEntry>) {
        self.running.retain(|id, running| {
            let keep = missing.contains_key(id);
            if !keep {
                running.task.abort();
            }
            keep
        });
        self.retries.retain(|id, _| missing.contains_key(id));
        let partials = match self.content.partials() {
            Ok(partials) => partials,
            Err(e) => return tracing::error!(error = %e, "listing partial downloads"),
        };
        for id in partials.iter().filter(|id| !missing.contains_key(*id)) {
            self.content.remove_partial(id);
            if !self.present.contains_key(id)
                && let Err(e) = self.index.forget(id)
            {
                tracing::error!(error = %e, "forgetting a partial download");
            }
        }
    }

    /// Evicts what must go for `missing` to fit, or says by how much it
    /// cannot. Returns the evicted assets and their sizes.
    fn make_room(
        &mut self,
        missing: &BTreeMap<AssetId, AssetEntry>,
    ) -> Result<Vec<(AssetId, u64)>, Unfit> {
        let rows = self.index.rows().unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading the content index");
            Vec::new()
        });
        let cached: Vec<space::Cached> = rows
            .into_iter()
            .filter(|r| r.state == State::Present && self.present.contains_key(&r.id))
            .map(|r| space::Cached {
                pinned: r.pinned,
                id: r.id,
                size: r.size,
                last_used: r.last_used,
            })
            .collect();
        let wanted_bytes = space::total(missing.values().map(|e| e.size)).ok_or(Unfit::Overflow)?;
        let to_write = space::total(
            missing
                .iter()
                .map(|(id, e)| e.size.saturating_sub(self.content.partial_size(id))),
        )
        .ok_or(Unfit::Overflow)?;
        let budget = space::Budget {
            max_bytes: self.config.max_bytes,
            min_free_bytes: self.config.min_free_bytes,
            free_bytes: free_bytes(self.content.dir()),
        };
        let evict =
            space::make_room(&cached, wanted_bytes, to_write, budget).map_err(Unfit::Short)?;
        Ok(evict
            .into_iter()
            .map(|id| {
                let size = self.present.get(&id).copied().unwrap_or(0);
                tracing::info!(asset = %id, size, "evicting");
                self.drop_present(&id);
                (id, size)
            })
            .collect())
    }

    /// The `purge_cache` command: drops every verified file that nothing
    /// active or pending uses (the pins), so what plays keeps playing.
    /// Returns how many files and bytes were freed.
    pub fn purge(&mut self) -> (u64, u64) {
        let unpinned: Vec<(AssetId, u64)> = self
            .present
            .iter()
            .filter(|(id, _)| !self.pins.contains(*id))
            .map(|(id, size)| (id.clone(), *size))
            .collect();
        for (id, size) in &unpinned {
            tracing::info!(asset = %id, size, "purging");
            self.drop_present(id);
        }
        (unpinned.len() as u64, unpinned.iter().map(|(_, s)| s).sum())
    }

    fn drop_present(&mut self, id: &AssetId) {
        // The row goes first: a crash in between leaves an orphan file,
        // which the start-up check re-hashes, never a row without a file.
        if let Err(e) = self.index.forget(id) {
            tracing::error!(error = %e, "forgetting an asset");
        }
        self.content.remove(id);
        self.present.remove(id);
    }

    /// Starts the downloads that may start, and notes when the next one
    /// held back by a backoff may.
    fn schedule(&mut self, outcome: &mut Outcome) {
        let now = Instant::now();
        let mut deferred: Option<Instant> = None;
        let mut defer = |at: Instant| deferred = Some(deferred.map_or(at, |d| d.min(at)));
        let mut start = Vec::new();
        for (id, entry) in &self.wanted {
            if self.running.len() + start.len() >= self.config.parallel_downloads {
                break;
            }
            if self.running.contains_key(id) || self.present.get(id) == Some(&entry.size) {
                continue;
            }
            if let Some(retry) = self.retries.get(id).filter(|r| r.at > now) {
                defer(retry.at);
                continue;
            }
            match self.health.choose(id, &mirrors(entry, &self.origins), now) {
                Choice::Fetch(urls) => start.push((id.clone(), entry.size, urls)),
                Choice::WaitUntil(at) => defer(at),
                Choice::NoMirror => {
                    // No URL at all: say so, and look again much later.
                    outcome.events.push(event(
                        EventKind::DownloadFailed,
                        Some("no_mirror"),
                        "no usable URL: relative URLs need configured origins".into(),
                        id,
                    ));
                    let at = now + MAX_RETRY;
                    defer(at);
                    self.retries.insert(
                        id.clone(),
                        Retry {
                            at,
                            delay: MAX_RETRY,
                        },
                    );
                }
            }
        }
        self.deferred_until = deferred;
        for (id, size, mirrors) in start {
            let resume = self.index.begin(&id, size).unwrap_or_else(|e| {
                tracing::error!(error = %e, "recording a download");
                None
            });
            tracing::info!(asset = %id, size, first = %mirrors[0], "downloading");
            let job = Job {
                id: id.clone(),
                size,
                mirrors,
                resume,
            };
            let task = tokio::spawn(self.fetcher.clone().run(job)).abort_handle();
            self.running.insert(
                id.clone(),
                Running {
                    task,
                    received: self.content.partial_size(&id),
                },
            );
        }
    }

    /// Sets the time of the next re-hash: when the file verified longest
    /// ago is due.
    fn plan_rehash(&mut self) {
        self.next_rehash = None;
        if self.config.rehash_interval_s == 0 {
            return;
        }
        let oldest = self.index.least_recently_verified().unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading the content index");
            None
        });
        let interval = self.config.rehash_interval_s as i64;
        let wait = match oldest {
            Some((_, verified_at)) => {
                (verified_at + interval - Timestamp::now().as_second()).max(0) as u64
            }
            None => interval as u64,
        };
        self.next_rehash = Some(Instant::now() + Duration::from_secs(wait));
    }

    fn start_rehash(&mut self) {
        self.next_rehash = None;
        let oldest = self.index.least_recently_verified().ok().flatten();
        let Some((id, _)) = oldest else {
            return self.plan_rehash();
        };
        let content = self.content.clone();
        let events = self.fetcher.events.clone();
        let bytes_per_s = self.config.rehash_bytes_per_s;
        tokio::task::spawn_blocking(move || {
            // The runtime waits for blocking tasks when the player stops:
            // a long re-hash must not hold the shutdown up.
            let wanted = || !events.is_closed();
            let pace = Pace {
                bytes_per_s,
                wanted: &wanted,
            };
            let intact = content.is_intact(&id, Some(&pace)).ok();
            let _ = events.send(FetchEvent::Rehashed { id, intact });
        });
    }
}

/// What a judgement on a failed attempt means, for its event; a
/// quarantine gets an event of its own.
fn consequence(judgement: &Judgement) -> Option<String> {
    Some(match judgement {
        Judgement::OriginBackoff { delay } => format!("origin backed off {} s", delay.as_secs()),
        Judgement::UrlBackoff { delay } => {
            format!("this asset waits {} s at this URL", delay.as_secs())
        }
        Judgement::SuspectEntry {
            delay,
            origin_serves_right,
        } => format!(
            "{}; only this asset waits, {} s at this URL",
            suspect(*origin_serves_right),
            delay.as_secs()
        ),
        Judgement::Quarantined { .. } => return None,
    })
}

/// Whose fault wrong bytes seem to be.
fn suspect(origin_serves_right: bool) -> &'static str {
    if origin_serves_right {
        "the assignment's entry is probably wrong: other assets from this origin verify"
    } else {
        "either the assignment's entry or the origin's copy is wrong"
    }
}

/// A standing problem in a human's words, for the status.
fn describe(issue: &Issue, now: Instant) -> CacheIssue {
    let left = |at: Instant| at.saturating_duration_since(now).as_secs();
    // The status is read later and elsewhere: a wall-clock time, not "in N s".
    let wall = |at: Instant| {
        let left = jiff::SignedDuration::try_from(at.saturating_duration_since(now))
            .unwrap_or(jiff::SignedDuration::MAX);
        jiff::Timestamp::now()
            .saturating_add(left)
            .unwrap_or(jiff::Timestamp::MAX)
    };
    match issue {
        Issue::BadEntry {
            id,
            url,
            origin_serves_right,
            retry_at,
        } => CacheIssue {
            kind: CacheIssueKind::BadEntry,
            subject: id.to_string(),
            detail: format!(
                "{url} serves bytes that do not match the signed entry (SHA-256 and size): \
                 {}. Only this asset waits; next try in {} s",
                suspect(*origin_serves_right),
                left(*retry_at)
            ),
            until: wall(*retry_at),
        },
        Issue::BadOrigin {
            origin,
            evidence,
            until,
        } => CacheIssue {
            kind: CacheIssueKind::BadOrigin,
            subject: origin.clone(),
            detail: format!(
                "quarantined: {evidence}. Tried only after every other mirror for {} s more",
                left(*until)
            ),
            until: wall(*until),
        },
    }
}

fn event(kind: EventKind, reason: Option<&str>, detail: String, id: &AssetId) -> Event {
    let event = Event::new(Timestamp::now(), kind, detail).with_subject(id.as_str());
    match reason {
        Some(reason) => event.with_reason(reason),
        None => event,
    }
}

/// The start-up check: makes the index and the files agree, and returns the
/// verified assets. Partial downloads are kept for resuming.
fn recover(content: &ContentStore, index: &mut Index) -> anyhow::Result<BTreeMap<AssetId, u64>> {
    let (files, partials) = content.sweep()?;
    let partials: BTreeSet<AssetId> = partials.into_iter().collect();
    let mut present = BTreeMap::new();
    for row in index.rows()? {
        match row.state {
            State::Present => {
                if content.size(&row.id) == Some(row.size) {
                    present.insert(row.id, row.size);
                } else {
                    tracing::warn!(asset = %row.id, "cached file missing or of the wrong size: dropped");
                    index.forget(&row.id)?;
                    content.remove(&row.id);
                }
            }
            // A download that never wrote a byte leaves only its row.
            State::Partial if !partials.contains(&row.id) && !files.contains(&row.id) => {
                index.forget(&row.id)?;
            }
            State::Partial => {}
        }
    }
    // A file without a present row: the player stopped between the rename
    // and the index update. It is kept only if it hashes to its name.
    let orphans: Vec<AssetId> = files
        .into_iter()
        .filter(|id| !present.contains_key(id))
        .collect();
    for id in orphans {
        let size = content.size(&id).unwrap_or(0);
        if content.is_intact(&id, None)? {
            tracing::info!(asset = %id, "adopting a verified file left by a crash");
            index.mark_present(&id, size, false)?;
            content.remove_partial(&id);
            present.insert(id, size);
        } else {
            tracing::warn!(asset = %id, "dropping an unverifiable file");
            index.forget(&id)?;
            content.remove(&id);
        }
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_adding_up_past_u64_max_are_refused_with_a_clear_error() {
        // As the player's main does, for the download client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let (events, _) = tokio::sync::mpsc::unbounded_channel();
        let mut cache =
            Cache::open(dir.path(), &CacheConfig::default(), Vec::new(), events).unwrap();
        let entry = AssetEntry {
            size: u64::MAX / 2 + 1,
            media_type: "application/octet-stream".into(),
            urls: vec!["x.bin".into()],
        };
        let missing = BTreeMap::from([
            (AssetId::from_digest(&[1; 32]), entry.clone()),
            (AssetId::from_digest(&[2; 32]), entry),
        ]);
        let outcome = cache.want("device:lobby-1", missing, BTreeSet::new());
        let [refused] = outcome.events.as_slice() else {
            panic!("{:?}", outcome.events)
        };
        assert_eq!(
            (refused.kind, refused.reason.as_deref()),
            (EventKind::CacheFull, Some("insufficient_space"))
        );
        assert!(
            refused.detail.contains("add up to more than"),
            "{}",
            refused.detail
        );
        assert!(cache.running.is_empty() && cache.wanted.is_empty());
    }
}

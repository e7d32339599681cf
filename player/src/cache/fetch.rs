//! One download job: an asset, its mirrors in order, and where an earlier
//! attempt stopped. This is the I/O shell; what to fetch, when and from
//! which origins is decided by the [`Cache`](super::Cache).
//!
//! A job resumes a partial file with `Range` (and `If-Range` with the
//! validator of the response it came from, when asking the same URL),
//! accepts `206` as a continuation and `200` as a fresh start (a server that
//! ignores ranges), and never writes more than the signed size. The bytes
//! are hashed as they arrive; a file is committed only if the whole matches
//! its SHA-256. Slow origins are abandoned by a minimum-throughput guard,
//! silent ones by the client's read timeout, and an optional shared token
//! bucket caps the total rate. Redirects are followed only as
//! [`check_redirect`] allows: a mirror is untrusted.

use std::io::{Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use governor::DefaultDirectRateLimiter;
use phare_protocol::AssetId;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::{StatusCode, Url, redirect};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::FetchEvent;
use super::content::{ContentStore, hash_prefix};
use super::index::Resume;

/// How often a running download reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Redirects followed at most per request.
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection (refused, no route, DNS).
    Unreachable,
    /// Connect or read timeout: the origin went silent.
    Timeout,
    /// The connection broke in the middle.
    Interrupted,
    /// An HTTP status other than 200/206 (but those of [`NotServed`]), or
    /// a malformed partial answer.
    ///
    /// [`NotServed`]: FailureKind::NotServed
    HttpStatus,
    /// The origin does not serve this URL (401, 403, 404, 410).
    NotServed,
    /// A redirect [`check_redirect`] refused.
    Redirect,
    /// Slower than `cache.min_throughput_bytes_per_s`.
    TooSlow,
    /// The body ended before the signed size.
    Truncated,
    /// More bytes than the signed size.
    TooLarge,
    /// The origin's copy has another length than the signed one.
    WrongSize,
    /// A whole body from this origin did not match its SHA-256.
    HashMismatch,
    /// A resumed file did not match: either part may be at fault.
    ResumedMismatch,
    /// Writing to the local disk failed: not the origin's fault.
    Disk,
}

/// Why an attempt failed, with a machine-readable code for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }

    fn transport(error: reqwest::Error) -> Failure {
        let kind = if error.is_redirect() {
            FailureKind::Redirect
        } else if error.is_timeout() {
            FailureKind::Timeout
        } else if error.is_connect() {
            FailureKind::Unreachable
        } else {
            FailureKind::Interrupted
        };
        // The source chain says what actually happened (refused, reset…).
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            detail = format!("{detail}: {cause}");
            source = cause.source();
        }
        Failure::new(kind, detail)
    }

    fn disk(error: std::io::Error) -> Failure {
        Failure::new(FailureKind::Disk, error.to_string())
    }

    pub fn code(&self) -> &'static str {
        match self.kind {
            FailureKind::Unreachable => "unreachable",
            FailureKind::Timeout => "timeout",
            FailureKind::Interrupted => "interrupted",
            FailureKind::HttpStatus => "http_status",
            FailureKind::NotServed => "not_served",
            FailureKind::Redirect => "bad_redirect",
            FailureKind::TooSlow => "too_slow",
            FailureKind::Truncated => "truncated",
            FailureKind::TooLarge => "too_large",
            FailureKind::WrongSize => "wrong_size",
            FailureKind::HashMismatch => "hash_mismatch",
            FailureKind::ResumedMismatch => "resumed_mismatch",
            FailureKind::Disk => "disk_error",
        }
    }

    /// Whom the failure points at.
    pub fn blame(&self) -> Blame {
        match self.kind {
            FailureKind::Disk | FailureKind::ResumedMismatch => Blame::Nobody,
            FailureKind::NotServed | FailureKind::Redirect => Blame::Url,
            FailureKind::TooLarge | FailureKind::WrongSize | FailureKind::HashMismatch => {
                Blame::Content
            }
            FailureKind::Unreachable
            | FailureKind::Timeout
            | FailureKind::Interrupted
            | FailureKind::HttpStatus
            | FailureKind::TooSlow
            | FailureKind::Truncated => Blame::Origin,
        }
    }
}

/// Whom a failed attempt points at (see [`super::health`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// Us (the local disk), or either side (a resumed file that did not
    /// match).
    Nobody,
    /// The origin did not answer well.
    Origin,
    /// The origin does not serve this URL.
    Url,
    /// The bytes do not match the signed entry: the origin's copy or the
    /// entry is wrong.
    Content,
}

/// The kind of network a host is in, by its address. A name is taken for
/// public (`localhost` aside): its resolution is not checked here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Public,
    /// RFC 1918, shared (100.64/10) and unique local (fc00::/7) addresses.
    Private,
    /// 169.254/16 (cloud metadata services live there) and fe80::/10.
    LinkLocal,
    /// The device itself: 127/8, ::1, the unspecified address, localhost.
    Loopback,
}

impl Network {
    pub fn of(url: &Url) -> Network {
        let host = url.host_str().unwrap_or_default();
        // An IPv6 host comes in brackets.
        let address = host.trim_start_matches('[').trim_end_matches(']');
        match address.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Network::of_v4(ip),
            Ok(IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .map_or_else(|| Network::of_v6(ip), Network::of_v4),
            Err(_) => {
                let name = host.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    Network::Loopback
                } else {
                    Network::Public
                }
            }
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Network {
        let shared = ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64;
        if ip.is_loopback() || ip.is_unspecified() {
            Network::Loopback
        } else if ip.is_link_local() {
            Network::LinkLocal
        } else if ip.is_private() || shared {
            Network::Private
        } else {
            Network::Public
        }
    }

    fn of_v6(ip: Ipv6Addr) -> Network {
        if ip.is_loopback() || ip.is_unspecified() {
            Network::Loopback
        } else if ip.is_unicast_link_local() {
            Network::LinkLocal
        } else if ip.is_unique_local() {
            Network::Private
        } else {
            Network::Public
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Network::Public => "public",
            Network::Private => "private",
            Network::LinkLocal => "link-local",
            Network::Loopback => "loopback",
        })
    }
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectRefused {
    TooMany,
    /// From https down to plain http (or to another scheme).
    Downgrade {
        to: String,
    },
    /// Into a network the origin is not in itself.
    Network {
        target: Network,
        origin: Network,
    },
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedirectRefused::TooMany => write!(f, "more than {MAX_REDIRECTS} redirects"),
            RedirectRefused::Downgrade { to } => {
                write!(f, "a redirect from https to {to} is not followed")
            }
            RedirectRefused::Network { target, origin } => write!(
                f,
                "a redirect to a {target} address from a {origin} origin is not followed"
            ),
        }
    }
}

impl std::error::Error for RedirectRefused {}

/// Whether to follow a redirect to `next` from the last of `previous`, the
/// first of which is the URL asked for: at most [`MAX_REDIRECTS`], http or
/// https only and never from https down to http, and into a private,
/// link-local or loopback network only from an origin in that same kind of
/// network. A mirror is untrusted: its redirects must not downgrade the
/// transport or make the device probe its own network or its cloud's
/// metadata service.
pub fn check_redirect(previous: &[Url], next: &Url) -> Result<(), RedirectRefused> {
    let (Some(origin), Some(from)) = (previous.first(), previous.last()) else {
        return Ok(());
    };
    if previous.len() > MAX_REDIRECTS {
        return Err(RedirectRefused::TooMany);
    }
    let upgrade_or_same = matches!(
        (from.scheme(), next.scheme()),
        ("http", "http" | "https") | ("https", "https")
    );
    if !upgrade_or_same {
        return Err(RedirectRefused::Downgrade {
            to: next.scheme().to_string(),
        });
    }
    let (target, origin) = (Network::of(next), Network::of(origin));
    if target != Network::Public && target != origin {
        return Err(RedirectRefused::Network { target, origin });
    }
    Ok(())
}

/// The redirect policy of the download client: [`check_redirect`].
pub fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(
        |attempt| match check_redirect(attempt.previous(), attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        },
    )
}

/// Where the body of a response goes in the partial file: its start.
pub fn body_start(
    status: StatusCode,
    content_range: Option<&str>,
    offset: u64,
    size: u64,
) -> Result<u64, Failure> {
    match status {
        // A fresh whole body, also when the server ignored Range or the
        // validator no longer matched (If-Range).
        StatusCode::OK => Ok(0),
        StatusCode::PARTIAL_CONTENT => {
            let (start, total) = content_range.and_then(parse_content_range).ok_or_else(|| {
                Failure::new(
                    FailureKind::HttpStatus,
                    "206 without a usable Content-Range",
                )
            })?;
            if let Some(total) = total.filter(|t| *t != size) {
                return Err(Failure::new(
                    FailureKind::WrongSize,
                    format!("the mirror's copy has {total} bytes, {size} signed"),
                ));
            }
            if start != offset {
                return Err(Failure::new(
                    FailureKind::HttpStatus,
                    format!("asked for bytes from {offset}, got them from {start}"),
                ));
            }
            Ok(start)
        }
        // We only ask for ranges inside the signed size, which an honest
        // copy always satisfies.
        StatusCode::RANGE_NOT_SATISFIABLE => Err(Failure::new(
            FailureKind::WrongSize,
            format!("the mirror's copy is shorter than the {offset} bytes already fetched"),
        )),
        StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND
        | StatusCode::GONE => Err(Failure::new(
            FailureKind::NotServed,
            format!("HTTP {status}"),
        )),
        status => Err(Failure::new(
            FailureKind::HttpStatus,
            format!("HTTP {status}"),
        )),
    }
}

/// Refuses a response whose announced length is not the signed size,
/// before reading a byte of it.
fn check_length(announced: u64, size: u64) -> Result<(), Failure> {
    if announced > size {
        return Err(Failure::new(
            FailureKind::TooLarge,
            format!("announces {announced} bytes, more than the signed {size}"),
        ));
    }
    if announced < size {
        return Err(Failure::new(
            FailureKind::WrongSize,
            format!("announces {announced} bytes, {size} signed"),
        ));
    }
    Ok(())
}

/// `bytes <start>-<end>/<total or *>` → (start, total).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        total => Some(total.parse().ok()?),
    };
    Some((start, total))
}

/// An asset to fetch.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: AssetId,
    pub size: u64,
    /// Usable mirrors, in order of preference.
    pub mirrors: Vec<Url>,
    /// Where the partial file came from, if it is a resumable download.
    pub resume: Option<Resume>,
}

/// What every job shares: the client, the store, the rate limits.
pub struct Fetcher {
    pub client: reqwest::Client,
    pub content: ContentStore,
    /// Total rate cap across downloads, if any.
    pub limiter: Option<DefaultDirectRateLimiter>,
    pub min_throughput: u64,
    pub throughput_window: Duration,
    pub events: UnboundedSender<FetchEvent>,
}

impl Fetcher {
    /// Runs a job to its end and reports `Done`; every attempt on a mirror
    /// is reported on the way, so origin health is updated at once.
    pub async fn run(self: Arc<Fetcher>, job: Job) {
        let ok = self.fetch(&job).await;
        self.send(FetchEvent::Done { id: job.id, ok });
    }

    fn send(&self, event: FetchEvent) {
        // The receiver only goes away when the player stops.
        let _ = self.events.send(event);
    }

    async fn fetch(&self, job: &Job) -> bool {
        for url in &job.mirrors {
            match self.finish_local(job).await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(asset = %job.id, error = %e, "checking a partial download");
                    return false;
                }
            }
            let mut result = self.attempt(job, url).await;
            if result
                .as_ref()
                .is_err_and(|f| f.kind == FailureKind::ResumedMismatch)
            {
                // Either part may be at fault: this mirror gets a clean
                // try from the first byte (the partial file is gone).
                result = self.attempt(job, url).await;
            }
            let done = result.is_ok();
            let local_fault = result.as_ref().is_err_and(|f| f.kind == FailureKind::Disk);
            self.send(FetchEvent::Attempt {
                id: job.id.clone(),
                url: url.clone(),
                result,
            });
            if done || local_fault {
                return done;
            }
        }
        false
    }

    /// A partial file that already has every byte (the player stopped
    /// between the last write and the check, or a mirror sent the rest
    /// before failing) is checked without asking anyone; one that is too
    /// long is dropped.
    async fn finish_local(&self, job: &Job) -> std::io::Result<bool> {
        let have = self.content.partial_size(&job.id);
        if have < job.size {
            return Ok(false);
        }
        let content = self.content.clone();
        let job = job.clone();
        blocking(move || {
            if have == job.size {
                let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
                hash_prefix(&content.partial_path(&job.id), job.size, &mut digest, None)?;
                if AssetId::from_digest(digest.finish().as_ref()) == job.id {
                    std::fs::File::open(content.partial_path(&job.id))?.sync_all()?;
                    content.commit(&job.id)?;
                    return Ok(true);
                }
            }
            content.remove_partial(&job.id);
            Ok(false)
        })
        .await
    }

    async fn attempt(&self, job: &Job, url: &Url) -> Result<(), Failure> {
        let offset = self.content.partial_size(&job.id);
        let mut request = self.client.get(url.clone());
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
            // A validator only speaks for the URL that gave it; another
            // mirror's bytes are checked by the hash all the same.
            if let Some(resume) = job.resume.as_ref().filter(|r| r.url == url.as_str()) {
                request = request.header(IF_RANGE, &resume.validator);
            }
        }
        let response = request.send().await.map_err(Failure::transport)?;
        let content_range = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok());
        let start = body_start(response.status(), content_range, offset, job.size)?;
        if let Some(length) = response.content_length() {
            check_length(start + length, job.size)?;
        }
        let validator = [ETAG, LAST_MODIFIED]
            .iter()
            .find_map(|h| response.headers().get(h)?.to_str().ok());
        if let Some(validator) = validator {
            self.send(FetchEvent::Resume {
                id: job.id.clone(),
                resume: Resume {
                    url: url.to_string(),
                    validator: validator.to_string(),
                },
            });
        }
        let (mut file, digest) = self.open_partial(&job.id, start).await?;
        // Whatever arrived stays for the next attempt to resume from, unless
        // it overflowed: such bytes are not worth continuing.
        let digest = match self.receive(job, response, &mut file, digest, start).await {
            Err(failure) if failure.kind == FailureKind::TooLarge => {
                self.content.remove_partial(&job.id);
                return Err(failure);
            }
            received => received?,
        };
        if AssetId::from_digest(digest.finish().as_ref()) != job.id {
            self.content.remove_partial(&job.id);
            let (kind, whose) = if start == 0 {
                (FailureKind::HashMismatch, "the content")
            } else {
                (FailureKind::ResumedMismatch, "the resumed content")
            };
            return Err(Failure::new(
                kind,
                format!("{whose} does not match its SHA-256"),
            ));
        }
        let content = self.content.clone();
        let id = job.id.clone();
        blocking(move || {
            file.sync_all()?;
            content.commit(&id)
        })
        .await
        .map_err(Failure::disk)
    }

    /// Opens the partial file at `start`, cut there, with the digest of
    /// what precedes it.
    async fn open_partial(
        &self,
        id: &AssetId,
        start: u64,
    ) -> Result<(std::fs::File, ring::digest::Context), Failure> {
        let path = self.content.partial_path(id);
        blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.set_len(start)?;
            file.seek(SeekFrom::Start(start))?;
            let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
            if hash_prefix(&path, start, &mut digest, None)? != start {
                return Err(std::io::Error::other("the partial file shrank"));
            }
            Ok((file, digest))
        })
        .await
        .map_err(Failure::disk)
    }

    /// Streams the body into `file` from `start`, enforcing the size cap,
    /// the throughput guard and the rate cap; returns the whole digest.
    async fn receive(
        &self,
        job: &Job,
        response: reqwest::Response,
        file: &mut impl Write,
        mut digest: ring::digest::Context,
        start: u64,
    ) -> Result<ring::digest::Context, Failure> {
        let mut received = start;
        let mut guard = Guard::new(self.min_throughput, self.throughput_window, Instant::now());
        let mut reported = Instant::now();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Failure::transport)?;
            // Never store more than was signed for: a hostile mirror could
            // otherwise fill the disk.
            if received + chunk.len() as u64 > job.size {
                return Err(Failure::new(
                    FailureKind::TooLarge,
                    format!("sent more than the signed {} bytes", job.size),
                ));
            }
            guard.arrived(chunk.len() as u64, Instant::now())?;
            if let Some(limiter) = &self.limiter {
                let waited = Instant::now();
                throttle(limiter, chunk.len()).await;
                guard.paused(waited.elapsed());
            }
            digest.update(&chunk);
            file.write_all(&chunk).map_err(Failure::disk)?;
            received += chunk.len() as u64;
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                self.send(FetchEvent::Progress {
                    id: job.id.clone(),
                    received,
                });
            }
        }
        if received != job.size {
            return Err(Failure::new(
                FailureKind::Truncated,
                format!("the body ended after {received} of {} bytes", job.size),
            ));
        }
        Ok(digest)
    }
}

/// Waits until the shared bucket lets `bytes` through.
async fn throttle(limiter: &DefaultDirectRateLimiter, bytes: usize) {
    // The bucket holds one second of the rate; larger chunks wait in parts.
    let mut left = u32::try_from(bytes).unwrap_or(u32::MAX);
    while let Some(n) = NonZeroU32::new(left) {
        match limiter.until_n_ready(n).await {
            Ok(()) => left = 0,
            Err(capacity) => {
                let part = NonZeroU32::new(capacity.0).expect("a bucket holds at least one cell");
                let _ = limiter.until_n_ready(part).await;
                left -= part.get();
            }
        }
    }
}

/// The minimum-throughput guard: over each window of network time (time
/// spent waiting on our own rate cap excluded), at least the minimum rate.
struct Guard {
    min_rate: u64,
    window: Duration,
    since: Instant,
    paused: Duration,
    bytes: u64,
}

impl Guard {
    fn new(min_rate: u64, window: Duration, now: Instant) -> Guard {
        Guard {
            min_rate,
            window,
            since: now,
            paused: Duration::ZERO,
            bytes: 0,
        }
    }

    fn paused(&mut self, waited: Duration) {
        self.paused += waited;
    }

    fn arrived(&mut self, bytes: u64, now: Instant) -> Result<(), Failure> {
        self.bytes += bytes;
        let active = now
            .saturating_duration_since(self.since)
            .saturating_sub(self.paused);
        if active < self.window {
            return Ok(());
        }
        let rate = self.bytes as f64 / active.as_secs_f64();
        if rate < self.min_rate as f64 {
            return Err(Failure::new(
                FailureKind::TooSlow,
                format!("{rate:.0} bytes/s, below the minimum {}", self.min_rate),
            ));
        }
        *self = Guard::new(self.min_rate, self.window, now);
        Ok(())
    }
}

/// Runs blocking file work (fsync, hashing a partial file) off the async
/// threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_continue_restart_or_fail() {
        let ok = StatusCode::OK;
        let partial = StatusCode::PARTIAL_CONTENT;
        // 200: the server ignored Range, the body starts over.
        assert_eq!(body_start(ok, None, 500, 1000), Ok(0));
        assert_eq!(
            body_start(partial, Some("bytes 500-999/1000"), 500, 1000),
            Ok(500)
        );
        assert_eq!(
            body_start(partial, Some("bytes 500-999/*"), 500, 1000),
            Ok(500)
        );
        let code = |r: Result<u64, Failure>| r.unwrap_err().code();
        assert_eq!(
            code(body_start(partial, Some("bytes 0-999/1000"), 500, 1000)),
            "http_status"
        );
        assert_eq!(
            code(body_start(partial, Some("bytes 500-1999/2000"), 500, 1000)),
            "wrong_size"
        );
        assert_eq!(code(body_start(partial, None, 500, 1000)), "http_status");
        assert_eq!(
            code(body_start(
                StatusCode::RANGE_NOT_SATISFIABLE,
                None,
                500,
                1000
            )),
            "wrong_size"
        );
        assert_eq!(
            code(body_start(StatusCode::NOT_FOUND, None, 0, 1000)),
            "not_served"
        );
        assert_eq!(
            code(body_start(StatusCode::BAD_GATEWAY, None, 0, 1000)),
            "http_status"
        );
        assert_eq!(check_length(1000, 1000), Ok(()));
        assert_eq!(check_length(1001, 1000).unwrap_err().code(), "too_large");
        assert_eq!(check_length(20, 1000).unwrap_err().code(), "wrong_size");
    }

    fn urls(list: &[&str]) -> Vec<Url> {
        list.iter().map(|u| Url::parse(u).unwrap()).collect()
    }

    fn redirect(chain: &[&str], next: &str) -> Result<(), RedirectRefused> {
        check_redirect(&urls(chain), &Url::parse(next).unwrap())
    }

    #[test]
    fn redirects_stay_on_the_scheme_and_out_of_networks_the_origin_is_not_in() {
        let cdn = "https://cdn.example/a.mp4";
        assert_eq!(redirect(&[cdn], "https://edge.example/a.mp4"), Ok(()));
        assert_eq!(
            redirect(&["http://cdn.example/a"], "https://edge.example/a"),
            Ok(())
        );
        let downgrade = |to: &str| RedirectRefused::Downgrade { to: to.into() };
        assert_eq!(
            redirect(&[cdn], "http://edge.example/a.mp4"),
            Err(downgrade("http"))
        );
        // Once upgraded, never back down.
        assert_eq!(
            redirect(
                &["http://cdn.example/a", "https://cdn.example/a"],
                "http://cdn.example/b"
            ),
            Err(downgrade("http"))
        );
        let into = |target, origin| Err(RedirectRefused::Network { target, origin });
        for (next, target) in [
            (
                "https://169.254.169.254/latest/meta-data/",
                Network::LinkLocal,
            ),
            ("https://[fe80::1]/", Network::LinkLocal),
            ("https://127.0.0.1:8080/", Network::Loopback),
            ("https://2130706433/", Network::Loopback),
            ("https://[::ffff:127.0.0.1]/", Network::Loopback),
            ("https://localhost/", Network::Loopback),
            ("https://0.0.0.0/", Network::Loopback),
            ("https://10.1.2.3/", Network::Private),
            ("https://192.168.1.1/", Network::Private),
            ("https://100.64.0.1/", Network::Private),
            ("https://[fd00::1]/", Network::Private),
        ] {
            assert_eq!(
                redirect(&[cdn], next),
                into(target, Network::Public),
                "{next}"
            );
        }
        // An origin on the intranet or on the device itself may send the
        // device to its own kind of network, and only that.
        assert_eq!(
            redirect(&["http://10.0.0.5/a"], "http://192.168.0.7/a"),
            Ok(())
        );
        assert_eq!(
            redirect(&["http://127.0.0.1:8000/a"], "http://localhost:9000/a"),
            Ok(())
        );
        assert_eq!(
            redirect(&["http://10.0.0.5/a"], "http://127.0.0.1/a"),
            into(Network::Loopback, Network::Private)
        );
        assert_eq!(
            redirect(&["http://127.0.0.1/a"], "http://169.254.169.254/a"),
            into(Network::LinkLocal, Network::Loopback)
        );
        assert_eq!(
            redirect(&[cdn], "ftp://cdn.example/a"),
            Err(downgrade("ftp"))
        );
    }

    #[test]
    fn at_most_five_redirects_are_followed() {
        let hops: Vec<String> = (0..=MAX_REDIRECTS)
            .map(|n| format!("https://cdn.example/{n}"))
            .collect();
        let hops: Vec<&str> = hops.iter().map(String::as_str).collect();
        let next = "https://cdn.example/next";
        assert_eq!(redirect(&hops[..MAX_REDIRECTS], next), Ok(()));
        assert_eq!(
            redirect(&hops[..=MAX_REDIRECTS], next),
            Err(RedirectRefused::TooMany)
        );
    }

    #[test]
    fn the_guard_abandons_a_trickle_but_not_a_throttled_download() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(1500);
        let mut guard = Guard::new(1000, Duration::from_secs(1), t0);
        guard.arrived(100, t0).unwrap();
        assert_eq!(guard.arrived(100, later).unwrap_err().code(), "too_slow");

        let mut guard = Guard::new(1000, Duration::from_secs(1), t0);
        guard.arrived(2000, later).unwrap();
        // 1.4 s of the 1.5 s were spent on our own rate cap: 0.1 s of
        // network time does not fill the window yet.
        let mut guard = Guard::new(1000, Duration::from_secs(1), t0);
        guard.paused(Duration::from_millis(1400));
        guard.arrived(200, later).unwrap();
    }
}

//! Which origins to use (pure): mirrors in order, minus the origins that
//! failed recently.
//!
//! An origin (scheme, host, port) that times out, refuses or errors is
//! backed off exponentially; one that served wrong bytes (hash mismatch,
//! more than the signed size, a wrong length) is quarantined for a fixed,
//! longer time. A success clears its record. The other origins carry on
//! meanwhile, so one burning cloud does not hold a screen back.

use std::collections::BTreeMap;
use std::time::Duration;

use phare_protocol::AssetEntry;
use reqwest::Url;
use tokio::time::Instant;

use super::fetch::Failure;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

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

/// The origin a URL belongs to, as `scheme://host:port`.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    until: Instant,
}

/// What happened to an origin, for the event that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    None,
    Backoff(Duration),
    Quarantine(Duration),
}

#[derive(Debug)]
pub struct Health {
    quarantine: Duration,
    records: BTreeMap<String, Record>,
}

impl Health {
    pub fn new(quarantine: Duration) -> Health {
        Health {
            quarantine,
            records: BTreeMap::new(),
        }
    }

    pub fn usable(&self, url: &Url, now: Instant) -> bool {
        self.records
            .get(&origin_of(url))
            .is_none_or(|r| r.until <= now)
    }

    /// When the first of the backed-off `urls` becomes usable again.
    pub fn next_usable(&self, urls: &[Url]) -> Option<Instant> {
        urls.iter()
            .filter_map(|u| self.records.get(&origin_of(u)))
            .map(|r| r.until)
            .min()
    }

    pub fn record(&mut self, url: &Url, result: Result<(), &Failure>, now: Instant) -> Penalty {
        let origin = origin_of(url);
        let failure = match result {
            Ok(()) => {
                self.records.remove(&origin);
                return Penalty::None;
            }
            Err(failure) if !failure.blames_origin() => return Penalty::None,
            Err(failure) => failure,
        };
        let record = self.records.entry(origin).or_insert(Record {
            failures: 0,
            until: now,
        });
        record.failures = record.failures.saturating_add(1);
        if failure.wrong_bytes() {
            record.until = now + self.quarantine;
            return Penalty::Quarantine(self.quarantine);
        }
        let doublings = (record.failures - 1).min(16);
        let delay = (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF);
        record.until = now + delay;
        Penalty::Backoff(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fetch::FailureKind;
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

    #[test]
    fn failures_back_off_wrong_bytes_quarantine_and_success_clears() {
        let now = Instant::now();
        let mut health = Health::new(Duration::from_secs(600));
        let a = Url::parse("http://a:1/x").unwrap();
        let a2 = Url::parse("http://a:1/y").unwrap();
        let b = Url::parse("http://b/x").unwrap();
        let timeout = Failure::new(FailureKind::Timeout, "slow");
        assert_eq!(
            health.record(&a, Err(&timeout), now),
            Penalty::Backoff(FIRST_BACKOFF)
        );
        assert_eq!(
            health.record(&a, Err(&timeout), now),
            Penalty::Backoff(FIRST_BACKOFF * 2)
        );
        // The whole origin is backed off, not just that URL; others carry on.
        assert!(!health.usable(&a2, now));
        assert!(health.usable(&b, now));
        assert!(health.usable(&a2, now + FIRST_BACKOFF * 2));
        assert_eq!(
            health.next_usable(&[a.clone(), b.clone()]),
            Some(now + FIRST_BACKOFF * 2)
        );
        health.record(&a, Ok(()), now);
        assert!(health.usable(&a, now));

        let corrupt = Failure::new(FailureKind::HashMismatch, "bad");
        assert_eq!(
            health.record(&b, Err(&corrupt), now),
            Penalty::Quarantine(Duration::from_secs(600))
        );
        assert!(!health.usable(&b, now + Duration::from_secs(599)));
        // A local disk error is not the origin's fault.
        let disk = Failure::new(FailureKind::Disk, "full");
        assert_eq!(health.record(&a, Err(&disk), now), Penalty::None);
    }
}

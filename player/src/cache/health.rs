//! Which mirrors to use for an asset, and whose fault a failure seems to
//! be (pure).
//!
//! Three kinds of trouble, told apart because they call for different
//! cures:
//!
//! - An origin (scheme, host, port) that does not answer well (refuses,
//!   times out, breaks off, answers with a server error, trickles) is
//!   backed off whole, exponentially; a success clears it.
//! - A URL the origin does not serve (`404` and the like) is backed off
//!   the same way, but only for that asset: the origin serves the others.
//! - Wrong bytes (a hash mismatch, a wrong or excessive length) may be the
//!   origin's fault or the signed entry's (a publishing mistake), and the
//!   bytes alone cannot tell. So only the (asset, URL) pair is held back at
//!   first, for longer and longer. The origin is quarantined only on
//!   evidence that it serves wrong bytes: wrong bytes for
//!   [`WRONG_ASSETS_TO_QUARANTINE`] distinct assets with no right ones in
//!   between, or another mirror serving the right bytes for the same
//!   asset. One bad entry thus never stalls the other assets of an origin.
//!
//! A quarantined origin comes after every other mirror of an asset, but it
//! is still tried when nothing else is left: a device is never left with
//! no origin to try, only with slower retries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use phare_protocol::{AssetEntry, AssetId};
use reqwest::Url;
use tokio::time::Instant;

use super::fetch::{Blame, Failure};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The first hold of an (asset, URL) pair that served wrong bytes: long
/// enough not to fetch a whole file again and again, short enough that a
/// file fixed at the origin arrives soon. It doubles up to the quarantine.
const FIRST_WRONG_BYTES_HOLD: Duration = Duration::from_secs(30);
/// Distinct assets an origin must get wrong, with none right in between,
/// to be quarantined without another mirror's word.
pub const WRONG_ASSETS_TO_QUARANTINE: usize = 3;

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

/// `FIRST` doubled for each failure after the first, at most `max`.
fn exponential(first: Duration, failures: u32, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (first * 2u32.pow(doublings)).min(max)
}

/// Why an origin was quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// It served wrong bytes for this many distinct assets, none right.
    WrongForSeveral(usize),
    /// Another mirror served the right bytes for an asset it got wrong.
    RightElsewhere(AssetId),
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::WrongForSeveral(n) => write!(
                f,
                "it served wrong bytes for {n} different assets and right bytes for none"
            ),
            Evidence::RightElsewhere(id) => write!(
                f,
                "another mirror served the right bytes for {id}, which it served wrong"
            ),
        }
    }
}

/// What a failed (or successful) attempt says about whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// The origin did not answer well: backed off whole for `delay`.
    OriginBackoff { delay: Duration },
    /// The origin does not serve this URL: only this asset there waits.
    UrlBackoff { delay: Duration },
    /// Wrong bytes, the origin not (yet) to blame: the signed entry may be
    /// wrong. Only this asset at this URL waits. `origin_serves_right`:
    /// other assets from this origin verified, which points at the entry.
    SuspectEntry {
        delay: Duration,
        origin_serves_right: bool,
    },
    /// The origin serves wrong bytes: it comes last for `duration`.
    Quarantined {
        origin: String,
        evidence: Evidence,
        duration: Duration,
    },
}

/// Which mirrors to try for an asset now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// These, in this order.
    Fetch(Vec<Url>),
    /// Every mirror is held back until then.
    WaitUntil(Instant),
    /// The asset has no URL at all.
    NoMirror,
}

/// A standing problem, for the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// This URL served bytes that do not match the asset's signed entry.
    BadEntry {
        id: AssetId,
        url: Url,
        /// Other assets from this origin verified.
        origin_serves_right: bool,
        retry_at: Instant,
    },
    /// This origin is quarantined.
    BadOrigin {
        origin: String,
        evidence: Evidence,
        until: Instant,
    },
}

#[derive(Debug, Default)]
struct OriginRecord {
    /// Consecutive failures to answer, for the backoff.
    failures: u32,
    backed_off_until: Option<Instant>,
    /// Assets it served wrong bytes for since it last served right ones.
    wrong: BTreeSet<AssetId>,
    quarantine: Option<(Instant, Evidence)>,
    /// It has served verified bytes since the player started.
    served_right: bool,
}

impl OriginRecord {
    fn quarantined(&self, now: Instant) -> bool {
        self.quarantine
            .as_ref()
            .is_some_and(|(until, _)| *until > now)
    }
}

#[derive(Debug, Clone, Copy)]
struct PairRecord {
    failures: u32,
    until: Instant,
    /// Wrong bytes (rather than a URL not served).
    wrong_bytes: bool,
}

#[derive(Debug)]
pub struct Health {
    quarantine: Duration,
    origins: BTreeMap<String, OriginRecord>,
    pairs: BTreeMap<(AssetId, Url), PairRecord>,
}

impl Health {
    pub fn new(quarantine: Duration) -> Health {
        Health {
            quarantine,
            origins: BTreeMap::new(),
            pairs: BTreeMap::new(),
        }
    }

    /// When `url` may be asked for `id` again, if it is held back.
    fn held_until(&self, id: &AssetId, url: &Url, now: Instant) -> Option<Instant> {
        let origin = self
            .origins
            .get(&origin_of(url))
            .and_then(|r| r.backed_off_until);
        let pair = self.pairs.get(&(id.clone(), url.clone())).map(|p| p.until);
        origin.max(pair).filter(|until| *until > now)
    }

    fn quarantined(&self, url: &Url, now: Instant) -> bool {
        self.origins
            .get(&origin_of(url))
            .is_some_and(|r| r.quarantined(now))
    }

    /// The mirrors of `id` to try now: those not held back, quarantined
    /// origins last.
    pub fn choose(&self, id: &AssetId, mirrors: &[Url], now: Instant) -> Choice {
        if mirrors.is_empty() {
            return Choice::NoMirror;
        }
        let (free, held): (Vec<&Url>, Vec<&Url>) = mirrors
            .iter()
            .partition(|u| self.held_until(id, u, now).is_none());
        if free.is_empty() {
            let at = held
                .iter()
                .filter_map(|u| self.held_until(id, u, now))
                .min();
            return Choice::WaitUntil(at.expect("held mirrors have a time"));
        }
        let (last, first): (Vec<&Url>, Vec<&Url>) =
            free.into_iter().partition(|u| self.quarantined(u, now));
        Choice::Fetch(first.into_iter().chain(last).cloned().collect())
    }

    /// Learns from an attempt at `url` for `id`; says whom it blames.
    pub fn record(
        &mut self,
        id: &AssetId,
        url: &Url,
        result: Result<(), &Failure>,
        now: Instant,
    ) -> Vec<Judgement> {
        let failure = match result {
            Ok(()) => return self.succeeded(id, url, now),
            Err(failure) => failure,
        };
        match failure.blame() {
            Blame::Nobody => Vec::new(),
            Blame::Origin => {
                let origin = self.origins.entry(origin_of(url)).or_default();
                origin.failures = origin.failures.saturating_add(1);
                let delay = exponential(FIRST_BACKOFF, origin.failures, MAX_BACKOFF);
                origin.backed_off_until = Some(now + delay);
                vec![Judgement::OriginBackoff { delay }]
            }
            Blame::Url => {
                let delay = self.hold_pair(id, url, false, now);
                vec![Judgement::UrlBackoff { delay }]
            }
            Blame::Content => {
                let delay = self.hold_pair(id, url, true, now);
                let origin = self.origins.entry(origin_of(url)).or_default();
                origin.wrong.insert(id.clone());
                let wrong = origin.wrong.len();
                if wrong >= WRONG_ASSETS_TO_QUARANTINE {
                    vec![self.quarantine(url, Evidence::WrongForSeveral(wrong), now)]
                } else {
                    vec![Judgement::SuspectEntry {
                        delay,
                        origin_serves_right: origin.served_right,
                    }]
                }
            }
        }
    }

    /// Right bytes: the origin is well, the entry is right, and so every
    /// other mirror that served wrong bytes for it is to blame.
    fn succeeded(&mut self, id: &AssetId, url: &Url, now: Instant) -> Vec<Judgement> {
        let origin = self.origins.entry(origin_of(url)).or_default();
        *origin = OriginRecord {
            served_right: true,
            ..OriginRecord::default()
        };
        let wrong_elsewhere: Vec<Url> = self
            .pairs
            .iter()
            .filter(|((asset, other), pair)| asset == id && other != url && pair.wrong_bytes)
            .map(|((_, other), _)| other.clone())
            .filter(|other| origin_of(other) != origin_of(url))
            .collect();
        self.pairs.retain(|(asset, _), _| asset != id);
        wrong_elsewhere
            .iter()
            .map(|other| self.quarantine(other, Evidence::RightElsewhere(id.clone()), now))
            .collect()
    }

    fn quarantine(&mut self, url: &Url, evidence: Evidence, now: Instant) -> Judgement {
        let origin = origin_of(url);
        let record = self.origins.entry(origin.clone()).or_default();
        record.quarantine = Some((now + self.quarantine, evidence.clone()));
        Judgement::Quarantined {
            origin,
            evidence,
            duration: self.quarantine,
        }
    }

    /// Holds `url` back for `id` a little longer each time; returns for
    /// how long.
    fn hold_pair(&mut self, id: &AssetId, url: &Url, wrong_bytes: bool, now: Instant) -> Duration {
        let pair = self
            .pairs
            .entry((id.clone(), url.clone()))
            .or_insert(PairRecord {
                failures: 0,
                until: now,
                wrong_bytes,
            });
        pair.failures = pair.failures.saturating_add(1);
        pair.wrong_bytes |= wrong_bytes;
        let delay = if pair.wrong_bytes {
            exponential(FIRST_WRONG_BYTES_HOLD, pair.failures, self.quarantine)
        } else {
            exponential(FIRST_BACKOFF, pair.failures, MAX_BACKOFF)
        };
        pair.until = now + delay;
        delay
    }

    /// Forgets what concerns assets no longer wanted (so the status does
    /// not name them).
    pub fn retain_assets(&mut self, wanted: impl Fn(&AssetId) -> bool) {
        self.pairs.retain(|(id, _), _| wanted(id));
    }

    /// The standing problems: entries whose bytes did not match, and
    /// quarantined origins.
    pub fn issues(&self, now: Instant) -> Vec<Issue> {
        let entries =
            self.pairs
                .iter()
                .filter(|(_, pair)| pair.wrong_bytes)
                .map(|((id, url), pair)| Issue::BadEntry {
                    id: id.clone(),
                    url: url.clone(),
                    origin_serves_right: self
                        .origins
                        .get(&origin_of(url))
                        .is_some_and(|r| r.served_right),
                    retry_at: pair.until,
                });
        let origins = self.origins.iter().filter_map(|(origin, record)| {
            let (until, evidence) = record.quarantine.clone()?;
            (until > now).then(|| Issue::BadOrigin {
                origin: origin.clone(),
                evidence,
                until,
            })
        });
        entries.chain(origins).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fetch::FailureKind;
    use super::*;

    const QUARANTINE: Duration = Duration::from_secs(600);

    fn asset(n: u8) -> AssetId {
        AssetId::from_digest(&[n; 32])
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn fetch(urls: &[&Url]) -> Choice {
        Choice::Fetch(urls.iter().map(|u| (*u).clone()).collect())
    }

    fn wrong() -> Failure {
        Failure::new(FailureKind::HashMismatch, "bad")
    }

    #[test]
    fn relative_urls_resolve_against_every_origin() {
        let entry = AssetEntry {
            size: 1,
            media_type: "video/mp4".into(),
            urls: vec!["https://cdn/a.mp4".into(), "media/a.mp4".into()],
        };
        let origins = vec![url("http://o1/base/"), url("http://o2/")];
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
    fn an_origin_that_does_not_answer_is_backed_off_whole_and_success_clears() {
        let now = Instant::now();
        let mut health = Health::new(QUARANTINE);
        let (a, a2, b) = (url("http://a:1/x"), url("http://a:1/y"), url("http://b/x"));
        let (x, y) = (asset(1), asset(2));
        let timeout = Failure::new(FailureKind::Timeout, "slow");
        assert_eq!(
            health.record(&x, &a, Err(&timeout), now),
            [Judgement::OriginBackoff {
                delay: FIRST_BACKOFF
            }]
        );
        assert_eq!(
            health.record(&x, &a, Err(&timeout), now),
            [Judgement::OriginBackoff {
                delay: FIRST_BACKOFF * 2
            }]
        );
        // The whole origin waits, for every asset; others carry on.
        assert_eq!(
            health.choose(&y, &[a2.clone(), b.clone()], now),
            fetch(&[&b])
        );
        assert_eq!(
            health.choose(&y, std::slice::from_ref(&a2), now),
            Choice::WaitUntil(now + FIRST_BACKOFF * 2)
        );
        assert_eq!(
            health.choose(&y, std::slice::from_ref(&a2), now + FIRST_BACKOFF * 2),
            fetch(&[&a2])
        );
        assert!(health.record(&y, &a2, Ok(()), now).is_empty());
        assert_eq!(
            health.choose(&x, std::slice::from_ref(&a), now),
            fetch(&[&a])
        );
        // A local disk error is nobody's fault but ours.
        let disk = Failure::new(FailureKind::Disk, "full");
        assert!(health.record(&x, &a, Err(&disk), now).is_empty());
        assert_eq!(health.choose(&x, &[], now), Choice::NoMirror);
    }

    #[test]
    fn a_url_not_served_holds_back_that_asset_only() {
        let now = Instant::now();
        let mut health = Health::new(QUARANTINE);
        let (a, a2) = (url("http://a/x"), url("http://a/y"));
        let missing = Failure::new(FailureKind::NotServed, "HTTP 404");
        assert_eq!(
            health.record(&asset(1), &a, Err(&missing), now),
            [Judgement::UrlBackoff {
                delay: FIRST_BACKOFF
            }]
        );
        assert_eq!(
            health.choose(&asset(1), std::slice::from_ref(&a), now),
            Choice::WaitUntil(now + FIRST_BACKOFF)
        );
        assert_eq!(
            health.choose(&asset(2), std::slice::from_ref(&a2), now),
            fetch(&[&a2])
        );
        // Not served is not wrong bytes: nothing to report as a bad entry.
        assert!(health.issues(now).is_empty());
    }

    #[test]
    fn one_bad_entry_holds_back_its_asset_at_that_url_and_not_the_origin() {
        let now = Instant::now();
        let mut health = Health::new(QUARANTINE);
        let origin = url("http://o/");
        let (bad, good) = (origin.join("bad").unwrap(), origin.join("good").unwrap());
        health.record(&asset(9), &origin.join("earlier").unwrap(), Ok(()), now);
        assert_eq!(
            health.record(&asset(1), &bad, Err(&wrong()), now),
            [Judgement::SuspectEntry {
                delay: FIRST_WRONG_BYTES_HOLD,
                origin_serves_right: true
            }]
        );
        // The next assignment's asset, same and only origin: at once.
        assert_eq!(
            health.choose(&asset(2), std::slice::from_ref(&good), now),
            fetch(&[&good])
        );
        // The bad pair waits, longer each time, up to the quarantine time.
        assert_eq!(
            health.choose(&asset(1), std::slice::from_ref(&bad), now),
            Choice::WaitUntil(now + FIRST_WRONG_BYTES_HOLD)
        );
        let mut delays = Vec::new();
        for _ in 0..6 {
            match health
                .record(&asset(1), &bad, Err(&wrong()), now)
                .as_slice()
            {
                [Judgement::SuspectEntry { delay, .. }] => delays.push(delay.as_secs()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [60, 120, 240, 480, 600, 600]);
        assert_eq!(
            health.issues(now),
            [Issue::BadEntry {
                id: asset(1),
                url: bad.clone(),
                origin_serves_right: true,
                retry_at: now + QUARANTINE
            }]
        );
        // The assignment replaced: nothing left to say.
        health.retain_assets(|id| *id == asset(2));
        assert!(health.issues(now).is_empty());
    }

    #[test]
    fn wrong_bytes_for_several_assets_quarantine_the_origin() {
        let now = Instant::now();
        let mut health = Health::new(QUARANTINE);
        let (o, other) = (url("http://o/"), url("http://p/"));
        let at = |n: u8| o.join(&format!("{n}")).unwrap();
        for n in 1..WRONG_ASSETS_TO_QUARANTINE as u8 {
            let judged = health.record(&asset(n), &at(n), Err(&wrong()), now);
            assert!(
                matches!(
                    judged.as_slice(),
                    [Judgement::SuspectEntry {
                        origin_serves_right: false,
                        ..
                    }]
                ),
                "{judged:?}"
            );
        }
        let n = WRONG_ASSETS_TO_QUARANTINE as u8;
        let evidence = Evidence::WrongForSeveral(WRONG_ASSETS_TO_QUARANTINE);
        assert_eq!(
            health.record(&asset(n), &at(n), Err(&wrong()), now),
            [Judgement::Quarantined {
                origin: "http://o".into(),
                evidence: evidence.clone(),
                duration: QUARANTINE
            }]
        );
        // Last among mirrors, but still tried when it is the only one.
        let elsewhere = other.join("9").unwrap();
        assert_eq!(
            health.choose(&asset(9), &[at(9), elsewhere.clone()], now),
            fetch(&[&elsewhere, &at(9)])
        );
        assert_eq!(health.choose(&asset(9), &[at(9)], now), fetch(&[&at(9)]));
        assert!(health.issues(now).contains(&Issue::BadOrigin {
            origin: "http://o".into(),
            evidence,
            until: now + QUARANTINE
        }));
        assert_eq!(
            health.choose(&asset(9), &[at(9), elsewhere.clone()], now + QUARANTINE),
            fetch(&[&at(9), &elsewhere])
        );
    }

    #[test]
    fn right_bytes_in_between_reset_the_count() {
        let now = Instant::now();
        let mut health = Health::new(QUARANTINE);
        let o = url("http://o/");
        let at = |n: u8| o.join(&format!("{n}")).unwrap();
        for n in 1..=4u8 {
            health.record(&asset(n), &at(n), Err(&wrong()), now);
            health.record(&asset(10 + n), &at(10 + n), Ok(()), now);
        }
        assert!(
            health
                .issues(now)
                .iter()
                .all(|i| matches!(i, Issue::BadEntry { .. })),
            "{:?}",
            health.issues(now)
        );
    }

    #[test]
    fn right_bytes_from_another_mirror_quarantine_the_one_that_lied() {
        let now = Instant::now();
        let mut health = Health::new(QUARANTINE);
        let (liar, honest) = (url("http://liar/x"), url("http://honest/x"));
        health.record(&asset(1), &liar, Err(&wrong()), now);
        assert_eq!(
            health.record(&asset(1), &honest, Ok(()), now),
            [Judgement::Quarantined {
                origin: "http://liar".into(),
                evidence: Evidence::RightElsewhere(asset(1)),
                duration: QUARANTINE
            }]
        );
        // The asset is in: its pairs are forgotten, the origin is not.
        assert!(matches!(
            health.issues(now).as_slice(),
            [Issue::BadOrigin { .. }]
        ));
        let (liar2, honest2) = (url("http://liar/y"), url("http://honest/y"));
        assert_eq!(
            health.choose(&asset(2), &[liar2.clone(), honest2.clone()], now),
            fetch(&[&honest2, &liar2])
        );
    }
}

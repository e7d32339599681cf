//! Trusted time. A Raspberry Pi has no real-time clock: it may boot in
//! 1970, or an attacker on the network may set its clock back to make an
//! expired document look fresh, or forward to make every new document look
//! expired.
//!
//! The device keeps a durable time floor: the latest `issued_at` of a
//! document it accepted. Only signed times raise it; the system clock is
//! believed in memory only, so a clock spoofed into the year 2100 (a forged
//! NTP or DHCP answer) costs the device nothing once it is set right again,
//! not even across a restart. "Now" is the later of the two, so a clock set
//! back cannot revive documents older than what was already accepted.
//!
//! A signed `issued_at` must not lie far ahead of "now" either: saved as the
//! floor, a publisher's mistyped year would freeze the device just the same.
//!
//! Pure: the caller reads the system clock and persists the floor.

use jiff::{SignedDuration, Timestamp};
use phare_protocol::Rejection;

/// How far ahead of the device's "now" a signed `issued_at` may be: the
/// signer's clock and the device's may disagree by hours (a laptop in the
/// wrong time zone), never by days.
pub const MAX_ISSUED_AHEAD: SignedDuration = SignedDuration::from_hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedClock {
    floor: Timestamp,
}

impl TrustedClock {
    pub fn new(stored_floor: Option<Timestamp>) -> TrustedClock {
        TrustedClock {
            floor: stored_floor.unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }

    /// The trusted now for a system clock reading: never below the floor.
    pub fn now(&self, system: Timestamp) -> Timestamp {
        self.floor.max(system)
    }

    /// Refuses a signed document issued implausibly far in the future of
    /// `now(system)`.
    pub fn check_issued_at(
        &self,
        issued_at: Timestamp,
        system: Timestamp,
    ) -> Result<(), Rejection> {
        let now = self.now(system);
        if issued_at.duration_since(now) > MAX_ISSUED_AHEAD {
            return Err(Rejection::IssuedInFuture {
                issued_at: issued_at.to_string(),
                now: now.to_string(),
            });
        }
        Ok(())
    }

    /// A signed, accepted document vouches that its `issued_at` has passed.
    pub fn observe_signed(&mut self, issued_at: Timestamp) {
        self.floor = self.floor.max(issued_at);
    }

    /// The durable floor: the latest signed `issued_at` accepted.
    pub fn floor(&self) -> Timestamp {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn now_never_goes_below_the_floor() {
        let clock = TrustedClock::new(Some(t("2026-11-01T00:00:00Z")));
        // A Pi booting without RTC thinks it is 1970.
        assert_eq!(
            clock.now(t("1970-01-01T00:00:10Z")),
            t("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            clock.now(t("2026-11-02T00:00:00Z")),
            t("2026-11-02T00:00:00Z")
        );
        // Set back by an attacker below what was signed: ignored.
        assert_eq!(
            clock.now(t("2026-10-01T00:00:00Z")),
            t("2026-11-01T00:00:00Z")
        );
    }

    #[test]
    fn a_clock_set_forward_is_forgotten_once_set_right() {
        let mut clock = TrustedClock::new(Some(t("2026-12-01T00:00:00Z")));
        assert_eq!(
            clock.now(t("2100-01-01T00:00:00Z")),
            t("2100-01-01T00:00:00Z")
        );
        // Documents accepted meanwhile cannot carry 2100 into the floor:
        // they were signed in 2026.
        clock.observe_signed(t("2026-12-07T10:00:00Z"));
        assert_eq!(clock.floor(), t("2026-12-07T10:00:00Z"));
        assert_eq!(
            clock.now(t("2026-12-07T12:00:00Z")),
            t("2026-12-07T12:00:00Z")
        );
    }

    #[test]
    fn signed_issue_times_raise_the_floor() {
        let mut clock = TrustedClock::new(None);
        clock.observe_signed(t("2026-11-29T08:00:00Z"));
        assert_eq!(
            clock.now(t("1970-01-01T00:00:00Z")),
            t("2026-11-29T08:00:00Z")
        );
        clock.observe_signed(t("2026-01-01T00:00:00Z"));
        assert_eq!(clock.floor(), t("2026-11-29T08:00:00Z"));
    }

    #[test]
    fn documents_issued_far_ahead_are_refused() {
        let clock = TrustedClock::new(Some(t("2026-12-01T00:00:00Z")));
        let system = t("2026-12-07T12:00:00Z");
        assert!(
            clock
                .check_issued_at(t("2026-12-07T20:00:00Z"), system)
                .is_ok()
        );
        let refused = clock
            .check_issued_at(t("2100-01-01T00:00:00Z"), system)
            .unwrap_err();
        assert_eq!(refused.code(), "issued_in_future");
        // Measured from the floor when the system clock is behind it.
        assert!(
            clock
                .check_issued_at(t("2026-12-01T20:00:00Z"), t("1970-01-01T00:00:00Z"))
                .is_ok()
        );
    }
}

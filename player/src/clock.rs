//! Trusted time. A Raspberry Pi has no real-time clock: it may boot in
//! 1970, or an attacker on the network may set its clock back to make an
//! expired document look fresh. The device keeps a durable time floor, the
//! latest trustworthy time it has seen (its own clock, signed `issued_at`
//! of accepted documents), and "now" never goes below it.
//!
//! Pure: the caller reads the system clock and persists the floor.

use jiff::Timestamp;

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

    /// The trusted now for a system clock reading; raises the floor.
    pub fn now(&mut self, system: Timestamp) -> Timestamp {
        self.floor = self.floor.max(system);
        self.floor
    }

    /// A signed document vouches that its `issued_at` has passed.
    pub fn observe_signed(&mut self, issued_at: Timestamp) {
        self.floor = self.floor.max(issued_at);
    }

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
    fn now_never_goes_back() {
        let mut clock = TrustedClock::new(Some(t("2026-11-01T00:00:00Z")));
        // A Pi booting without RTC thinks it is 1970.
        assert_eq!(
            clock.now(t("1970-01-01T00:00:10Z")),
            t("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            clock.now(t("2026-11-02T00:00:00Z")),
            t("2026-11-02T00:00:00Z")
        );
        // Set back by an attacker: ignored.
        assert_eq!(
            clock.now(t("2026-10-01T00:00:00Z")),
            t("2026-11-02T00:00:00Z")
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
}

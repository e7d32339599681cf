//! What the device tells the world: the retained status, written both to
//! MQTT and atomically to `<data_dir>/status.json`, and the events stream
//! (rejections, downloads, playback failures). The types are the
//! protocol's ([`phare_protocol::report`]), which the operator tool reads.

use std::path::Path;
use std::time::{Duration, Instant};

pub use phare_protocol::report::{
    CacheIssue, CacheIssueKind, CacheStatus, Event, EventKind, ShortText,
};

/// How many rejection events a device reports per window: a hostile
/// broker can send thousands of bad documents a second, and each event
/// costs a durable outbox write and a status update.
pub struct RejectionBudget {
    window_start: Option<Instant>,
    reported: u32,
    suppressed: u64,
}

/// Whether a rejection is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Report it; `suppressed` rejections were counted but not reported
    /// since the last one reported.
    Report { suppressed: u64 },
    /// Only count it.
    Suppress,
}

impl RejectionBudget {
    pub const PER_WINDOW: u32 = 10;
    pub const WINDOW: Duration = Duration::from_secs(60);

    pub fn new() -> RejectionBudget {
        RejectionBudget {
            window_start: None,
            reported: 0,
            suppressed: 0,
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admission {
        let expired = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= Self::WINDOW);
        if expired {
            self.window_start = Some(now);
            self.reported = 0;
        }
        if self.reported == Self::PER_WINDOW {
            self.suppressed += 1;
            return Admission::Suppress;
        }
        self.reported += 1;
        Admission::Report {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }
}

impl Default for RejectionBudget {
    fn default() -> Self {
        RejectionBudget::new()
    }
}

/// Free space on the file system holding `path`.
pub fn free_bytes(path: &Path) -> u64 {
    fs4::available_space(path).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    #[test]
    fn rejections_past_the_budget_are_counted_then_summed_up() {
        let mut budget = RejectionBudget::new();
        let start = Instant::now();
        for _ in 0..RejectionBudget::PER_WINDOW {
            assert_eq!(budget.admit(start), Admission::Report { suppressed: 0 });
        }
        for _ in 0..5000 {
            assert_eq!(
                budget.admit(start + Duration::from_secs(30)),
                Admission::Suppress
            );
        }
        assert_eq!(
            budget.admit(start + RejectionBudget::WINDOW),
            Admission::Report { suppressed: 5000 }
        );
        assert_eq!(
            budget.admit(start + RejectionBudget::WINDOW),
            Admission::Report { suppressed: 0 }
        );
    }

    #[test]
    fn a_full_status_stays_far_below_the_packet_cap() {
        use phare_protocol::report::{RECENT_ERRORS, Status};
        let huge = "x".repeat(4 << 20);
        let error = Event::new(Timestamp::now(), EventKind::Rejected, huge.as_str())
            .with_reason("malformed")
            .with_subject(huge.as_str());
        let status = Status {
            errors: vec![error; RECENT_ERRORS],
            ..Status::default()
        };
        assert!(
            status.to_json().len() < 16 * 1024,
            "{}",
            status.to_json().len()
        );
    }
}

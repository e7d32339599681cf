//! The service manager's side of the player (ARCHITECTURE.md): READY once
//! the agent plays, STOPPING on shutdown, and the watchdog, pinged from
//! the agent's own loop so that a hung loop gets the player restarted
//! (`Type=notify`, `WatchdogSec=` in player/debian/phare-player.service).
//!
//! Everything here is a no-op when systemd did not ask for it
//! (`NOTIFY_SOCKET` or `WATCHDOG_USEC` unset): tests, the demo, a shell.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the player is up (it plays from cache from here on).
pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("playing")]);
}

/// Tells systemd the player is stopping on purpose.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The agent loop's proof of life: [`Heartbeat::tick`] resolves at half
/// the watchdog period, and the loop answers with [`Heartbeat::beat`].
/// Without a watchdog it never resolves.
pub struct Heartbeat {
    period: Option<Duration>,
    interval: Option<tokio::time::Interval>,
}

impl Heartbeat {
    /// Beats at half of `WATCHDOG_USEC`, as systemd recommends.
    pub fn from_env() -> Heartbeat {
        Heartbeat {
            period: sd_notify::watchdog_enabled().map(|timeout| timeout / 2),
            interval: None,
        }
    }

    /// Never beats.
    pub fn disabled() -> Heartbeat {
        Heartbeat {
            period: None,
            interval: None,
        }
    }

    /// The time between beats, if there is a watchdog.
    pub fn period(&self) -> Option<Duration> {
        self.period
    }

    /// Resolves when the next beat is due; never without a watchdog.
    pub async fn tick(&mut self) {
        let Some(period) = self.period else {
            return std::future::pending().await;
        };
        let interval = self.interval.get_or_insert_with(|| {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        interval.tick().await;
    }

    /// Pings the watchdog: call it from the loop that must keep turning.
    pub fn beat(&self) {
        if self.period.is_some() {
            notify(&[NotifyState::Watchdog]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beats_at_the_period_and_never_when_disabled() {
        let mut heartbeat = Heartbeat {
            period: Some(Duration::from_millis(50)),
            interval: None,
        };
        let start = tokio::time::Instant::now();
        heartbeat.tick().await; // at once
        heartbeat.tick().await;
        assert!(start.elapsed() >= Duration::from_millis(50));

        let mut disabled = Heartbeat::disabled();
        assert_eq!(disabled.period(), None);
        let waited = tokio::time::timeout(Duration::from_millis(100), disabled.tick()).await;
        assert!(waited.is_err());
    }
}

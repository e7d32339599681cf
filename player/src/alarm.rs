//! A wall-clock alarm for on-time switching: it fires at an absolute
//! instant of the system clock, and also the moment that clock is set (an
//! NTP sync after an offline boot, an operator's `date -s`), so the agent
//! re-plans at once instead of polling.
//!
//! Linux `timerfd` with `TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET` does
//! exactly this: the read fails with `ECANCELED` when the clock jumps.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use jiff::{SignedDuration, Timestamp};
use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

/// Why the alarm went off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// The instant it was set for has come.
    Due,
    /// The system clock was set: every plan based on it is stale.
    ClockSet,
}

pub struct Alarm {
    fd: AsyncFd<Timer>,
}

/// The timerfd, seen as the raw descriptor tokio registers.
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Alarm {
    pub fn new() -> std::io::Result<Alarm> {
        let timer = TimerFd::new(
            ClockId::CLOCK_REALTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: the AsyncFd owns the timer, so the descriptor stays open
        // and the same for as long as it is registered.
        let fd = unsafe { AsyncFd::register(Timer(timer)) }.map_err(std::io::Error::from)?;
        Ok(Alarm { fd })
    }

    /// Arms the alarm for `at` (replacing any earlier setting).
    pub fn set(&mut self, at: Timestamp) -> std::io::Result<()> {
        let since_epoch = at
            .duration_since(Timestamp::UNIX_EPOCH)
            .max(SignedDuration::from_nanos(1));
        let spec = TimeSpec::new(since_epoch.as_secs(), i64::from(since_epoch.subsec_nanos()));
        self.fd.get_ref().0.set(
            Expiration::OneShot(spec),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
        )?;
        Ok(())
    }

    /// Waits until the alarm rings. Cancel-safe: dropping the future loses
    /// nothing, the alarm stays armed.
    pub async fn ring(&mut self) -> std::io::Result<Ring> {
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match nix::unistd::read(ready.get_inner().0.as_fd(), &mut expirations) {
                Ok(_) => return Ok(Ring::Due),
                Err(Errno::ECANCELED) => return Ok(Ring::ClockSet),
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn rings_at_the_instant_set() {
        let mut alarm = Alarm::new().unwrap();
        let at = Timestamp::now() + SignedDuration::from_millis(200);
        alarm.set(at).unwrap();
        let ring = tokio::time::timeout(Duration::from_secs(30), alarm.ring())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ring, Ring::Due);
        assert!(Timestamp::now() >= at);
    }

    #[tokio::test]
    async fn an_instant_in_the_past_rings_at_once() {
        let mut alarm = Alarm::new().unwrap();
        alarm.set(Timestamp::UNIX_EPOCH).unwrap();
        let ring = tokio::time::timeout(Duration::from_secs(30), alarm.ring())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ring, Ring::Due);
    }
}

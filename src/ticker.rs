//! A periodic timer that wakes the process once per period.
//!
//! tokio's timer wheel wakes at the start of each wheel slot that holds a timer, to move it one
//! level down: a 15 s interval costs up to three wake-ups per tick (its slots are 4.1 s, 64 ms
//! and 1 ms wide). An idle daemon should wake only for its keepalives (SPEC §7), so on Linux
//! the keepalive ticks come from a `timerfd`: the kernel's own timer, one wake-up per tick.
//! Elsewhere, or if a `timerfd` cannot be had, a tokio interval does the same job.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

/// Ticks every period; the first tick completes at once. Ticks missed while the owner was busy
/// are not made up: one tick is due, then the schedule goes on.
pub struct Ticker {
    period: Duration,
    first: bool,
    #[cfg(target_os = "linux")]
    fd: Option<fd::TimerFd>,
    interval: Option<Interval>,
}

impl Ticker {
    /// A ticker with this period (at least a millisecond). Must be created within a tokio
    /// runtime.
    pub fn new(period: Duration) -> Ticker {
        let period = period.max(Duration::from_millis(1));
        Ticker {
            period,
            first: true,
            #[cfg(target_os = "linux")]
            fd: fd::TimerFd::periodic(period)
                .inspect_err(|e| tracing::debug!(error = %e, "no timerfd; using tokio's timer"))
                .ok(),
            interval: None,
        }
    }

    /// Waits for the next tick.
    pub async fn tick(&mut self) {
        if std::mem::take(&mut self.first) {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            match fd.expired().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "timerfd failed; using tokio's timer");
                    self.fd = None;
                }
            }
        }
        let period = self.period;
        let interval = self.interval.get_or_insert_with(|| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            i.set_missed_tick_behavior(MissedTickBehavior::Skip);
            i
        });
        interval.tick().await;
    }

    /// Whether the ticks come from the kernel's timer (one wake-up each).
    #[cfg(all(test, target_os = "linux"))]
    fn is_precise(&self) -> bool {
        self.fd.is_some()
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // one call: registering the descriptor with tokio (see `TimerFd::new`)
pub(crate) mod fd {
    //! A non-blocking `timerfd` registered with tokio.

    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{self, ClockId, Expiration, TimerFlags, TimerSetTimeFlags};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    /// nix's timer, lent to tokio by its raw descriptor.
    struct Raw(timerfd::TimerFd);

    impl AsRawFd for Raw {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    /// A `timerfd` whose expirations (and, if armed so, clock steps) make it readable.
    pub struct TimerFd {
        fd: AsyncFd<Raw>,
        /// Armed again after each expiry: the clock-step timer.
        rearm: bool,
    }

    impl TimerFd {
        fn new(clock: ClockId, rearm: bool) -> io::Result<TimerFd> {
            let fd =
                timerfd::TimerFd::new(clock, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)?;
            // SAFETY: `Raw` owns the timerfd, so its descriptor stays open and the same until the `AsyncFd` drops it.
            let fd = unsafe { AsyncFd::register_with_interest(Raw(fd), Interest::READABLE) }?;
            Ok(TimerFd { fd, rearm })
        }

        fn timer(&self) -> &timerfd::TimerFd {
            &self.fd.get_ref().0
        }

        /// Expires every `period` on the monotonic clock, first a period from now.
        pub fn periodic(period: Duration) -> io::Result<TimerFd> {
            let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, false)?;
            timer.timer().set(
                Expiration::Interval(TimeSpec::from_duration(period)),
                TimerSetTimeFlags::empty(),
            )?;
            Ok(timer)
        }

        /// Expires only when the wall clock is stepped — which includes a resume from suspend:
        /// the kernel's `timekeeping_resume` reports it to timerfds as a clock set (Linux ≥ 5.15
        /// through `timerfd_resume`, earlier through `clock_was_set`). It is armed at an
        /// absolute instant centuries away with `TFD_TIMER_CANCEL_ON_SET`.
        pub fn clock_steps() -> io::Result<TimerFd> {
            let timer = TimerFd::new(ClockId::CLOCK_REALTIME, true)?;
            timer.arm_far_away()?;
            Ok(timer)
        }

        fn arm_far_away(&self) -> io::Result<()> {
            // Year 2242: far, and below the kernel's limit (2262).
            const FAR_AWAY: i64 = 1 << 33;
            self.timer().set(
                Expiration::OneShot(TimeSpec::new(FAR_AWAY, 0)),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
            )?;
            Ok(())
        }

        /// Waits until the timer expired (or, for [`TimerFd::clock_steps`], the clock was
        /// stepped; the timer is then armed again).
        pub async fn expired(&self) -> io::Result<()> {
            loop {
                let mut ready = self.fd.readable().await?;
                // nix's `wait` returns Ok for an expiry and for a cancel (ECANCELED), and EAGAIN
                // (WouldBlock: readiness is cleared) when neither happened.
                match ready.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                    Ok(result) => {
                        result?;
                        if self.rearm {
                            self.arm_far_away()?;
                        }
                        return Ok(());
                    }
                    Err(_would_block) => continue,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn ticks_at_once_then_every_period() {
        let period = Duration::from_millis(30);
        let mut ticker = Ticker::new(period);
        #[cfg(target_os = "linux")]
        assert!(ticker.is_precise(), "a timerfd on Linux");
        let start = Instant::now();
        ticker.tick().await;
        assert!(start.elapsed() < period, "the first tick is immediate");
        for n in 1..=3 {
            ticker.tick().await;
            let elapsed = start.elapsed();
            assert!(
                elapsed >= period * n,
                "tick {n} came after {elapsed:?}, before {:?}",
                period * n
            );
        }
    }

    #[tokio::test]
    async fn a_busy_owner_gets_one_tick_not_a_burst() {
        let period = Duration::from_millis(20);
        let mut ticker = Ticker::new(period);
        ticker.tick().await;
        // Miss several periods (a blocking sleep: the runtime does not run meanwhile).
        std::thread::sleep(period * 5);
        let after_missed = Instant::now();
        // One tick is due at once, the next at the next period boundary, the third a whole
        // period after that. A replayed burst would make all three immediate.
        for _ in 0..3 {
            ticker.tick().await;
        }
        assert!(
            after_missed.elapsed() >= period,
            "missed ticks were replayed: three came within {:?}",
            after_missed.elapsed()
        );
    }
}

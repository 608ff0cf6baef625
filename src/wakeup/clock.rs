//! Suspend detection: the awake clock stops while the machine sleeps, the other one does not,
//! so a jump in their difference is time spent asleep.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Both clocks, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Stops during suspend (Linux `CLOCK_MONOTONIC`, macOS `CLOCK_UPTIME_RAW`).
    pub awake: Duration,
    /// Keeps counting during suspend (Linux `CLOCK_BOOTTIME`, macOS `CLOCK_MONOTONIC`).
    pub total: Duration,
}

/// A source of [`Reading`]s.
pub trait Clock: Send + 'static {
    /// Reads both clocks.
    fn read(&self) -> io::Result<Reading>;
}

/// The operating system's clocks.
pub struct SystemClock;

#[cfg(any(target_os = "linux", target_vendor = "apple"))]
impl Clock for SystemClock {
    fn read(&self) -> io::Result<Reading> {
        use nix::time::{ClockId, clock_gettime};
        #[cfg(target_os = "linux")]
        let (awake, total) = (ClockId::CLOCK_MONOTONIC, ClockId::CLOCK_BOOTTIME);
        #[cfg(target_vendor = "apple")]
        let (awake, total) = (
            ClockId::from_raw(nix::libc::CLOCK_UPTIME_RAW),
            ClockId::CLOCK_MONOTONIC,
        );
        let read = |id| {
            clock_gettime(id)
                .map(Duration::from)
                .map_err(io::Error::from)
        };
        Ok(Reading {
            awake: read(awake)?,
            total: read(total)?,
        })
    }
}

#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
impl Clock for SystemClock {
    fn read(&self) -> io::Result<Reading> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no clock that counts suspended time on this platform",
        ))
    }
}

/// A clock moved by hand: the seam through which tests simulate a suspend.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<Mutex<Reading>>);

impl ManualClock {
    /// Time passes while awake: both clocks move.
    pub fn advance(&self, by: Duration) {
        let mut r = self.lock();
        r.awake += by;
        r.total += by;
    }

    /// The machine sleeps for `slept`: only the total clock moves.
    pub fn suspend(&self, slept: Duration) {
        self.lock().total += slept;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn read(&self) -> io::Result<Reading> {
        Ok(*self.lock())
    }
}

/// Notices a suspend between two checks.
pub struct SuspendDetector {
    clock: Box<dyn Clock>,
    threshold: Duration,
    /// `total - awake` at the last check; `None` until a reading succeeded.
    asleep: Option<Duration>,
    /// Whether a failed reading was already logged.
    warned: bool,
}

impl SuspendDetector {
    /// A detector reporting suspends of at least `threshold`.
    pub fn new(clock: Box<dyn Clock>, threshold: Duration) -> SuspendDetector {
        let mut detector = SuspendDetector {
            clock,
            threshold,
            asleep: None,
            warned: false,
        };
        detector.check();
        detector
    }

    /// Reads the clocks; returns how long the machine slept since the last check, if at least
    /// the threshold.
    pub fn check(&mut self) -> Option<Duration> {
        let reading = match self.clock.read() {
            Ok(r) => r,
            Err(e) => {
                if !std::mem::replace(&mut self.warned, true) {
                    tracing::warn!(error = %e, "cannot read the clocks; suspend is not detected");
                }
                return None;
            }
        };
        let asleep = reading.total.saturating_sub(reading.awake);
        let before = self.asleep.replace(asleep)?;
        let slept = asleep.saturating_sub(before);
        (slept >= self.threshold).then_some(slept)
    }
}

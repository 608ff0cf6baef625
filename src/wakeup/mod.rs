//! Reasons to check every tunnel at once instead of waiting out keepalives and backoff: the
//! machine woke from sleep (SPEC §4: back "within a few seconds"), or its network changed.
//!
//! Nothing here polls: on Linux a resume is an event (a `timerfd` cancelled by the kernel when
//! the clock is stepped, which a resume counts as), confirmed by comparing the clocks; network
//! changes come from netlink. Elsewhere the clocks are compared every [`SUSPEND_CHECK`].
//!
//! The sources are seams: [`Sources::system`] reads the real clocks and kernel events; tests
//! drive [`watch`] with a [`Clock`] that jumps and channels of events.

mod clock;
#[cfg(target_os = "linux")]
mod netlink;

use std::fmt;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

pub use clock::{Clock, ManualClock, Reading, SuspendDetector, SystemClock};

/// Where the kernel cannot announce a resume, how often the clocks are compared. A wake-up is
/// noticed at most this long after the machine resumes: monotonic timers do not advance while
/// it sleeps.
pub const SUSPEND_CHECK: Duration = Duration::from_secs(5);

/// A jump of the sleeping clock against the awake one at least this large is a suspend.
pub const SUSPEND_THRESHOLD: Duration = Duration::from_secs(2);

/// Network events closer together than this are one change (an interface coming up sends
/// link, address and route messages in a burst).
pub const NETWORK_SETTLE: Duration = Duration::from_millis(250);

/// A burst of network events is reported at the latest this long after it began.
const NETWORK_SETTLE_MAX: Duration = Duration::from_secs(2);

/// Why every tunnel should be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// The machine was suspended for about this long.
    Resumed {
        /// Time spent asleep.
        slept: Duration,
    },
    /// An address, route or link changed.
    NetworkChanged,
}

impl fmt::Display for Wakeup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wakeup::Resumed { slept } => write!(f, "woke from sleep after {}s", slept.as_secs()),
            Wakeup::NetworkChanged => f.write_str("network changed"),
        }
    }
}

/// Where wake-ups come from.
pub struct Sources {
    /// Compared on every clock event to tell a suspend from a step of the wall clock.
    pub clock: Box<dyn Clock>,
    /// One message whenever the machine may have slept (the wall clock jumped, or a periodic
    /// check is due); `None` where there is no such source.
    pub clock_events: Option<mpsc::Receiver<()>>,
    /// One message per network event; `None` where there is no such source.
    pub network: Option<mpsc::Receiver<()>>,
}

impl Sources {
    /// The machine's clocks and, on Linux, its clock-step and netlink route events. A source
    /// that cannot be opened is logged and left out (or, for the clock, replaced by a check
    /// every [`SUSPEND_CHECK`]).
    pub fn system() -> Sources {
        Sources {
            clock: Box::new(SystemClock),
            clock_events: Some(clock_events()),
            network: network_events(),
        }
    }
}

#[cfg(target_os = "linux")]
fn clock_events() -> mpsc::Receiver<()> {
    let timer = match crate::ticker::fd::TimerFd::clock_steps() {
        Ok(timer) => timer,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch clock steps (timerfd); comparing the clocks every {}s", SUSPEND_CHECK.as_secs());
            return periodic_checks();
        }
    };
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            if let Err(e) = timer.expired().await {
                tracing::warn!(error = %e, "timerfd failed; suspend is no longer detected");
                return;
            }
            if !notify(&tx) {
                return;
            }
        }
    });
    rx
}

#[cfg(not(target_os = "linux"))]
fn clock_events() -> mpsc::Receiver<()> {
    periodic_checks()
}

/// A clock event every [`SUSPEND_CHECK`].
fn periodic_checks() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut ticker = crate::ticker::Ticker::new(SUSPEND_CHECK);
        ticker.tick().await; // the first tick is immediate
        loop {
            ticker.tick().await;
            if !notify(&tx) {
                return;
            }
        }
    });
    rx
}

/// Queues one event unless one is already pending (it would add nothing); false once the
/// receiver is gone.
fn notify(tx: &mpsc::Sender<()>) -> bool {
    tx.try_send(()).is_ok() || !tx.is_closed()
}

#[cfg(target_os = "linux")]
fn network_events() -> Option<mpsc::Receiver<()>> {
    match netlink::RouteEvents::open() {
        Ok(events) => Some(events.spawn()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch network changes (netlink); relying on keepalives");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn network_events() -> Option<mpsc::Receiver<()>> {
    None
}

/// Calls `on` for every wake-up, forever. The clocks are first read now, not when the future
/// is first polled. Cancel by dropping the future.
pub fn watch(sources: Sources, on: impl Fn(Wakeup)) -> impl Future<Output = ()> {
    let Sources {
        clock,
        clock_events,
        network,
    } = sources;
    let detector = SuspendDetector::new(clock, SUSPEND_THRESHOLD);
    watch_from(detector, clock_events, network, on)
}

async fn watch_from(
    mut detector: SuspendDetector,
    mut clock_events: Option<mpsc::Receiver<()>>,
    mut network: Option<mpsc::Receiver<()>>,
    on: impl Fn(Wakeup),
) {
    loop {
        tokio::select! {
            event = recv(&mut clock_events) => match event {
                Some(()) => {
                    if let Some(slept) = detector.check() {
                        on(Wakeup::Resumed { slept });
                    }
                }
                None => clock_events = None,
            },
            event = recv(&mut network) => match event {
                Some(()) => {
                    settle(network.as_mut()).await;
                    on(Wakeup::NetworkChanged);
                }
                None => network = None,
            },
        }
    }
}

/// The next event of a source; pending forever without one.
async fn recv(source: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match source {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Swallows the rest of a burst: returns once no event came for [`NETWORK_SETTLE`], or
/// [`NETWORK_SETTLE_MAX`] after it began.
async fn settle(network: Option<&mut mpsc::Receiver<()>>) {
    let Some(rx) = network else { return };
    let latest = Instant::now() + NETWORK_SETTLE_MAX;
    loop {
        let quiet = (Instant::now() + NETWORK_SETTLE).min(latest);
        match tokio::time::timeout_at(quiet, rx.recv()).await {
            Ok(Some(())) if Instant::now() < latest => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests;

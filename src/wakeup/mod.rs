//! Reasons to check every tunnel at once instead of waiting out keepalives and backoff: the
//! machine woke from sleep (SPEC §4: back "within a few seconds"), or its network changed.
//!
//! The sources are seams: [`Sources::system`] reads the real clocks and (on Linux) netlink;
//! tests drive [`watch`] with a [`Clock`] that jumps and a channel of network events.

mod clock;
#[cfg(target_os = "linux")]
mod netlink;

use std::fmt;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

pub use clock::{Clock, ManualClock, Reading, SuspendDetector, SystemClock};

/// How often the clocks are compared. A wake-up is noticed at most this long after the
/// machine resumes: monotonic timers do not advance while it sleeps.
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
    /// Compared every `check_every` to notice a suspend.
    pub clock: Box<dyn Clock>,
    /// How often to compare the clocks.
    pub check_every: Duration,
    /// One message per network event; `None` where there is no such source.
    pub network: Option<mpsc::Receiver<()>>,
}

impl Sources {
    /// The machine's clocks and, on Linux, its netlink route events. A netlink socket that
    /// cannot be opened is logged and left out: suspend detection still works.
    pub fn system() -> Sources {
        Sources {
            clock: Box::new(SystemClock),
            check_every: SUSPEND_CHECK,
            network: network_events(),
        }
    }
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

/// Calls `on` for every wake-up, until the network source (if any) closes and forever
/// otherwise. Cancel by dropping the future.
pub async fn watch(sources: Sources, on: impl Fn(Wakeup)) {
    let Sources {
        clock,
        check_every,
        mut network,
    } = sources;
    let mut detector = SuspendDetector::new(clock, SUSPEND_THRESHOLD);
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(slept) = detector.check() {
                    on(Wakeup::Resumed { slept });
                }
            }
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

/// The next network event; pending forever without a source.
async fn recv(network: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match network {
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

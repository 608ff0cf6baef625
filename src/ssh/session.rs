//! State shared between one SSH session's russh handler and the supervisor that owns the
//! session: the task scope its connections live in, the `-R` routing table, and why it ended.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Target;
use crate::error::TunnelError;
use crate::tunnel::pump::Counters;

/// How the relay names the listener a `forwarded-*` channel arrived on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteKey {
    /// A TCP port on the relay, as bound (the real port when the spec asked for 0).
    Port(u32),
    /// A Unix socket path on the relay.
    Path(String),
}

/// Where connections for one relay listener go, and the spec to name in logs.
#[derive(Debug, Clone)]
pub struct Route {
    /// The `-R` spec as configured.
    pub spec: String,
    /// The local target.
    pub target: Target,
}

/// Everything one SSH session's tasks share. Dropped with the session.
#[derive(Debug)]
pub struct SessionShared {
    /// Cancelled when the session ends (any way): every per-connection task selects on it,
    /// so a writer parked on an exhausted channel window cannot outlive its session.
    pub ended: CancellationToken,
    /// Per-connection tasks of this session.
    pub tasks: TaskTracker,
    /// `-R` routing: relay listener → local target.
    pub routes: RwLock<HashMap<RouteKey, Route>>,
    /// The tunnel's traffic counters.
    pub counters: Arc<Counters>,
    /// Set by the host-key check when it refuses the relay, so the handshake error can say why.
    pub host_key_error: Mutex<Option<TunnelError>>,
    /// Why the session ended, when russh told us (its `disconnected` callback is not guaranteed).
    pub end_reason: Mutex<Option<TunnelError>>,
    /// The relay's words for the latest refused channel opens (russh returns only the code).
    open_failures: Mutex<VecDeque<String>>,
    /// Woken when a refusal is noted.
    open_failure_noted: Notify,
}

/// How many refusal descriptions are kept for openers to pick up.
const OPEN_FAILURES_KEPT: usize = 16;

/// How long an opener waits for the relay's description after russh reported the refusal (the
/// handler hears of it right after, on the session task).
const OPEN_FAILURE_WAIT: Duration = Duration::from_millis(100);

impl SessionShared {
    /// A fresh scope for one session.
    pub fn new(counters: Arc<Counters>) -> Arc<Self> {
        Arc::new(SessionShared {
            ended: CancellationToken::new(),
            tasks: TaskTracker::new(),
            routes: RwLock::new(HashMap::new()),
            counters,
            host_key_error: Mutex::new(None),
            end_reason: Mutex::new(None),
            open_failures: Mutex::new(VecDeque::new()),
            open_failure_noted: Notify::new(),
        })
    }

    /// Looks up the route for a relay listener.
    pub fn route(&self, key: &RouteKey) -> Option<Route> {
        self.routes.read().ok()?.get(key).cloned()
    }

    /// Adds a route once the relay has confirmed the listener.
    pub fn add_route(&self, key: RouteKey, route: Route) {
        if let Ok(mut routes) = self.routes.write() {
            routes.insert(key, route);
        }
    }

    /// Records a reason in `slot` unless one is already there (the first reason is the cause).
    pub fn note(slot: &Mutex<Option<TunnelError>>, error: TunnelError) {
        if let Ok(mut slot) = slot.lock() {
            slot.get_or_insert(error);
        }
    }

    /// Records the relay's reason for refusing a channel, e.g. `connect failed: Connection refused`.
    pub fn note_open_failure(&self, reason: String) {
        if let Ok(mut kept) = self.open_failures.lock() {
            if kept.len() == OPEN_FAILURES_KEPT {
                kept.pop_front();
            }
            kept.push_back(reason);
        }
        self.open_failure_noted.notify_waiters();
    }

    /// Why a channel open failed, in the relay's words when it gave some. Concurrent refusals
    /// may hand each other's words out; they are usually the same words.
    pub async fn open_failure(&self, error: &russh::Error) -> String {
        if !matches!(error, russh::Error::ChannelOpenFailure(_)) {
            return error.to_string();
        }
        let take = || self.open_failures.lock().ok()?.pop_front();
        let noted = self.open_failure_noted.notified();
        if let Some(reason) = take() {
            return reason;
        }
        let _ = tokio::time::timeout(OPEN_FAILURE_WAIT, noted).await;
        take().unwrap_or_else(|| error.to_string())
    }

    /// Takes the recorded reason from `slot`.
    pub fn take(slot: &Mutex<Option<TunnelError>>) -> Option<TunnelError> {
        slot.lock().ok()?.take()
    }
}

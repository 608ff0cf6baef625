//! State shared between one SSH session's russh handler and the supervisor that owns the
//! session: the task scope its connections live in, the `-R` routing table, and why it ended.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;

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
    /// The relay's own words when it ended the session with a disconnect message.
    pub disconnect_message: Mutex<Option<String>>,
    /// The relay's description of the latest refused channel open, numbered so a waiter sees
    /// a new one (russh gives the error only the reason code; the text goes to the handler).
    pub open_failures: watch::Sender<(u64, String)>,
    /// Bytes read from the relay's socket: arriving data is proof of life while a keepalive
    /// answer waits behind it.
    pub received: AtomicU64,
    /// `-R` connections this session carries at once (the tunnel's `max_connections`): every
    /// user of the relay host can connect to a forwarded port there.
    pub remote_slots: Arc<tokio::sync::Semaphore>,
    /// A `-R` connection was refused for want of a slot and no connection has been let
    /// through since: the refusals of one flood are logged once.
    pub remote_full: std::sync::atomic::AtomicBool,
}

/// How long a refused opener waits for the relay's description, which russh hands to the
/// handler right after it wakes the opener.
const REASON_WAIT: Duration = Duration::from_millis(200);

impl SessionShared {
    /// A fresh scope for one session, with the default connection limit.
    pub fn new(counters: Arc<Counters>) -> Arc<Self> {
        Self::with_limit(counters, crate::config::MAX_CONNECTIONS)
    }

    /// A fresh scope for one session carrying at most `max_connections` `-R` connections.
    pub fn with_limit(counters: Arc<Counters>, max_connections: usize) -> Arc<Self> {
        Arc::new(SessionShared {
            ended: CancellationToken::new(),
            tasks: TaskTracker::new(),
            routes: RwLock::new(HashMap::new()),
            counters,
            host_key_error: Mutex::new(None),
            end_reason: Mutex::new(None),
            disconnect_message: Mutex::new(None),
            open_failures: watch::Sender::new((0, String::new())),
            received: AtomicU64::new(0),
            remote_slots: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            remote_full: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Records the relay's description of a refused channel open.
    pub fn note_open_failure(&self, description: &str) {
        self.open_failures.send_modify(|(seq, text)| {
            *seq += 1;
            description.clone_into(text);
        });
    }

    /// Why a channel open failed, in the relay's words when it gave some: `watcher` must be
    /// subscribed to [`SessionShared::open_failures`] before the open was sent. With several
    /// refusals at once, the description may be a concurrent one's (they are usually the same).
    pub async fn open_error(
        mut watcher: watch::Receiver<(u64, String)>,
        error: &russh::Error,
    ) -> String {
        if !matches!(error, russh::Error::ChannelOpenFailure(_)) {
            return error.to_string();
        }
        match tokio::time::timeout(REASON_WAIT, watcher.changed()).await {
            Ok(Ok(())) => {
                let description = watcher.borrow().1.clone();
                if description.is_empty() {
                    error.to_string()
                } else {
                    format!("{description} ({error})")
                }
            }
            _ => error.to_string(),
        }
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

    /// Takes the recorded reason from `slot`.
    pub fn take(slot: &Mutex<Option<TunnelError>>) -> Option<TunnelError> {
        slot.lock().ok()?.take()
    }
}

//! State shared between one SSH session's russh handler and the supervisor that owns the
//! session: the task scope its connections live in, the `-R` routing table, and why it ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

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
}

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

    /// Takes the recorded reason from `slot`.
    pub fn take(slot: &Mutex<Option<TunnelError>>) -> Option<TunnelError> {
        slot.lock().ok()?.take()
    }
}

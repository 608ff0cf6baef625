//! What a tunnel publishes about itself: its state machine position, its forwards, its last
//! error. The supervisor is the only writer (through a `watch` channel); readers never block it.

use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::TunnelError;

/// Where a tunnel is in its life (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelState {
    /// Disabled: no session, no listeners.
    Stopped,
    /// Dialling, handshaking, authenticating or setting up forwards.
    Connecting,
    /// Session established and every forward established.
    Up,
    /// Session established, but some forward is not (it is being retried on its own).
    Degraded,
    /// Waiting to retry after a failure.
    Backoff,
    /// Needs the user (auth rejected, host key mismatch); retried slowly or not at all.
    Failed,
}

impl ForwardState {
    /// The spelling used in logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardState::Pending => "pending",
            ForwardState::Up => "up",
            ForwardState::Error => "error",
        }
    }
}

impl TunnelState {
    /// The spelling used in logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelState::Stopped => "stopped",
            TunnelState::Connecting => "connecting",
            TunnelState::Up => "up",
            TunnelState::Degraded => "degraded",
            TunnelState::Backoff => "backoff",
            TunnelState::Failed => "failed",
        }
    }
}

/// Which way a forward goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardKind {
    /// `-L`: listens here, connects from the relay.
    Local,
    /// `-R`: listens on the relay, connects from here.
    Remote,
    /// `-D`: a SOCKS server here; each connection goes where its client asks, from the relay.
    Dynamic,
}

/// A forward's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardState {
    /// Not established yet (no session, or its set-up is in progress).
    Pending,
    /// Listening and able to carry connections.
    Up,
    /// Failed to set up; `error` says why; retried on its own.
    Error,
}

/// One forward in a status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardStatus {
    /// `local`, `remote` or `dynamic`.
    pub kind: ForwardKind,
    /// The spec as configured.
    pub spec: String,
    /// Its state.
    pub state: ForwardState,
    /// Why it is not established, when it is not.
    pub error: Option<String>,
    /// `-L` only: whether the far end answered with an SSH banner when probed at the start
    /// of the session (absent: not probed — `probe_peer` is off, or there is no session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
}

/// What a `-L` forward's far end said to a probe through the tunnel: for pairing, where the
/// partner's `-R` on the relay leads to their sshd, "is my partner there?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// Something answered with an SSH banner.
    Up,
    /// The relay could not connect to the target (the partner's `-R` is not there).
    NotListening,
    /// Something accepted the connection but sent no SSH banner in time.
    NoBanner,
}

impl Peer {
    /// The spelling used in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Peer::Up => "up",
            Peer::NotListening => "not listening",
            Peer::NoBanner => "no ssh banner",
        }
    }
}

/// What the supervisor publishes; readers add live counters to make a [`TunnelStatus`].
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Current state.
    pub state: TunnelState,
    /// When `state` last changed.
    pub since: SystemTime,
    /// Sessions established since the daemon started (a reconnect increments it).
    pub session: u64,
    /// Per-forward states, in config order (local first, then remote).
    pub forwards: Vec<ForwardStatus>,
    /// Reconnect attempt number while connecting/backing off (0 when up).
    pub attempt: u32,
    /// When the next attempt is due, while in `backoff` or `failed` with a retry planned.
    pub retry_at: Option<Instant>,
    /// The error that caused the last state change away from `up`.
    pub last_error: Option<TunnelError>,
    /// Last keepalive round trip of the current session.
    pub rtt: Option<std::time::Duration>,
    /// Per forward: its `error` says the relay could not open a connection's channel, which
    /// the next connection the relay does open disproves (see [`Reporter::channel_opened`]).
    open_failed: Vec<bool>,
}

/// A tunnel's status as reported to users (`status --json` shape, SPEC §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunnelStatus {
    /// Tunnel name.
    pub name: String,
    /// Current state.
    pub state: TunnelState,
    /// RFC 3339 time of the last state change.
    pub since: String,
    /// Sessions established since the daemon started.
    pub session: u64,
    /// Each forward and its own state.
    pub forwards: Vec<ForwardStatus>,
    /// Live forwarded connections.
    pub connections: u64,
    /// Bytes received from the relay side (toward local clients/targets).
    pub bytes_in: u64,
    /// Bytes sent toward the relay.
    pub bytes_out: u64,
    /// Last keepalive round trip, when measured.
    pub rtt_ms: Option<u64>,
    /// Attempt number while connecting or backing off.
    pub attempt: Option<u32>,
    /// Milliseconds until the next attempt.
    pub retry_in_ms: Option<u64>,
    /// Last error, or null.
    pub last_error: Option<TunnelError>,
}

/// The write side of a tunnel's published state. Clones go to forward tasks; every state
/// change is logged here once, with the tunnel name as a field.
#[derive(Debug, Clone)]
pub struct Reporter {
    name: String,
    tx: tokio::sync::watch::Sender<Published>,
    /// Shared by all tunnels of a daemon: woken on any state change (systemd STATUS=).
    changed: std::sync::Arc<tokio::sync::Notify>,
}

impl Reporter {
    /// A reporter for tunnel `name` whose forwards are `forwards`, starting `stopped`.
    pub fn new(
        name: &str,
        forwards: Vec<ForwardStatus>,
        changed: std::sync::Arc<tokio::sync::Notify>,
    ) -> Self {
        let initial = Published {
            state: TunnelState::Stopped,
            since: SystemTime::now(),
            session: 0,
            open_failed: vec![false; forwards.len()],
            forwards,
            attempt: 0,
            retry_at: None,
            last_error: None,
            rtt: None,
        };
        Reporter {
            name: name.to_owned(),
            tx: tokio::sync::watch::Sender::new(initial),
            changed,
        }
    }

    /// A receiver for readers of the state.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Published> {
        self.tx.subscribe()
    }

    /// The current state.
    pub fn current(&self) -> Published {
        self.tx.borrow().clone()
    }

    /// Moves to `state`. `Up`/`Degraded` are refined from the forwards' states.
    pub fn set_state(
        &self,
        state: TunnelState,
        attempt: u32,
        retry_at: Option<Instant>,
        error: Option<TunnelError>,
    ) {
        self.tx.send_if_modified(|p| {
            let before = (p.state, p.attempt, p.retry_at, p.last_error.clone());
            if error.is_some() {
                p.last_error = error.clone();
            }
            p.attempt = attempt;
            p.retry_at = retry_at;
            self.enter(p, state);
            before != (p.state, p.attempt, p.retry_at, p.last_error.clone())
        });
    }

    /// Records a keepalive round trip (not a state change: readers see it, no log line).
    pub fn set_rtt(&self, rtt: std::time::Duration) {
        self.tx.send_if_modified(|p| {
            let changed = p.rtt.map(|old| old.as_millis()) != Some(rtt.as_millis());
            p.rtt = Some(rtt);
            changed
        });
    }

    /// Counts a newly established session.
    pub fn session_established(&self) {
        self.tx.send_modify(|p| p.session += 1);
    }

    /// Sets forward `index`'s state (and error, `None` clearing it).
    pub fn set_forward(&self, index: usize, state: ForwardState, error: Option<String>) {
        self.update_forward(index, state, error, false);
    }

    /// Forward `index` is up, but the relay could not open a connection's channel: `message`
    /// says to what and why (for pairing, usually that the partner's end is not there), until
    /// a later connection's channel opens ([`Reporter::channel_opened`]).
    pub fn channel_open_failed(&self, index: usize, message: String) {
        self.update_forward(index, ForwardState::Up, Some(message), true);
    }

    /// A connection's channel opened on forward `index`: a message that the relay could not
    /// open one is no longer true, and is cleared. Other messages (a connection limit reached,
    /// a stalled connection cut) stay: they report events, not the far end's state.
    pub fn channel_opened(&self, index: usize) {
        self.tx.send_if_modified(|p| {
            let (Some(f), Some(open_failed)) = (p.forwards.get_mut(index), p.open_failed.get_mut(index)) else {
                return false;
            };
            if !std::mem::take(open_failed) {
                return false;
            }
            tracing::info!(tunnel = %self.name, forward = %f.spec, "the relay opens connections again");
            f.error = None;
            true
        });
    }

    /// Sets forward `index`'s state and error, `open_failed` saying whether the error is a
    /// refused channel (see [`Published::open_failed`]).
    fn update_forward(
        &self,
        index: usize,
        state: ForwardState,
        error: Option<String>,
        open_failed: bool,
    ) {
        self.tx.send_if_modified(|p| {
            if let Some(flag) = p.open_failed.get_mut(index) {
                *flag = open_failed; // not visible in status: no notification on its own
            }
            let Some(f) = p.forwards.get_mut(index) else { return false };
            if f.state == state && f.error == error {
                return false;
            }
            if f.state != state {
                match &error {
                    Some(e) => tracing::warn!(tunnel = %self.name, forward = %f.spec, state = state.as_str(), error = %e, "forward state"),
                    None => tracing::info!(tunnel = %self.name, forward = %f.spec, state = state.as_str(), "forward state"),
                }
            }
            f.state = state;
            f.error = error;
            let current = p.state;
            self.enter(p, current);
            true
        });
    }

    /// Records the probe result of forward `index` (`None` clears it: the session ended).
    pub fn set_peer(&self, index: usize, peer: Option<Peer>) {
        self.tx.send_if_modified(|p| {
            let Some(f) = p.forwards.get_mut(index) else { return false };
            if f.peer == peer {
                return false;
            }
            if let Some(peer) = peer {
                tracing::info!(tunnel = %self.name, forward = %f.spec, peer = peer.as_str(), "peer probed");
            }
            f.peer = peer;
            true
        });
    }

    /// Sets all forwards of `kind` to `state`, clearing errors (e.g. `pending` when a session ends).
    pub fn set_forwards(&self, kind: ForwardKind, state: ForwardState) {
        self.tx.send_modify(|p| {
            let forwards = p.forwards.iter_mut().zip(p.open_failed.iter_mut());
            for (f, open_failed) in forwards.filter(|(f, _)| f.kind == kind) {
                f.state = state;
                f.error = None;
                *open_failed = false;
            }
        });
    }

    fn enter(&self, p: &mut Published, state: TunnelState) {
        let state = match state {
            TunnelState::Up | TunnelState::Degraded => {
                if p.forwards.iter().all(|f| f.state == ForwardState::Up) {
                    TunnelState::Up
                } else {
                    TunnelState::Degraded
                }
            }
            other => other,
        };
        if state == p.state {
            return;
        }
        p.state = state;
        p.since = SystemTime::now();
        self.changed.notify_one();
        if !matches!(state, TunnelState::Up | TunnelState::Degraded) {
            p.rtt = None;
        }
        let error = p.last_error.as_ref();
        match state {
            TunnelState::Failed | TunnelState::Backoff => tracing::warn!(
                tunnel = %self.name,
                state = state.as_str(),
                attempt = p.attempt,
                retry_in_ms = p.retry_at.map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
                error_class = error.map(|e| e.class.as_str()),
                error = error.map(|e| e.message.as_str()),
                "tunnel state"
            ),
            _ => {
                tracing::info!(tunnel = %self.name, state = state.as_str(), session = p.session, "tunnel state")
            }
        }
    }
}

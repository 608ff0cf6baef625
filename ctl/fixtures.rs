//! Tunnel statuses as the daemon reports them, for the renderer's tests: one per kind of row.

use std::time::SystemTime;

use pairtun::error::{ErrorClass, TunnelError};
use pairtun::tunnel::{ForwardKind, ForwardState, ForwardStatus, TunnelState, TunnelStatus};

/// The clock the fixtures' `since` values are measured against.
pub fn now() -> SystemTime {
    humantime::parse_rfc3339("2026-11-23T10:03:12Z").unwrap_or(SystemTime::UNIX_EPOCH)
}

fn forward(
    kind: ForwardKind,
    spec: &str,
    state: ForwardState,
    error: Option<&str>,
) -> ForwardStatus {
    ForwardStatus {
        kind,
        spec: spec.to_owned(),
        state,
        error: error.map(str::to_owned),
        peer: None,
    }
}

fn base(name: &str, state: TunnelState, since: &str) -> TunnelStatus {
    TunnelStatus {
        name: name.to_owned(),
        state,
        since: since.to_owned(),
        session: 1,
        forwards: Vec::new(),
        connections: 0,
        bytes_in: 0,
        bytes_out: 0,
        rtt_ms: None,
        attempt: None,
        retry_in_ms: None,
        last_error: None,
    }
}

/// Up for 3m12s with one local forward carrying traffic.
pub fn up() -> TunnelStatus {
    TunnelStatus {
        forwards: vec![forward(
            ForwardKind::Local,
            "9999:localhost:1235",
            ForwardState::Up,
            None,
        )],
        connections: 1,
        bytes_in: 1_258_291,
        bytes_out: 812,
        rtt_ms: Some(12),
        ..base("jane", TunnelState::Up, "2026-11-23T10:00:00.000Z")
    }
}

/// Waiting 3.2 s before attempt 3 after a network error.
pub fn backoff() -> TunnelStatus {
    TunnelStatus {
        forwards: vec![forward(
            ForwardKind::Remote,
            "1235:localhost:22",
            ForwardState::Pending,
            None,
        )],
        attempt: Some(3),
        retry_in_ms: Some(3_200),
        last_error: Some(TunnelError::new(
            ErrorClass::Network,
            "saturn:22: connection refused",
        )),
        ..base("from-you", TunnelState::Backoff, "2026-11-23T10:03:00.000Z")
    }
}

/// Host key changed: failed, never retried.
pub fn failed() -> TunnelStatus {
    TunnelStatus {
        forwards: vec![forward(
            ForwardKind::Local,
            "8080:localhost:80",
            ForwardState::Pending,
            None,
        )],
        attempt: Some(1),
        last_error: Some(TunnelError::new(
            ErrorClass::HostKey,
            "host key for saturn changed",
        )),
        ..base("web", TunnelState::Failed, "2026-11-23T08:00:00.000Z")
    }
}

/// Connected, but the relay still holds the remote port of a dead session.
pub fn degraded() -> TunnelStatus {
    TunnelStatus {
        forwards: vec![
            forward(
                ForwardKind::Local,
                "9998:localhost:1235",
                ForwardState::Up,
                None,
            ),
            forward(
                ForwardKind::Remote,
                "1236:localhost:22",
                ForwardState::Error,
                Some("relay refused the port (a stale session holds it)"),
            ),
        ],
        connections: 2,
        bytes_in: 5120,
        bytes_out: 3 * 1024 * 1024 * 1024,
        rtt_ms: Some(250),
        last_error: Some(TunnelError::new(
            ErrorClass::Forward,
            "1 of 2 forwards not established",
        )),
        ..base("pair", TunnelState::Degraded, "2026-11-23T09:00:00.000Z")
    }
}

//! The control protocol between `pairtunctl` (or any script) and `pairtund`, on one screen.
//!
//! JSON lines over a Unix socket: every message is one JSON object on one `\n`-terminated line.
//! The daemon speaks first with a [`Greeting`]; then the client sends a [`Request`] and reads one
//! [`Response`] — or, for `watch`, `logs` and `up` with `wait`, a stream of them that ends with
//! an `ok` or `error` reply. Field names and spellings are pinned by the golden tests in
//! `protocol/tests.rs`: changing a wire string is a protocol change and bumps
//! [`PROTOCOL_VERSION`].
//!
//! Requests are strict (unknown fields are errors, so a typo is never silently ignored);
//! responses are lenient (a client ignores fields it does not know, so the daemon can add some).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tunnel::TunnelStatus;

/// Bumped on any incompatible change to the messages below.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line the daemon accepts, newline included; longer is `too-large`.
pub const MAX_FRAME: usize = 64 * 1024;

/// The longest reply line a client accepts. Larger than [`MAX_FRAME`] because a status report
/// grows with the number of tunnels, and the daemon is trusted more than its clients.
pub const MAX_REPLY_FRAME: usize = 16 * 1024 * 1024;

/// How long the daemon waits for a request line, and for a request's answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's first line on every connection: `{"hello":{"protocol":1,"daemon":"0.1.0"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// The versions the daemon speaks and runs.
    pub hello: Hello,
}

/// The body of a [`Greeting`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The daemon's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The daemon's package version.
    pub daemon: String,
}

impl Greeting {
    /// The greeting of this build.
    pub fn current() -> Self {
        Greeting {
            hello: Hello {
                protocol: PROTOCOL_VERSION,
                daemon: daemon_version().to_owned(),
            },
        }
    }
}

/// This build's package version, as reported in greetings, `pong` and `version`.
pub fn daemon_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// What a client asks, tagged by `op`: `{"op":"up","name":"jane","wait":false}`.
///
/// Optional fields may be left out; booleans default to `false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Is the daemon alive? Answered with `pong`.
    // Unit-like variants are written `{}` so that `deny_unknown_fields` covers them too: serde
    // ignores extra fields after the tag of a true unit variant.
    Ping {},
    /// Versions of the daemon and protocol. Answered with `version`.
    Version {},
    /// One tunnel's status, or every tunnel's. Answered with `status`.
    Status {
        /// The tunnel; all tunnels when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A `status` reply now and after every change, until the client sends a line or leaves.
    Watch {
        /// The tunnel; all tunnels when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Enable a tunnel and connect now, skipping any pending backoff.
    Up {
        /// The tunnel.
        name: String,
        /// Stream `status` replies until the tunnel is up (`ok`) or fails (`error`).
        #[serde(default)]
        wait: bool,
    },
    /// Close a tunnel and its listeners; it stays down until `up`.
    Down {
        /// The tunnel.
        name: String,
    },
    /// Drop a tunnel's session and reconnect now.
    Restart {
        /// The tunnel.
        name: String,
    },
    /// Add a tunnel and start it.
    Add {
        /// What to add.
        tunnel: TunnelSpec,
        /// Keep it out of the config file (it lives until the daemon exits).
        #[serde(default)]
        temporary: bool,
    },
    /// Stop a tunnel and remove it.
    Drop {
        /// The tunnel.
        name: String,
        /// Leave the config file alone.
        #[serde(default)]
        temporary: bool,
    },
    /// Re-read the config file and apply the difference. Answered with `reloaded`.
    Reload {},
    /// Recent daemon events as `log` replies, then `ok`; with `follow`, new events keep
    /// coming until the client sends a line or leaves.
    Logs {
        /// Only this tunnel's events; all when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Keep streaming new events.
        #[serde(default)]
        follow: bool,
    },
}

impl Request {
    /// The `op` tag, for logs and error messages.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Ping {} => "ping",
            Request::Version {} => "version",
            Request::Status { .. } => "status",
            Request::Watch { .. } => "watch",
            Request::Up { .. } => "up",
            Request::Down { .. } => "down",
            Request::Restart { .. } => "restart",
            Request::Add { .. } => "add",
            Request::Drop { .. } => "drop",
            Request::Reload {} => "reload",
            Request::Logs { .. } => "logs",
        }
    }

    /// Whether the answer is a stream of replies ending in `ok` or `error`, rather than one.
    pub fn is_stream(&self) -> bool {
        matches!(
            self,
            Request::Watch { .. } | Request::Logs { .. } | Request::Up { wait: true, .. }
        )
    }
}

/// A tunnel as `pairtunctl add` describes it; the daemon validates it like a config entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelSpec {
    /// Tunnel name.
    pub name: String,
    /// Relay host name or `~/.ssh/config` alias.
    pub host: String,
    /// SSH port; the config's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Login user; the config's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Private key files to try.
    #[serde(default)]
    pub identity_files: Vec<String>,
    /// `-L` specs.
    #[serde(default)]
    pub local: Vec<String>,
    /// `-R` specs.
    #[serde(default)]
    pub remote: Vec<String>,
    /// `-D` specs.
    #[serde(default)]
    pub dynamic: Vec<String>,
    /// ProxyJump, as OpenSSH spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<String>,
    /// Bring it up when the daemon starts (default `true`, as in the config file).
    #[serde(default = "default_autostart")]
    pub autostart: bool,
    /// `probe_peer` (default `false`, and then left out of the JSON).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe_peer: bool,
}

fn default_autostart() -> bool {
    true
}

/// What the daemon answers, tagged by `reply`: `{"reply":"ok"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Response {
    /// Answer to `ping`.
    Pong {
        /// The daemon's package version.
        daemon: String,
        /// The daemon's protocol version.
        protocol: u32,
    },
    /// Answer to `version`.
    Version {
        /// The daemon's package version.
        daemon: String,
        /// The daemon's protocol version.
        protocol: u32,
    },
    /// Tunnel status, in name order (the `status --json` shape, SPEC §3).
    Status {
        /// One entry per tunnel asked about.
        tunnels: Vec<TunnelStatus>,
    },
    /// The request was carried out; also ends a stream.
    Ok {
        /// Something worth telling the user, if anything.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Answer to `reload`: tunnel names by what happened to them.
    Reloaded {
        /// New tunnels, started.
        added: Vec<String>,
        /// Tunnels gone from the file, stopped.
        removed: Vec<String>,
        /// Tunnels whose settings changed, restarted.
        changed: Vec<String>,
        /// Tunnels left running untouched.
        unchanged: Vec<String>,
    },
    /// One daemon event, in a `logs` stream.
    Log {
        /// The event.
        event: LogEvent,
    },
    /// The request failed; also ends a stream.
    Error {
        /// What kind of failure, for scripts to branch on.
        kind: ErrorKind,
        /// One line for people.
        message: String,
    },
}

/// A daemon event kept for `logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    /// RFC 3339 time of the event.
    pub time: String,
    /// The tunnel it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// What happened.
    pub message: String,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// No tunnel has that name.
    UnknownTunnel,
    /// The line was not a valid request (the message names the problem).
    BadRequest,
    /// The config file, or a tunnel given to `add`, is invalid (`FILE:LINE:COL: message`).
    Config,
    /// The request line exceeded [`MAX_FRAME`]; the connection is closed.
    TooLarge,
    /// The request did not arrive, or was not answered, within [`REQUEST_TIMEOUT`].
    Timeout,
    /// The daemon has too many connections; try again.
    Busy,
    /// `up` with `wait`: the tunnel failed in a way it does not retry at once (a changed host
    /// key, rejected authentication, an unusable key); the message is its `last_error`.
    TunnelFailed,
    /// The daemon failed in a way that is not the caller's fault.
    Internal,
    /// A kind this client does not know (a newer daemon's): the message still says what
    /// happened. Never sent.
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// The wire spelling (`unknown-tunnel`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::UnknownTunnel => "unknown-tunnel",
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::Config => "config",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Busy => "busy",
            ErrorKind::TunnelFailed => "tunnel-failed",
            ErrorKind::Internal => "internal",
            ErrorKind::Other => "other",
        }
    }

    /// `pairtunctl`'s exit status for a request that failed this way. SPEC §3 gives every
    /// failed request 1 (usage errors, 2, and "not running", 3, are decided before a request).
    pub fn exit_code(self) -> u8 {
        1
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Response {
    /// An `error` reply.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Response::Error {
            kind,
            message: message.into(),
        }
    }

    /// An `ok` reply without a message.
    pub fn ok() -> Self {
        Response::Ok { message: None }
    }

    /// An `ok` reply with a message for the user.
    pub fn ok_with(message: impl Into<String>) -> Self {
        Response::Ok {
            message: Some(message.into()),
        }
    }

    /// Whether this reply ends a stream (`ok` or `error`).
    pub fn is_final(&self) -> bool {
        matches!(self, Response::Ok { .. } | Response::Error { .. })
    }
}

/// One message as a wire line, `\n` included.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Serializing these types cannot fail: every map key is a string and no Serialize impl
    // is hand-written. Should that change, the fallback is still a valid reply line.
    let mut line = serde_json::to_vec(message).unwrap_or_else(|e| {
        let fallback = Response::error(ErrorKind::Internal, format!("cannot encode reply: {e}"));
        serde_json::to_vec(&fallback).unwrap_or_default()
    });
    line.push(b'\n');
    line
}

/// Parses one line (with or without its `\n`) as a request; the error reads well as a
/// `bad-request` message.
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    // serde would also take `["ping"]` (tag first) for an internally tagged enum; the protocol
    // has one spelling, and this message is clearer than serde's for `[…]` or a bare word.
    if line.trim_ascii_start().first() != Some(&b'{') && !line.trim_ascii().is_empty() {
        return Err(r#"invalid request: expected a JSON object like {"op":"ping"}"#.to_owned());
    }
    serde_json::from_slice(line).map_err(|e| format!("invalid request: {e}"))
}

#[cfg(test)]
mod tests;

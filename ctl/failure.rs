//! Why a command did not succeed, and the exit status and one-line message each reason gets
//! (SPEC §3: 1 failed request, 2 usage, 3 daemon not running). Usage errors never get here:
//! clap reports them itself, with status 2, before anything is sent.

use std::io;
use std::path::{Path, PathBuf};

use pairtun::control::ClientError;
use pairtun::protocol::Response;

/// A command's failure.
#[derive(Debug)]
pub enum Failure {
    /// The daemon refused or failed the request, or it did not get done in time.
    Request(String),
    /// Nothing listens on the socket.
    NotRunning(PathBuf),
    /// Talking to the daemon failed (closed connection, timeout, protocol mismatch, …).
    Client(ClientError),
    /// Writing our output failed; a closed pipe (`pairtunctl logs | head`) is not an error.
    Output(io::Error),
}

impl Failure {
    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Request(_) => 1,
            Failure::NotRunning(_) => 3,
            Failure::Client(e) => e.exit_code(),
            Failure::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
            Failure::Output(_) => 1,
        }
    }

    /// What to print after `pairtunctl: `, if anything.
    pub fn message(&self) -> Option<String> {
        match self {
            Failure::Request(message) => Some(message.clone()),
            Failure::NotRunning(path) => Some(not_running(path)),
            Failure::Client(e) => Some(e.to_string()),
            Failure::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => None,
            Failure::Output(e) => Some(format!("cannot write output: {e}")),
        }
    }

    /// A reply that is not what the request is answered with: a daemon bug, or a newer
    /// daemon than this client knows.
    pub fn unexpected(response: &Response) -> Failure {
        Failure::Request(format!(
            "unexpected `{}` reply from pairtund",
            reply_tag(response)
        ))
    }
}

/// The `reply` tag of a response (`pong`, `status`, …), for messages.
pub fn reply_tag(response: &Response) -> String {
    serde_json::to_value(response)
        .ok()
        .and_then(|v| v.get("reply").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// "Not running" with the hint how to start it. A socket file that nobody answers on is left
/// by a crashed daemon; saying "no socket" then would send the user looking in the wrong place.
fn not_running(path: &Path) -> String {
    let why = if path.exists() {
        format!("nothing listens on {}", path.display())
    } else {
        format!("no socket at {}", path.display())
    };
    format!(
        "pairtund is not running ({why}); start it with `pairtund` or \
         `systemctl --user start pairtund`"
    )
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NotRunning(path) => Failure::NotRunning(path),
            e => Failure::Client(e),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

#[cfg(test)]
mod tests {
    use pairtun::protocol::ErrorKind;

    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(
            Failure::Request("no tunnel named `x`".into()).exit_code(),
            1
        );
        let missing = Failure::from(ClientError::NotRunning("/nonexistent/p.sock".into()));
        assert_eq!(missing.exit_code(), 3);
        assert_eq!(
            missing.message().as_deref(),
            Some(
                "pairtund is not running (no socket at /nonexistent/p.sock); start it with \
                 `pairtund` or `systemctl --user start pairtund`"
            )
        );
        let closed = ClientError::Closed(" before greeting");
        assert_eq!(Failure::from(closed).exit_code(), 1);
        let pipe = Failure::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!((pipe.exit_code(), pipe.message()), (0, None));
    }

    #[test]
    fn a_stale_socket_is_not_called_missing() {
        let dir = std::env::temp_dir();
        let message = Failure::NotRunning(dir.clone())
            .message()
            .unwrap_or_default();
        assert!(message.contains(&format!("nothing listens on {}", dir.display())));
    }

    #[test]
    fn unexpected_replies_are_named() {
        let pong = Response::Pong {
            daemon: "9".into(),
            protocol: 1,
        };
        assert_eq!(
            Failure::unexpected(&pong).message().as_deref(),
            Some("unexpected `pong` reply from pairtund")
        );
        assert_eq!(reply_tag(&Response::error(ErrorKind::Busy, "x")), "error");
    }
}

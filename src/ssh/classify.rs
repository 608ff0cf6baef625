//! Turning russh's errors into classified [`TunnelError`]s: the class decides whether the
//! supervisor backs off, fails, or never retries.

use std::io::ErrorKind;

use crate::error::{ErrorClass, TunnelError};

/// Classifies an error that ended (or prevented) a session.
pub fn session_error(e: &russh::Error) -> TunnelError {
    use russh::Error as E;
    let (class, message) = match e {
        E::KeepaliveTimeout => (
            ErrorClass::Network,
            "relay stopped answering keepalives".to_owned(),
        ),
        E::InactivityTimeout => (ErrorClass::Timeout, "session inactivity timeout".to_owned()),
        E::ConnectionTimeout => (ErrorClass::Timeout, "connection timeout".to_owned()),
        E::HUP | E::Disconnect => (
            ErrorClass::Network,
            "relay closed the connection".to_owned(),
        ),
        E::SendError | E::RecvError => (ErrorClass::Network, "session closed".to_owned()),
        E::IO(io) => (
            io_class(io.kind()),
            format!("connection to relay failed: {io}"),
        ),
        E::UnknownKey | E::WrongServerSig | E::KeyChanged { .. } => {
            (ErrorClass::HostKey, e.to_string())
        }
        E::NoAuthMethod | E::NotAuthenticated => (ErrorClass::Auth, e.to_string()),
        E::RequestDenied => (ErrorClass::Forward, "relay refused the request".to_owned()),
        E::Elapsed(_) => (ErrorClass::Timeout, e.to_string()),
        E::Join(_) => (ErrorClass::Network, format!("session task ended: {e}")),
        _ => (ErrorClass::Protocol, format!("SSH protocol error: {e}")),
    };
    TunnelError::new(class, message)
}

fn io_class(kind: ErrorKind) -> ErrorClass {
    match kind {
        ErrorKind::TimedOut => ErrorClass::Timeout,
        _ => ErrorClass::Network,
    }
}

//! Error classes: what kind of failure ended a connection attempt, and therefore what the
//! supervisor does next (SPEC §4 "Errors drive policy").

use std::fmt;

use serde::{Deserialize, Serialize};

/// The class of a tunnel failure, as shown in `last_error.class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The relay could not be reached or the connection broke: back off and retry.
    Network,
    /// A step did not finish within its deadline (the message names the phase): back off.
    Timeout,
    /// The relay rejected every credential: `failed`, retried only at the maximum interval.
    Auth,
    /// The relay's host key is unknown (strict policy) or changed: `failed`, never retried.
    HostKey,
    /// A forward was refused or cannot be set up (port busy, relay refused).
    Forward,
    /// The tunnel's configuration cannot work (e.g. an identity file that does not exist).
    Config,
    /// The relay spoke something we did not expect.
    Protocol,
}

impl ErrorClass {
    /// The wire and log spelling (`host-key`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Network => "network",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Auth => "auth",
            ErrorClass::HostKey => "host-key",
            ErrorClass::Forward => "forward",
            ErrorClass::Config => "config",
            ErrorClass::Protocol => "protocol",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure: the class decides policy, the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{class}: {message}")]
pub struct TunnelError {
    /// What kind of failure this is.
    pub class: ErrorClass,
    /// One line saying what happened, naming the phase, file or port involved.
    pub message: String,
}

impl TunnelError {
    /// A failure of `class` described by `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        TunnelError {
            class,
            message: message.into(),
        }
    }

    /// The same error, its message prefixed with where it happened.
    pub fn context(self, what: &str) -> Self {
        TunnelError {
            class: self.class,
            message: format!("{what}: {}", self.message),
        }
    }
}

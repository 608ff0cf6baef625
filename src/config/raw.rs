//! The config file as written: serde types that mirror the TOML schema (SPEC §2) and nothing
//! more. Every field is optional and spanned so that validation, not serde, decides what is
//! missing or wrong and can point at the exact place. `deny_unknown_fields` everywhere turns a
//! typo into an error that names the key and lists the expected ones.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Visitor};
use toml::Spanned;

use super::model::HostKeyPolicy;

/// A spanned string, the common case.
pub(crate) type SpStr = Spanned<String>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub defaults: Option<RawDefaults>,
    /// Keyed by the name as written; the key's span is where a bad name is reported.
    #[serde(default)]
    pub tunnels: BTreeMap<SpStr, Spanned<RawTunnel>>,
}

/// `[defaults]`: the shared settings plus daemon-wide `shutdown_grace`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of default settings")]
pub(crate) struct RawDefaults {
    pub user: Option<SpStr>,
    pub port: Option<Spanned<i64>>,
    pub identity_files: Option<Vec<SpStr>>,
    pub keepalive_interval: Option<Spanned<DurationText>>,
    pub keepalive_count: Option<Spanned<i64>>,
    pub connect_timeout: Option<Spanned<DurationText>>,
    pub connection_hold: Option<Spanned<DurationText>>,
    pub max_connections: Option<Spanned<i64>>,
    pub backoff: Option<RawBackoff>,
    pub host_key_policy: Option<HostKeyPolicy>,
    pub known_hosts: Option<SpStr>,
    pub agent_socket: Option<SpStr>,
    pub ciphers: Option<Spanned<Vec<SpStr>>>,
    pub window_size: Option<Spanned<i64>>,
    pub shutdown_grace: Option<Spanned<DurationText>>,
    /// The OpenSSH client config to honour; `""` = none.
    pub ssh_config: Option<SpStr>,
}

/// `[tunnels.NAME]`: the shared settings as overrides, plus what only a tunnel has.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of tunnel settings")]
pub(crate) struct RawTunnel {
    pub host: Option<SpStr>,
    pub user: Option<SpStr>,
    pub port: Option<Spanned<i64>>,
    pub identity_files: Option<Vec<SpStr>>,
    #[serde(default)]
    pub local: Vec<SpStr>,
    #[serde(default)]
    pub remote: Vec<SpStr>,
    #[serde(default)]
    pub dynamic: Vec<SpStr>,
    pub jump: Option<SpStr>,
    pub autostart: Option<bool>,
    pub probe_peer: Option<bool>,
    pub keepalive_interval: Option<Spanned<DurationText>>,
    pub keepalive_count: Option<Spanned<i64>>,
    pub connect_timeout: Option<Spanned<DurationText>>,
    pub connection_hold: Option<Spanned<DurationText>>,
    pub max_connections: Option<Spanned<i64>>,
    pub backoff: Option<RawBackoff>,
    pub host_key_policy: Option<HostKeyPolicy>,
    pub known_hosts: Option<SpStr>,
    pub agent_socket: Option<SpStr>,
    pub ciphers: Option<Spanned<Vec<SpStr>>>,
    pub window_size: Option<Spanned<i64>>,
}

/// `backoff = { .. }`; any subset of the keys, the rest inherited field by field.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table like { initial = \"1s\", max = \"60s\" }"
)]
pub(crate) struct RawBackoff {
    pub initial: Option<Spanned<DurationText>>,
    pub max: Option<Spanned<DurationText>>,
    pub multiplier: Option<Spanned<f64>>,
    pub jitter: Option<Spanned<f64>>,
}

/// The settings `[defaults]` and a tunnel share, borrowed from either, so one function
/// validates both.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Shared<'a> {
    pub user: Option<&'a SpStr>,
    pub port: Option<&'a Spanned<i64>>,
    pub identity_files: Option<&'a [SpStr]>,
    pub keepalive_interval: Option<&'a Spanned<DurationText>>,
    pub keepalive_count: Option<&'a Spanned<i64>>,
    pub connect_timeout: Option<&'a Spanned<DurationText>>,
    pub connection_hold: Option<&'a Spanned<DurationText>>,
    pub max_connections: Option<&'a Spanned<i64>>,
    pub backoff: Option<&'a RawBackoff>,
    pub host_key_policy: Option<HostKeyPolicy>,
    pub known_hosts: Option<&'a SpStr>,
    pub agent_socket: Option<&'a SpStr>,
    pub ciphers: Option<&'a Spanned<Vec<SpStr>>>,
    pub window_size: Option<&'a Spanned<i64>>,
}

impl RawDefaults {
    pub(crate) fn shared(&self) -> Shared<'_> {
        Shared {
            user: self.user.as_ref(),
            port: self.port.as_ref(),
            identity_files: self.identity_files.as_deref(),
            keepalive_interval: self.keepalive_interval.as_ref(),
            keepalive_count: self.keepalive_count.as_ref(),
            connect_timeout: self.connect_timeout.as_ref(),
            connection_hold: self.connection_hold.as_ref(),
            max_connections: self.max_connections.as_ref(),
            backoff: self.backoff.as_ref(),
            host_key_policy: self.host_key_policy,
            known_hosts: self.known_hosts.as_ref(),
            agent_socket: self.agent_socket.as_ref(),
            ciphers: self.ciphers.as_ref(),
            window_size: self.window_size.as_ref(),
        }
    }
}

impl RawTunnel {
    pub(crate) fn shared(&self) -> Shared<'_> {
        Shared {
            user: self.user.as_ref(),
            port: self.port.as_ref(),
            identity_files: self.identity_files.as_deref(),
            keepalive_interval: self.keepalive_interval.as_ref(),
            keepalive_count: self.keepalive_count.as_ref(),
            connect_timeout: self.connect_timeout.as_ref(),
            connection_hold: self.connection_hold.as_ref(),
            max_connections: self.max_connections.as_ref(),
            backoff: self.backoff.as_ref(),
            host_key_policy: self.host_key_policy,
            known_hosts: self.known_hosts.as_ref(),
            agent_socket: self.agent_socket.as_ref(),
            ciphers: self.ciphers.as_ref(),
            window_size: self.window_size.as_ref(),
        }
    }
}

/// A duration as written (`"15s"`); parsed during validation, where the key name is known.
/// Its own type only so a non-string says "expected a duration like \"15s\"".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string like \"15s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

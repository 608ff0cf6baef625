//! The settings `[defaults]` and tunnels share. Each value is validated where it is written
//! (so the error points there), then merged key by key: the tunnel's own value, then
//! `~/.ssh/config` for its host, then `[defaults]`, then the built-in default below.

use std::path::PathBuf;
use std::time::Duration;

use super::env::Env;
use super::error::Fault;
use super::model::{
    AgentSource, BackoffConfig, Cipher, HostKeyPolicy, Identities, Timing, Transport,
};
use super::ssh_config::HostEntry;
use toml::Spanned;

use super::raw::{DurationText, Shared};
use super::values::{
    agent, ciphers, jitter, keepalive_count, max_connections, multiplier, non_empty, path,
    positive_duration, ssh_port, window_size,
};

const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_COUNT: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Long enough to ride out a typical reconnect, short enough that a client gives up on a
/// relay that is really gone instead of hanging.
const CONNECTION_HOLD: Duration = Duration::from_secs(30);
/// Connections a forward (`-L`, `-D`) or a session's `-R` forwards carry at once unless
/// `max_connections` says otherwise: far more than a pairing session opens, few enough that a
/// flood cannot take every file descriptor the daemon has.
pub const MAX_CONNECTIONS: usize = 1024;
const BACKOFF: BackoffConfig = BackoffConfig {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
    multiplier: 2.0,
    jitter: 0.2,
};
const SSH_PORT: u16 = 22;
/// OpenSSH's default identity files, in its order.
const DEFAULT_IDENTITIES: [&str; 3] = [".ssh/id_ed25519", ".ssh/id_ecdsa", ".ssh/id_rsa"];

/// A validated value and the offset it was written at, for checks that compare two values.
#[derive(Debug, Clone, Copy)]
struct At<T> {
    value: T,
    at: usize,
}

/// One section's settings, validated; `None` = not set there.
#[derive(Debug, Default, Clone)]
pub(crate) struct Settings {
    user: Option<String>,
    port: Option<u16>,
    identity_files: Option<Vec<PathBuf>>,
    keepalive_interval: Option<Duration>,
    keepalive_count: Option<u32>,
    connect_timeout: Option<Duration>,
    connection_hold: Option<Duration>,
    max_connections: Option<usize>,
    backoff_initial: Option<At<Duration>>,
    backoff_max: Option<At<Duration>>,
    backoff_multiplier: Option<f64>,
    backoff_jitter: Option<f64>,
    host_key_policy: Option<HostKeyPolicy>,
    known_hosts: Option<PathBuf>,
    agent: Option<AgentSource>,
    ciphers: Option<Vec<Cipher>>,
    window_size: Option<u32>,
}

/// A positive duration and where it was written, for the `max >= initial` check.
fn duration_at(
    d: Option<&Spanned<DurationText>>,
    key: &str,
) -> Result<Option<At<Duration>>, Fault> {
    d.map(|d| {
        positive_duration(d, key).map(|value| At {
            value,
            at: d.span().start,
        })
    })
    .transpose()
}

/// Everything a tunnel takes from [`Settings`], with defaults applied.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub user: String,
    pub port: u16,
    pub identities: Identities,
    pub agent: AgentSource,
    pub timing: Timing,
    pub max_connections: usize,
    pub host_key_policy: HostKeyPolicy,
    pub known_hosts: PathBuf,
    pub transport: Transport,
}

impl Settings {
    /// Validates every value that is set in one section.
    pub(crate) fn from_raw(raw: Shared<'_>, env: &Env) -> Result<Settings, Fault> {
        let backoff = raw.backoff;
        Ok(Settings {
            user: raw.user.map(|u| non_empty(u, "user")).transpose()?,
            port: raw.port.map(ssh_port).transpose()?,
            identity_files: raw
                .identity_files
                .map(|files| {
                    files
                        .iter()
                        .map(|f| path(f, "identity_files", env))
                        .collect()
                })
                .transpose()?,
            keepalive_interval: raw
                .keepalive_interval
                .map(|d| positive_duration(d, "keepalive_interval"))
                .transpose()?,
            keepalive_count: raw.keepalive_count.map(keepalive_count).transpose()?,
            connect_timeout: raw
                .connect_timeout
                .map(|d| positive_duration(d, "connect_timeout"))
                .transpose()?,
            connection_hold: raw
                .connection_hold
                .map(|d| positive_duration(d, "connection_hold"))
                .transpose()?,
            max_connections: raw.max_connections.map(max_connections).transpose()?,
            backoff_initial: duration_at(
                backoff.and_then(|b| b.initial.as_ref()),
                "backoff initial",
            )?,
            backoff_max: duration_at(backoff.and_then(|b| b.max.as_ref()), "backoff max")?,
            backoff_multiplier: backoff
                .and_then(|b| b.multiplier.as_ref())
                .map(multiplier)
                .transpose()?,
            backoff_jitter: backoff
                .and_then(|b| b.jitter.as_ref())
                .map(jitter)
                .transpose()?,
            host_key_policy: raw.host_key_policy,
            known_hosts: raw
                .known_hosts
                .map(|p| path(p, "known_hosts", env))
                .transpose()?,
            agent: raw.agent_socket.map(|a| agent(a, env)).transpose()?,
            ciphers: raw.ciphers.map(ciphers).transpose()?,
            window_size: raw.window_size.map(window_size).transpose()?,
        })
    }

    /// What `~/.ssh/config` says for a host, as a section of its own (between a tunnel's keys
    /// and `[defaults]` in precedence).
    pub(crate) fn from_ssh(entry: &HostEntry) -> Settings {
        Settings {
            user: entry.user.clone(),
            port: entry.port,
            identity_files: entry.identity_files.clone(),
            ..Settings::default()
        }
    }

    /// The user set in this section, if any.
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Key by key: `self` where set, else `fallback`.
    pub(crate) fn or(self, fallback: &Settings) -> Settings {
        let f = fallback.clone();
        Settings {
            user: self.user.or(f.user),
            port: self.port.or(f.port),
            identity_files: self.identity_files.or(f.identity_files),
            keepalive_interval: self.keepalive_interval.or(f.keepalive_interval),
            keepalive_count: self.keepalive_count.or(f.keepalive_count),
            connect_timeout: self.connect_timeout.or(f.connect_timeout),
            connection_hold: self.connection_hold.or(f.connection_hold),
            max_connections: self.max_connections.or(f.max_connections),
            backoff_initial: self.backoff_initial.or(f.backoff_initial),
            backoff_max: self.backoff_max.or(f.backoff_max),
            backoff_multiplier: self.backoff_multiplier.or(f.backoff_multiplier),
            backoff_jitter: self.backoff_jitter.or(f.backoff_jitter),
            host_key_policy: self.host_key_policy.or(f.host_key_policy),
            known_hosts: self.known_hosts.or(f.known_hosts),
            agent: self.agent.or(f.agent),
            ciphers: self.ciphers.or(f.ciphers),
            window_size: self.window_size.or(f.window_size),
        }
    }

    /// Timing with built-in defaults; `max >= initial` is checked only here, after merging,
    /// because the two may come from different sections.
    pub(crate) fn timing(&self) -> Result<Timing, Fault> {
        let initial = self.backoff_initial.map_or(BACKOFF.initial, |i| i.value);
        let max = self.backoff_max.map_or(BACKOFF.max, |m| m.value);
        if max < initial {
            // Built-ins are consistent, so at least one of the two was written somewhere.
            let at = self
                .backoff_max
                .or(self.backoff_initial)
                .map_or(0, |v| v.at);
            return Err(Fault::new(
                at,
                format!("backoff max ({max:?}) must be at least backoff initial ({initial:?})"),
            ));
        }
        Ok(Timing {
            keepalive_interval: self.keepalive_interval.unwrap_or(KEEPALIVE_INTERVAL),
            keepalive_count: self.keepalive_count.unwrap_or(KEEPALIVE_COUNT),
            connect_timeout: self.connect_timeout.unwrap_or(CONNECT_TIMEOUT),
            connection_hold: self.connection_hold.unwrap_or(CONNECTION_HOLD),
            backoff: BackoffConfig {
                initial,
                max,
                multiplier: self.backoff_multiplier.unwrap_or(BACKOFF.multiplier),
                jitter: self.backoff_jitter.unwrap_or(BACKOFF.jitter),
            },
        })
    }

    /// Applies built-in defaults; `header` is where errors about a missing value point.
    pub(crate) fn resolve(&self, env: &Env, header: usize) -> Result<Resolved, Fault> {
        let user = match &self.user {
            Some(user) => user.clone(),
            None if !env.user.is_empty() => env.user.clone(),
            None => {
                return Err(Fault::new(
                    header,
                    "no `user` set and the local user name is unknown",
                ));
            }
        };
        let identities = match &self.identity_files {
            Some(files) => Identities::Configured(files.clone()),
            // Without a home directory there are no default files to try; the agent may still work.
            None => Identities::Defaults(
                DEFAULT_IDENTITIES
                    .iter()
                    .filter_map(|rel| env.home_join(rel).ok())
                    .collect(),
            ),
        };
        let known_hosts = match &self.known_hosts {
            Some(path) => path.clone(),
            None => env
                .home_join(".ssh/known_hosts")
                .map_err(|e| Fault::new(header, format!("default known_hosts: {e}")))?,
        };
        Ok(Resolved {
            user,
            port: self.port.unwrap_or(SSH_PORT),
            identities,
            agent: self.agent.clone().unwrap_or(AgentSource::Env),
            timing: self.timing()?,
            max_connections: self.max_connections.unwrap_or(MAX_CONNECTIONS),
            host_key_policy: self.host_key_policy.unwrap_or(HostKeyPolicy::Strict),
            known_hosts,
            transport: Transport {
                ciphers: self.ciphers.clone(),
                window_size: self.window_size.unwrap_or(Transport::DEFAULT_WINDOW_SIZE),
            },
        })
    }
}

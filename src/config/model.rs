//! Validated configuration: the types the daemon runs on. Every value here has been checked
//! (ports in range, durations positive, names well-formed), so nothing downstream re-validates.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole, validated configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (`None` when built in memory).
    pub source: Option<PathBuf>,
    /// How long live forwarded connections may run on at shutdown (`[defaults] shutdown_grace`).
    pub shutdown_grace: Duration,
    /// Tunnels by name, in name order.
    pub tunnels: BTreeMap<TunnelName, TunnelConfig>,
    /// The OpenSSH client config tunnels are resolved against (`None`: none).
    pub ssh_config: Option<PathBuf>,
    /// What could not be honoured in the ssh config (each names file and line): logged by the
    /// daemon at every load, shown by `pairtunctl doctor`.
    pub warnings: Vec<String>,
}

impl Config {
    /// `[defaults] shutdown_grace` when not set (SPEC §4).
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

    /// A configuration with no tunnels and default daemon settings: what a missing file means.
    pub fn empty() -> Config {
        Config {
            source: None,
            shutdown_grace: Config::DEFAULT_SHUTDOWN_GRACE,
            tunnels: BTreeMap::new(),
            ssh_config: None,
            warnings: Vec::new(),
        }
    }
}

/// A tunnel's name: 1–64 characters from `[A-Za-z0-9_.-]`, not starting with `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TunnelName(String);

impl TunnelName {
    /// Checks `name` against the rules above; the error says which rule it broke.
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() || name.len() > 64 {
            return Err(format!(
                "tunnel name {name:?} must be 1 to 64 characters long"
            ));
        }
        if name.starts_with(['-', '.']) {
            return Err(format!(
                "tunnel name {name:?} must not start with '-' or '.'"
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(format!(
                "tunnel name {name:?} contains {c:?}; use letters, digits, '_', '.' and '-'"
            ));
        }
        Ok(TunnelName(name.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TunnelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One tunnel: an SSH session to `host` carrying its forwards.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelConfig {
    /// The tunnel's name (the key under `[tunnels]`).
    pub name: TunnelName,
    /// Host name or address of the relay: the `host` key, or the `HostName` the ssh config
    /// gives for it.
    pub host: String,
    /// SSH port of the relay.
    pub port: u16,
    /// Login user on the relay.
    pub user: String,
    /// Private keys to try after the agent, in order.
    pub identities: Identities,
    /// Where to find ssh-agent.
    pub agent: AgentSource,
    /// `-L` forwards.
    pub local: Vec<LocalForward>,
    /// `-R` forwards.
    pub remote: Vec<RemoteForward>,
    /// `-D` forwards (SOCKS servers on this machine).
    pub dynamic: Vec<DynamicForward>,
    /// ProxyJump hops, outermost first (empty: connect directly).
    pub jump: Vec<JumpHost>,
    /// `IdentitiesOnly` from the ssh config: offer only the identity files, no other agent keys.
    pub identities_only: bool,
    /// Bring the tunnel up when the daemon starts.
    pub autostart: bool,
    /// `probe_peer`: at each session start, open one channel to every TCP `-L` target, read
    /// up to 4 bytes and close it, so status can say whether a pairing partner's sshd is there
    /// (`peer: up / not listening / no ssh banner`). Off by default: for any other target the
    /// probe is a real connection the server sees (it can occupy a one-client server, and
    /// it is logged as an incomplete connection on every reconnect).
    pub probe_peer: bool,
    /// Keepalive, timeout and backoff settings.
    pub timing: Timing,
    /// Connections each `-L` forward runs at once; more are closed as they arrive.
    pub max_connections: usize,
    /// What to do with host keys not yet in `known_hosts`.
    pub host_key_policy: HostKeyPolicy,
    /// The known_hosts file (tilde-expanded).
    pub known_hosts: PathBuf,
    /// Cipher preference and channel window.
    pub transport: Transport,
}

/// A cipher russh implements, as named in SSH (`aes128-gcm@openssh.com`).
pub type Cipher = russh::cipher::Name;

/// How the SSH connection itself is tuned: `ciphers` and `window_size`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    /// Ciphers to offer, most preferred first; `None` = the built-in order.
    pub ciphers: Option<Vec<Cipher>>,
    /// How many bytes the relay may send on one forwarded connection before pairtund has
    /// acknowledged them: caps what one connection receives at `window_size / RTT`.
    pub window_size: u32,
}

impl Transport {
    /// 4 MiB, twice OpenSSH's 2 MiB: russh re-opens the window only when half of it is used,
    /// so this matches ssh's download rate over a 50 ms path, where 2 MiB gave half of it.
    /// Larger windows help long paths more but slowed loopback downloads 2-3x against sshd
    /// (BENCHMARKS.md). The window costs no memory of its own: pump.rs drains every channel
    /// into its per-connection buffer whatever the window.
    pub const DEFAULT_WINDOW_SIZE: u32 = 4 * 1024 * 1024;
    /// Smallest `window_size` accepted: one full SSH packet.
    pub const MIN_WINDOW_SIZE: u32 = 64 * 1024;
    /// Largest `window_size` accepted (the SSH wire limit is 4 GiB).
    pub const MAX_WINDOW_SIZE: u32 = 1024 * 1024 * 1024;
}

/// Which private key files to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identities {
    /// `identity_files` was set: each must exist and be readable.
    Configured(Vec<PathBuf>),
    /// Not set: OpenSSH's default files (`~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`), skipped when absent.
    Defaults(Vec<PathBuf>),
}

impl Identities {
    /// The files, whichever way they were chosen.
    pub fn paths(&self) -> &[PathBuf] {
        match self {
            Identities::Configured(p) | Identities::Defaults(p) => p,
        }
    }
}

/// Where ssh-agent is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// `$SSH_AUTH_SOCK`, read at each connection attempt (the agent may come and go); see
    /// [`AgentSource::from_env`].
    Env,
    /// A fixed socket path (service managers often lack `SSH_AUTH_SOCK`).
    Path(PathBuf),
    /// `agent_socket = ""`: never use an agent.
    Disabled,
}

impl AgentSource {
    /// What [`AgentSource::Env`] means now: `$SSH_AUTH_SOCK`; without it (a service whose
    /// manager was not given the login session's environment), the socket at
    /// `$XDG_RUNTIME_DIR/ssh-agent.socket` if there is one, where OpenSSH's and many desktops'
    /// agent user units listen. `var` reads a variable (`std::env::var_os` in the daemon).
    pub fn from_env(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
        use std::os::unix::fs::FileTypeExt;
        if let Some(path) = var("SSH_AUTH_SOCK").filter(|p| !p.is_empty()) {
            return Some(path.into());
        }
        let runtime = PathBuf::from(var("XDG_RUNTIME_DIR").filter(|p| !p.is_empty())?);
        let socket = runtime.join("ssh-agent.socket");
        let is_socket = std::fs::metadata(&socket).is_ok_and(|m| m.file_type().is_socket());
        is_socket.then_some(socket)
    }
}

/// Timing knobs, all validated positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Like ServerAliveInterval.
    pub keepalive_interval: Duration,
    /// Like ServerAliveCountMax: dead after `(count + 1) × interval` of silence.
    pub keepalive_count: u32,
    /// Budget for DNS + TCP + key exchange + auth + every forward set up.
    pub connect_timeout: Duration,
    /// How long a local connection accepted between sessions waits for the next one.
    pub connection_hold: Duration,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
}

/// Jittered exponential backoff parameters; `initial <= max`, `multiplier >= 1`, `0 <= jitter < 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// First delay.
    pub initial: Duration,
    /// Largest delay, jitter included.
    pub max: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Relative randomisation, e.g. 0.2 = ±20 %.
    pub jitter: f64,
}

/// Host key policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Only keys already in known_hosts are accepted.
    Strict,
    /// Trust on first use: an unknown host's key is recorded; a changed key is refused.
    AcceptNew,
}

/// A TCP endpoint by name or address (`host` may be a DNS name; IPv6 without brackets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where a forward delivers its connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A TCP host and port.
    Tcp(HostPort),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Where a local forward listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocalListen {
    /// A TCP address: loopback (`127.0.0.1`) unless the spec named one; port 1–65535.
    Tcp { addr: IpAddr, port: u16 },
    /// A Unix socket path on this machine.
    Unix(PathBuf),
}

/// What a remote forward asks the relay to listen on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemoteListen {
    /// A TCP listen on the relay: `bind` as sent in `tcpip-forward` (`"localhost"` when the spec
    /// named none, like OpenSSH); port 0 lets the relay pick.
    Tcp { bind: String, port: u16 },
    /// A Unix socket path on the relay (`streamlocal-forward@openssh.com`).
    Unix(String),
}

/// One `-L` forward.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalForward {
    /// The spec as the user wrote it (shown in status).
    pub spec: String,
    /// Local listening endpoint.
    pub listen: LocalListen,
    /// Where the relay connects to (resolved on the relay).
    pub target: Target,
}

/// One `-R` forward.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteForward {
    /// The spec as the user wrote it (shown in status).
    pub spec: String,
    /// What the relay listens on.
    pub listen: RemoteListen,
    /// Where this machine connects to (resolved here).
    pub target: Target,
}

/// One `-D` forward.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DynamicForward {
    /// The spec as the user wrote it (shown in status).
    pub spec: String,
    /// Where the SOCKS server listens (always TCP).
    pub listen: LocalListen,
}

/// One ProxyJump hop, fully resolved (ssh config applied).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JumpHost {
    /// The network name or address to reach it by.
    pub host: String,
    /// Its SSH port.
    pub port: u16,
    /// The login user on it.
    pub user: String,
}

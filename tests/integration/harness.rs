//! Driving in-process daemons from tests: config text for a tunnel to a fixture sshd, and
//! waiting on published tunnel states with deadlines (never sleeps).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pairtun::config::{self, Env};
use pairtun::daemon::Daemon;
use pairtun::tunnel::{Published, TunnelState};

use crate::support::keys::{KeyKind, KeyPair};
use crate::support::sshd::{self, Sshd, SshdOptions, current_user};

/// A hermetic environment: home is the test's own directory.
pub fn env_for(dir: &Path) -> Env {
    Env {
        home: dir.to_path_buf(),
        user: current_user(),
        vars: HashMap::new(),
    }
}

/// Fast timings for tests: dead after 3 s of silence, quick retries.
pub const FAST: &str = r#"
keepalive_interval = "1s"
keepalive_count = 2
connect_timeout = "5s"
backoff = { initial = "200ms", max = "2s", multiplier = 2.0, jitter = 0.2 }
agent_socket = ""
"#;

/// One tunnel's TOML table.
pub struct TunnelToml<'a> {
    /// Tunnel name.
    pub name: &'a str,
    /// SSH port to connect to (sshd, or a proxy in front of it).
    pub port: u16,
    /// Identity file.
    pub key: &'a Path,
    /// known_hosts file.
    pub known_hosts: &'a Path,
    /// `-L` specs.
    pub local: Vec<String>,
    /// `-R` specs.
    pub remote: Vec<String>,
    /// Extra `key = value` lines for the tunnel table.
    pub extra: &'a str,
}

impl TunnelToml<'_> {
    /// Renders `[tunnels.NAME]` with [`FAST`] timings.
    pub fn render(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "[tunnels.{name}]\nhost = \"127.0.0.1\"\nport = {port}\nuser = {user:?}\n\
             identity_files = [{key:?}]\nknown_hosts = {kh:?}\nlocal = [{local}]\nremote = [{remote}]\n{fast}{extra}\n",
            name = self.name,
            port = self.port,
            user = current_user(),
            key = self.key.display().to_string(),
            kh = self.known_hosts.display().to_string(),
            local = list(&self.local),
            remote = list(&self.remote),
            fast = FAST,
            extra = self.extra,
        )
    }
}

/// Routes the in-process daemons' logs to the test output (`PAIRTUN_LOG` filters; default
/// `info,russh=warn`), once per test binary.
fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::prelude::*;
        let spec = std::env::var("PAIRTUN_LOG")
            .unwrap_or_else(|_| pairtun::logging::DEFAULT_FILTER.to_owned());
        let filter = pairtun::logging::filter(&spec).unwrap_or_else(|e| panic!("PAIRTUN_LOG: {e}"));
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .with(filter)
            .try_init();
    });
}

/// Parses `toml` (written to `dir/config.toml`) and starts a daemon on it.
pub fn start_daemon(dir: &Path, toml: &str) -> Daemon {
    init_logging();
    let path = write_config(dir, toml);
    let config = config::load(&path, &env_for(dir))
        .unwrap_or_else(|e| panic!("test config invalid: {e}\n{toml}"));
    Daemon::start(&config, env_for(dir))
}

/// Writes `toml` to `dir/config.toml`.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// Waits until tunnel `name`'s published state satisfies `pred`, or panics after `within`
/// with the last state seen.
pub async fn wait_for(
    daemon: &Daemon,
    name: &str,
    within: Duration,
    what: &str,
    pred: impl Fn(&Published) -> bool,
) -> Published {
    let mut rx = daemon.watch(Some(name)).expect("tunnel exists").remove(0);
    let result = tokio::time::timeout(within, async {
        rx.wait_for(|p| pred(p)).await.map(|p| p.clone())
    })
    .await;
    match result {
        Ok(Ok(p)) => p,
        _ => panic!(
            "tunnel {name}: not {what} within {within:?}; last state: {:#?}",
            *rx.borrow()
        ),
    }
}

/// Waits for `up`.
pub async fn wait_up(daemon: &Daemon, name: &str, within: Duration) -> Published {
    wait_for(daemon, name, within, "up", |p| p.state == TunnelState::Up).await
}

/// A relay sshd, a client key it trusts, and a known_hosts file that knows it.
pub struct Relay {
    /// Test directory (keys, known_hosts, config).
    pub dir: tempfile::TempDir,
    /// The client key sshd trusts.
    pub key: KeyPair,
    /// The relay.
    pub sshd: Sshd,
}

impl Relay {
    /// Starts sshd with `extra` config lines; `None` (test skipped) without sshd.
    pub fn start(extra: &[&str]) -> Option<Relay> {
        if !sshd::available() {
            eprintln!("skipping: /usr/sbin/sshd not installed (.ci/run installs openssh-server)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate(dir.path(), "client", KeyKind::Ed25519);
        let mut options = SshdOptions::new().authorize(&key);
        for line in extra {
            options = options.config(*line);
        }
        let sshd = Sshd::start(options);
        sshd.write_known_hosts(&dir.path().join("known_hosts"));
        Some(Relay { dir, key, sshd })
    }

    /// The known_hosts file that trusts the relay.
    pub fn known_hosts(&self) -> std::path::PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// A tunnel table to the relay.
    pub fn tunnel(&self, name: &str, local: Vec<String>, remote: Vec<String>) -> String {
        self.tunnel_via(name, self.sshd.port(), local, remote, "")
    }

    /// A tunnel table to `port` (a proxy in front of the relay), with extra lines.
    pub fn tunnel_via(
        &self,
        name: &str,
        port: u16,
        local: Vec<String>,
        remote: Vec<String>,
        extra: &str,
    ) -> String {
        let kh = self.known_hosts();
        TunnelToml {
            name,
            port,
            key: self.key.private_path(),
            known_hosts: &kh,
            local,
            remote,
            extra,
        }
        .render()
    }
}

/// `PORT:127.0.0.1:TARGET`.
pub fn local_spec(port: u16, target: u16) -> String {
    format!("{port}:127.0.0.1:{target}")
}

/// A relay, an echo server, and a daemon holding tunnel `name` with `-L port → echo`, up.
pub struct EchoTunnel {
    /// The relay.
    pub relay: Relay,
    /// Where the tunnel leads (held so it runs as long as the tunnel).
    _echo: crate::support::echo::EchoServer,
    /// The local forward's port.
    pub port: u16,
    /// The daemon.
    pub daemon: Daemon,
}

impl EchoTunnel {
    /// Starts it all and waits for `up`; `None` (test skipped) without sshd.
    pub async fn start(name: &str) -> Option<EchoTunnel> {
        let relay = Relay::start(&[])?;
        let echo = crate::support::echo::EchoServer::start();
        let port = sshd::free_port();
        let daemon = start_daemon(
            relay.dir.path(),
            &relay.tunnel(name, vec![local_spec(port, echo.port())], vec![]),
        );
        wait_up(&daemon, name, Duration::from_secs(20)).await;
        Some(EchoTunnel {
            relay,
            _echo: echo,
            port,
            daemon,
        })
    }

    /// The local forward's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Every state a tunnel publishes from now on, for "never left `up`" checks. A watch channel
/// keeps only the latest value, so a change undone before this task runs can be missed; state
/// changes that matter (a lost session, a refused forward) last far longer than that.
pub struct StateLog {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Published>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StateLog {
    /// Starts recording tunnel `name`'s states, the current one first.
    pub fn record(daemon: &Daemon, name: &str) -> StateLog {
        let mut rx = daemon.watch(Some(name)).expect("tunnel exists").remove(0);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![rx.borrow_and_update().clone()]));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let p = rx.borrow_and_update().clone();
                sink.lock().unwrap().push(p);
            }
        });
        StateLog { seen, task }
    }

    /// Stops recording and returns what was seen, oldest first.
    pub fn stop(&self) -> Vec<Published> {
        self.task.abort();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for StateLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

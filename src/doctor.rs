//! `pairtunctl doctor`: every check a user would otherwise run by hand when a tunnel does not
//! come up — config, agent, key files and their permissions, known_hosts, and, connected,
//! authentication and whether the relay allows each forward — each with a verdict and a fix.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::{
    AgentSource, Config, Env, HostKeyPolicy, Identities, RemoteListen, TunnelConfig,
};
use crate::ssh::{self, SessionShared, known_hosts};
use crate::tunnel::{Live, PeerState, pump::Counters};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Will keep the tunnel from working.
    Fail,
}

impl Verdict {
    /// The word shown in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which tunnel it is about; `None` for the config file itself.
    pub tunnel: Option<String>,
    /// What was checked, e.g. `agent` or `key ~/.ssh/id_ed25519`.
    pub subject: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do about it, for `warn` and `fail`.
    pub fix: Option<String>,
}

/// Collects checks for one tunnel.
struct Report<'a> {
    tunnel: &'a str,
    checks: Vec<Check>,
}

impl Report<'_> {
    fn add(
        &mut self,
        subject: impl Into<String>,
        verdict: Verdict,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        self.checks.push(Check {
            tunnel: Some(self.tunnel.to_owned()),
            subject: subject.into(),
            verdict,
            detail: detail.into(),
            fix,
        });
    }
}

/// Loads the config file: the check, and the config when it loaded.
pub fn config(path: &Path, env: &Env) -> (Check, Option<Config>) {
    let check = |verdict, detail: String, fix: Option<String>| Check {
        tunnel: None,
        subject: "config".to_owned(),
        verdict,
        detail,
        fix,
    };
    match crate::config::load(path, env) {
        Ok(config) if !path.exists() => (
            check(
                Verdict::Warn,
                format!("{} does not exist: no tunnels", path.display()),
                Some(
                    "pairtunctl add NAME --host RELAY -L PORT:localhost:PORT, or write the file"
                        .into(),
                ),
            ),
            Some(config),
        ),
        Ok(config) => {
            let detail = format!("{}: {} tunnel(s)", path.display(), config.tunnels.len());
            (check(Verdict::Ok, detail, None), Some(config))
        }
        Err(e) => (
            check(
                Verdict::Fail,
                e.to_string(),
                Some("fix the file at that line".into()),
            ),
            None,
        ),
    }
}

/// The checks that need no network: agent, key files, known_hosts.
pub async fn offline(tunnel: &TunnelConfig) -> Vec<Check> {
    let mut report = Report {
        tunnel: tunnel.name.as_str(),
        checks: Vec::new(),
    };
    agent(&mut report, &tunnel.agent).await;
    match &tunnel.identities {
        Identities::Defaults(paths) if !paths.iter().any(|p| p.exists()) => report.add(
            "keys",
            Verdict::Warn,
            "no identity_files set and none of OpenSSH's default key files exists",
            Some("set identity_files, or rely on ssh-agent".into()),
        ),
        identities => {
            let configured = matches!(identities, Identities::Configured(_));
            for path in identities.paths() {
                key_file(&mut report, path, configured);
            }
        }
    }
    known_host(&mut report, tunnel);
    report.checks
}

async fn agent(report: &mut Report<'_>, source: &AgentSource) {
    let path = match source {
        AgentSource::Disabled => {
            report.add("agent", Verdict::Ok, "not used (agent_socket = \"\")", None);
            return;
        }
        AgentSource::Path(p) => p.clone(),
        AgentSource::Env => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(p) => p.into(),
            None => {
                let fix = "start ssh-agent, or set agent_socket (a service manager's environment often lacks SSH_AUTH_SOCK)";
                report.add(
                    "agent",
                    Verdict::Warn,
                    "SSH_AUTH_SOCK is not set",
                    Some(fix.into()),
                );
                return;
            }
        },
    };
    let shown = path.display();
    let listed = async {
        let mut agent = russh::keys::agent::client::AgentClient::connect_uds(&path).await?;
        agent.request_identities().await
    };
    match tokio::time::timeout(Duration::from_secs(5), listed).await {
        Ok(Ok(keys)) if keys.is_empty() => report.add(
            "agent",
            Verdict::Warn,
            format!("{shown}: reachable, holds no keys"),
            Some("ssh-add your key".into()),
        ),
        Ok(Ok(keys)) => report.add(
            "agent",
            Verdict::Ok,
            format!("{shown}: {} key(s)", keys.len()),
            None,
        ),
        Ok(Err(e)) => report.add(
            "agent",
            Verdict::Fail,
            format!("{shown}: {e}"),
            Some("start ssh-agent, or point agent_socket at a running one".into()),
        ),
        Err(_) => report.add(
            "agent",
            Verdict::Fail,
            format!("{shown}: no answer within 5 s"),
            Some("restart ssh-agent".into()),
        ),
    }
}

fn key_file(report: &mut Report<'_>, path: &Path, configured: bool) {
    let subject = format!("key {}", path.display());
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // OpenSSH's default files are only tried when present.
        Err(_) if !configured => return,
        Err(e) => {
            let fix = format!(
                "create it (ssh-keygen -t ed25519 -f {}) or fix identity_files",
                path.display()
            );
            report.add(subject, Verdict::Fail, e.to_string(), Some(fix));
            return;
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        report.add(
            subject.clone(),
            Verdict::Warn,
            format!("mode {mode:04o}: readable by others"),
            Some(format!("chmod 600 {}", path.display())),
        );
    }
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => report.add(
            subject,
            Verdict::Ok,
            format!("{} key, not encrypted", key.algorithm()),
            None,
        ),
        Err(russh::keys::Error::KeyIsEncrypted) => report.add(
            subject,
            Verdict::Warn,
            "encrypted: pairtund can use it only through ssh-agent",
            Some(format!("ssh-add {}", path.display())),
        ),
        Err(e) => report.add(
            subject,
            Verdict::Fail,
            format!("cannot load: {e}"),
            Some("point identity_files at an OpenSSH private key".into()),
        ),
    }
}

fn known_host(report: &mut Report<'_>, tunnel: &TunnelConfig) {
    let file = tunnel.known_hosts.display();
    let entries = known_hosts::entries_for(&tunnel.known_hosts, &tunnel.host, tunnel.port);
    let (host, port) = (&tunnel.host, tunnel.port);
    match (entries, tunnel.host_key_policy) {
        (Ok(n), _) if n > 0 => report.add("known_hosts", Verdict::Ok, format!("{file}: {n} key(s) for {host}:{port}"), None),
        (Ok(_), HostKeyPolicy::AcceptNew) => report.add(
            "known_hosts",
            Verdict::Warn,
            format!("{file}: no key for {host}:{port} yet; the first connection will pin it"),
            Some("compare the fingerprint pairtund logs with the relay's".into()),
        ),
        (Ok(_), HostKeyPolicy::Strict) => report.add(
            "known_hosts",
            Verdict::Fail,
            format!("{file}: no key for {host}:{port}"),
            Some(format!("ssh -p {port} {}@{host} once and check the fingerprint, or host_key_policy = \"accept-new\"", tunnel.user)),
        ),
        (Err(e), _) => report.add("known_hosts", Verdict::Fail, format!("{file}: {e}"), Some("make the file readable".into())),
    }
}

/// Connects as pairtund would (its own session, beside the daemon's) and checks what the
/// relay allows: each `-L` target reachable, remote forwarding permitted.
pub async fn connected(tunnel: &TunnelConfig) -> Vec<Check> {
    let mut report = Report {
        tunnel: tunnel.name.as_str(),
        checks: Vec::new(),
    };
    let shared = SessionShared::new(Arc::new(Counters::default()));
    let started = Instant::now();
    let deadline = started + tunnel.timing.connect_timeout;
    let handle = match ssh::connect(tunnel, shared.clone(), deadline).await {
        Ok(handle) => handle,
        Err(e) => {
            let fix = match e.class {
                crate::error::ErrorClass::Auth => {
                    "check the agent and identity_files above, and the relay's authorized_keys"
                }
                crate::error::ErrorClass::HostKey => {
                    "if the relay was reinstalled, remove the old line from known_hosts (ssh-keygen -R)"
                }
                _ => "check host and port, and that the relay is reachable",
            };
            report.add(
                "connect",
                Verdict::Fail,
                format!("{} ({})", e.message, e.class),
                Some(fix.into()),
            );
            return report.checks;
        }
    };
    report.add(
        "connect",
        Verdict::Ok,
        format!(
            "authenticated as {}@{}:{} in {} ms",
            tunnel.user,
            tunnel.host,
            tunnel.port,
            started.elapsed().as_millis()
        ),
        None,
    );
    let live = Arc::new(Live { handle, shared });
    for forward in &tunnel.local {
        let peer = crate::tunnel::probe_far_end(&live, forward).await;
        let subject = format!("-L {}", forward.spec);
        match peer.state {
            PeerState::Up => report.add(subject, Verdict::Ok, format!("far end answers: {}", peer.detail), None),
            PeerState::Open => report.add(subject, Verdict::Ok, format!("far end accepts ({})", peer.detail), None),
            PeerState::NotListening => report.add(
                subject,
                Verdict::Warn,
                format!("the relay cannot reach the far end: {}", peer.detail),
                Some("fine if your partner is not connected yet; otherwise check the target host and port".into()),
            ),
        }
    }
    if let Some(forward) = tunnel
        .remote
        .iter()
        .find(|f| matches!(f.listen, RemoteListen::Tcp { .. }))
    {
        // Port 0: the relay picks, so the daemon's own forwards are not disturbed.
        let subject = "remote forwarding";
        match tokio::time::timeout(
            Duration::from_secs(5),
            live.handle.tcpip_forward("localhost", 0),
        )
        .await
        {
            Ok(Ok(port)) => {
                let _ = live.handle.cancel_tcpip_forward("localhost", port).await;
                report.add(
                    subject,
                    Verdict::Ok,
                    format!("allowed (needed by -R {})", forward.spec),
                    None,
                );
            }
            Ok(Err(e)) => report.add(
                subject,
                Verdict::Fail,
                format!("refused by the relay: {e}"),
                Some("the relay's sshd_config needs AllowTcpForwarding yes (or remote)".into()),
            ),
            Err(_) => report.add(subject, Verdict::Fail, "no answer within 5 s", None),
        }
    }
    if !tunnel.remote.is_empty() {
        report.add(
            "stale remote ports",
            Verdict::Ok,
            "how long a dead session keeps its -R ports is the relay's ClientAliveInterval × ClientAliveCountMax",
            Some("on the relay: ClientAliveInterval 15, ClientAliveCountMax 2, StreamLocalBindUnlink yes".into()),
        );
    }
    ssh::disconnect(&live.handle, "pairtunctl doctor: done").await;
    live.shared.ended.cancel();
    report.checks
}

//! `pairtunctl doctor`: checks that find why a tunnel cannot come up before the user reads
//! logs — config, ssh config, agent, key files and their permissions, known_hosts entries, and
//! (from the daemon's status) whether the relay allowed each forward. Each check is a line
//! with a level and, when it is not `ok`, a fix.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use russh::keys::agent::client::AgentClient;
use serde::{Deserialize, Serialize};

use crate::config::{AgentSource, Config, HostKeyPolicy, Identities, TunnelConfig};
use crate::ssh::{host_key_order, known_hosts};
use crate::tunnel::{ForwardKind, ForwardState, TunnelState, TunnelStatus};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Fine.
    Ok,
    /// May work, but worth a look.
    Warn,
    /// Will not work as configured.
    Fail,
}

/// One checked fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The tunnel it is about (`None`: the whole configuration).
    pub tunnel: Option<String>,
    /// The outcome.
    pub level: Level,
    /// What was found.
    pub message: String,
    /// What to do about it, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(tunnel: Option<&TunnelConfig>, level: Level, message: String) -> Check {
        Check {
            tunnel: tunnel.map(|t| t.name.to_string()),
            level,
            message,
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// What the configuration itself says: each ssh config warning.
pub fn config_checks(config: &Config) -> Vec<Check> {
    let source = config.source.as_deref().map_or_else(
        || "the configuration".to_owned(),
        |p| p.display().to_string(),
    );
    let mut checks = vec![Check::new(
        None,
        Level::Ok,
        format!("{source} is valid ({} tunnels)", config.tunnels.len()),
    )];
    checks.extend(config.warnings.iter().map(|w| {
        Check::new(None, Level::Warn, w.clone())
            .fix("pairtun ignores this line; express it in pairtun's config if it matters")
    }));
    checks
}

/// Agent, identity files and known_hosts for one tunnel and its jump hosts. `agent_env` is
/// `$SSH_AUTH_SOCK` as this process sees it (the daemon's may differ).
pub async fn tunnel_checks(tunnel: &TunnelConfig, agent_env: Option<&Path>) -> Vec<Check> {
    let mut checks = Vec::new();
    let agent = agent_check(tunnel, agent_env).await;
    let agent_ok = agent.level == Level::Ok;
    checks.push(agent);
    checks.extend(key_checks(tunnel, agent_ok));
    let hops = tunnel
        .jump
        .iter()
        .map(|j| (j.host.as_str(), j.port))
        .chain([(tunnel.host.as_str(), tunnel.port)]);
    for (host, port) in hops {
        checks.push(known_hosts_check(tunnel, host, port));
    }
    checks
}

async fn agent_check(tunnel: &TunnelConfig, agent_env: Option<&Path>) -> Check {
    let t = Some(tunnel);
    let path = match (&tunnel.agent, agent_env) {
        (AgentSource::Disabled, _) => {
            return Check::new(t, Level::Ok, "agent not used (agent_socket = \"\")".into());
        }
        (AgentSource::Path(path), _) => path.as_path(),
        (AgentSource::Env, Some(path)) => path,
        (AgentSource::Env, None) => {
            return Check::new(t, Level::Warn, "SSH_AUTH_SOCK is not set here".into()).fix(
                "start ssh-agent, or set agent_socket; a service may need \
                 `systemctl --user import-environment SSH_AUTH_SOCK`",
            );
        }
    };
    let shown = path.display();
    let asked = tokio::time::timeout(AGENT_WAIT, async {
        let mut agent = AgentClient::connect_uds(path).await?;
        agent.request_identities().await
    });
    let Ok(answer) = asked.await else {
        return Check::new(
            t,
            Level::Warn,
            format!(
                "agent at {shown} did not answer within {}s",
                AGENT_WAIT.as_secs()
            ),
        )
        .fix("restart ssh-agent, or point agent_socket at a live one");
    };
    match answer {
        Ok(ids) if ids.is_empty() => {
            Check::new(t, Level::Warn, format!("agent at {shown} holds no keys"))
                .fix("ssh-add your key")
        }
        Ok(ids) => Check::new(
            t,
            Level::Ok,
            format!("agent at {shown} holds {} key(s)", ids.len()),
        ),
        Err(e) => Check::new(
            t,
            Level::Warn,
            format!("agent at {shown} unreachable or failed: {e}"),
        )
        .fix("start ssh-agent, or point agent_socket at a live one"),
    }
}

/// How long doctor waits for the agent: a hung agent must not hang doctor.
const AGENT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn key_checks(tunnel: &TunnelConfig, agent_ok: bool) -> Vec<Check> {
    let configured = matches!(tunnel.identities, Identities::Configured(_));
    let mut checks: Vec<Check> = tunnel
        .identities
        .paths()
        .iter()
        .filter(|path| configured || path.exists())
        .map(|path| key_check(tunnel, path))
        .collect();
    if checks.is_empty() && !agent_ok {
        checks.push(
            Check::new(
                Some(tunnel),
                Level::Fail,
                "no key to offer: no identity file and no usable agent".into(),
            )
            .fix("set identity_files, or add a key to ssh-agent"),
        );
    }
    checks
}

fn key_check(tunnel: &TunnelConfig, path: &Path) -> Check {
    let t = Some(tunnel);
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            return Check::new(t, Level::Fail, format!("identity file {shown}: {e}"))
                .fix("fix the path in identity_files (or IdentityFile in the ssh config)");
        }
    };
    if !meta.is_file() {
        return Check::new(
            t,
            Level::Fail,
            format!("identity file {shown} is not a regular file"),
        )
        .fix("point identity_files at an OpenSSH private key");
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Check::new(
            t,
            Level::Fail,
            format!("identity file {shown} is readable by others (mode {mode:o})"),
        )
        .fix(format!("chmod 600 {shown}"));
    }
    match russh::keys::load_secret_key(path, None) {
        Ok(_) => Check::new(t, Level::Ok, format!("identity file {shown} is usable")),
        Err(russh::keys::Error::KeyIsEncrypted) => Check::new(
            t,
            Level::Warn,
            format!("identity file {shown} is encrypted; only an agent can use it"),
        )
        .fix(format!("ssh-add {shown}")),
        Err(e) => Check::new(t, Level::Fail, format!("identity file {shown}: {e}"))
            .fix("point identity_files at an OpenSSH private key"),
    }
}

fn known_hosts_check(tunnel: &TunnelConfig, host: &str, port: u16) -> Check {
    let t = Some(tunnel);
    let file = tunnel.known_hosts.display();
    let name = known_hosts::lookup_name(host, port);
    let types = match known_hosts::key_types_for(&tunnel.known_hosts, host, port) {
        Ok(types) => types,
        Err(e) => {
            return Check::new(t, Level::Fail, format!("cannot read {file}: {e}"))
                .fix("fix known_hosts (or its permissions)");
        }
    };
    let names = known_hosts::type_names(&types);
    if types.iter().any(host_key_order::verifiable) {
        let n = types.len();
        return Check::new(
            t,
            Level::Ok,
            format!("{file} has {n} key(s) for {name} ({names})"),
        );
    }
    // No key at all, or only keys of types pairtund does not ask for (ssh-dss, security keys):
    // either way the relay's key will be unknown.
    let what = if types.is_empty() {
        format!("{file} has no entry for {name}")
    } else {
        format!("{file} has only {names} key(s) for {name}, which pairtund cannot verify")
    };
    if tunnel.host_key_policy == HostKeyPolicy::AcceptNew {
        Check::new(
            t,
            Level::Warn,
            format!("{what}; it will be learnt on first connect"),
        )
        .fix("compare the fingerprint pairtund logs with the relay's")
    } else {
        Check::new(t, Level::Fail, what).fix(format!(
            "connect once with `ssh -p {port} {host}` and check the fingerprint, or set \
             host_key_policy = \"accept-new\""
        ))
    }
}

/// What the daemon reports for a running tunnel: connected or why not, and each forward as
/// the relay answered it.
pub fn status_checks(tunnel: &TunnelConfig, status: &TunnelStatus) -> Vec<Check> {
    let t = Some(tunnel);
    let connected = matches!(status.state, TunnelState::Up | TunnelState::Degraded);
    let summary = if connected {
        Check::new(
            t,
            Level::Ok,
            format!("connected ({})", status.state.as_str()),
        )
    } else {
        match (&status.state, &status.last_error) {
            (TunnelState::Stopped, _) => Check::new(t, Level::Warn, "stopped".into())
                .fix(format!("pairtunctl up {}", tunnel.name)),
            (state, Some(e)) => Check::new(
                t,
                Level::Fail,
                format!("{}: {} error: {}", state.as_str(), e.class, e.message),
            ),
            (state, None) => Check::new(
                t,
                Level::Warn,
                format!("not connected yet ({})", state.as_str()),
            ),
        }
    };
    let mut checks = vec![summary];
    if !connected {
        return checks;
    }
    for forward in &status.forwards {
        let what = format!("{} forward {}", kind_name(forward.kind), forward.spec);
        checks.push(match (forward.state, &forward.error) {
            (ForwardState::Up, None) => Check::new(t, Level::Ok, format!("{what} is up")),
            (ForwardState::Up, Some(e)) => Check::new(
                t,
                Level::Warn,
                format!("{what} is up; last connection: {e}"),
            )
            .fix("check that the target is listening (on the relay's side for -L/-D)"),
            (_, e) => {
                let why = e.as_deref().unwrap_or("not established");
                let fix = if forward.kind == ForwardKind::Remote {
                    "the relay must allow it (AllowTcpForwarding yes); a port held by a stale \
                     session is freed sooner with ClientAliveInterval 15 and \
                     ClientAliveCountMax 2 in the relay's sshd_config"
                } else {
                    "free the local port, or choose another"
                };
                Check::new(t, Level::Fail, format!("{what}: {why}")).fix(fix)
            }
        });
    }
    checks
}

fn kind_name(kind: ForwardKind) -> &'static str {
    match kind {
        ForwardKind::Local => "-L",
        ForwardKind::Remote => "-R",
        ForwardKind::Dynamic => "-D",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, parse};

    #[tokio::test(start_paused = true)]
    async fn an_agent_that_never_answers_is_reported_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        // Accepts (the kernel's backlog does) and never answers.
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let env = Env {
            home: dir.path().to_owned(),
            user: "me".into(),
            vars: Default::default(),
        };
        let text = format!(
            "[defaults]\nssh_config = \"\"\n[tunnels.t]\nhost = \"relay\"\n\
             agent_socket = {:?}\nlocal = [\"9999:localhost:22\"]\n",
            socket.display().to_string()
        );
        let config = parse(&text, Path::new("/c.toml"), &env).unwrap();
        let tunnel = config.tunnels.values().next().unwrap();
        let check = agent_check(tunnel, None).await;
        assert_eq!(check.level, Level::Warn, "{check:?}");
        assert!(
            check.message.contains("did not answer within 5s"),
            "{check:?}"
        );
    }
}

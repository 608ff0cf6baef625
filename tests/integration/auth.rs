//! Authentication paths against a real sshd: ssh-agent (also filtered by `IdentitiesOnly`),
//! RSA with SHA-2 signatures, and an encrypted key that no agent holds (a clear `failed`,
//! naming the key).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pairtun::error::ErrorClass;
use pairtun::tunnel::TunnelState;

use crate::harness::{Relay, TunnelToml, local_spec, start_daemon, wait_for, wait_up};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::sshd::free_port;
use crate::support::wait;

const WITHIN: Duration = Duration::from_secs(20);

/// An `ssh-agent` in the foreground on a socket in the test dir, killed on drop.
pub struct Agent {
    child: Child,
    /// Its socket (`SSH_AUTH_SOCK`).
    pub socket: std::path::PathBuf,
}

impl Agent {
    /// Starts an agent on `dir/agent.sock`.
    pub fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        wait::until("ssh-agent socket", Duration::from_secs(10), || {
            socket.exists()
        });
        Agent { child, socket }
    }

    /// Adds the (unencrypted) private key `key`.
    pub fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("ssh-add");
        assert!(out.status.success(), "ssh-add: {out:?}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tunnel(relay: &Relay, name: &str, key: &Path, extra: &str) -> String {
    let kh = relay.known_hosts();
    TunnelToml {
        name,
        port: relay.sshd.port(),
        key,
        known_hosts: &kh,
        local: vec![local_spec(free_port(), 9)],
        remote: vec![],
        extra,
    }
    .render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_identity_authenticates_without_key_files() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let agent = Agent::start(relay.dir.path());
    agent.add(relay.key.private_path());
    let missing = relay.dir.path().join("no-such-key");
    // The agent comes first; the configured (missing) file is never needed.
    let toml = tunnel(&relay, "agent", &missing, "").replace(
        "agent_socket = \"\"",
        &format!("agent_socket = {:?}", agent.socket.display().to_string()),
    );
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "agent", WITHIN).await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_key_signs_with_sha2() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let rsa = KeyPair::generate(relay.dir.path(), "rsa", KeyKind::Rsa);
    relay.sshd.authorize_line(rsa.public_line());
    let daemon = start_daemon(
        relay.dir.path(),
        &tunnel(&relay, "rsa", rsa.private_path(), ""),
    );
    // OpenSSH 9 rejects SHA-1 `ssh-rsa` signatures: up means rsa-sha2-* was used.
    wait_up(&daemon, "rsa", WITHIN).await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_key_without_agent_fails_naming_the_key() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let locked = KeyPair::generate_with_passphrase(
        relay.dir.path(),
        "locked",
        KeyKind::Ed25519,
        "s3cret-pass",
    );
    relay.sshd.authorize_line(locked.public_line());
    let daemon = start_daemon(
        relay.dir.path(),
        &tunnel(&relay, "locked", locked.private_path(), ""),
    );
    let p = wait_for(&daemon, "locked", WITHIN, "failed", |p| {
        p.state == TunnelState::Failed
    })
    .await;
    let error = p.last_error.expect("an error");
    assert_eq!(error.class, ErrorClass::Auth);
    let shown = locked.private_path().display().to_string();
    assert!(
        error.message.contains(&shown) && error.message.contains("encrypted"),
        "{}",
        error.message
    );
    assert!(!error.message.contains("s3cret-pass"));
    daemon.shutdown().await;
}

/// `IdentitiesOnly yes` in the ssh config: of the agent's keys, only one matching an identity
/// file (by its `.pub`) is offered — the authorised agent key is refused when the identity
/// file is another key, and used when the identity file is its public half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_only_offers_only_matching_agent_keys() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let agent = Agent::start(relay.dir.path());
    agent.add(relay.key.private_path());
    let ssh_config = relay.dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "Host 127.0.0.1\n  IdentitiesOnly yes\n").unwrap();
    let other = KeyPair::generate(relay.dir.path(), "other", KeyKind::Ed25519);
    // Only the public half of the authorised key, as when the private key lives in the agent.
    let public_only = relay.dir.path().join("agent_key");
    std::fs::copy(relay.key.public_path(), public_only.with_extension("pub")).unwrap();
    let with = |name: &str, key: &Path| {
        let tunnel = tunnel(&relay, name, key, "").replace(
            "agent_socket = \"\"",
            &format!("agent_socket = {:?}", agent.socket.display().to_string()),
        );
        format!(
            "[defaults]\nssh_config = {:?}\n\n{tunnel}",
            ssh_config.display().to_string()
        )
    };
    let daemon = start_daemon(relay.dir.path(), &with("matching", &public_only));
    wait_up(&daemon, "matching", WITHIN).await;
    daemon.shutdown().await;

    let daemon = start_daemon(relay.dir.path(), &with("filtered", other.private_path()));
    let failed = wait_for(&daemon, "filtered", WITHIN, "failed", |p| {
        p.state == TunnelState::Failed
    })
    .await;
    assert_eq!(failed.last_error.map(|e| e.class), Some(ErrorClass::Auth));
    daemon.shutdown().await;
}

/// sshd cutting the login short after `MaxAuthTries` refused keys ("Too many authentication
/// failures") is an authentication failure, not a network error: retried only at the longest
/// backoff, so retries do not keep adding failures to the relay's auth log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_ending_auth_after_too_many_failures_is_an_auth_error() {
    let Some(relay) = Relay::start(&["MaxAuthTries 1"]) else {
        return;
    };
    let first = KeyPair::generate(relay.dir.path(), "wrong1", KeyKind::Ed25519);
    let second = KeyPair::generate(relay.dir.path(), "wrong2", KeyKind::Ed25519);
    let shown = |k: &KeyPair| format!("{:?}", k.private_path().display().to_string());
    let toml = tunnel(&relay, "tries", first.private_path(), "").replace(
        &format!("identity_files = [{}]", shown(&first)),
        &format!("identity_files = [{}, {}]", shown(&first), shown(&second)),
    );
    assert!(toml.contains(&shown(&second)), "{toml}");
    let daemon = start_daemon(relay.dir.path(), &toml);
    let p = wait_for(&daemon, "tries", WITHIN, "an error", |p| {
        p.last_error.is_some()
    })
    .await;
    let error = p.last_error.expect("an error");
    assert_eq!(error.class, ErrorClass::Auth, "{error:?}");
    assert!(
        error.message.contains("Too many authentication failures"),
        "{}",
        error.message
    );
    assert_eq!(p.state, TunnelState::Failed);
    daemon.shutdown().await;
}

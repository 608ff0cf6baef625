//! OpenSSH user certificates against a real sshd that trusts a user CA (`TrustedUserCAKeys`)
//! and has no `authorized_keys` for the user: a certificate next to an identity file
//! (`KEY-cert.pub`) and one held by ssh-agent (also under `IdentitiesOnly`, and RSA ones with
//! SHA-2) log in; a refused certificate falls back to the plain key, and a malformed one is
//! named in the error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pairtun::error::ErrorClass;
use pairtun::tunnel::TunnelState;
use tempfile::TempDir;

use crate::auth::Agent;
use crate::harness::{Relay, TunnelToml, local_spec, start_daemon, wait_for, wait_up};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::sshd::{self, Sshd, SshdOptions, current_user, free_port};

const WITHIN: Duration = Duration::from_secs(20);

/// An sshd that lets in any key its user CA signed for the test user, and no other key.
struct CaRelay {
    dir: TempDir,
    ca: KeyPair,
    /// The user's key, not authorised on its own.
    key: KeyPair,
    sshd: Sshd,
}

impl CaRelay {
    /// `None` (test skipped) without sshd.
    fn start() -> Option<CaRelay> {
        if !sshd::available() {
            eprintln!("skipping: /usr/sbin/sshd not installed (.ci/run installs openssh-server)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = KeyPair::generate(dir.path(), "user_ca", KeyKind::Ed25519);
        let key = KeyPair::generate(dir.path(), "client", KeyKind::Ed25519);
        let trust = format!("TrustedUserCAKeys {}", ca.public_path().display());
        let sshd = Sshd::start(SshdOptions::new().config(trust));
        sshd.write_known_hosts(&dir.path().join("known_hosts"));
        Some(CaRelay { dir, ca, key, sshd })
    }

    /// A tunnel to the relay with identity file `key`, and ssh-agent `agent` when given.
    fn tunnel(&self, name: &str, key: &Path, agent: Option<&Agent>) -> String {
        tunnel_to(&self.sshd, self.dir.path(), name, key, agent)
    }
}

fn tunnel_to(sshd: &Sshd, dir: &Path, name: &str, key: &Path, agent: Option<&Agent>) -> String {
    let known_hosts = dir.join("known_hosts");
    let toml = TunnelToml {
        name,
        port: sshd.port(),
        key,
        known_hosts: &known_hosts,
        local: vec![local_spec(free_port(), 9)],
        remote: vec![],
        extra: "",
    }
    .render();
    match agent {
        Some(agent) => toml.replace(
            "agent_socket = \"\"",
            &format!("agent_socket = {:?}", agent.socket.display().to_string()),
        ),
        None => toml,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_file_certificate_logs_in_without_authorized_keys() {
    let Some(relay) = CaRelay::start() else {
        return;
    };
    relay.key.certify(&relay.ca, &current_user());
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("cert", relay.key.private_path(), None),
    );
    wait_up(&daemon, "cert", WITHIN).await;
    daemon.shutdown().await;
    let log = relay.sshd.log();
    assert!(
        log.contains("Accepted publickey") && log.contains("CERT"),
        "{log}"
    );
}

/// ssh-agent holds the key and its certificate (`ssh-add` picks up `KEY-cert.pub`): the
/// certificate is offered as one. With `IdentitiesOnly`, a certificate whose key is an
/// identity file's counts as matching.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_certificate_logs_in_also_with_identities_only() {
    let Some(relay) = CaRelay::start() else {
        return;
    };
    relay.key.certify(&relay.ca, &current_user());
    let agent = Agent::start(relay.dir.path());
    agent.add(relay.key.private_path());
    let missing = relay.dir.path().join("no-such-key");
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("agent", &missing, Some(&agent)),
    );
    wait_up(&daemon, "agent", WITHIN).await;
    daemon.shutdown().await;
    // The bare key (refused: not in authorized_keys) went once, not again for the certificate.
    let bare_key_refusals = relay
        .sshd
        .log()
        .lines()
        .filter(|l| l.contains("Failed publickey") && l.contains(": ED25519 "))
        .count();
    assert!(bare_key_refusals <= 1, "{}", relay.sshd.log());

    let ssh_config = relay.dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "Host 127.0.0.1\n  IdentitiesOnly yes\n").unwrap();
    // Only the public half, as when the private key lives in the agent alone.
    let public_only = relay.dir.path().join("agent_key");
    std::fs::copy(relay.key.public_path(), public_only.with_extension("pub")).unwrap();
    let tunnel = relay.tunnel("only", &public_only, Some(&agent));
    let toml = format!(
        "[defaults]\nssh_config = {:?}\n\n{tunnel}",
        ssh_config.display().to_string()
    );
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "only", WITHIN).await;
    daemon.shutdown().await;
}

/// A certificate the relay does not accept (its CA is not trusted there) does not stop the
/// plain key, which the relay authorises, from logging in — as with OpenSSH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_certificate_falls_back_to_the_key() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let untrusted = KeyPair::generate(relay.dir.path(), "other_ca", KeyKind::Ed25519);
    relay.key.certify(&untrusted, &current_user());
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("fallback", vec![local_spec(free_port(), 9)], vec![]),
    );
    wait_up(&daemon, "fallback", WITHIN).await;
    daemon.shutdown().await;
    let log = relay.sshd.log();
    let refused = log
        .lines()
        .any(|l| l.contains("Failed publickey") && l.contains("ED25519-CERT"));
    let accepted = log
        .lines()
        .any(|l| l.contains("Accepted publickey") && l.contains(": ED25519 "));
    assert!(
        refused && accepted,
        "certificate refused, then the key: {log}"
    );
}

/// A `-cert.pub` that does not parse is skipped with a note naming it (here in the error,
/// as nothing else logs in), never a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_certificate_is_named_in_the_error() {
    let Some(relay) = CaRelay::start() else {
        return;
    };
    let mut cert = relay.key.private_path().as_os_str().to_owned();
    cert.push("-cert.pub");
    let cert = PathBuf::from(cert);
    std::fs::write(
        &cert,
        "ssh-ed25519-cert-v01@openssh.com AAAAnot-a-certificate\n",
    )
    .unwrap();
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("garbled", relay.key.private_path(), None),
    );
    let failed = wait_for(&daemon, "garbled", WITHIN, "failed", |p| {
        p.state == TunnelState::Failed
    })
    .await;
    let error = failed.last_error.expect("an error");
    assert_eq!(error.class, ErrorClass::Auth, "{error:?}");
    assert!(
        error.message.contains(&cert.display().to_string()),
        "{}",
        error.message
    );
    daemon.shutdown().await;
}

/// An RSA certificate is offered with a SHA-2 signature name
/// (`rsa-sha2-512-cert-v01@openssh.com`): OpenSSH ≥ 8.8 refuses SHA-1 `ssh-rsa-cert-v01`. From
/// a file and from the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_certificate_signs_with_sha2() {
    let Some(relay) = CaRelay::start() else {
        return;
    };
    let rsa = KeyPair::generate(relay.dir.path(), "rsa", KeyKind::Rsa);
    rsa.certify(&relay.ca, &current_user());
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("rsacert", rsa.private_path(), None),
    );
    wait_up(&daemon, "rsacert", WITHIN).await;
    daemon.shutdown().await;

    let agent = Agent::start(relay.dir.path());
    agent.add(rsa.private_path());
    let missing = relay.dir.path().join("no-such-key");
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("rsaagent", &missing, Some(&agent)),
    );
    wait_up(&daemon, "rsaagent", WITHIN).await;
    daemon.shutdown().await;
}

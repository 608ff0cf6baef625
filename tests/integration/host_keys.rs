//! A relay with host keys of several types, of which known_hosts records only one that is not
//! russh's first choice (ed25519): pairtund asks for the recorded type first, as OpenSSH's ssh
//! does, so the tunnel comes up under `strict` and `accept-new` pins nothing more.

use std::path::Path;
use std::time::Duration;

use pairtun::tunnel::TunnelState;

use crate::harness::{Relay, local_spec, start_daemon, wait_for};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::require_sshd;

const SETTLED_WITHIN: Duration = Duration::from_secs(20);

/// A relay serving a `kind` host key next to its ed25519 one, with a known_hosts file that
/// records only the `kind` key (as a relay first met before it had an ed25519 key leaves it).
/// The key lives in `keys`, which must outlive the relay.
fn relay_pinned_to(kind: KeyKind, keys: &Path) -> Relay {
    let host_key = KeyPair::generate(keys, "relay_host_key", kind);
    let line = format!("HostKey {}", host_key.private_path().display());
    let relay = Relay::start(&[&line]).expect("sshd is installed");
    let key: Vec<&str> = host_key.public_line().split_whitespace().take(2).collect();
    let entry = format!("[127.0.0.1]:{} {}\n", relay.sshd.port(), key.join(" "));
    std::fs::write(relay.known_hosts(), entry).expect("write known_hosts");
    relay
}

/// Starts a tunnel to `relay` with `extra` lines and waits until it is up or has failed; a
/// remote forward on port 0 (the relay picks) gives it something to hold.
async fn settle(relay: &Relay, extra: &str) -> pairtun::tunnel::Published {
    let forwards = vec![local_spec(0, 9)];
    let toml = relay.tunnel_via("pinned", relay.sshd.port(), vec![], forwards, extra);
    let daemon = start_daemon(relay.dir.path(), &toml);
    let p = wait_for(&daemon, "pinned", SETTLED_WITHIN, "up or failed", |p| {
        matches!(p.state, TunnelState::Up | TunnelState::Failed)
    })
    .await;
    daemon.shutdown().await;
    p
}

async fn strict_comes_up_with_only(kind: KeyKind) {
    require_sshd!();
    let keys = tempfile::tempdir().unwrap();
    let relay = relay_pinned_to(kind, keys.path());
    let p = settle(&relay, "").await;
    assert_eq!(p.state, TunnelState::Up, "{kind:?}: {:?}", p.last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_tunnel_comes_up_when_known_hosts_has_only_the_relays_ecdsa_key() {
    strict_comes_up_with_only(KeyKind::Ecdsa).await;
}

/// A recorded `ssh-rsa` key is asked for as rsa-sha2-512/256 (russh's RSA preference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_tunnel_comes_up_when_known_hosts_has_only_the_relays_rsa_key() {
    strict_comes_up_with_only(KeyKind::Rsa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_does_not_pin_a_second_key_of_a_relay_it_knows() {
    require_sshd!();
    let keys = tempfile::tempdir().unwrap();
    let relay = relay_pinned_to(KeyKind::Ecdsa, keys.path());
    let before = std::fs::read_to_string(relay.known_hosts()).unwrap();
    let p = settle(&relay, "host_key_policy = \"accept-new\"\n").await;
    assert_eq!(p.state, TunnelState::Up, "{:?}", p.last_error);
    let after = std::fs::read_to_string(relay.known_hosts()).unwrap();
    assert_eq!(after, before, "known_hosts changed");
}

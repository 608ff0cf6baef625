//! A relay that does what no sshd does: pairtund stays safe and keeps the tunnel up.

use std::time::Duration;

use pairtun::tunnel::TunnelState;

use crate::harness::{TunnelToml, local_spec, start_daemon, wait_for};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::pushy_relay::{Mode, PushyRelay};
use crate::support::sshd::free_port;
use crate::support::wait;

/// A relay that opens channels toward pairtund (a session, x11, direct-tcpip: nothing pairtun
/// asks for) has each refused, and the tunnel stays up; russh would accept them by default,
/// and nothing would read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_the_relay_opens_unasked_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let relay = PushyRelay::start(dir.path(), Mode::OpensChannels);
    let key = KeyPair::generate(dir.path(), "client", KeyKind::Ed25519);
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, relay.known_hosts_line() + "\n").unwrap();
    let toml = TunnelToml {
        name: "pushy",
        port: relay.port(),
        key: key.private_path(),
        known_hosts: &kh,
        local: vec![local_spec(free_port(), 9)],
        remote: vec![],
        extra: "",
    }
    .render();
    let daemon = start_daemon(dir.path(), &toml);
    wait_for(&daemon, "pushy", Duration::from_secs(10), "up", |p| {
        p.state == TunnelState::Up
    })
    .await;
    let answers = wait::until_some("three answers", Duration::from_secs(10), || {
        let answers = relay.answers();
        (answers.len() == 3).then_some(answers)
    });
    for answer in &answers {
        assert!(
            answer.contains("AdministrativelyProhibited") || answer.contains("prohibited"),
            "{answers:?}"
        );
    }
    let p = &daemon.status(Some("pushy")).unwrap()[0];
    assert_eq!(p.state, TunnelState::Up, "{p:#?}");
    daemon.shutdown().await;
}

/// A `-R` request the relay answers only after pairtund gave up on it is withdrawn, so the
/// late grant does not hold the port for the rest of the session (every retry would then be
/// refused as "busy").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_request_answered_too_late_is_withdrawn() {
    let dir = tempfile::tempdir().unwrap();
    let late = Duration::from_secs(8); // past harness::FAST's 5 s connect_timeout
    let relay = PushyRelay::start(dir.path(), Mode::AnswersForwardsAfter(late));
    let key = KeyPair::generate(dir.path(), "client", KeyKind::Ed25519);
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, relay.known_hosts_line() + "\n").unwrap();
    let port = free_port();
    let toml = TunnelToml {
        name: "late",
        port: relay.port(),
        key: key.private_path(),
        known_hosts: &kh,
        local: vec![],
        remote: vec![format!("{port}:127.0.0.1:9")],
        extra: "",
    }
    .render()
    // The relay's session loop waits on the request, keepalives too: let them wait.
    .replace(
        "keepalive_interval = \"1s\"",
        "keepalive_interval = \"10s\"",
    );
    let daemon = start_daemon(dir.path(), &toml);
    let cancel = format!("cancel {port}");
    let answers = wait::until_some("the cancel", Duration::from_secs(20), || {
        let answers = relay.answers();
        answers.contains(&cancel).then_some(answers)
    });
    assert_eq!(answers[0], format!("tcpip-forward {port}"), "{answers:?}");
    daemon.shutdown().await;
}

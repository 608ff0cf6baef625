//! Pairing (SPEC §3 `invite`, issue 6 §6): status says whether a `-L`'s far end — the
//! partner's side — answers through the relay, and a target the relay cannot reach is
//! reported with the relay's own reason.

use std::time::Duration;

use pairtun::tunnel::{Peer, PeerState};

use crate::binary::pairtunctl;
use crate::harness::{Relay, local_spec, start_daemon, wait_for, wait_up, write_config};
use crate::support::echo::{EchoServer, roundtrip};
use crate::support::sshd::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_whether_each_far_end_answers() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let closed = free_port();
    // The relay's own sshd stands in for the partner's (an SSH banner), the echo server for a
    // port that answers without one, and a closed port for a partner who is not there yet.
    let local = vec![
        local_spec(free_port(), relay.sshd.port()),
        local_spec(free_port(), echo.port()),
        local_spec(free_port(), closed),
    ];
    let daemon = start_daemon(relay.dir.path(), &relay.tunnel("pair", local, vec![]));
    wait_up(&daemon, "pair", Duration::from_secs(20)).await;
    let p = wait_for(
        &daemon,
        "pair",
        Duration::from_secs(10),
        "all probed",
        |p| p.forwards.iter().all(|f| f.peer.is_some()),
    )
    .await;
    let peers: Vec<&Peer> = p.forwards.iter().filter_map(|f| f.peer.as_ref()).collect();
    assert_eq!(peers[0].state, PeerState::Up, "{peers:#?}");
    assert!(peers[0].detail.starts_with("SSH-2.0-OpenSSH"), "{peers:#?}");
    assert_eq!(peers[1].state, PeerState::Open, "{peers:#?}");
    assert_eq!(peers[2].state, PeerState::NotListening, "{peers:#?}");
    assert_eq!(peers[2].detail, "connect failed: Connection refused");
    daemon.shutdown().await;
}

/// A forwarded connection the relay cannot deliver does not change the tunnel's state; the
/// forward's error carries the relay's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_the_relay_cannot_reach_is_reported_with_the_relays_reason() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let (port, closed) = (free_port(), free_port());
    let toml = relay.tunnel("pair", vec![local_spec(port, closed)], vec![]);
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "pair", Duration::from_secs(20)).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // The relay refuses the channel: the client sees its connection closed.
    assert!(roundtrip(addr, b"anyone?", Duration::from_secs(5)).is_err());
    let p = wait_for(
        &daemon,
        "pair",
        Duration::from_secs(5),
        "forward error",
        |p| p.forwards[0].error.is_some(),
    )
    .await;
    assert_eq!(p.state, pairtun::tunnel::TunnelState::Up);
    assert_eq!(
        p.forwards[0].error.as_deref(),
        Some(
            format!("relay could not open 127.0.0.1:{closed}: connect failed: Connection refused")
                .as_str()
        )
    );
    daemon.shutdown().await;
}

#[test]
fn invite_prints_a_config_the_partner_can_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[tunnels.jane]\nhost = \"saturn\"\nlocal = [\"9999:localhost:1235\"]\n",
    );
    let socket = dir.path().join("no-daemon.sock");
    let out = pairtunctl(
        &socket,
        &["--config", config.to_str().unwrap(), "invite", "jane"],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("remote = [\"1235:localhost:22\"]"), "{text}");
    // The partner appends it to their file as it is.
    let theirs = dir.path().join("theirs.toml");
    std::fs::write(&theirs, &text).unwrap();
    let env = crate::harness::env_for(dir.path());
    pairtun::config::load(&theirs, &env).expect("the invite is a valid config");

    let missing = pairtunctl(
        &socket,
        &["--config", config.to_str().unwrap(), "invite", "nobody"],
    );
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
}

/// `pairtunctl --config CONFIG doctor ARGS…`.
fn doctor(config: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let socket = config.with_file_name("no-daemon.sock");
    let mut all = vec!["--config", config.to_str().unwrap(), "doctor"];
    all.extend_from_slice(args);
    let out = pairtunctl(&socket, &all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn doctor_passes_a_working_tunnel_and_says_what_the_relay_allows() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let local = vec![local_spec(free_port(), relay.sshd.port())];
    let remote = vec![local_spec(free_port(), 22)];
    let config = write_config(relay.dir.path(), &relay.tunnel("pair", local, remote));
    let (code, out) = doctor(&config, &["pair"]);
    assert_eq!(code, Some(0), "{out}");
    for expected in [
        "ok    config",
        "ok    agent",
        "known_hosts",
        "ok    connect",
        "far end answers: SSH-2.0-OpenSSH",
        "allowed (needed by -R",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn doctor_names_each_problem_with_its_fix() {
    let Some(relay) = Relay::start(&["AllowTcpForwarding local"]) else {
        return;
    };
    let remote = vec![local_spec(free_port(), 22)];
    let config = write_config(relay.dir.path(), &relay.tunnel("pair", vec![], remote));
    let key = relay.key.private_path();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (code, out) = doctor(&config, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("mode 0644: readable by others"), "{out}");
    assert!(
        out.contains(&format!("fix: chmod 600 {}", key.display())),
        "{out}"
    );
    assert!(out.contains("fail  remote forwarding"), "{out}");
    assert!(out.contains("AllowTcpForwarding"), "{out}");

    std::fs::remove_file(relay.known_hosts()).unwrap();
    let (code, out) = doctor(&config, &["pair", "--offline"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("fail  known_hosts"), "{out}");
    assert!(
        !out.contains("connect"),
        "--offline connects to nothing:\n{out}"
    );
}

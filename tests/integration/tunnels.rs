//! Issue 2 end to end: tunnels against real OpenSSH sshd fixtures — data integrity through -L
//! and -R, the seed pairing scenario, recovery from relay restarts and dead paths, and the
//! auth / host-key failure policies.

use std::time::{Duration, Instant};

use pairtun::error::ErrorClass;
use pairtun::tunnel::{Command, ForwardState, TunnelState};
use tokio_util::task::AbortOnDropHandle;

use crate::harness::{EchoTunnel, Relay, TunnelToml, local_spec, start_daemon, wait_for, wait_up};
use crate::support::echo::{EchoServer, SinkServer, roundtrip, transfer_and_verify};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::proxy::ChaosProxy;
use crate::support::sshd::{Sshd, SshdOptions, free_port, free_ports};
use crate::support::wait::until_async;

const UP_WITHIN: Duration = Duration::from_secs(20);
const BULK: usize = 64 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_forward_carries_64_mib_each_way_intact() {
    let Some(t) = EchoTunnel::start("l").await else {
        return;
    };
    let addr = t.addr();
    tokio::task::spawn_blocking(move || transfer_and_verify(addr, BULK, 7))
        .await
        .unwrap()
        .expect("64 MiB through -L");
    let status = t.daemon.status(Some("l")).unwrap().remove(0);
    assert!(
        status.bytes_out >= BULK as u64 && status.bytes_in >= BULK as u64,
        "{status:?}"
    );
    t.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_carries_64_mib_each_way_intact() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let rport = free_port();
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("r", vec![], vec![local_spec(rport, echo.port())]),
    );
    wait_up(&daemon, "r", UP_WITHIN).await;
    // The relay (sshd, on this machine) now listens on rport and forwards to us.
    let addr = format!("127.0.0.1:{rport}").parse().unwrap();
    tokio::task::spawn_blocking(move || transfer_and_verify(addr, BULK, 11))
        .await
        .unwrap()
        .expect("64 MiB through -R");
    daemon.shutdown().await;
}

/// The seed scenario: Jane's daemon holds -R relay:1235 → her sshd; mine holds -L 9999 →
/// relay:1235; `ssh -p 9999` logs in to Jane's sshd through both and runs a command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_ssh_login_through_both_daemons() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let jane_dir = tempfile::tempdir().unwrap();
    let login_key = KeyPair::generate(jane_dir.path(), "me-at-jane", KeyKind::Ed25519);
    let jane = Sshd::start(SshdOptions::new().authorize(&login_key));
    let (relay_port, my_port) = (free_port(), free_port());

    let jane_daemon = start_daemon(
        jane_dir.path(),
        &relay.tunnel(
            "to-me",
            vec![],
            vec![format!("{relay_port}:localhost:{}", jane.port())],
        ),
    );
    let my_dir = tempfile::tempdir().unwrap();
    let my_daemon = start_daemon(
        my_dir.path(),
        &relay.tunnel("jane", vec![local_spec(my_port, relay_port)], vec![]),
    );
    wait_up(&jane_daemon, "to-me", UP_WITHIN).await;
    wait_up(&my_daemon, "jane", UP_WITHIN).await;

    let kh = my_dir.path().join("jane_known_hosts");
    std::fs::write(&kh, jane.known_hosts_line_at(my_port) + "\n").unwrap();
    let key = login_key.private_path().to_path_buf();
    let user = jane.user();
    let out = tokio::task::spawn_blocking(move || {
        crate::support::ssh::ssh_exec(my_port, &user, &key, &kh, "echo paired-$((6*7))")
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("paired-42"),
        "ssh through the tunnels failed: {out:?}"
    );
    my_daemon.shutdown().await;
    jane_daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_restart_brings_the_tunnel_back() {
    let Some(mut t) = EchoTunnel::start("l").await else {
        return;
    };
    let addr = t.addr();
    roundtrip(addr, b"before", Duration::from_secs(5)).expect("traffic before restart");

    t.relay.sshd.restart();
    let p = wait_for(&t.daemon, "l", UP_WITHIN, "up on a second session", |p| {
        p.state == TunnelState::Up && p.session >= 2
    })
    .await;
    assert_eq!(p.last_error.map(|e| e.class), Some(ErrorClass::Network));
    roundtrip(addr, b"after", Duration::from_secs(5)).expect("traffic after restart");
    t.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_path_is_declared_dead_within_keepalive_budget_and_heals() {
    blackhole_is_detected_and_healed(false).await;
}

/// The same with a bulk upload running when the path goes silent: pairtund's socket buffers
/// fill and russh's session loop parks in a write, which its own keepalive timer would not
/// notice; the tunnel's keepalive still must (SPEC §4: "also while data is flowing").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_path_is_declared_dead_also_while_data_flows() {
    blackhole_is_detected_and_healed(true).await;
}

/// Blackholes the path of a tunnel with keepalive 1 s × 2 (with `busy`, while a client uploads
/// through it), checks that it is declared dead within the keepalive budget, and that it comes
/// back and carries traffic after the path heals.
async fn blackhole_is_detected_and_healed(busy: bool) {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let proxy = ChaosProxy::start(relay.sshd.addr());
    let echo = EchoServer::start();
    let sink = SinkServer::start();
    let ports = free_ports(2);
    let kh = relay.known_hosts();
    std::fs::write(&kh, relay.sshd.known_hosts_line_at(proxy.port()) + "\n").unwrap();
    let toml = relay.tunnel_via(
        "bh",
        proxy.port(),
        vec![
            local_spec(ports[0], echo.port()),
            local_spec(ports[1], sink.port()),
        ],
        vec![],
        "",
    );
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "bh", UP_WITHIN).await;

    let _upload = if busy {
        let upload = AbortOnDropHandle::new(tokio::spawn(upload_until_stuck(ports[1])));
        until_async("upload flowing", Duration::from_secs(10), || async {
            sink.bytes_received() > 4 << 20
        })
        .await;
        Some(upload)
    } else {
        None
    };
    proxy.blackhole();
    let cut = Instant::now();
    // keepalive 1 s × 2: dead after (2 + 1) × 1 s; allow scheduling slack.
    wait_for(
        &daemon,
        "bh",
        Duration::from_secs(6),
        "declared dead",
        |p| p.state != TunnelState::Up,
    )
    .await;
    let detected = cut.elapsed();
    assert!(
        detected >= Duration::from_secs(2),
        "declared dead too early: {detected:?}"
    );
    assert!(
        detected <= Duration::from_millis(4_500),
        "declared dead too late: {detected:?}"
    );

    proxy.heal();
    wait_for(&daemon, "bh", UP_WITHIN, "up again", |p| {
        p.state == TunnelState::Up && p.session >= 2
    })
    .await;
    let addr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
    roundtrip(addr, b"healed", Duration::from_secs(5)).expect("traffic after heal");
    daemon.shutdown().await;
}

/// Writes into `port` as fast as it is taken, until a write fails (the test aborts it sooner).
async fn upload_until_stuck(port: u16) {
    use tokio::io::AsyncWriteExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let chunk = vec![0x5a_u8; 64 * 1024];
    while stream.write_all(&chunk).await.is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_fails_with_auth_class_and_retries_slowly() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let stranger = KeyPair::generate(relay.dir.path(), "stranger", KeyKind::Ed25519);
    let kh = relay.known_hosts();
    let toml = TunnelToml {
        name: "auth",
        port: relay.sshd.port(),
        key: stranger.private_path(),
        known_hosts: &kh,
        local: vec![local_spec(free_port(), 9)],
        remote: vec![],
        extra: "",
    }
    .render()
    // Production-like maximum: the next attempt must be a whole interval away.
    .replace("max = \"2s\"", "max = \"60s\"");
    let daemon = start_daemon(relay.dir.path(), &toml);
    let p = wait_for(&daemon, "auth", UP_WITHIN, "failed", |p| {
        p.state == TunnelState::Failed
    })
    .await;
    let error = p.last_error.expect("an error");
    assert_eq!(error.class, ErrorClass::Auth, "{error:?}");
    let status = daemon.status(Some("auth")).unwrap().remove(0);
    let retry = status.retry_in_ms.expect("a retry is planned");
    // Retried only at the maximum interval: at most one more attempt a minute.
    assert!(retry >= 50_000, "auth retry too soon: {retry} ms");
    assert_eq!(status.attempt, Some(1));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_host_key_fails_and_sends_no_credentials() {
    let Some(mut relay) = Relay::start(&["LogLevel DEBUG1"]) else {
        return;
    };
    relay.sshd.regenerate_host_key();
    relay.sshd.restart();
    let mark = relay.sshd.log_mark();
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("hk", vec![local_spec(free_port(), 9)], vec![]),
    );
    let p = wait_for(&daemon, "hk", UP_WITHIN, "failed", |p| {
        p.state == TunnelState::Failed
    })
    .await;
    let error = p.last_error.expect("an error");
    assert_eq!(error.class, ErrorClass::HostKey, "{error:?}");
    assert!(error.message.contains("CHANGED"), "{}", error.message);
    assert_eq!(p.retry_at, None, "a host key mismatch must not be retried");
    let log = relay.sshd.log_since(mark);
    assert!(
        !log.contains("userauth") && !log.contains("publickey"),
        "credentials reached sshd:\n{log}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_key_is_refused_when_strict_and_pinned_with_accept_new() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    std::fs::remove_file(relay.known_hosts()).unwrap();
    let spec = vec![local_spec(free_port(), 9)];
    let daemon = start_daemon(
        relay.dir.path(),
        &relay.tunnel("strict", spec.clone(), vec![]),
    );
    let p = wait_for(&daemon, "strict", UP_WITHIN, "failed", |p| {
        p.state == TunnelState::Failed
    })
    .await;
    assert_eq!(p.last_error.unwrap().class, ErrorClass::HostKey);
    daemon.shutdown().await;

    let toml = relay.tunnel_via(
        "tofu",
        relay.sshd.port(),
        spec,
        vec![],
        "host_key_policy = \"accept-new\"\n",
    );
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "tofu", UP_WITHIN).await;
    let pinned = std::fs::read_to_string(relay.known_hosts()).unwrap();
    assert!(
        pinned.contains(&format!("[127.0.0.1]:{}", relay.sshd.port())),
        "{pinned}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_remote_port_degrades_only_that_forward() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let (rport, lport) = (free_port(), free_port());
    // The first tunnel holds rport on the relay; the second asks for it too, plus a -L.
    let first = relay.tunnel("holder", vec![], vec![local_spec(rport, echo.port())]);
    let second = relay.tunnel(
        "late",
        vec![local_spec(lport, echo.port())],
        vec![local_spec(rport, echo.port())],
    );
    let holder_dir = tempfile::tempdir().unwrap();
    let holder = start_daemon(holder_dir.path(), &first);
    wait_up(&holder, "holder", UP_WITHIN).await;
    let daemon = start_daemon(relay.dir.path(), &second);
    let p = wait_for(&daemon, "late", UP_WITHIN, "degraded", |p| {
        p.state == TunnelState::Degraded
    })
    .await;
    let remote = &p.forwards[1];
    assert_eq!(remote.state, ForwardState::Error);
    let why = remote.error.as_deref().unwrap_or_default();
    assert!(
        why.contains(&format!("remote port {rport} busy")) && why.contains("ClientAliveInterval"),
        "{why}"
    );
    // The -L forward on the same session carries traffic meanwhile.
    let addr = format!("127.0.0.1:{lport}").parse().unwrap();
    roundtrip(addr, b"still-serving", Duration::from_secs(5)).expect("-L works while -R is busy");

    // Freed on the relay: the forward is retried on its own and the tunnel becomes up.
    holder.shutdown().await;
    wait_for(&daemon, "late", UP_WITHIN, "up", |p| {
        p.state == TunnelState::Up && p.session == 1
    })
    .await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_closes_the_listener_and_up_reconnects() {
    let Some(t) = EchoTunnel::start("ud").await else {
        return;
    };
    t.daemon.command("ud", Command::Down).await.expect("down");
    wait_for(&t.daemon, "ud", UP_WITHIN, "stopped", |p| {
        p.state == TunnelState::Stopped
    })
    .await;
    crate::support::wait::until("listener closed", Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", t.port)).is_err()
    });
    t.daemon.command("ud", Command::Up).await.expect("up");
    wait_for(&t.daemon, "ud", UP_WITHIN, "up again", |p| {
        p.state == TunnelState::Up && p.session == 2
    })
    .await;
    let addr = t.addr();
    roundtrip(addr, b"back", Duration::from_secs(5)).expect("traffic after up");
    t.daemon.shutdown().await;
}

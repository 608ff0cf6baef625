//! `-L` forwards under stress (SPEC §4 "Local forwards", "Isolation"): a connection made during
//! an outage is held for `connection_hold` and served by the next session, and a client that
//! never reads is cut off without stalling the session's other connections.

use std::time::{Duration, Instant};

use pairtun::tunnel::TunnelState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{UP_WITHIN, addr};
use crate::harness::{Relay, StateLog, local_spec, start_daemon, wait_for, wait_up};
use crate::support::echo::{EchoServer, FloodServer, roundtrip_async};
use crate::support::sshd::free_port;

/// sshd is down: the `-L` listener still accepts, and what the client sends arrives once
/// sshd is back (within `connection_hold`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_connection_made_during_an_outage_goes_through_after_it() {
    let Some(mut relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let port = free_port();
    let toml = relay.tunnel_via(
        "hold",
        relay.sshd.port(),
        vec![local_spec(port, echo.port())],
        vec![],
        "connection_hold = \"20s\"\n",
    );
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "hold", UP_WITHIN).await;

    relay.sshd.stop();
    wait_for(&daemon, "hold", UP_WITHIN, "down", |p| {
        p.state != TunnelState::Up
    })
    .await;
    let mut held = tokio::net::TcpStream::connect(addr(port))
        .await
        .expect("the listener stays bound while sshd is down");
    held.write_all(b"sent during the outage").await.unwrap();

    let restarted = Instant::now();
    relay.sshd.restart();
    let mut back = [0; 22];
    tokio::time::timeout(UP_WITHIN, held.read_exact(&mut back))
        .await
        .expect("held bytes delivered after sshd came back")
        .expect("held connection kept");
    assert_eq!(&back, b"sent during the outage");
    eprintln!(
        "held connection served {:?} after restart",
        restarted.elapsed()
    );
    // Closed first, so shutdown need not wait out its grace period for it.
    drop(held);
    daemon.shutdown().await;
}

/// With no session for longer than `connection_hold`, a waiting connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_connection_is_closed_after_connection_hold() {
    let Some(mut relay) = Relay::start(&[]) else {
        return;
    };
    let port = free_port();
    let toml = relay.tunnel_via(
        "short",
        relay.sshd.port(),
        vec![local_spec(port, 9)],
        vec![],
        "connection_hold = \"1s\"\n",
    );
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "short", UP_WITHIN).await;
    relay.sshd.stop();
    wait_for(&daemon, "short", UP_WITHIN, "down", |p| {
        p.state != TunnelState::Up
    })
    .await;
    let mut held = tokio::net::TcpStream::connect(addr(port)).await.unwrap();
    let waited = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), held.read(&mut [0; 1])).await;
    let waited = waited.elapsed();
    assert!(matches!(ended, Ok(Ok(0) | Err(_))), "{ended:?}");
    assert!(
        waited >= Duration::from_millis(900),
        "closed too early: {waited:?}"
    );
    daemon.shutdown().await;
}

/// One connection flooded by its target while its client never reads; another does 1-byte
/// ping-pong on the same session. The ping-pong never stalls, the tunnel stays up, and the
/// flooded connection is cut, visibly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_client_that_never_reads_is_cut_and_stalls_nobody() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let (flood, echo) = (FloodServer::start(), EchoServer::start());
    let (fport, eport) = (free_port(), free_port());
    let toml = relay.tunnel(
        "iso",
        vec![
            local_spec(fport, flood.port()),
            local_spec(eport, echo.port()),
        ],
        vec![],
    );
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "iso", UP_WITHIN).await;
    roundtrip_async(addr(eport), b"warm", Duration::from_secs(5))
        .await
        .unwrap();
    let log = StateLog::record(&daemon, "iso");

    let mut flooded = tokio::net::TcpStream::connect(addr(fport)).await.unwrap();
    let started = Instant::now();
    let pinger = tokio::spawn(ping_pong(addr(eport), Duration::from_secs(10)));
    let p = wait_for(&daemon, "iso", Duration::from_secs(20), "flood cut", |p| {
        p.forwards[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cut"))
    })
    .await;
    let cut_after = started.elapsed();
    assert_eq!(p.state, TunnelState::Up);
    let (rounds, worst) = pinger.await.unwrap();

    // The cut closed our side: after the bytes already buffered, EOF (or a reset).
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = vec![0; 1 << 20];
        loop {
            match flooded.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "flooded connection not closed after the cut"
    );
    let seen = log.stop();
    assert!(seen.iter().all(|p| p.state == TunnelState::Up), "{seen:#?}");
    eprintln!("isolation: cut after {cut_after:?}; {rounds} ping-pongs, worst {worst:?}");
    assert!(
        worst <= Duration::from_secs(1),
        "ping-pong stalled {worst:?}"
    );
    daemon.shutdown().await;
}

/// 1-byte round trips for `period`; returns how many and the slowest.
async fn ping_pong(to: std::net::SocketAddr, period: Duration) -> (usize, Duration) {
    let mut s = tokio::net::TcpStream::connect(to).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (start, mut rounds, mut worst) = (Instant::now(), 0, Duration::ZERO);
    while start.elapsed() < period {
        let sent = Instant::now();
        let byte = [rounds as u8];
        let trip = async {
            s.write_all(&byte).await?;
            let mut back = [0; 1];
            s.read_exact(&mut back).await.map(|_| back)
        };
        let back = tokio::time::timeout(Duration::from_secs(5), trip)
            .await
            .expect("ping-pong stuck for 5 s")
            .expect("ping-pong connection failed");
        assert_eq!(back, byte);
        worst = worst.max(sent.elapsed());
        rounds += 1;
    }
    (rounds, worst)
}

/// sshd is down and the backoff has grown: a connection to the `-L` listener brings the next
/// attempt forward (to no sooner than the initial interval after the last one began), so the
/// session is back long before the retry the backoff had planned, and the connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_connection_brings_the_planned_retry_forward() {
    let Some(mut relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let port = free_port();
    let toml = relay
        .tunnel_via(
            "demand",
            relay.sshd.port(),
            vec![local_spec(port, echo.port())],
            vec![],
            "connection_hold = \"30s\"\n",
        )
        // Steps of 0.2, 1.6, 12.8 s, ...: the third wait is far longer than a reconnect.
        .replace(
            r#"backoff = { initial = "200ms", max = "2s", multiplier = 2.0, jitter = 0.2 }"#,
            r#"backoff = { initial = "200ms", max = "60s", multiplier = 8.0, jitter = 0.0 }"#,
        );
    assert!(toml.contains("multiplier = 8.0"), "{toml}");
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "demand", UP_WITHIN).await;

    relay.sshd.stop();
    let long_wait = Duration::from_secs(10);
    let waiting = wait_for(&daemon, "demand", UP_WITHIN, "a long backoff step", |p| {
        p.state == TunnelState::Backoff
            && p.retry_at
                .is_some_and(|at| at.saturating_duration_since(Instant::now()) > long_wait)
    })
    .await;
    let planned = waiting.retry_at.expect("a retry is planned");
    relay.sshd.restart();

    roundtrip_async(addr(port), b"asked for it", UP_WITHIN)
        .await
        .expect("the waiting connection is served");
    let up = wait_up(&daemon, "demand", UP_WITHIN).await;
    assert!(
        Instant::now() < planned,
        "up only at the planned retry, {:?} after it",
        Instant::now().saturating_duration_since(planned)
    );
    assert_eq!(up.session, 2, "one new session");
    daemon.shutdown().await;
}

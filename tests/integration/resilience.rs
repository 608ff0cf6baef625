//! SPEC §4's resilience promises against a real OpenSSH relay: a stale remote port degrades
//! only its forward, Unix-socket remote forwards take over at once, and a relay that never
//! speaks SSH runs into `connect_timeout`. `local` holds the `-L` side: connections held
//! across an outage (for `connection_hold`), and one flooded client stalling nobody.

use std::time::{Duration, Instant};

use pairtun::tunnel::{ForwardState, TunnelState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Relay, StateLog, local_spec, start_daemon, wait_for, wait_up};
use crate::support::echo::{EchoServer, roundtrip};
use crate::support::proxy::ChaosProxy;
use crate::support::sshd::free_port;

mod deadlines;
mod hostile_relay;
mod local;
mod wakeup;

const UP_WITHIN: Duration = Duration::from_secs(20);

fn addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// A relay reached through a chaos proxy (known_hosts names the proxy's port).
fn behind_proxy(relay: &Relay) -> ChaosProxy {
    let proxy = ChaosProxy::start(relay.sshd.addr());
    let line = relay.sshd.known_hosts_line_at(proxy.port());
    std::fs::write(relay.known_hosts(), line + "\n").unwrap();
    proxy
}

/// The dead path keeps its session alive on the relay until ClientAlive gives up, so the new
/// session's `-R` is refused: `-L` must work at once, the `-R` once the relay frees the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_remote_port_degrades_then_recovers_when_the_relay_frees_it() {
    let Some(relay) = Relay::start(&["ClientAliveInterval 2", "ClientAliveCountMax 2"]) else {
        return;
    };
    let proxy = behind_proxy(&relay);
    let echo = EchoServer::start();
    let (lport, rport) = (free_port(), free_port());
    let toml = relay.tunnel_via(
        "stale",
        proxy.port(),
        vec![local_spec(lport, echo.port())],
        vec![local_spec(rport, echo.port())],
        "",
    );
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "stale", UP_WITHIN).await;

    // strand, not blackhole: a healed blackhole would deliver our FIN late and free the port
    // at once; a stranded path stays silent, as after a Wi-Fi change, while new ones work.
    proxy.strand();
    let cut = Instant::now();
    wait_for(
        &daemon,
        "stale",
        Duration::from_secs(6),
        "declared dead",
        |p| p.state != TunnelState::Up,
    )
    .await;
    let detected = cut.elapsed();
    let p = wait_for(&daemon, "stale", UP_WITHIN, "degraded on session 2", |p| {
        p.state == TunnelState::Degraded && p.session >= 2
    })
    .await;
    let reconnected = cut.elapsed();
    let why = p.forwards[1].error.clone().unwrap_or_default();
    assert_eq!(p.forwards[1].state, ForwardState::Error, "{p:#?}");
    assert!(
        why.contains(&format!("remote port {rport} busy on relay"))
            && why.contains("ClientAliveInterval"),
        "{why}"
    );
    roundtrip(addr(lport), b"L-while-degraded", Duration::from_secs(2))
        .expect("-L carries traffic while the -R waits");

    // sshd 9.2 doubles ClientAliveInterval before counting, so the old session may live ~16 s.
    wait_for(
        &daemon,
        "stale",
        Duration::from_secs(25),
        "up on session 2",
        |p| p.state == TunnelState::Up && p.session == 2,
    )
    .await;
    let recovered = cut.elapsed();
    roundtrip(addr(rport), b"R-after-free", Duration::from_secs(5)).expect("-R works again");
    eprintln!("stale port: dead {detected:?}, degraded {reconnected:?}, up {recovered:?}");
    daemon.shutdown().await;
}

/// A stale session still holds the relay's socket, but `StreamLocalBindUnlink yes` lets the
/// new session take it over: straight to `up`, no busy error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_remote_forward_is_taken_over_by_the_next_session() {
    let Some(relay) = Relay::start(&["StreamLocalBindUnlink yes"]) else {
        return;
    };
    let proxy = behind_proxy(&relay);
    let echo = EchoServer::start();
    let sock = relay.sshd.dir().join("relay.sock");
    let spec = format!("{}:127.0.0.1:{}", sock.display(), echo.port());
    let toml = relay.tunnel_via("unix", proxy.port(), vec![], vec![spec], "");
    let daemon = start_daemon(relay.dir.path(), &toml);
    wait_up(&daemon, "unix", UP_WITHIN).await;
    unix_roundtrip(&sock, b"first session").await;

    let log = StateLog::record(&daemon, "unix");
    proxy.strand();
    let taken_over = Instant::now();
    wait_for(&daemon, "unix", UP_WITHIN, "up on session 2", |p| {
        p.state == TunnelState::Up && p.session == 2
    })
    .await;
    eprintln!(
        "unix socket: up on session 2 after {:?}",
        taken_over.elapsed()
    );
    let seen = log.stop();
    assert!(
        seen.iter().all(|p| p.state != TunnelState::Degraded),
        "{seen:#?}"
    );
    assert_eq!(seen.last().unwrap().forwards[0].error, None);
    unix_roundtrip(&sock, b"second session").await;
    daemon.shutdown().await;
}

async fn unix_roundtrip(path: &std::path::Path, msg: &[u8]) {
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(path).await?;
        s.write_all(msg).await?;
        let mut back = vec![0; msg.len()];
        s.read_exact(&mut back).await?;
        Ok::<_, std::io::Error>(back)
    };
    let back = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("round trip through the relay's socket in time")
        .expect("round trip through the relay's socket");
    assert_eq!(back, msg);
}

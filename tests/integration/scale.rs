//! Many and long (issue 5 §5): 50 tunnels in one daemon, 1,000 concurrent connections through
//! one forward, and reconnect cycles (sshd restart, reset, blackhole) after which the daemon's
//! file descriptors and memory are back where they were. CI runs a short soak;
//! `PAIRTUN_SOAK_CYCLES=300` runs the long one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Barrier;

use crate::binary::Pairtund;
use crate::control::status_json;
use crate::harness::{EchoTunnel, Relay, local_spec, start_daemon, wait_up, write_config};
use crate::support::echo::{EchoServer, roundtrip, roundtrip_async};
use crate::support::procfs::{descriptors_for, usage};
use crate::support::proxy::ChaosProxy;
use crate::support::sshd::{free_port, free_ports};
use crate::support::wait;

fn addr(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tunnels_in_one_daemon_all_carry_traffic() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let ports = free_ports(50);
    let toml: String = ports
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            relay.tunnel(
                &format!("t{i:02}"),
                vec![local_spec(port, echo.port())],
                vec![],
            )
        })
        .collect();
    let started = Instant::now();
    let daemon = start_daemon(relay.dir.path(), &toml);
    for i in 0..50 {
        wait_up(&daemon, &format!("t{i:02}"), Duration::from_secs(60)).await;
    }
    let all_up = started.elapsed();
    let exchanges = ports.iter().map(|&port| {
        let msg = format!("through {port}");
        async move { roundtrip_async(addr(port), msg.as_bytes(), Duration::from_secs(10)).await }
    });
    let failed: Vec<_> = join_all(exchanges)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 50 failed: {failed:?}",
        failed.len()
    );
    let sessions: u64 = daemon.status(None).unwrap().iter().map(|s| s.session).sum();
    assert_eq!(sessions, 50, "one session each, no reconnects");
    eprintln!("50 tunnels up in {all_up:?}");
    daemon.shutdown().await;
}

/// 1,000 clients connected at once through one `-L`, each echoing its own bytes while all
/// the others are open: every one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections_through_one_forward() {
    const CLIENTS: usize = 1_000;
    // Each client costs this process 2 fds (client + echo side) and sshd 1.
    if !descriptors_for(3 * CLIENTS as u64 + 200) {
        return;
    }
    let Some(tunnel) = EchoTunnel::start("wide").await else {
        return;
    };
    let all_open = Arc::new(Barrier::new(CLIENTS));
    let started = Instant::now();
    let clients = (0..CLIENTS).map(|i| {
        let all_open = all_open.clone();
        let to = tunnel.addr();
        async move {
            let exchange = async {
                let mut s = tokio::net::TcpStream::connect(to).await?;
                let msg = format!("client {i:04} says hello");
                s.write_all(msg.as_bytes()).await?;
                let mut back = vec![0; msg.len()];
                s.read_exact(&mut back).await?;
                if back != msg.as_bytes() {
                    return Err(std::io::Error::other(format!("client {i}: wrong echo")));
                }
                // Held open until every client has its echo: truly concurrent.
                all_open.wait().await;
                Ok::<_, std::io::Error>(())
            };
            tokio::time::timeout(Duration::from_secs(60), exchange)
                .await
                .map_err(|_| std::io::Error::other(format!("client {i}: timed out")))?
        }
    });
    let results = join_all(clients).await;
    let failed: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let status = &tunnel.daemon.status(Some("wide")).unwrap()[0];
    assert_eq!(status.session, 1, "no reconnect under load: {status:#?}");
    eprintln!("{CLIENTS} concurrent echoes in {:?}", started.elapsed());
    tunnel.daemon.shutdown().await;
}

/// The `session` counter of the daemon's only tunnel, once it is `up`.
fn session_when_up(daemon: &Pairtund) -> Option<u64> {
    let tunnel = status_json(daemon, "soak");
    (tunnel["state"] == "up")
        .then(|| tunnel["session"].as_u64())
        .flatten()
}

/// Cycles of faults, each recovered (a new session, traffic through `-L`), then the daemon's
/// fds and RSS compared with a sample taken after the first cycles warmed it up.
#[test]
fn reconnect_cycles_all_recover_and_leave_fds_and_memory_flat() {
    let cycles: u64 = std::env::var("PAIRTUN_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let Some(mut relay) = Relay::start(&[]) else {
        return;
    };
    let proxy = ChaosProxy::start(relay.sshd.addr());
    std::fs::write(
        relay.known_hosts(),
        relay.sshd.known_hosts_line_at(proxy.port()) + "\n",
    )
    .unwrap();
    let echo = EchoServer::start();
    let port = free_port();
    // Dead after 1.5 s of silence: blackhole cycles stay short.
    let toml = relay
        .tunnel_via(
            "soak",
            proxy.port(),
            vec![local_spec(port, echo.port())],
            vec![],
            "",
        )
        .replace(
            "keepalive_interval = \"1s\"",
            "keepalive_interval = \"500ms\"",
        );
    let config = write_config(relay.dir.path(), &toml);
    let daemon = Pairtund::start(&config);
    daemon.wait_ready();
    let up_on = |session: u64, what: &str| {
        let up = wait::poll(Duration::from_secs(30), || {
            session_when_up(&daemon)
                .is_some_and(|s| s >= session)
                .then_some(())
        });
        assert!(
            up.is_some(),
            "not {what} within 30 s; daemon log:\n{}",
            daemon.log()
        );
    };
    up_on(1, "first session");
    let warm_up = 3.min(cycles);
    let mut baseline = None;
    let started = Instant::now();
    for cycle in 1..=cycles {
        match cycle % 3 {
            0 => relay.sshd.restart(),
            1 => proxy.reset(),
            _ => {
                proxy.blackhole();
                wait::until("declared dead", Duration::from_secs(10), || {
                    session_when_up(&daemon).is_none()
                });
                proxy.heal();
            }
        }
        up_on(
            cycle + 1,
            &format!("up on session {} (cycle {cycle})", cycle + 1),
        );
        roundtrip(
            addr(port),
            format!("cycle {cycle}").as_bytes(),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("cycle {cycle}: no traffic after recovery: {e}"));
        if cycle == warm_up {
            baseline = Some(usage(daemon.pid()));
        }
    }
    // Closed connections leave the proxy's count a moment later; let the daemon settle too.
    let end = wait::poll(Duration::from_secs(10), || {
        let now = usage(daemon.pid());
        let before = baseline.expect("sampled");
        (now.fds <= before.fds).then_some(now)
    });
    let before = baseline.expect("sampled");
    let end = end.unwrap_or_else(|| usage(daemon.pid()));
    eprintln!(
        "soak: {cycles} cycles in {:?}; after warm-up {before:?}, at the end {end:?}",
        started.elapsed()
    );
    assert!(end.fds <= before.fds, "fds grew: {before:?} → {end:?}");
    // Allocator noise, not a leak: a leak of a few KiB per cycle exceeds this over 300 cycles.
    assert!(
        end.rss_kib <= before.rss_kib + 2048,
        "RSS grew: {before:?} → {end:?}"
    );
}

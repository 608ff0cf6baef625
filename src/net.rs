//! Sockets on this machine: dialling the relay with the options a long-lived SSH connection
//! needs, and connecting to a forward's local target (TCP or Unix).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use crate::config::{Target, Timing};
use crate::error::{ErrorClass, TunnelError};

/// A connected local stream, TCP or Unix.
#[derive(Debug)]
pub enum LocalStream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    Unix(UnixStream),
}

/// Connects to a forward's target on this machine.
pub async fn connect_target(target: &Target) -> io::Result<LocalStream> {
    match target {
        Target::Tcp(hp) => {
            let tcp = TcpStream::connect((hp.host.as_str(), hp.port)).await?;
            tcp.set_nodelay(true)?;
            Ok(LocalStream::Tcp(tcp))
        }
        Target::Unix(path) => Ok(LocalStream::Unix(UnixStream::connect(path).await?)),
    }
}

/// How long a connection attempt to one of the relay's addresses runs alone before the next
/// address is tried alongside it (RFC 8305's "Connection Attempt Delay"): an IPv6 path that
/// silently drops packets must not spend the whole connect timeout while IPv4 would answer.
const NEXT_ADDRESS_AFTER: Duration = Duration::from_millis(250);

/// Resolves and connects to the relay before `deadline` (see [`connect_any`]), and sets
/// the socket options that let the kernel notice a dead peer too: TCP keepalive, and on Linux
/// `TCP_USER_TIMEOUT` (unacknowledged data older than the SSH keepalive budget kills the socket).
pub async fn dial_relay(
    host: &str,
    port: u16,
    timing: &Timing,
    deadline: Instant,
) -> Result<TcpStream, TunnelError> {
    let lookup = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)));
    let addrs: Vec<_> = match lookup.await {
        Err(_) => return Err(timeout("DNS lookup", host, port)),
        Ok(Err(e)) => {
            return Err(TunnelError::new(
                ErrorClass::Network,
                format!("cannot resolve {host}: {e}"),
            ));
        }
        Ok(Ok(addrs)) => addrs.collect(),
    };
    let tcp = match connect_any(&addrs, deadline).await {
        Ok(tcp) => tcp,
        Err(None) => return Err(timeout("TCP connect", host, port)),
        Err(Some(why)) => {
            return Err(TunnelError::new(
                ErrorClass::Network,
                format!("cannot connect to {host}:{port}: {why}"),
            ));
        }
    };
    tune(&tcp, timing).map_err(|e| {
        TunnelError::new(
            ErrorClass::Network,
            format!("cannot set socket options: {e}"),
        )
    })?;
    Ok(tcp)
}

/// Connects to the first of `addrs` that answers before `deadline`: one attempt at a time,
/// the next starting when the last failed or after [`NEXT_ADDRESS_AFTER`] (earlier attempts
/// go on), address families taking turns. `Err(None)`: the deadline passed; `Err(Some(why))`:
/// every address refused, `why` naming each.
async fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, Option<String>> {
    let mut queue = interleave_families(addrs).into_iter();
    let mut attempts = futures_util::stream::FuturesUnordered::new();
    let mut failures = Vec::new();
    // Each turn starts the next address: the first at once, then one per failure or pause.
    loop {
        match queue.next() {
            Some(addr) => attempts.push(async move { (addr, TcpStream::connect(addr).await) }),
            None if attempts.is_empty() => {
                let why = match failures.as_slice() {
                    [] => "no addresses".to_owned(),
                    [(_, e)] => format!("{e}"),
                    all => all
                        .iter()
                        .map(|(a, e)| format!("{a}: {e}"))
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                return Err(Some(why));
            }
            None => {}
        }
        let more = queue.len() > 0;
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Err(None),
            () = tokio::time::sleep(NEXT_ADDRESS_AFTER), if more => {}
            Some((addr, result)) = futures_util::StreamExt::next(&mut attempts) => match result {
                Ok(tcp) => return Ok(tcp),
                Err(e) => failures.push((addr, e)),
            },
        }
    }
}

/// `addrs` with IPv6 and IPv4 taking turns, starting with the family of the first (the
/// resolver's preference), each family's own order kept.
fn interleave_families(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (ours, theirs): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().partition(|a| a.is_ipv6() == first.is_ipv6());
    let mut out = Vec::with_capacity(addrs.len());
    let (mut ours, mut theirs) = (ours.into_iter(), theirs.into_iter());
    loop {
        match (ours.next(), theirs.next()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

fn timeout(phase: &str, host: &str, port: u16) -> TunnelError {
    TunnelError::new(
        ErrorClass::Timeout,
        format!("{phase} to {host}:{port} timed out"),
    )
}

fn tune(tcp: &TcpStream, timing: &Timing) -> io::Result<()> {
    // Interactive traffic: without this every new -R connection pays ~40 ms to Nagle.
    tcp.set_nodelay(true)?;
    let sock = socket2::SockRef::from(tcp);
    // The kernel counts TCP keepalive in whole seconds and rejects 0 and anything above
    // 32767 (EINVAL): a sub-second SSH keepalive gets the shortest TCP one, one of hours the
    // longest (the SSH keepalive still decides).
    let idle = timing
        .keepalive_interval
        .clamp(Duration::from_secs(1), LONGEST_TCP_KEEPIDLE);
    sock.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(idle.min(Duration::from_secs(10))),
    )?;
    // An `int` of milliseconds (EINVAL above ~24.8 days).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(dead_after(timing).min(LONGEST_TCP_USER_TIMEOUT)))?;
    Ok(())
}

/// The longest `TCP_KEEPIDLE` Linux takes (`MAX_TCP_KEEPIDLE`).
const LONGEST_TCP_KEEPIDLE: Duration = Duration::from_secs(32767);

/// The longest `TCP_USER_TIMEOUT`: `i32::MAX` milliseconds.
#[cfg(any(target_os = "linux", target_os = "android"))]
const LONGEST_TCP_USER_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// How long silence lasts before the path counts as dead: `(count + 1) × interval`.
pub fn dead_after(timing: &Timing) -> Duration {
    timing.keepalive_interval * (timing.keepalive_count + 1)
}

impl AsyncRead for LocalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LocalStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            LocalStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for LocalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            LocalStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            LocalStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LocalStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            LocalStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LocalStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            LocalStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackoffConfig;

    fn timing(keepalive_interval: Duration) -> Timing {
        Timing {
            keepalive_interval,
            keepalive_count: 2,
            connect_timeout: Duration::from_secs(5),
            connection_hold: Duration::from_secs(5),
            backoff: BackoffConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(2),
                multiplier: 2.0,
                jitter: 0.2,
            },
        }
    }

    /// Regression: a sub-second keepalive once made TCP_KEEPIDLE 0, and one of 10 h made it
    /// 36000, both of which the kernel rejects: every dial failed.
    #[tokio::test]
    async fn keepalives_of_any_accepted_length_still_dial() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let longest = crate::config::MAX_DURATION;
        for interval in [Duration::from_millis(250), Duration::from_secs(15), longest] {
            let deadline = Instant::now() + Duration::from_secs(5);
            dial_relay("127.0.0.1", port, &timing(interval), deadline)
                .await
                .unwrap_or_else(|e| panic!("keepalive {interval:?}: {e}"));
        }
    }

    /// A loopback address whose connects hang: a listener with a backlog of 0 whose one
    /// queued connection is never accepted, so the kernel drops further SYNs (Linux).
    #[cfg(target_os = "linux")]
    fn hanging_address() -> (socket2::Socket, std::net::TcpStream, SocketAddr) {
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let filler = std::net::TcpStream::connect(addr).unwrap();
        (listener, filler, addr)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_address_that_does_not_answer_does_not_keep_the_next_from_being_tried() {
        let (_listener, _filler, hanging) = hanging_address();
        let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let tcp = connect_any(&[hanging, good_addr], deadline)
            .await
            .expect("the second address answers");
        assert_eq!(tcp.peer_addr().unwrap(), good_addr);
        // Alone, the hanging address times out at the deadline.
        let soon = Instant::now() + Duration::from_millis(300);
        assert!(matches!(connect_any(&[hanging], soon).await, Err(None)));
    }

    #[tokio::test]
    async fn every_refusal_is_named() {
        let closed = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let (a, b) = (closed(free_port()), closed(free_port()));
        let deadline = Instant::now() + Duration::from_secs(10);
        let Err(Some(why)) = connect_any(&[a, b], deadline).await else {
            panic!("both refuse");
        };
        assert!(
            why.contains(&a.to_string()) && why.contains(&b.to_string()),
            "{why}"
        );
        let Err(Some(why)) = connect_any(&[a], deadline).await else {
            panic!("it refuses");
        };
        assert!(why.contains("refused"), "{why}");
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn address_families_take_turns_from_the_first() {
        let v6 = |n: u16| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, n));
        let v4 = |n: u16| SocketAddr::from(([127, 0, 0, 1], n));
        assert_eq!(
            interleave_families(&[v6(1), v6(2), v6(3), v4(4)]),
            [v6(1), v4(4), v6(2), v6(3)]
        );
        assert_eq!(
            interleave_families(&[v4(1), v4(2), v6(3)]),
            [v4(1), v6(3), v4(2)]
        );
        assert!(interleave_families(&[]).is_empty());
    }
}

//! Sockets on this machine: dialling the relay with the options a long-lived SSH connection
//! needs, and connecting to a forward's local target (TCP or Unix).

use std::io;
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

/// Resolves and connects to the relay before `deadline`, trying each address in turn, and sets
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
    let mut last = None;
    for addr in &addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timeout("TCP connect", host, port)),
            Ok(Err(e)) if addrs.len() > 1 => last = Some(format!("{addr}: {e}")),
            Ok(Err(e)) => last = Some(e.to_string()),
            Ok(Ok(tcp)) => {
                tune(&tcp, timing).map_err(|e| {
                    TunnelError::new(
                        ErrorClass::Network,
                        format!("cannot set socket options: {e}"),
                    )
                })?;
                return Ok(tcp);
            }
        }
    }
    let why = last.unwrap_or_else(|| "no addresses".to_owned());
    Err(TunnelError::new(
        ErrorClass::Network,
        format!("cannot connect to {host}:{port}: {why}"),
    ))
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
}

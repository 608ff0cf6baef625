//! Copying bytes between a local socket and an SSH channel, counting them as they pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Per-tunnel traffic counters, shared by every connection of the tunnel.
#[derive(Debug, Default)]
pub struct Counters {
    /// Live forwarded connections.
    pub connections: AtomicU64,
    /// Bytes that came from the relay side.
    pub bytes_in: AtomicU64,
    /// Bytes that went toward the relay.
    pub bytes_out: AtomicU64,
    /// Woken when the last live connection ends.
    idle: tokio::sync::Notify,
}

impl Counters {
    /// Returns once no connection is live.
    pub async fn wait_idle(&self) {
        loop {
            // Created before the check so a wake-up between check and await is not lost.
            let woken = self.idle.notified();
            if self.connections.load(Ordering::Acquire) == 0 {
                return;
            }
            woken.await;
        }
    }
}

/// Counts a connection as live for as long as it is held.
pub struct ConnectionGuard(Arc<Counters>);

impl ConnectionGuard {
    /// Registers one more live connection.
    pub fn new(counters: Arc<Counters>) -> Self {
        counters.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(counters)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// 64 KiB: twice russh's default packet size, so one read fills two SSH packets.
const BUF: usize = 64 * 1024;

/// Copies `local ↔ channel` until both directions have ended; EOF on one side is passed on as a
/// half-close. Returns when both directions finished or one failed.
pub async fn pump<L, C>(local: L, channel: C, counters: &Counters) -> std::io::Result<()>
where
    L: AsyncRead + AsyncWrite + Unpin,
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut local_rd, mut local_wr) = tokio::io::split(local);
    let (mut chan_rd, mut chan_wr) = tokio::io::split(channel);
    let out = copy_counted(&mut local_rd, &mut chan_wr, &counters.bytes_out);
    let inn = copy_counted(&mut chan_rd, &mut local_wr, &counters.bytes_in);
    tokio::try_join!(out, inn).map(|_| ())
}

async fn copy_counted<R, W>(rd: &mut R, wr: &mut W, counter: &AtomicU64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            // Pass the half-close on; the other direction may still have bytes to deliver.
            return wr.shutdown().await;
        }
        wr.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

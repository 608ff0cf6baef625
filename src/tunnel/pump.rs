//! Copying bytes between a local socket and an SSH channel, counting them as they pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, SemaphorePermit, mpsc};

/// Per-tunnel traffic counters, shared by every connection of the tunnel.
#[derive(Debug)]
pub struct Counters {
    /// Live forwarded connections.
    pub connections: AtomicU64,
    /// Bytes that came from the relay side.
    pub bytes_in: AtomicU64,
    /// Bytes that went toward the relay.
    pub bytes_out: AtomicU64,
    /// Woken when the last live connection ends.
    idle: tokio::sync::Notify,
    /// What the tunnel's connections may hold for their local peers together, in the units
    /// of [`held`]: [`TUNNEL_HOLD_CAP`].
    holding: Semaphore,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            connections: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            idle: tokio::sync::Notify::new(),
            holding: Semaphore::new(TUNNEL_HOLD_CAP),
        }
    }
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

/// A connection's first buffer in each direction. Most connections carry little (a keystroke,
/// a request), and two 64 KiB buffers per connection made glibc grow and trim its heap (`brk`,
/// page faults, zeroing) for every new connection, ~25 µs of its set-up. A read that fills the
/// buffer switches that direction to [`BUF`].
const FIRST_BUF: usize = 8 * 1024;

/// Written buffers kept for reuse per connection (up to [`BUF`] bytes of capacity each).
const RECYCLE: usize = 4;

/// Memory a connection may hold for its local peer (see [`held`]). russh's session loop blocks
/// on a full per-channel queue (and then serves no other channel, no window adjust, no
/// keepalive: deps.md §2.8), and it re-opens the relay's window on receipt rather than on
/// consumption, so nothing upstream slows the relay down. The channel side is therefore always
/// drained into this buffer: a target that reads only while it can write back (an echo, sshd
/// under bulk load) would otherwise deadlock the session against itself. Measured: a 64 MiB
/// echo through `-R` ran up to ~19 MiB ahead in bursts.
const HOLD_CAP: usize = 64 * 1024 * 1024;

/// Memory all connections of one tunnel may hold for their local peers together: without it a
/// tunnel's `max_connections` slow readers could hold [`HOLD_CAP`] each. A connection that
/// needs more while the tunnel is at this limit is cut (after [`FULL_WAIT`]), as when it
/// reaches its own.
const TUNNEL_HOLD_CAP: usize = 256 * 1024 * 1024;

/// What one queued chunk costs beyond its buffer: the allocation's header and the queue slot.
const CHUNK_OVERHEAD: usize = 64;

/// The memory a queued chunk holds: its buffer's capacity, not the bytes in it, so a relay
/// trickling small packets to a local peer that does not read cannot hold a 64 KiB buffer per
/// byte.
fn held(chunk: &Vec<u8>) -> usize {
    chunk.capacity() + CHUNK_OVERHEAD
}

/// How long a full buffer may wait for room before the connection is cut: while it waits, the
/// whole session waits.
const FULL_WAIT: Duration = Duration::from_millis(250);

/// How long one write to the local peer may make no progress before the connection is cut as
/// stalled (it costs only memory meanwhile, up to [`HOLD_CAP`]).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Copies `local ↔ channel` until both directions have ended; EOF on one side is passed on as a
/// half-close. Returns when both directions finished or one failed (a stalled local peer is a
/// `TimedOut` failure).
pub async fn pump<L, C>(local: L, channel: C, counters: &Counters) -> std::io::Result<()>
where
    L: AsyncRead + AsyncWrite + Unpin,
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut local_rd, mut local_wr) = tokio::io::split(local);
    let (mut chan_rd, mut chan_wr) = tokio::io::split(channel);
    let out = copy_counted(&mut local_rd, &mut chan_wr, &counters.bytes_out);
    let inn = copy_buffered(&mut chan_rd, &mut local_wr, counters);
    tokio::try_join!(out, inn).map(|_| ())
}

async fn copy_counted<R, W>(rd: &mut R, wr: &mut W, counter: &AtomicU64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; FIRST_BUF];
    loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            // Pass the half-close on; the other direction may still have bytes to deliver.
            return wr.shutdown().await;
        }
        wr.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        if n == buf.len() && n < BUF {
            buf.resize(BUF, 0); // a full read: bulk data, read it in large pieces
        }
    }
}

/// Like [`copy_counted`], but reading runs ahead of writing by up to [`HOLD_CAP`] bytes, and
/// the tunnel's connections together by up to [`TUNNEL_HOLD_CAP`]; counted in `bytes_in`.
async fn copy_buffered<R, W>(rd: &mut R, wr: &mut W, counters: &Counters) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    copy_holding(rd, wr, &counters.bytes_in, HOLD_CAP, &counters.holding).await
}

/// A chunk read for the local peer, with the memory it holds from the connection's and the
/// tunnel's budgets: given back when the chunk is written or dropped (the connection ended).
struct Queued<'a> {
    chunk: Vec<u8>,
    _connection: SemaphorePermit<'a>,
    _tunnel: SemaphorePermit<'a>,
}

/// [`copy_buffered`] with the memory it may hold (`cap`, in the units of [`held`]) and the
/// tunnel's budget (`tunnel`, the same units) given.
async fn copy_holding<R, W>(
    rd: &mut R,
    wr: &mut W,
    counter: &AtomicU64,
    cap: usize,
    tunnel: &Semaphore,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let budget = Semaphore::new(cap);
    let (tx, mut rx) = mpsc::unbounded_channel::<Queued<'_>>();
    // Written buffers come back for reuse, so a steady transfer allocates (and page-faults in)
    // no new memory per read; a few are kept, the rest of a burst is freed.
    let (recycle, mut recycled) = mpsc::channel::<Vec<u8>>(RECYCLE);
    let reader = async {
        let tx = tx; // dropped at EOF, which ends the writer
        let mut size = FIRST_BUF;
        loop {
            let mut buf = match recycled.try_recv() {
                Ok(mut used) if used.capacity() >= size => {
                    used.clear();
                    used
                }
                _ => Vec::with_capacity(size),
            };
            // `read_buf` fills the spare capacity: no zeroing of a buffer about to be overwritten.
            if rd.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
            // Packets already queued join this buffer: one write (and one wake-up of the local
            // peer) instead of one per packet. EOF and errors end the filling; the next read
            // reports them.
            while buf.len() < buf.capacity() {
                match rd.read_buf(&mut buf).now_or_never() {
                    Some(Ok(more)) if more > 0 => {}
                    _ => break,
                }
            }
            if buf.len() == buf.capacity() {
                size = BUF; // a full buffer: bulk data, take it in large pieces
            } else if budget.available_permits() < cap && buf.len() < buf.capacity() / 2 {
                // The writer is behind, so this chunk will wait: keep only its bytes (glibc
                // shrinks in place), which keeps what is held at least half data. While the
                // writer keeps up, buffers stay whole for reuse.
                buf.shrink_to_fit();
            }
            let wanted = u32::try_from(held(&buf)).unwrap_or(u32::MAX);
            let deadline = tokio::time::Instant::now() + FULL_WAIT;
            let Ok(Ok(connection)) =
                tokio::time::timeout_at(deadline, budget.acquire_many(wanted)).await
            else {
                let why = format!("holding {} MiB for the local peer", cap >> 20);
                return Err(stalled(&why));
            };
            let Ok(Ok(tunnel)) =
                tokio::time::timeout_at(deadline, tunnel.acquire_many(wanted)).await
            else {
                let why = format!(
                    "the tunnel's connections holding {} MiB for their local peers",
                    TUNNEL_HOLD_CAP >> 20
                );
                return Err(stalled(&why));
            };
            let queued = Queued {
                chunk: buf,
                _connection: connection,
                _tunnel: tunnel,
            };
            if tx.send(queued).is_err() {
                return Ok(()); // writer failed; its error is reported
            }
        }
    };
    let writer = async {
        while let Some(queued) = rx.recv().await {
            let Queued { chunk, .. } = queued; // its permits go back at the end of this turn
            // Stalled is no progress for STALL_TIMEOUT, not a slow reader: each write that
            // takes some bytes restarts the clock.
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                match tokio::time::timeout(STALL_TIMEOUT, wr.write(rest)).await {
                    Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(Ok(n)) => rest = &rest[n..],
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(stalled("local peer stopped reading")),
                }
            }
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let _ = recycle.try_send(chunk); // full or reader gone: just free it
        }
        wr.shutdown().await
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

fn stalled(why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{why}; connection cut so the session's other connections keep moving"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Hands out queued packets, at most one per read (the rest of a packet that does not fit
    /// comes with the next read), like a russh channel; pending once drained.
    struct Packets(VecDeque<Vec<u8>>);

    impl AsyncRead for Packets {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let Some(packet) = self.0.front_mut() else {
                return Poll::Pending;
            };
            let n = packet.len().min(buf.remaining());
            buf.put_slice(&packet[..n]);
            packet.drain(..n);
            if packet.is_empty() {
                self.0.pop_front();
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Records the size of every write.
    #[derive(Default)]
    struct Writes(Vec<usize>);

    impl AsyncWrite for Writes {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Drives `copying` until `counter` reaches `total`: the mock source never ends, so the
    /// copy itself must not.
    async fn run_until_counted(
        copying: impl Future<Output = std::io::Result<()>>,
        counter: &AtomicU64,
        total: usize,
    ) {
        let delivered = async {
            while counter.load(Ordering::Relaxed) < total as u64 {
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            result = copying => panic!("the copy ended early: {result:?}"),
            done = tokio::time::timeout(Duration::from_secs(10), delivered) => {
                done.expect("every byte delivered within 10 s");
            }
        }
    }

    #[tokio::test]
    async fn a_connection_starts_small_and_queued_packets_go_out_in_one_write() {
        let packet = vec![1u8; 32 * 1024];
        let mut channel = Packets(VecDeque::from([packet.clone(), packet.clone(), packet]));
        let mut local = Writes::default();
        let counters = Counters::default();
        let copying = copy_buffered(&mut channel, &mut local, &counters);
        run_until_counted(copying, &counters.bytes_in, 3 * 32 * 1024).await;
        // The first read fills the small first buffer, which switches the connection to 64 KiB
        // buffers; the next takes the rest of packet 1, packet 2 and the start of packet 3 in one
        // write (one write per packet would be 8, 24, 32, 32 KiB).
        assert_eq!(local.0, [8 * 1024, 64 * 1024, 24 * 1024]);
    }

    #[tokio::test]
    async fn toward_the_relay_a_full_first_read_switches_to_large_reads() {
        let packet = vec![1u8; 32 * 1024];
        let mut local = Packets(VecDeque::from([packet.clone(), packet]));
        let mut channel = Writes::default();
        let counter = AtomicU64::new(0);
        let copying = copy_counted(&mut local, &mut channel, &counter);
        run_until_counted(copying, &counter, 2 * 32 * 1024).await;
        // 8 KiB first; after that whole packets (8 KiB reads throughout would be 8 writes).
        assert_eq!(channel.0, [8 * 1024, 24 * 1024, 32 * 1024]);
    }

    /// Like [`Packets`], but each packet arrives on its own: a read right after one finds
    /// nothing yet (the reader is woken at once to try again).
    struct Trickle {
        packets: Packets,
        arrived: bool,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.arrived = !self.arrived;
            if !self.arrived {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Pin::new(&mut self.packets).poll_read(cx, buf)
        }
    }

    /// Accepts nothing, ever: a local peer that stopped reading.
    struct Stalled;

    impl AsyncWrite for Stalled {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn small_packets_held_for_a_stalled_peer_are_charged_by_the_memory_they_keep() {
        // One full first buffer switches the connection to 64 KiB buffers; then a trickle of
        // one-byte packets that the local peer never takes.
        let mut packets = VecDeque::from([vec![1u8; FIRST_BUF]]);
        packets.extend((0..10_000).map(|_| vec![2u8]));
        let mut channel = Trickle {
            packets: Packets(packets),
            arrived: false,
        };
        let counter = AtomicU64::new(0);
        let cap = 64 * 1024;
        let tunnel = Semaphore::new(TUNNEL_HOLD_CAP);
        let error = copy_holding(&mut channel, &mut Stalled, &counter, cap, &tunnel)
            .await
            .expect_err("the hold fills and the connection is cut");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        // Each one-byte chunk kept as a byte (not a 64 KiB buffer) and charged with its
        // overhead: the cut comes once the first chunk and about cap / CHUNK_OVERHEAD small
        // ones are held (the last one read is the one refused). Charging bytes instead would
        // take all 10,000 (each holding 64 KiB) and end at the stall timeout.
        let admitted = 10_001 - channel.packets.0.len() - 1;
        let fit = 1 + (cap - held(&vec![0; FIRST_BUF])) / held(&vec![0; 1]);
        assert_eq!(admitted, fit, "chunks held within {cap} bytes");
        assert!(error.to_string().contains("for the local peer"), "{error}");
        assert_eq!(
            tunnel.available_permits(),
            TUNNEL_HOLD_CAP,
            "all given back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnels_connections_share_one_hold_and_give_it_back_when_they_end() {
        // A small first packet, then bulk: chunks of 8 KiB, 64 KiB and 64 KiB.
        let bulk = || {
            Packets(VecDeque::from([
                vec![1u8; FIRST_BUF],
                vec![2; BUF],
                vec![3; BUF],
            ]))
        };
        let first_holds = held(&vec![0; FIRST_BUF]) + 2 * held(&vec![0; BUF]);
        let spare = 1024; // less than any chunk
        let tunnel = Semaphore::new(first_holds + spare);
        let cap = 64 * 1024 * 1024;
        let counter = AtomicU64::new(0);
        // Two connections whose local peers never read, each well within its own cap: the
        // first takes what the tunnel may hold, the second is cut for want of it.
        let (mut first, mut second) = (bulk(), bulk());
        let (mut first_peer, mut second_peer) = (Stalled, Stalled);
        let holding = copy_holding(&mut first, &mut first_peer, &counter, cap, &tunnel);
        let cut = async {
            let mut turns = 0;
            while tunnel.available_permits() > spare {
                turns += 1;
                assert!(
                    turns < 10_000,
                    "the first connection never filled the tunnel's hold"
                );
                tokio::task::yield_now().await;
            }
            copy_holding(&mut second, &mut second_peer, &counter, cap, &tunnel).await
        };
        let error = tokio::select! {
            first = holding => panic!("the first connection ended: {first:?}"),
            second = cut => second.expect_err("no memory left in the tunnel's hold"),
        };
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            error.to_string().contains("tunnel's connections"),
            "{error}"
        );
        // The first connection was dropped with its chunks queued: their memory is back.
        assert_eq!(tunnel.available_permits(), first_holds + spare);
    }

    /// Takes 1 KiB every 2 s: slow, never stalled.
    struct Slow(Pin<Box<tokio::time::Sleep>>, usize);

    impl AsyncWrite for Slow {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            std::task::ready!(self.0.as_mut().poll(cx));
            let next = tokio::time::Instant::now() + Duration::from_secs(2);
            self.0.as_mut().reset(next);
            let n = buf.len().min(1024);
            self.1 += n;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_local_peer_is_not_a_stalled_one() {
        let mut channel = Packets(VecDeque::from([vec![1u8; FIRST_BUF], vec![2u8; 8 * 1024]]));
        let mut local = Slow(Box::pin(tokio::time::sleep(Duration::ZERO)), 0);
        let counters = Counters::default();
        // 16 KiB at 1 KiB per 2 s: 30 s, far past STALL_TIMEOUT, with progress all along.
        let copying = copy_buffered(&mut channel, &mut local, &counters);
        // The source never ends, so the copy does not either: it runs until the time a
        // stalled peer would have been cut twice over, and must not have ended by then.
        let ran = tokio::time::timeout(Duration::from_secs(40), copying).await;
        assert!(ran.is_err(), "the copy ended: {ran:?}");
        assert_eq!(local.1, 16 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_peer_that_stops_reading_is_cut() {
        let counters = Counters::default();
        // `_peer` never reads: the local side's 64 KiB pipe fills and stays full.
        let (local, _peer) = tokio::io::duplex(64 * 1024);
        let (channel, mut relay) = tokio::io::duplex(1024 * 1024);
        let flood = async move {
            let chunk = vec![7u8; 64 * 1024];
            for _ in 0..64 {
                if relay.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            relay // keep the relay side open
        };
        let (result, _relay) = tokio::join!(pump(local, channel, &counters), flood);
        let error = result.expect_err("a stalled peer must be cut");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(counters.bytes_in.load(Ordering::Relaxed) <= 64 * 1024 * 2);
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_and_half_close_propagates() {
        let counters = Counters::default();
        let (local, mut app) = tokio::io::duplex(4096);
        let (channel, mut relay) = tokio::io::duplex(4096);
        let pumping = pump(local, channel, &counters);
        let talk = async {
            app.write_all(b"to relay").await.unwrap();
            app.shutdown().await.unwrap();
            let mut got = Vec::new();
            relay.read_to_end(&mut got).await.unwrap();
            relay.write_all(b"to app").await.unwrap();
            relay.shutdown().await.unwrap();
            let mut back = Vec::new();
            app.read_to_end(&mut back).await.unwrap();
            (got, back)
        };
        let (pumped, (got, back)) = tokio::join!(pumping, talk);
        pumped.unwrap();
        assert_eq!(
            (got.as_slice(), back.as_slice()),
            (&b"to relay"[..], &b"to app"[..])
        );
        assert_eq!(counters.bytes_out.load(Ordering::Relaxed), 8);
        assert_eq!(counters.bytes_in.load(Ordering::Relaxed), 6);
    }
}

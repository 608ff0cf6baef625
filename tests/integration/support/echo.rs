//! Tunnel targets and traffic checks: a TCP server that echoes, discards or stalls, a
//! round-trip probe, and a bulk transfer verified by SHA-256.

use std::io;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::background::{Background, block_on};
use super::prng::Prng;

const CHUNK: usize = 64 * 1024;
/// A bulk transfer fails when no byte moves for this long.
const STALL: Duration = Duration::from_secs(15);

/// What a [`TcpServer`] does with each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Sends every byte back; on EOF, half-closes its side too.
    Echo,
    /// Reads and discards everything.
    Sink,
    /// Accepts and never reads: the sender's windows fill up (head-of-line blocking tests).
    Stall,
    /// Writes endlessly and never reads: floods a client that does not read (isolation tests).
    Flood,
}

/// Marker types naming a [`Behavior`] in a server's type.
pub mod kind {
    use super::Behavior;

    /// A [`Behavior`] fixed at compile time.
    pub trait Kind {
        /// The behaviour.
        const BEHAVIOR: Behavior;
    }
    /// [`Behavior::Echo`]
    pub struct Echo;
    /// [`Behavior::Sink`]
    pub struct Sink;
    /// [`Behavior::Stall`]
    pub struct Stall;
    /// [`Behavior::Flood`]
    pub struct Flood;

    impl Kind for Echo {
        const BEHAVIOR: Behavior = Behavior::Echo;
    }
    impl Kind for Sink {
        const BEHAVIOR: Behavior = Behavior::Sink;
    }
    impl Kind for Stall {
        const BEHAVIOR: Behavior = Behavior::Stall;
    }
    impl Kind for Flood {
        const BEHAVIOR: Behavior = Behavior::Flood;
    }
}

/// Echoes every byte back: `EchoServer::start()`.
pub type EchoServer = TcpServer<kind::Echo>;
/// Discards what it receives and counts it: `SinkServer::start()`.
pub type SinkServer = TcpServer<kind::Sink>;
/// Accepts and never reads: `StallServer::start()`.
pub type StallServer = TcpServer<kind::Stall>;
/// Writes until the peer goes away, never reads: `FloodServer::start()`.
pub type FloodServer = TcpServer<kind::Flood>;

#[derive(Default)]
struct Stats {
    accepted: AtomicUsize,
    received: AtomicU64,
}

/// A TCP server on 127.0.0.1:0 (TCP_NODELAY) on its own thread; stops on Drop. `K` says what
/// it does with connections: use the aliases [`EchoServer`], [`SinkServer`], [`StallServer`].
pub struct TcpServer<K> {
    addr: SocketAddr,
    stats: Arc<Stats>,
    _thread: Background,
    _kind: PhantomData<K>,
}

impl<K: kind::Kind> TcpServer<K> {
    /// Starts the server.
    pub fn start() -> TcpServer<K> {
        let behavior = K::BEHAVIOR;
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        std_listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = std_listener.local_addr().expect("local_addr");
        let stats = Arc::new(Stats::default());
        let task_stats = stats.clone();
        let thread = Background::spawn(&format!("{behavior:?}-server"), move || async move {
            let listener = TcpListener::from_std(std_listener).expect("register listener");
            serve(listener, behavior, task_stats).await;
        });
        TcpServer {
            addr,
            stats,
            _thread: thread,
            _kind: PhantomData,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Bytes received so far over all connections (Echo and Sink count; Stall reads none).
    pub fn bytes_received(&self) -> u64 {
        self.stats.received.load(Ordering::SeqCst)
    }
}

async fn serve(listener: TcpListener, behavior: Behavior, stats: Arc<Stats>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return; // out of file descriptors or similar: the test will fail on its own
        };
        stats.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        conns.spawn(handle(stream, behavior, stats.clone()));
        while conns.try_join_next().is_some() {}
    }
}

async fn handle(mut stream: TcpStream, behavior: Behavior, stats: Arc<Stats>) {
    if behavior == Behavior::Stall {
        // Hold the socket open, unread, until the server stops.
        return std::future::pending().await;
    }
    if behavior == Behavior::Flood {
        // Ends when the peer is gone (write error), which is what flood tests wait for.
        let chunk = vec![0x5a; CHUNK];
        while stream.write_all(&chunk).await.is_ok() {}
        return;
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        stats.received.fetch_add(n as u64, Ordering::SeqCst);
        if behavior == Behavior::Echo && stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = stream.shutdown().await;
}

/// Connects to `addr`, sends `msg` and expects it back within `limit`.
/// Errors: `TimedOut`, `InvalidData` (different bytes came back), or the I/O error.
pub async fn roundtrip_async(addr: SocketAddr, msg: &[u8], limit: Duration) -> io::Result<()> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(msg).await?;
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).await?;
        if back != msg {
            let what = format!("sent {msg:?}, got back {back:?}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, what));
        }
        Ok(())
    };
    let late = format!("no echo from {addr} within {limit:?}");
    timeout(limit, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, late))?
}

/// Blocking [`roundtrip_async`], for plain `#[test]`s.
pub fn roundtrip(addr: SocketAddr, msg: &[u8], limit: Duration) -> io::Result<()> {
    block_on(roundtrip_async(addr, msg, limit))
}

/// Sends `n_bytes` of [`Prng::new(seed)`](Prng) output to the echo server at `addr` while
/// reading the echo concurrently, and checks the SHA-256 of what came back. Fails if the
/// transfer stalls for 15 s or takes longer than 60 s + 1 s per MiB.
pub async fn transfer_and_verify_async(
    addr: SocketAddr,
    n_bytes: usize,
    seed: u64,
) -> Result<(), String> {
    let limit = Duration::from_secs(60 + n_bytes as u64 / (1 << 20));
    let transfer = async {
        let mut stream = timeout(STALL, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr} timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (rd, wr) = stream.split();
        let (sent, received) = tokio::try_join!(send(wr, n_bytes, seed), receive(rd, n_bytes))?;
        if sent != received {
            return Err(format!(
                "{n_bytes} bytes came back corrupted (SHA-256 differs)"
            ));
        }
        Ok(())
    };
    let late = format!("transfer of {n_bytes} bytes took longer than {limit:?}");
    timeout(limit, transfer).await.map_err(|_| late)?
}

/// Blocking [`transfer_and_verify_async`], for plain `#[test]`s.
pub fn transfer_and_verify(addr: SocketAddr, n_bytes: usize, seed: u64) -> Result<(), String> {
    block_on(transfer_and_verify_async(addr, n_bytes, seed))
}

/// Writes `n_bytes` of the seeded stream; returns their SHA-256.
async fn send(mut wr: WriteHalf<'_>, n_bytes: usize, seed: u64) -> Result<[u8; 32], String> {
    let (mut prng, mut hash, mut buf) = (Prng::new(seed), Sha256::new(), vec![0u8; CHUNK]);
    let mut sent = 0;
    while sent < n_bytes {
        let len = CHUNK.min(n_bytes - sent);
        prng.fill(&mut buf[..len]);
        hash.update(&buf[..len]);
        let fail = |why: String| format!("write stalled at {sent} of {n_bytes} bytes: {why}");
        match timeout(STALL, wr.write_all(&buf[..len])).await {
            Ok(Ok(())) => sent += len,
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Err(_) => return Err(fail("timeout".into())),
        }
    }
    Ok(hash.finalize().into())
}

/// Reads exactly `n_bytes`; returns their SHA-256.
async fn receive(mut rd: ReadHalf<'_>, n_bytes: usize) -> Result<[u8; 32], String> {
    let (mut hash, mut buf) = (Sha256::new(), vec![0u8; CHUNK]);
    let mut got = 0;
    while got < n_bytes {
        let want = CHUNK.min(n_bytes - got);
        let fail = |why: String| format!("read stalled at {got} of {n_bytes} bytes: {why}");
        match timeout(STALL, rd.read(&mut buf[..want])).await {
            Ok(Ok(0)) => return Err(fail("EOF".into())),
            Ok(Ok(n)) => {
                hash.update(&buf[..n]);
                got += n;
            }
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Err(_) => return Err(fail("timeout".into())),
        }
    }
    Ok(hash.finalize().into())
}

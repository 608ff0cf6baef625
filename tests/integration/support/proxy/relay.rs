//! One relayed connection of the [`ChaosProxy`](super::ChaosProxy): parked while the gate
//! is shut, pumping both directions while it is open, ended on command by reset or close.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::{oneshot, watch};

use super::{Deregister, Kill};

const CHUNK: usize = 64 * 1024;
/// How long a closed connection keeps reading (and discarding) so that close sends FIN, not RST.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves one client connection until it ends or is killed; deregisters it when done.
pub(super) async fn connection(
    mut client: TcpStream,
    upstream_addr: SocketAddr,
    mut gate: watch::Receiver<bool>,
    kill: oneshot::Receiver<Kill>,
    _registered: Deregister,
) {
    let mut upstream = None;
    let killed = tokio::select! {
        killed = kill => killed,
        relayed = relay(&mut client, &mut upstream, upstream_addr, &mut gate) => {
            if relayed.is_err() {
                // Pass an abort on (a peer's RST, a refused upstream) as an abort.
                abort(&client, upstream.as_ref());
            }
            return;
        }
    };
    match killed {
        Ok(Kill::Reset(ack)) => {
            abort(&client, upstream.as_ref());
            drop((client, upstream));
            let _ = ack.send(());
        }
        Ok(Kill::Close(ack)) => {
            let _ = client.shutdown().await;
            if let Some(up) = upstream.as_mut() {
                let _ = up.shutdown().await;
            }
            let _ = ack.send(());
            // Unread data at close() would turn the FIN into an RST: read until the peers close.
            let drain =
                async { tokio::join!(discard(Some(&mut client)), discard(upstream.as_mut())) };
            let _ = tokio::time::timeout(DRAIN, drain).await;
        }
        // The proxy is shutting down.
        Err(_) => {}
    }
}

/// Relays until both directions have ended; parked while the gate is shut.
async fn relay(
    client: &mut TcpStream,
    upstream: &mut Option<TcpStream>,
    upstream_addr: SocketAddr,
    gate: &mut watch::Receiver<bool>,
) -> io::Result<()> {
    open(gate).await;
    let up = upstream.insert(TcpStream::connect(upstream_addr).await?);
    up.set_nodelay(true)?;
    client.set_nodelay(true)?;
    let (client_rd, client_wr) = client.split();
    let (up_rd, up_wr) = up.split();
    tokio::try_join!(
        pump(client_rd, up_wr, gate.clone()),
        pump(up_rd, client_wr, gate.clone())
    )?;
    Ok(())
}

/// Copies one direction. Checks the gate both before reading and before forwarding, so nothing
/// (data, EOF, error) passes while frozen; at most one chunk is read and held back.
async fn pump(
    mut rd: ReadHalf<'_>,
    mut wr: WriteHalf<'_>,
    mut gate: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        open(&mut gate).await;
        let read = rd.read(&mut buf).await;
        open(&mut gate).await;
        match read? {
            0 => return wr.shutdown().await,
            n => wr.write_all(&buf[..n]).await?,
        }
    }
}

/// Waits until the gate is open. The sender only goes away when the connection is being
/// killed or the proxy stops, and then this task is cancelled: wait for that.
async fn open(gate: &mut watch::Receiver<bool>) {
    if gate.wait_for(|&open| open).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sets SO_LINGER 0 so that closing sends RST.
fn abort(client: &TcpStream, upstream: Option<&TcpStream>) {
    for stream in std::iter::once(client).chain(upstream) {
        let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    }
}

async fn discard(stream: Option<&mut TcpStream>) {
    let Some(stream) = stream else { return };
    let mut buf = vec![0u8; CHUNK];
    while let Ok(1..) = stream.read(&mut buf).await {}
}

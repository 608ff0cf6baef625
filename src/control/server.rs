//! The daemon side of the control socket: accepts clients of the same user, greets them, reads
//! bounded request lines under deadlines and answers through a [`Handler`]. What the requests
//! *do* is the handler's business; this module only guarantees that no client — slow, silent,
//! huge or malformed — can hurt the daemon or other clients: connections are capped, and at the
//! cap the client idle longest makes room (the `slots` module), so a flood of silent
//! connections costs a bounded number of descriptors and never locks out `pairtunctl status`.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::StreamCommon;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::frame::{Frame, read_frame};
use super::slots::{Slot, Slots};
use super::socket::Listener;
use crate::accept::AcceptBackoff;
use crate::protocol::{
    ErrorKind, Greeting, MAX_FRAME, REQUEST_TIMEOUT, Request, Response, decode_request, encode,
};

/// How the daemon answers one request.
#[derive(Debug)]
pub enum Reply {
    /// A single response.
    One(Response),
    /// Responses as they come (`watch`, `logs`, `up` with `wait`). The stream ends at the
    /// first `ok` or `error`; if the sender is dropped first, the server sends `ok` itself.
    Stream(mpsc::Receiver<Response>),
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Reply::One(response)
    }
}

/// What the daemon does with requests.
pub trait Handler: Send + Sync + 'static {
    /// Answers `request`. Must return within the request deadline (`Limits::request_timeout`)
    /// or the client gets `error timeout`; a `Reply::Stream` may then run for as long as it
    /// likes.
    fn handle(&self, request: Request) -> impl Future<Output = Reply> + Send;
}

/// The bounds that keep one client from hurting others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once. At the limit a new client evicts the one that has waited
    /// longest for its next request; only when every client is busy does it get `error busy`.
    pub max_connections: usize,
    /// How long a client may take to send a whole request line.
    pub idle_timeout: Duration,
    /// How long the handler may take to answer, and a write to the client may stall.
    pub request_timeout: Duration,
}

impl Limits {
    /// Plenty for a user's `pairtunctl`s, `--watch`es and scripts; few descriptors.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: Limits::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: REQUEST_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Whether a peer may use the socket: only the daemon's own effective user, and only when the
/// kernel tells us who the peer is.
pub fn peer_allowed(peer_euid: Option<u32>, own_euid: u32) -> bool {
    peer_euid == Some(own_euid)
}

/// Serves `listener` until `shutdown` is cancelled, then closes the socket (removing its
/// file), ends every connection and returns once they are gone.
pub async fn serve<H: Handler>(
    listener: Listener,
    handler: Arc<H>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    let tracker = TaskTracker::new();
    let slots = Slots::new(limits.max_connections);
    let mut backoff = AcceptBackoff::new("control socket");
    let own_euid = nix::unistd::geteuid().as_raw();
    tracing::info!(socket = %listener.path().display(), "control socket listening");
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let conn = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                let pause = backoff.failed(&e);
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        };
        backoff.succeeded();
        let creds = conn.peer_creds();
        let peer_euid = creds.as_ref().ok().and_then(|c| c.euid());
        if !peer_allowed(peer_euid, own_euid) {
            let peer_pid = creds.as_ref().ok().and_then(|c| c.pid());
            tracing::warn!(
                ?peer_euid,
                ?peer_pid,
                "refused a control connection from another user"
            );
            continue;
        }
        match slots.claim() {
            Ok(slot) => {
                let (handler, shutdown) = (handler.clone(), shutdown.clone());
                tracker.spawn(async move {
                    tokio::select! {
                        result = converse(&conn, &*handler, &slot, limits) => if let Err(e) = result {
                            tracing::debug!(error = %e, "control connection ended");
                        },
                        () = slot.evicted.cancelled() => {
                            tracing::debug!("idle control connection evicted for a new one");
                            let evicted = Response::error(
                                ErrorKind::Busy,
                                "closed to make room: too many control connections",
                            );
                            let _ = send(&conn, &evicted, BUSY_WRITE).await;
                        }
                        () = shutdown.cancelled() => {}
                    }
                });
            }
            Err(_) => {
                tracing::warn!(
                    limit = limits.max_connections,
                    "control connection refused: every connection is busy"
                );
                tracker.spawn(async move {
                    let busy = Response::error(
                        ErrorKind::Busy,
                        "pairtund has too many control connections; try again",
                    );
                    let _ = send(&conn, &busy, BUSY_WRITE).await;
                });
            }
        }
    }
    // Gone from the file system first, so new clients hear "not running" instead of hanging.
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// How long a refused or evicted client gets to take its goodbye.
const BUSY_WRITE: Duration = Duration::from_secs(1);

/// One client: greeting, then request after request, until it leaves or misbehaves. `slot`
/// is idle (evictable) only while waiting for a request.
async fn converse<H: Handler>(
    conn: &Stream,
    handler: &H,
    slot: &Slot,
    limits: Limits,
) -> io::Result<()> {
    let write_deadline = limits.request_timeout;
    let mut reader = BufReader::new(conn);
    let mut line = Vec::new();
    send(conn, &Greeting::current(), write_deadline).await?;
    loop {
        slot.idle();
        let frame = timeout(
            limits.idle_timeout,
            read_frame(&mut reader, &mut line, MAX_FRAME),
        )
        .await;
        slot.busy();
        let reply = match frame {
            Ok(Ok(Frame::Line)) => answer(handler, &line, limits.request_timeout).await,
            Ok(Ok(Frame::Eof)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Frame::TooLarge)) => {
                let message = format!("request line longer than {MAX_FRAME} bytes; closing");
                let too_large = Response::error(ErrorKind::TooLarge, message);
                return send(conn, &too_large, write_deadline).await;
            }
            Err(_) => {
                let message = format!("no request within {:?}; closing", limits.idle_timeout);
                let idle = Response::error(ErrorKind::Timeout, message);
                return send(conn, &idle, write_deadline).await;
            }
        };
        match reply {
            None => {}
            Some(Reply::One(response)) => send(conn, &response, write_deadline).await?,
            Some(Reply::Stream(rx)) => forward(&mut reader, conn, rx, write_deadline).await?,
        }
    }
}

/// The reply to one line; `None` for a blank line (harmless when typing into `socat`).
pub(crate) async fn answer<H: Handler>(
    handler: &H,
    line: &[u8],
    deadline: Duration,
) -> Option<Reply> {
    if line.trim_ascii().is_empty() {
        return None;
    }
    let request = match decode_request(line) {
        Ok(request) => request,
        Err(message) => return Some(Response::error(ErrorKind::BadRequest, message).into()),
    };
    let op = request.op();
    tracing::debug!(op, "control request");
    match timeout(deadline, handler.handle(request)).await {
        Ok(reply) => Some(reply),
        Err(_) => {
            tracing::warn!(op, ?deadline, "control request timed out");
            let message = format!("`{op}` was not answered within {deadline:?}");
            Some(Response::error(ErrorKind::Timeout, message).into())
        }
    }
}

/// Forwards a stream until it ends, the client sends a line or closes its side (the stream
/// then ends with `ok`, and a line is read as the next request), or a write fails.
async fn forward(
    reader: &mut BufReader<&Stream>,
    conn: &Stream,
    mut rx: mpsc::Receiver<Response>,
    deadline: Duration,
) -> io::Result<()> {
    loop {
        let next = tokio::select! {
            // Replies already queued go out before input is looked at, so a client that
            // half-closes after its request (`echo … | socat`) still gets a finite stream.
            biased;
            next = rx.recv() => next,
            // Only peeks: whatever the client sent stays buffered for the request loop. End
            // of input is not proof the client left (it may only have shut down its writes),
            // so it also just ends the stream; a vanished client fails the write.
            input = reader.fill_buf() => {
                input?;
                None
            }
        };
        let response = next.unwrap_or_else(Response::ok);
        let last = response.is_final();
        send(conn, &response, deadline).await?;
        if last {
            return Ok(());
        }
    }
}

/// Writes one message; a client that does not read within `deadline` is cut off.
async fn send<T: Serialize>(conn: &Stream, message: &T, deadline: Duration) -> io::Result<()> {
    let mut writer = conn;
    match timeout(deadline, writer.write_all(&encode(message))).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::peer_allowed;

    #[test]
    fn only_the_same_user_is_allowed() {
        assert!(peer_allowed(Some(1000), 1000));
        assert!(!peer_allowed(Some(0), 1000), "not even root");
        assert!(!peer_allowed(Some(1001), 1000));
        assert!(!peer_allowed(None, 1000), "unknown peers are refused");
    }
}

//! `-L` forwards. The listener is bound for as long as the tunnel is enabled — across
//! reconnects — so a connection that arrives while the session is down waits (bounded) for the
//! next session instead of being refused. At most `max_connections` connections run at once
//! per forward; more are accepted and closed at once (the client sees the connection end instead
//! of hanging in the listen queue), and each burst of them is reported once.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use russh::client::Msg;
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Live;
use super::pump::{ConnectionGuard, Counters, pump};
use super::state::{ForwardState, Reporter};
use crate::accept::AcceptBackoff;
use crate::config::{LocalForward, LocalListen, Target};
use crate::net::LocalStream;
use crate::ssh::SessionShared;

/// How long the relay may take to confirm a channel (it connects to the target first, and an
/// unreachable target can otherwise block for minutes: russh #329).
pub const CHANNEL_OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections the kernel queues for a TCP listener until it accepts them. Beyond the queue a
/// new connection's SYN is dropped and its client waits a second or more to retry, so the
/// queue is sized for bursts (a browser opening dozens of connections at once), not the
/// usual 128.
const LISTEN_BACKLOG: u32 = 1024;
/// Retry pace for a local port that is in use.
const REBIND_DELAY: Duration = Duration::from_secs(2);
/// For its first [`REBIND_QUICK_FOR`], a port in use is tried this often, unreported: a tunnel
/// that a reload replaces takes its port over as soon as the old tunnel's listener closes.
const REBIND_QUICK: Duration = Duration::from_millis(20);
const REBIND_QUICK_FOR: Duration = Duration::from_secs(2);

/// What every listener task of a tunnel shares.
#[derive(Clone)]
pub struct ListenerContext {
    /// The live session, `None` between sessions.
    pub session: watch::Receiver<Option<Arc<Live>>>,
    /// Where forward states go.
    pub reporter: Reporter,
    /// Traffic counters.
    pub counters: Arc<Counters>,
    /// Where connections run: apart from the listener tasks, so closing the listeners at
    /// shutdown leaves live connections their grace period.
    pub tasks: TaskTracker,
    /// Ends every connection (tunnel disabled, or grace period over).
    pub stop: CancellationToken,
    /// How long a connection accepted between sessions waits for the next one
    /// (`connection_hold`).
    pub hold: Duration,
    /// Connections each forward runs at once (`max_connections`).
    pub max_connections: usize,
    /// Told when a connection arrives between sessions: someone is waiting, so a retry the
    /// backoff still holds back is brought forward (see the supervisor's wait).
    pub demand: Arc<tokio::sync::Notify>,
}

/// Serves forward `index` until the task is aborted (which closes the listener; connections
/// end with `ctx.stop`).
pub async fn serve(index: usize, forward: LocalForward, ctx: ListenerContext) {
    let listen = forward.listen.clone();
    let spec = forward.spec.clone();
    accept_loop(index, &spec, &listen, ctx, move |stream, peer, ctx| {
        handle(index, stream, peer, forward.clone(), ctx)
    })
    .await
}

/// Binds `listen` (retrying while the port is taken), marks forward `index` up, and runs
/// `on_accept` for each connection in `ctx.tasks`, ended by `ctx.stop`. Shared with `-D`.
pub async fn accept_loop<F, Fut>(
    index: usize,
    spec: &str,
    listen: &LocalListen,
    ctx: ListenerContext,
    on_accept: F,
) where
    F: Fn(LocalStream, String, ListenerContext) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = bind_until_ok(index, listen, &ctx.reporter).await;
    ctx.reporter.set_forward(index, ForwardState::Up, None);
    let mut backoff = AcceptBackoff::new(spec.to_owned());
    let mut limit = Limit::new(ctx.max_connections);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tokio::time::sleep(backoff.failed(&e)).await;
                continue;
            }
        };
        backoff.succeeded();
        // Over the limit the stream is dropped here: closed at once.
        let Some(permit) = limit.admit(index, spec, &ctx.reporter) else {
            continue;
        };
        let stop = ctx.stop.clone();
        let conn = on_accept(stream, peer, ctx.clone());
        ctx.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
            drop(permit);
        });
    }
}

/// One forward's connection limit. A burst of refusals starts at the first refused connection
/// (logged, and shown as the forward's message) and ends once the forward is back at half its
/// limit (logged with the number refused), so a flood costs two log lines, not one per
/// connection.
struct Limit {
    permits: Arc<Semaphore>,
    max: usize,
    /// Connections refused in the current burst; `None` outside a burst.
    refused: Option<u64>,
}

impl Limit {
    fn new(max: usize) -> Self {
        Limit {
            permits: Arc::new(Semaphore::new(max)),
            max,
            refused: None,
        }
    }

    /// A slot for one more connection, held for as long as it runs; `None` when full.
    fn admit(
        &mut self,
        index: usize,
        spec: &str,
        reporter: &Reporter,
    ) -> Option<OwnedSemaphorePermit> {
        let in_use = self.max - self.permits.available_permits();
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                if let Some(refused) = self.refused.filter(|_| in_use <= self.max / 2) {
                    let max = self.max;
                    tracing::info!(forward = %spec, refused, "back under the connection limit ({max})");
                    let message = format!(
                        "connection limit ({max}) was reached; {refused} connections were refused"
                    );
                    reporter.set_forward(index, ForwardState::Up, Some(message));
                    self.refused = None;
                }
                Some(permit)
            }
            Err(_) => {
                match &mut self.refused {
                    Some(refused) => *refused += 1,
                    None => {
                        let max = self.max;
                        tracing::warn!(forward = %spec, "connection limit ({max}) reached; refusing new connections");
                        let message =
                            format!("connection limit ({max}) reached; refusing new connections");
                        reporter.set_forward(index, ForwardState::Up, Some(message));
                        self.refused = Some(1);
                    }
                }
                None
            }
        }
    }
}

async fn bind_until_ok(index: usize, listen: &LocalListen, reporter: &Reporter) -> Listener {
    let started = tokio::time::Instant::now();
    loop {
        match Listener::bind(listen).await {
            Ok(listener) => return listener,
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse && started.elapsed() < REBIND_QUICK_FOR =>
            {
                tokio::time::sleep(REBIND_QUICK).await;
            }
            Err(e) => {
                let message = format!("cannot listen on {}: {e}", describe(listen));
                reporter.set_forward(index, ForwardState::Error, Some(message));
                tokio::time::sleep(REBIND_DELAY).await;
            }
        }
    }
}

/// The live session for a connection accepted on `spec`, waiting up to `connection_hold` for
/// one; `None` (logged) when none came or the tunnel is stopping.
pub async fn session(ctx: &mut ListenerContext, spec: &str, peer: &str) -> Option<Arc<Live>> {
    let usable = |s: &Option<Arc<Live>>| {
        s.as_ref()
            .is_some_and(|live| !live.shared.ended.is_cancelled())
    };
    if !usable(&ctx.session.borrow()) {
        ctx.demand.notify_one();
    }
    let waiting = ctx.session.wait_for(usable);
    let hold = ctx.hold;
    match tokio::time::timeout(hold, waiting).await {
        Ok(Ok(live)) => live.clone(),
        Ok(Err(_)) => None, // tunnel stopping
        Err(_) => {
            tracing::warn!(forward = %spec, %peer, "no session within connection_hold ({hold:?}); closing connection");
            None
        }
    }
}

/// Carries one connection over its channel until either side ends or the session does; a
/// stalled client is cut off and reported on forward `index`.
pub async fn carry<S>(
    index: usize,
    stream: S,
    channel: russh::Channel<Msg>,
    live: &Live,
    ctx: &ListenerContext,
    spec: &str,
    peer: &str,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _live_conn = ConnectionGuard::new(ctx.counters.clone());
    tokio::select! {
        _ = live.shared.ended.cancelled() => {}
        r = pump(stream, channel.into_stream(), &ctx.counters) => match r {
            // A cut is our decision, not a peer's: say so where the user looks (log and
            // status). The tunnel stays up: only this connection was sacrificed.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                tracing::warn!(forward = %spec, %peer, error = %e, "stalled connection cut");
                ctx.reporter.set_forward(
                    index,
                    ForwardState::Up,
                    Some(format!("connection from {peer}: {e}")),
                );
            }
            Err(e) => tracing::debug!(forward = %spec, %peer, error = %e, "connection ended"),
            Ok(()) => {}
        }
    }
}

async fn handle(
    index: usize,
    stream: LocalStream,
    peer: String,
    forward: LocalForward,
    mut ctx: ListenerContext,
) {
    let Some(live) = session(&mut ctx, &forward.spec, &peer).await else {
        return;
    };
    let reasons = live.shared.open_failures.subscribe();
    let channel = match tokio::time::timeout(
        CHANNEL_OPEN_TIMEOUT,
        open_channel(&live, &forward.target, &peer),
    )
    .await
    {
        Ok(Ok(channel)) => {
            ctx.reporter.channel_opened(index);
            channel
        }
        Ok(Err(e)) => {
            let message = format!(
                "relay could not open {}: {}",
                describe_target(&forward.target),
                SessionShared::open_error(reasons, &e).await
            );
            tracing::warn!(forward = %forward.spec, %peer, error = %message, "forwarded connection failed");
            ctx.reporter.channel_open_failed(index, message);
            return;
        }
        Err(_) => {
            tracing::warn!(forward = %forward.spec, %peer, "relay did not confirm the channel in time");
            return;
        }
    };
    carry(index, stream, channel, &live, &ctx, &forward.spec, &peer).await;
}

/// Splits `peer` (`addr:port`, or `unix`) into the originator fields of a `direct-tcpip` open.
pub fn originator(peer: &str) -> (&str, u32) {
    let (addr, port) = peer.rsplit_once(':').unwrap_or((peer, "0"));
    (addr, port.parse().unwrap_or(0))
}

/// Opens a channel to `target` through the relay, on behalf of `peer` (`addr:port`).
pub(super) async fn open_channel(
    live: &Live,
    target: &Target,
    peer: &str,
) -> Result<russh::Channel<Msg>, russh::Error> {
    match target {
        Target::Tcp(hp) => {
            let (addr, port) = originator(peer);
            live.handle
                .channel_open_direct_tcpip(hp.host.as_str(), u32::from(hp.port), addr, port)
                .await
        }
        Target::Unix(path) => {
            live.handle
                .channel_open_direct_streamlocal(path.to_string_lossy())
                .await
        }
    }
}

fn describe(listen: &LocalListen) -> String {
    match listen {
        LocalListen::Tcp { addr, port } => std::net::SocketAddr::new(*addr, *port).to_string(),
        LocalListen::Unix(path) => path.display().to_string(),
    }
}

fn describe_target(target: &Target) -> String {
    match target {
        Target::Tcp(hp) => hp.to_string(),
        Target::Unix(path) => path.display().to_string(),
    }
}

/// A bound local listener, TCP or Unix (a Unix socket file is removed when it closes).
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listener {
    async fn bind(listen: &LocalListen) -> io::Result<Self> {
        match listen {
            LocalListen::Tcp { addr, port } => {
                let addr = std::net::SocketAddr::new(*addr, *port);
                let socket = match addr {
                    std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
                    std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
                };
                // As `TcpListener::bind` does: rebinding right after a restart must work.
                socket.set_reuseaddr(true)?;
                socket.bind(addr)?;
                Ok(Listener::Tcp(socket.listen(LISTEN_BACKLOG)?))
            }
            LocalListen::Unix(path) => {
                remove_stale_socket(path).await?;
                Ok(Listener::Unix(UnixListener::bind(path)?, path.clone()))
            }
        }
    }

    async fn accept(&self) -> io::Result<(LocalStream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                // Fails only for a connection already reset (macOS says EINVAL): that one
                // fails on its own, and is not the listener's failure.
                let _ = s.set_nodelay(true);
                Ok((LocalStream::Tcp(s), peer.to_string()))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((LocalStream::Unix(s), "unix".to_owned()))
            }
        }
    }
}

/// A socket file nobody listens on (left by a crash) is removed; a live one is left alone and
/// the bind fails with "address in use".
async fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(path).await.is_err() {
                tokio::fs::remove_file(path).await?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_forward_local;
    use crate::tunnel::state::{ForwardKind, ForwardStatus};

    fn reporter(spec: &str) -> Reporter {
        let forward = ForwardStatus {
            kind: ForwardKind::Local,
            spec: spec.to_owned(),
            state: ForwardState::Up,
            error: None,
            peer: None,
        };
        Reporter::new("t", vec![forward], Default::default())
    }

    fn message(reporter: &Reporter) -> Option<String> {
        reporter.current().forwards[0].error.clone()
    }

    #[test]
    fn a_refused_channel_is_forgotten_at_the_next_one_opened_other_messages_are_not() {
        let reporter = reporter("9999:localhost:22");
        let refused = "relay could not open localhost:22: Connection refused";
        reporter.channel_open_failed(0, refused.to_owned());
        assert_eq!(message(&reporter).as_deref(), Some(refused));
        assert_eq!(reporter.current().forwards[0].state, ForwardState::Up);
        reporter.channel_opened(0);
        assert_eq!(message(&reporter), None);

        // Events stay: a connection limit reached, a refusal replaced by a stall notice.
        let limit = "connection limit (2) reached; refusing new connections";
        reporter.set_forward(0, ForwardState::Up, Some(limit.to_owned()));
        reporter.channel_opened(0);
        assert_eq!(message(&reporter).as_deref(), Some(limit));
        reporter.channel_open_failed(0, refused.to_owned());
        let cut = "connection from 127.0.0.1:5000: local peer stopped reading";
        reporter.set_forward(0, ForwardState::Up, Some(cut.to_owned()));
        reporter.channel_opened(0);
        assert_eq!(message(&reporter).as_deref(), Some(cut));
    }

    #[test]
    fn a_burst_is_reported_when_it_starts_and_when_back_at_half_the_limit() {
        let forward = parse_forward_local("9999:localhost:22").unwrap();
        let reporter = reporter(&forward.spec);
        let mut limit = Limit::new(4);
        let mut held: Vec<_> = (0..4)
            .map(|_| {
                limit
                    .admit(0, &forward.spec, &reporter)
                    .expect("under the limit")
            })
            .collect();
        assert_eq!(message(&reporter), None);

        for _ in 0..3 {
            assert!(
                limit.admit(0, &forward.spec, &reporter).is_none(),
                "over the limit"
            );
        }
        assert_eq!(limit.refused, Some(3));
        let refusing = "connection limit (4) reached; refusing new connections";
        assert_eq!(message(&reporter).as_deref(), Some(refusing));

        // One slot free is not the end of the burst: 3 of 4 still in use.
        held.pop();
        held.push(
            limit
                .admit(0, &forward.spec, &reporter)
                .expect("a free slot"),
        );
        assert_eq!(limit.refused, Some(3));
        held.truncate(2);
        let _next = limit.admit(0, &forward.spec, &reporter).expect("half free");
        assert_eq!(limit.refused, None, "the burst is over");
        let over = "connection limit (4) was reached; 3 connections were refused";
        assert_eq!(message(&reporter).as_deref(), Some(over));
    }
}

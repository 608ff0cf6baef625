//! One function per control request: the bridge from the socket protocol to [`Daemon`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use super::{Daemon, EventLog, OpError, events};
use crate::control::server::{Handler, Reply};
use crate::protocol::{ErrorKind, PROTOCOL_VERSION, Request, Response, daemon_version};
use crate::tunnel::{Command, Published, TunnelState};

/// How long an `up --wait` stream may run if the client never goes away: as long as the
/// longest `--wait` pairtunctl accepts, which ends the stream itself when its own wait is over.
const WAIT_LIMIT: Duration = crate::config::MAX_DURATION;

/// Serves control requests for one daemon.
pub struct ControlHandler {
    daemon: Arc<Daemon>,
}

impl ControlHandler {
    /// A handler for `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        ControlHandler { daemon }
    }
}

fn error((kind, message): OpError) -> Response {
    Response::error(kind, message)
}

fn done(result: Result<(), OpError>) -> Reply {
    Reply::One(result.map_or_else(error, |()| Response::ok()))
}

impl Handler for ControlHandler {
    async fn handle(&self, request: Request) -> Reply {
        let d = &self.daemon;
        match request {
            Request::Ping {} => Reply::One(Response::Pong {
                daemon: daemon_version().to_owned(),
                protocol: PROTOCOL_VERSION,
            }),
            Request::Version {} => Reply::One(Response::Version {
                daemon: daemon_version().to_owned(),
                protocol: PROTOCOL_VERSION,
            }),
            Request::Status { name } => Reply::One(
                d.status(name.as_deref())
                    .map_or_else(error, |tunnels| Response::Status { tunnels }),
            ),
            Request::Watch { name } => watch_stream(d.clone(), name),
            Request::Up { name, wait } => {
                // Seen before the command goes out, so the state it is about to replace (a
                // `failed` from an earlier attempt) is known and not taken for the answer.
                let watched = wait
                    .then(|| d.watch(Some(&name)).ok()?.pop())
                    .flatten()
                    .map(|mut rx| {
                        let p = rx.borrow_and_update();
                        let found = (p.state, p.since);
                        drop(p);
                        (rx, found)
                    });
                match d.command(&name, Command::Up).await {
                    Err(e) => Reply::One(error(e)),
                    Ok(()) => match watched {
                        Some((rx, found)) => wait_stream(d.clone(), name, rx, found),
                        None => Reply::One(Response::ok()),
                    },
                }
            }
            Request::Down { name } => done(d.command(&name, Command::Down).await),
            Request::Restart { name } => done(d.command(&name, Command::Restart).await),
            Request::Add { tunnel, temporary } => done(d.add(&tunnel, temporary).await),
            Request::Drop { name, temporary } => done(d.drop_tunnel(&name, temporary).await),
            Request::Reload {} => Reply::One(match d.reload().await {
                Ok(diff) => {
                    let names = |v: Vec<crate::config::TunnelName>| {
                        v.into_iter().map(|n| n.to_string()).collect()
                    };
                    Response::Reloaded {
                        added: names(diff.added),
                        removed: names(diff.removed),
                        changed: names(diff.changed),
                        unchanged: names(diff.unchanged),
                    }
                }
                Err(e) => Response::error(ErrorKind::Config, e.to_string()),
            }),
            Request::Logs { name, follow } => logs_stream(d, name, follow),
        }
    }
}

/// Merges change notifications of several tunnels into one receiver (ends with the last).
fn changes(receivers: Vec<watch::Receiver<Published>>) -> (mpsc::Receiver<()>, JoinSet<()>) {
    let (tx, rx) = mpsc::channel(1);
    let mut set = JoinSet::new();
    for mut r in receivers {
        let tx = tx.clone();
        set.spawn(async move {
            while r.changed().await.is_ok() {
                // A full channel already means "something changed": coalesce.
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(()) {
                    return;
                }
            }
        });
    }
    (rx, set)
}

/// `status --watch`: a status whenever a watched tunnel changes, following tunnels as they
/// come and go (`add`, `drop`, `reload`). A named watch ends (`ok`) when its tunnel goes; every
/// watch ends when the daemon stops.
fn watch_stream(daemon: Arc<Daemon>, name: Option<String>) -> Reply {
    let tunnels = match daemon.status(name.as_deref()) {
        Ok(tunnels) => tunnels,
        Err(e) => return Reply::One(error(e)),
    };
    let (out, reply) = mpsc::channel(4);
    // Queued before the reply is returned: the server sends what is queued before it looks at
    // input, so a client that half-closes after its request (`echo … | socat`) still gets it.
    let mut queued = out.try_send(Response::Status { tunnels }).is_ok();
    tokio::spawn(async move {
        let mut roster = daemon.roster();
        'tunnels: loop {
            let stopping = *roster.borrow_and_update();
            let receivers = match daemon.watch(name.as_deref()) {
                Ok(receivers) if !stopping => receivers,
                _ => {
                    let _ = out.send(Response::ok()).await;
                    return;
                }
            };
            // Nothing to follow (no tunnels yet, or theirs ended): only the roster can change.
            let mut following = !receivers.is_empty();
            let (mut changed, _tasks) = changes(receivers);
            loop {
                let status = match daemon.status(name.as_deref()) {
                    Ok(tunnels) => Response::Status { tunnels },
                    // Gone between the roster's change and here: the next round ends it.
                    Err(_) => continue 'tunnels,
                };
                if !std::mem::take(&mut queued) && out.send(status).await.is_err() {
                    return;
                }
                tokio::select! {
                    c = changed.recv(), if following => following = c.is_some(),
                    r = roster.changed() => match r {
                        Ok(()) => continue 'tunnels,
                        Err(_) => { let _ = out.send(Response::ok()).await; return }
                    },
                    _ = out.closed() => return,
                }
            }
        }
    });
    Reply::Stream(reply)
}

/// `up --wait`: status lines until the tunnel is up (`ok`) or has failed in an attempt made
/// after the request (`tunnel-failed`, with the tunnel's error), within [`WAIT_LIMIT`]. `stale`
/// is the state `up` found and since when: a `failed` that is still that one is not the answer.
fn wait_stream(
    daemon: Arc<Daemon>,
    name: String,
    mut rx: watch::Receiver<Published>,
    stale: (TunnelState, std::time::SystemTime),
) -> Reply {
    let (out, reply) = mpsc::channel(4);
    // Queued before the reply is returned: the server sends what is queued before it looks at
    // input, so a client that half-closes after its request (`echo … | socat`) still gets it.
    let mut queued = match daemon.status(Some(&name)) {
        Ok(tunnels) => out.try_send(Response::Status { tunnels }).is_ok(),
        Err(_) => false,
    };
    tokio::spawn(async move {
        let waited = tokio::time::timeout(WAIT_LIMIT, async {
            loop {
                let (state, since, error) = {
                    let p = rx.borrow_and_update();
                    (p.state, p.since, p.last_error.clone())
                };
                if !std::mem::take(&mut queued)
                    && let Ok(tunnels) = daemon.status(Some(&name))
                    && out.send(Response::Status { tunnels }).await.is_err()
                {
                    return;
                }
                match state {
                    TunnelState::Up => return drop(out.send(Response::ok()).await),
                    TunnelState::Failed if (state, since) != stale => {
                        let message = error.map_or_else(|| "failed".to_owned(), |e| e.to_string());
                        return drop(
                            out.send(Response::error(ErrorKind::TunnelFailed, message))
                                .await,
                        );
                    }
                    // Someone ran `down` meanwhile: nothing more will happen to wait for.
                    TunnelState::Stopped if (state, since) != stale => {
                        let message = format!("`{name}` was stopped (`down`) while waiting");
                        return drop(
                            out.send(Response::error(ErrorKind::TunnelFailed, message))
                                .await,
                        );
                    }
                    _ => {}
                }
                tokio::select! {
                    c = rx.changed() => if c.is_err() {
                        let gone = format!("tunnel `{name}` was stopped or dropped while waiting");
                        return drop(out.send(Response::error(ErrorKind::UnknownTunnel, gone)).await);
                    },
                    _ = out.closed() => return,
                }
            }
        });
        if waited.await.is_err() {
            let _ = out
                .send(Response::error(
                    ErrorKind::Timeout,
                    format!("`{name}` not up within {WAIT_LIMIT:?}"),
                ))
                .await;
        }
    });
    Reply::Stream(reply)
}

fn logs_stream(daemon: &Daemon, name: Option<String>, follow: bool) -> Reply {
    let log = EventLog::global();
    // Subscribe before taking the backlog so nothing falls between the two.
    let mut live = log.follow();
    let backlog = log.recent(name.as_deref());
    // A name that is neither a tunnel nor in the log is a typo: say so rather than print
    // nothing (or, following, wait forever). A dropped tunnel's events can still be read.
    if let Some(name) = name.as_deref()
        && backlog.is_empty()
        && let Err(e) = daemon.status(Some(name))
    {
        return Reply::One(error(e));
    }
    // The backlog (and, without `follow`, the end) queued before the reply is returned, as in
    // `watch_stream`; room for 64 more while following.
    let (out, reply) = mpsc::channel(backlog.len() + 64);
    for event in backlog {
        let _ = out.try_send(Response::Log { event });
    }
    if !follow {
        let _ = out.try_send(Response::ok());
        return Reply::Stream(reply);
    }
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                e = live.recv() => e,
                _ = out.closed() => return,
            };
            match event {
                Ok(event) if events::matches(&event, name.as_deref()) => {
                    if out.send(Response::Log { event }).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Reply::Stream(reply)
}

//! The per-tunnel supervisor: an infallible `run` loop around a fallible connect-and-serve,
//! with error classes deciding the policy (SPEC §4 "Errors drive policy").

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dynamic;
use super::local::{self, ListenerContext};
use super::pump::Counters;
use super::state::{ForwardKind, ForwardState, ForwardStatus, Published, Reporter, TunnelState};
use super::{Command, Event, Live, keepalive, peer, remote};
use crate::backoff::Backoff;
use crate::config::{Target, TunnelConfig};
use crate::error::{ErrorClass, TunnelError};
use crate::ssh::{self, SessionShared};
use crate::wakeup::Wakeup;

/// A session that stayed up this long was healthy: its loss restarts the backoff from the
/// first step and the first reconnect is immediate.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// After a wake-up, a session that does not answer a keepalive this fast (or within its
/// keepalive bound, if shorter), and over which nothing arrived meanwhile, is replaced.
const WAKEUP_PROBE: Duration = Duration::from_secs(3);

/// A wake-up restarts an attempt that has been running at least this long: it may be stuck on
/// the path that just went away. A younger one began on the new network already (netlink
/// reports a change as a burst of messages), and is left to finish; if it fails, the retry
/// follows at once.
const RESTART_ATTEMPT_AFTER: Duration = Duration::from_secs(1);

/// Why the enabled phase ended.
enum Exit {
    /// `down`: stay stopped until `up`.
    Disabled,
    /// The daemon is stopping this tunnel.
    Shutdown,
}

/// How a served session ended.
enum Served {
    Lost(TunnelError, Duration),
    /// Found dead by the check after a wake-up; how long it had lasted.
    Stale(TunnelError, Duration),
    Command(Command),
    Shutdown,
}

/// The local listeners of an enabled tunnel and the connections they accepted.
struct Listeners {
    set: JoinSet<()>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Listeners {
    /// Stops accepting; accepted connections continue.
    fn close(&mut self) {
        self.set.abort_all();
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub struct Supervisor {
    config: Arc<TunnelConfig>,
    inbox: super::Inbox,
    reporter: Reporter,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    grace: super::Grace,
    backoff: Backoff,
    session_tx: watch::Sender<Option<Arc<Live>>>,
    listeners: Option<Listeners>,
    /// A connection is waiting on a listener for a session (see [`ListenerContext::demand`]).
    demand: Arc<tokio::sync::Notify>,
    /// Whether to connect at once: `autostart`, or the running tunnel's state when a reload
    /// replaces it.
    enabled: bool,
}

impl Supervisor {
    pub fn new(
        config: Arc<TunnelConfig>,
        enabled: bool,
        inbox: super::Inbox,
        counters: Arc<Counters>,
        cancel: CancellationToken,
        grace: super::Grace,
        changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        let forwards = forward_statuses(&config);
        Supervisor {
            reporter: Reporter::new(config.name.as_str(), forwards, changed),
            backoff: Backoff::new(config.timing.backoff),
            session_tx: watch::Sender::new(None),
            listeners: None,
            demand: Arc::new(tokio::sync::Notify::new()),
            config,
            enabled,
            inbox,
            counters,
            cancel,
            grace,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.reporter.subscribe()
    }

    /// Runs until the tunnel is shut down; never fails.
    pub async fn run(mut self) {
        let mut enabled = self.enabled;
        loop {
            if !enabled {
                // Listeners are closed and there is no session: nothing is established.
                for kind in [
                    ForwardKind::Local,
                    ForwardKind::Remote,
                    ForwardKind::Dynamic,
                ] {
                    self.reporter.set_forwards(kind, ForwardState::Pending);
                }
                self.reporter.set_state(TunnelState::Stopped, 0, None, None);
                match self.next_command().await {
                    None => return,
                    Some(Command::Up | Command::Restart) => enabled = true,
                    Some(Command::Down) => {}
                }
                continue;
            }
            match self.run_enabled().await {
                Exit::Disabled => enabled = false,
                Exit::Shutdown => return,
            }
        }
    }

    async fn next_command(&mut self) -> Option<Command> {
        tokio::select! {
            _ = self.cancel.cancelled() => None,
            c = self.inbox.next() => c,
        }
    }

    /// Enabled: listeners bound, sessions attempted until disabled or shut down.
    async fn run_enabled(&mut self) -> Exit {
        self.backoff.reset();
        for kind in [ForwardKind::Local, ForwardKind::Dynamic] {
            self.reporter.set_forwards(kind, ForwardState::Pending);
        }
        self.listeners = Some(self.start_listeners());
        let exit = self.connect_loop().await;
        // Closes the listeners and ends their connections.
        self.listeners = None;
        exit
    }

    fn start_listeners(&self) -> Listeners {
        let mut listeners = Listeners {
            set: JoinSet::new(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        };
        let ctx = ListenerContext {
            session: self.session_tx.subscribe(),
            reporter: self.reporter.clone(),
            counters: self.counters.clone(),
            tasks: listeners.tasks.clone(),
            stop: listeners.stop.clone(),
            hold: self.config.timing.connection_hold,
            max_connections: self.config.max_connections,
            demand: self.demand.clone(),
        };
        for (index, forward) in self.config.local.iter().enumerate() {
            listeners
                .set
                .spawn(local::serve(index, forward.clone(), ctx.clone()));
        }
        // Status lists local, then remote, then dynamic forwards.
        let offset = self.config.local.len() + self.config.remote.len();
        for (i, forward) in self.config.dynamic.iter().enumerate() {
            listeners
                .set
                .spawn(dynamic::serve(offset + i, forward.clone(), ctx.clone()));
        }
        listeners
    }

    /// Sessions attempted, served and retried until disabled or shut down.
    async fn connect_loop(&mut self) -> Exit {
        let mut attempt = 0;
        // The attempt under way replaced one that a wake-up cut short: it is not cut short
        // again, so a network that keeps changing (containers coming and going) cannot keep
        // a slow connect from ever finishing.
        let mut restarted = false;
        'attempts: loop {
            attempt += 1;
            let started = Instant::now();
            self.reporter
                .set_state(TunnelState::Connecting, attempt, None, None);
            let shared =
                SessionShared::with_limit(self.counters.clone(), self.config.max_connections);
            let deadline = Instant::now() + self.config.timing.connect_timeout;
            // A wake-up during an attempt too young to restart: its failure is retried at once.
            let mut woken = false;
            let connected = {
                let connecting = ssh::connect(&self.config, shared.clone(), deadline);
                tokio::pin!(connecting);
                loop {
                    tokio::select! {
                        _ = self.cancel.cancelled() => return Exit::Shutdown,
                        e = self.inbox.next_event() => match e {
                            None => return Exit::Shutdown,
                            Some(Event::Command(Command::Down)) => return Exit::Disabled,
                            // Already connecting: a script repeating `up` must not keep restarting it.
                            Some(Event::Command(Command::Up)) => {}
                            Some(Event::Command(Command::Restart)) => {
                                self.backoff.reset();
                                attempt = 0;
                                continue 'attempts;
                            }
                            Some(Event::Wakeup(why)) if !restarted && started.elapsed() >= RESTART_ATTEMPT_AFTER => {
                                tracing::info!(tunnel = %self.config.name, %why, "starting the attempt over on the new path");
                                restarted = true;
                                continue 'attempts;
                            }
                            Some(Event::Wakeup(_)) => woken = true,
                        },
                        r = &mut connecting => break r,
                    }
                }
            };
            restarted = false;
            let (error, immediate) = match connected {
                Err(e) => (e, woken),
                Ok(ssh::Connected { handle, jumps }) => match self
                    .serve(
                        Live {
                            handle,
                            jumps,
                            shared,
                        },
                        deadline,
                    )
                    .await
                {
                    Served::Shutdown => return Exit::Shutdown,
                    Served::Command(Command::Down) => return Exit::Disabled,
                    Served::Command(_) => {
                        self.backoff.reset();
                        attempt = 0;
                        continue;
                    }
                    // Checked after a wake-up and found dead: replace it at once.
                    Served::Stale(e, lasted) => {
                        attempt = 0;
                        if lasted >= HEALTHY_AFTER {
                            self.backoff.reset();
                        }
                        (e, true)
                    }
                    Served::Lost(e, lasted) => {
                        attempt = 0;
                        let healthy = lasted >= HEALTHY_AFTER;
                        if healthy {
                            self.backoff.reset();
                        }
                        (e, healthy)
                    }
                },
            };
            let Some(delay) = self.policy(&error, attempt.max(1), immediate) else {
                // Never retried on its own (host key): wait for the user.
                match self.next_command().await {
                    None => return Exit::Shutdown,
                    Some(Command::Down) => return Exit::Disabled,
                    Some(_) => {
                        self.backoff.reset();
                        attempt = 0;
                        continue;
                    }
                }
            };
            // Auth and config failures wait for the user (or the maximum interval): a new
            // network does not fix a rejected key.
            let woken_early = matches!(
                error.class,
                ErrorClass::Network
                    | ErrorClass::Timeout
                    | ErrorClass::Protocol
                    | ErrorClass::Forward
            );
            let mut retry_at = Instant::now() + delay;
            // A connection waiting on a listener brings the retry forward, but attempts stay
            // at least the initial backoff interval apart: a client retrying in a loop must
            // not turn into as many attempts against the relay.
            let soonest = started + self.config.timing.backoff.initial;
            loop {
                tokio::select! {
                    _ = self.cancel.cancelled() => return Exit::Shutdown,
                    _ = tokio::time::sleep_until(retry_at) => break,
                    () = self.demand.notified(), if woken_early && soonest < retry_at => {
                        retry_at = soonest.max(Instant::now());
                        let in_ms = retry_at.saturating_duration_since(Instant::now()).as_millis();
                        tracing::info!(tunnel = %self.config.name, in_ms, "a connection is waiting: retrying without waiting out the backoff");
                        self.reporter.set_state(TunnelState::Backoff, attempt.max(1), Some(retry_at.into_std()), None);
                    }
                    e = self.inbox.next_event() => match e {
                        None => return Exit::Shutdown,
                        Some(Event::Command(Command::Down)) => return Exit::Disabled,
                        Some(Event::Command(_)) => { self.backoff.reset(); attempt = 0; break; }
                        Some(Event::Wakeup(why)) if woken_early => {
                            tracing::info!(tunnel = %self.config.name, %why, "retrying now instead of waiting out the backoff");
                            break;
                        }
                        Some(Event::Wakeup(_)) => {}
                    },
                }
            }
        }
    }

    /// Asks the relay for each remote forward in turn (each within what is left of `deadline`,
    /// at least 1 s); one refused or unanswered is retried on its own, in the background.
    async fn request_remote_forwards(
        config: &TunnelConfig,
        reporter: &Reporter,
        live: &Arc<Live>,
        deadline: Instant,
    ) {
        let offset = config.local.len();
        for (i, forward) in config.remote.iter().enumerate() {
            let timeout = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            match remote::request(live, forward, timeout).await {
                Ok(()) => reporter.set_forward(offset + i, ForwardState::Up, None),
                Err(message) => {
                    reporter.set_forward(offset + i, ForwardState::Error, Some(message));
                    live.shared.tasks.spawn(remote::retry(
                        live.clone(),
                        offset + i,
                        forward.clone(),
                        reporter.clone(),
                        config.timing.backoff,
                        config.timing.connect_timeout,
                    ));
                }
            }
        }
    }

    /// Whether the session answers a keepalive promptly, checked after a wake-up: a path that
    /// died while the machine slept, or whose address went away, would otherwise hold the
    /// tunnel until keepalives time out.
    async fn answers(config: &TunnelConfig, live: &Live, why: Wakeup) -> Result<(), TunnelError> {
        let dead_after = crate::net::dead_after(&config.timing);
        let step = WAKEUP_PROBE.min(dead_after);
        let started = Instant::now();
        let ping = live.handle.send_ping();
        tokio::pin!(ping);
        let received = || {
            live.shared
                .received
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let mut seen = received();
        loop {
            tokio::select! {
                // Ended meanwhile: the serve loop reports why.
                _ = live.shared.ended.cancelled() => return Ok(()),
                r = &mut ping => {
                    // russh's ping also returns Ok when the session died before the answer
                    // (its reply channel dropped), as `keepalive` knows too.
                    if r.is_ok() && !live.handle.is_closed() {
                        tracing::debug!(tunnel = %config.name, %why, "session still answers");
                        return Ok(());
                    }
                    break;
                }
                _ = tokio::time::sleep(step) => {
                    // A busy session's answer waits behind the data in flight: while data keeps
                    // arriving the path is alive (a dead one's buffered bytes are read within a
                    // step), so wait on, up to the keepalive's own bound.
                    let now = received();
                    if now == seen || started.elapsed() >= dead_after {
                        break;
                    }
                    seen = now;
                }
            }
        }
        Err(TunnelError::new(
            ErrorClass::Timeout,
            format!(
                "no keepalive reply within {} ms ({why})",
                started.elapsed().as_millis()
            ),
        ))
    }

    /// Publishes the failure and returns the delay before the next attempt (`None`: wait for
    /// the user).
    fn policy(&mut self, error: &TunnelError, attempt: u32, immediate: bool) -> Option<Duration> {
        let (state, delay) = match error.class {
            ErrorClass::HostKey => (TunnelState::Failed, None),
            // Retrying a rejected key quickly only fills the relay's auth log (and trips fail2ban).
            ErrorClass::Auth | ErrorClass::Config => {
                (TunnelState::Failed, Some(self.backoff.max()))
            }
            _ if immediate => (TunnelState::Backoff, Some(Duration::ZERO)),
            _ => (TunnelState::Backoff, Some(self.backoff.next_delay())),
        };
        let retry_at = delay.map(|d| (Instant::now() + d).into_std());
        self.reporter
            .set_state(state, attempt, retry_at, Some(error.clone()));
        delay
    }

    /// Sets up the remote forwards, publishes `up`/`degraded`, and waits for the session to end
    /// or a command.
    async fn serve(&mut self, live: Live, deadline: Instant) -> Served {
        let live = Arc::new(live);
        live.shared.tasks.spawn(keepalive::run(
            live.clone(),
            self.reporter.clone(),
            self.config.timing,
        ));
        self.reporter
            .set_forwards(ForwardKind::Remote, ForwardState::Pending);
        let setup = Self::request_remote_forwards(&self.config, &self.reporter, &live, deadline);
        self.inbox.busy(setup).await;
        let started = Instant::now();
        // Ended while the remote forwards were being set up: never `up` (the loop below
        // reports it lost at once).
        if !live.shared.ended.is_cancelled() {
            self.reporter.session_established();
            self.reporter.set_state(TunnelState::Up, 0, None, None);
        }
        self.session_tx.send_replace(Some(live.clone()));
        self.probe_peers(&live);
        let served = loop {
            tokio::select! {
                _ = live.shared.ended.cancelled() => {
                    let error = SessionShared::take(&live.shared.end_reason).unwrap_or_else(|| {
                        TunnelError::new(ErrorClass::Network, "session to relay closed")
                    });
                    break Served::Lost(error, started.elapsed());
                }
                _ = self.cancel.cancelled() => break Served::Shutdown,
                e = self.inbox.next_event() => match e {
                    // Already up: `up` has nothing to do.
                    Some(Event::Command(Command::Up)) => {}
                    Some(Event::Command(c)) => break Served::Command(c),
                    Some(Event::Wakeup(why)) => {
                        let check = Self::answers(&self.config, &live, why);
                        if let Err(e) = self.inbox.busy(check).await {
                            break Served::Stale(e, started.elapsed());
                        }
                    }
                    None => break Served::Shutdown,
                },
            }
        };
        self.session_tx.send_replace(None);
        if matches!(served, Served::Shutdown | Served::Command(Command::Down)) {
            self.drain().await;
        }
        ssh::disconnect(&live.handle, "pairtund: tunnel stopped").await;
        ssh::disconnect_all(&live.jumps, "pairtund: tunnel stopped").await;
        live.shared.ended.cancel();
        live.shared.tasks.close();
        self.reporter
            .set_forwards(ForwardKind::Remote, ForwardState::Pending);
        for index in 0..self.config.local.len() {
            self.reporter.set_peer(index, None);
        }
        served
    }

    /// Once per session, in the session's scope, only with `probe_peer = true`: does each TCP
    /// `-L` target answer with an SSH banner (SPEC §3 pairing: "peer: up / not listening")?
    fn probe_peers(&self, live: &Arc<Live>) {
        if !self.config.probe_peer {
            return;
        }
        for (index, forward) in self.config.local.iter().enumerate() {
            let Target::Tcp(target) = &forward.target else {
                continue;
            };
            let (live, reporter, target) = (live.clone(), self.reporter.clone(), target.clone());
            live.shared.tasks.clone().spawn(async move {
                tokio::select! {
                    _ = live.shared.ended.cancelled() => {}
                    peer = peer::probe(&live, &target) => reporter.set_peer(index, Some(peer)),
                }
            });
        }
    }

    /// Stops accepting and lets live connections finish, for at most the grace period.
    async fn drain(&mut self) {
        if let Some(listeners) = self.listeners.as_mut() {
            listeners.close();
        }
        if self.counters.connections.load(Ordering::Relaxed) == 0 {
            return;
        }
        let grace = self.grace.get();
        let name = &self.config.name;
        tracing::info!(tunnel = %name, ?grace, "waiting for live connections");
        let idle = tokio::time::timeout(grace, self.counters.wait_idle());
        if self.inbox.busy(idle).await.is_err() {
            tracing::warn!(tunnel = %name, "grace period over; closing live connections");
        }
    }
}

fn forward_statuses(config: &TunnelConfig) -> Vec<ForwardStatus> {
    let local = config
        .local
        .iter()
        .map(|f| (ForwardKind::Local, f.spec.clone()));
    let remote = config
        .remote
        .iter()
        .map(|f| (ForwardKind::Remote, f.spec.clone()));
    let dynamic = config
        .dynamic
        .iter()
        .map(|f| (ForwardKind::Dynamic, f.spec.clone()));
    local
        .chain(remote)
        .chain(dynamic)
        .map(|(kind, spec)| ForwardStatus {
            kind,
            spec,
            state: ForwardState::Pending,
            error: None,
            peer: None,
        })
        .collect()
}

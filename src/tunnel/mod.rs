//! One supervised tunnel: a task that owns the tunnel's SSH session, listeners and state, and a
//! handle to command it and read its status.

mod dynamic;
mod keepalive;
mod local;
mod peer;
pub mod pump;
mod remote;
pub mod state;
mod supervisor;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::TunnelConfig;
use crate::ssh::{Handle, SessionShared};
use crate::wakeup::Wakeup;
use pump::Counters;
pub use state::{
    ForwardKind, ForwardState, ForwardStatus, Peer, Published, TunnelState, TunnelStatus,
};

/// An established session as the forwards see it.
pub struct Live {
    /// The russh handle (channel opens, forward requests).
    pub handle: Handle,
    /// The ProxyJump sessions `handle` runs through, outermost first.
    pub jumps: Vec<Handle>,
    /// The session's task scope and routes.
    pub shared: Arc<SessionShared>,
}

/// What a user can ask a tunnel to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Enable and connect now (skipping any pending backoff).
    Up,
    /// Close the session and listeners; stay down until `Up`.
    Down,
    /// Drop the session and reconnect now.
    Restart,
}

/// What travels to a supervisor.
#[derive(Debug)]
pub enum Message {
    /// A user command.
    Command(Command),
    /// Answer on the channel: proves the supervisor loop is not wedged (systemd watchdog).
    /// Answered wherever the supervisor waits for commands, and during its bounded long steps
    /// ([`Inbox::busy`]).
    Probe(tokio::sync::oneshot::Sender<()>),
    /// Check the session now (the machine woke up, or the network changed): a session that does
    /// not answer is replaced at once, a pending retry happens now.
    Wakeup(Wakeup),
}

/// What a supervisor waiting for the relay acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Command(Command),
    Wakeup(Wakeup),
}

/// Commands and wake-ups received during one [`Inbox::busy`] step, at most: as many as the
/// channel holds. With that many waiting, the rest stay in the channel until the step ends.
const DEFERRED_MAX: usize = MESSAGES;

/// Messages a tunnel's task may have waiting.
const MESSAGES: usize = 16;

/// A supervisor's messages. Probes are answered wherever it waits, and also during its long
/// steps ([`Inbox::busy`]): a supervisor setting up remote forwards, checking a session after a
/// wake-up or letting connections finish is busy for a bounded time, not wedged, and must not
/// get the whole daemon restarted by the watchdog. Commands and wake-ups that arrive during a
/// step are kept, in order, for after it (repeated wake-ups as one).
pub struct Inbox {
    messages: mpsc::Receiver<Message>,
    deferred: VecDeque<Event>,
    /// The channel ended during a step: `None` once `deferred` is empty.
    closed: bool,
}

impl Inbox {
    fn new(messages: mpsc::Receiver<Message>) -> Self {
        Inbox {
            messages,
            deferred: VecDeque::new(),
            closed: false,
        }
    }

    /// The next command, answering probes and ignoring wake-ups on the way (for waits where
    /// there is no session to check and no retry to bring forward).
    async fn next(&mut self) -> Option<Command> {
        loop {
            if let Event::Command(command) = self.next_event().await? {
                return Some(command);
            }
        }
    }

    /// The next command or wake-up, answering probes on the way. Cancel-safe.
    async fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.deferred.pop_front() {
            return Some(event);
        }
        if self.closed {
            return None;
        }
        loop {
            match self.messages.recv().await? {
                Message::Probe(ack) => {
                    let _ = ack.send(());
                }
                Message::Command(command) => return Some(Event::Command(command)),
                Message::Wakeup(why) => return Some(Event::Wakeup(why)),
            }
        }
    }

    /// Runs `step` to its end, answering probes meanwhile; commands and wake-ups wait for the
    /// next [`Inbox::next_event`]. Only for steps with a bound of their own.
    async fn busy<T>(&mut self, step: impl Future<Output = T>) -> T {
        tokio::pin!(step);
        loop {
            let room = self.deferred.len() < DEFERRED_MAX && !self.closed;
            tokio::select! {
                biased;
                out = &mut step => return out,
                message = self.messages.recv(), if room => match message {
                    Some(Message::Probe(ack)) => {
                        let _ = ack.send(());
                    }
                    Some(Message::Command(command)) => self.deferred.push_back(Event::Command(command)),
                    Some(Message::Wakeup(why)) => {
                        if !self.deferred.iter().any(|e| matches!(e, Event::Wakeup(_))) {
                            self.deferred.push_back(Event::Wakeup(why));
                        }
                    }
                    None => self.closed = true,
                },
            }
        }
    }
}

/// How long live connections may continue once a tunnel is told to stop (`shutdown_grace`).
/// Shared by every tunnel and read when one stops, so a reload that changes it applies to the
/// tunnels already running too.
#[derive(Clone, Debug)]
pub struct Grace(Arc<std::sync::atomic::AtomicU64>);

impl Grace {
    pub fn new(grace: Duration) -> Self {
        Grace(Arc::new(std::sync::atomic::AtomicU64::new(millis(grace))))
    }

    pub fn set(&self, grace: Duration) {
        self.0
            .store(millis(grace), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The handle to a running tunnel task.
pub struct TunnelHandle {
    config: Arc<TunnelConfig>,
    commands: mpsc::Sender<Message>,
    status: watch::Receiver<Published>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl TunnelHandle {
    /// Starts the tunnel's task; it connects at once if `autostart` is set. `grace` bounds how
    /// long live connections may continue once the tunnel is told to stop.
    pub fn spawn(config: TunnelConfig, grace: Grace, changed: Arc<tokio::sync::Notify>) -> Self {
        let enabled = config.autostart;
        Self::spawn_enabled(config, enabled, grace, changed)
    }

    /// [`TunnelHandle::spawn`], connecting at once if `enabled` whatever `autostart` says: a
    /// tunnel replaced by a reload keeps the user's `up` or `down`.
    pub fn spawn_enabled(
        config: TunnelConfig,
        enabled: bool,
        grace: Grace,
        changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        let config = Arc::new(config);
        let (commands, rx) = mpsc::channel(MESSAGES);
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let sup = supervisor::Supervisor::new(
            config.clone(),
            enabled,
            Inbox::new(rx),
            counters.clone(),
            cancel.clone(),
            grace,
            changed,
        );
        let status = sup.subscribe();
        let task = tokio::spawn(sup.run());
        TunnelHandle {
            config,
            commands,
            status,
            counters,
            cancel,
            task,
        }
    }

    /// The configuration the tunnel runs with.
    pub fn config(&self) -> &TunnelConfig {
        &self.config
    }

    /// Sends a command; `false` if the tunnel task has ended.
    pub async fn command(&self, command: Command) -> bool {
        self.commands.send(Message::Command(command)).await.is_ok()
    }

    /// Asks the tunnel to check its session now; dropped if the tunnel is busy with earlier
    /// messages (a check is already due then).
    pub fn wakeup(&self, why: Wakeup) {
        let _ = self.commands.try_send(Message::Wakeup(why));
    }

    /// A sender for commands, usable without holding on to the handle.
    pub fn commander(&self) -> mpsc::Sender<Message> {
        self.commands.clone()
    }

    /// A receiver that sees every published state change.
    pub fn watch(&self) -> watch::Receiver<Published> {
        self.status.clone()
    }

    /// A status snapshot with live counters.
    pub fn status(&self) -> TunnelStatus {
        let p = self.status.borrow().clone();
        let backing_off = matches!(
            p.state,
            TunnelState::Backoff | TunnelState::Failed | TunnelState::Connecting
        );
        TunnelStatus {
            name: self.config.name.to_string(),
            state: p.state,
            since: humantime::format_rfc3339_millis(p.since).to_string(),
            session: p.session,
            forwards: p.forwards,
            connections: self.counters.connections.load(Ordering::Relaxed),
            bytes_in: self.counters.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.counters.bytes_out.load(Ordering::Relaxed),
            rtt_ms: p.rtt.map(|d| d.as_millis() as u64),
            attempt: backing_off.then_some(p.attempt).filter(|a| *a > 0),
            retry_in_ms: p
                .retry_at
                .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
            last_error: p.last_error,
        }
    }

    /// Stops the tunnel: listeners close, live connections get up to the grace period, the
    /// session is disconnected politely. Returns when the task has ended.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(tunnel = %self.config.name, error = %e, "tunnel task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_busy_inbox_answers_probes_and_keeps_commands_for_after_the_step() {
        let (tx, rx) = mpsc::channel(MESSAGES);
        let mut inbox = Inbox::new(rx);
        let (ack, answered) = tokio::sync::oneshot::channel();
        let during = async {
            tx.send(Message::Command(Command::Restart)).await.unwrap();
            tx.send(Message::Wakeup(Wakeup::NetworkChanged))
                .await
                .unwrap();
            tx.send(Message::Probe(ack)).await.unwrap();
            tx.send(Message::Wakeup(Wakeup::NetworkChanged))
                .await
                .unwrap();
            tx.send(Message::Command(Command::Down)).await.unwrap();
            // Answered while the step still runs.
            answered.await.expect("probe answered during the step");
        };
        let step = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "done"
        };
        let (out, ()) = tokio::join!(inbox.busy(step), during);
        assert_eq!(out, "done");
        // In order, the repeated wake-up once.
        let mut after = Vec::new();
        drop(tx);
        while let Some(event) = inbox.next_event().await {
            after.push(event);
        }
        assert_eq!(
            after,
            [
                Event::Command(Command::Restart),
                Event::Wakeup(Wakeup::NetworkChanged),
                Event::Command(Command::Down),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_deferral_leaves_the_rest_in_the_channel_in_order() {
        let (tx, rx) = mpsc::channel(2 * MESSAGES);
        let mut inbox = Inbox::new(rx);
        for _ in 0..DEFERRED_MAX {
            tx.send(Message::Command(Command::Up)).await.unwrap();
        }
        tx.send(Message::Command(Command::Down)).await.unwrap();
        inbox.busy(tokio::time::sleep(Duration::from_secs(1))).await;
        assert_eq!(inbox.deferred.len(), DEFERRED_MAX);
        drop(tx);
        let mut after = Vec::new();
        while let Some(event) = inbox.next_event().await {
            after.push(event);
        }
        assert_eq!(after.len(), DEFERRED_MAX + 1);
        assert_eq!(after.last(), Some(&Event::Command(Command::Down)));
    }
}

//! The daemon: every tunnel under its own supervisor, and the operations `pairtunctl` asks
//! for (status, up/down, add/drop, reload). State lives behind a short-held lock that is never
//! held across an `.await`; stopping a tunnel happens after it has been taken out.

mod args;
mod diff;
mod events;
mod handler;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio_util::task::TaskTracker;

pub use args::DaemonArgs;
pub use diff::{Diff, diff};
pub use events::{EventLayer, EventLog};
pub use handler::ControlHandler;

use crate::config::{self, Config, ConfigError, EditError, Env, TunnelName};
use crate::protocol::{ErrorKind, TunnelSpec};
use crate::tunnel::{Command, Grace, Message, Published, TunnelHandle, TunnelState, TunnelStatus};
use crate::wakeup::Wakeup;

/// A failed operation: what kind, and a message for the user.
pub type OpError = (ErrorKind, String);

/// A running set of tunnels.
pub struct Daemon {
    state: Mutex<State>,
    /// The config file (add/drop/reload work on it), and how paths in it expand.
    file: Option<PathBuf>,
    env: Env,
    /// `shutdown_grace`, shared with every tunnel; a reload updates it.
    grace: Grace,
    /// Woken whenever any tunnel changes state (or tunnels come and go).
    changed: Arc<Notify>,
    /// Marked changed whenever tunnels come or go (`status --watch` follows the new set);
    /// `true` once the daemon is shutting down.
    roster: watch::Sender<bool>,
    /// Tunnels dropped or replaced that are still giving their live connections the grace
    /// period: the request that stopped them is answered at once (the grace may be longer
    /// than a request may take), and [`Daemon::shutdown`] waits for them.
    stopping: TaskTracker,
}

struct State {
    tunnels: BTreeMap<TunnelName, TunnelHandle>,
    /// Added with `--temporary`: not in the file, kept across reloads.
    temporary: BTreeSet<TunnelName>,
}

impl Daemon {
    /// Starts a supervisor per tunnel (autostart tunnels connect at once). Must be called within
    /// a tokio runtime. `env` expands paths when the file is re-read.
    pub fn start(config: &Config, env: Env) -> Self {
        let grace = Grace::new(config.shutdown_grace);
        let changed = Arc::new(Notify::new());
        let tunnels = config
            .tunnels
            .iter()
            .map(|(name, tunnel)| {
                (
                    name.clone(),
                    TunnelHandle::spawn(tunnel.clone(), grace.clone(), changed.clone()),
                )
            })
            .collect();
        tracing::info!(tunnels = config.tunnels.len(), "daemon started");
        warn_unhonoured(config);
        Daemon {
            state: Mutex::new(State {
                tunnels,
                temporary: BTreeSet::new(),
            }),
            file: config.source.clone(),
            env,
            grace,
            changed,
            roster: watch::Sender::new(false),
            stopping: TaskTracker::new(),
        }
    }

    /// Follows the set of tunnels: marked changed when tunnels come or go; `true` once the
    /// daemon is shutting down.
    pub fn roster(&self) -> watch::Receiver<bool> {
        self.roster.subscribe()
    }

    /// Tunnels came or went.
    fn roster_changed(&self) {
        self.changed.notify_one();
        self.roster.send_modify(|_| {});
    }

    /// Returns after some tunnel changed state, or tunnels were added or removed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether every tunnel's supervisor answers within `within` (for the systemd watchdog: a
    /// wedged supervisor must stop the pings, not just a dead runtime).
    pub async fn probe(&self, within: Duration) -> bool {
        let commanders: Vec<_> = self
            .lock()
            .tunnels
            .values()
            .map(TunnelHandle::commander)
            .collect();
        let probes = commanders.into_iter().map(|c| async move {
            let (ack, answered) = tokio::sync::oneshot::channel();
            c.send(Message::Probe(ack)).await.is_ok() && answered.await.is_ok()
        });
        tokio::time::timeout(within, futures_util::future::join_all(probes))
            .await
            .is_ok_and(|all| all.into_iter().all(|ok| ok))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-updated (every update is a
        // single insert/remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `read` of tunnel `name`, or of every tunnel in name order.
    fn each<T>(
        &self,
        name: Option<&str>,
        read: impl Fn(&TunnelHandle) -> T,
    ) -> Result<Vec<T>, OpError> {
        let state = self.lock();
        match name {
            None => Ok(state.tunnels.values().map(read).collect()),
            Some(n) => {
                let handle = state.tunnels.get(&lookup(n)?).ok_or_else(|| unknown(n))?;
                Ok(vec![read(handle)])
            }
        }
    }

    /// Status of tunnel `name`, or of every tunnel in name order.
    pub fn status(&self, name: Option<&str>) -> Result<Vec<TunnelStatus>, OpError> {
        self.each(name, TunnelHandle::status)
    }

    /// Change receivers of tunnel `name`, or of every tunnel.
    pub fn watch(&self, name: Option<&str>) -> Result<Vec<watch::Receiver<Published>>, OpError> {
        self.each(name, TunnelHandle::watch)
    }

    /// Tells every tunnel to check its session now, or to retry now if it is waiting out a
    /// backoff (see [`crate::wakeup`]).
    pub fn wakeup(&self, why: Wakeup) {
        let state = self.lock();
        tracing::info!(%why, tunnels = state.tunnels.len(), "checking every tunnel");
        for handle in state.tunnels.values() {
            handle.wakeup(why);
        }
    }

    /// Sends `command` to tunnel `name`.
    pub async fn command(&self, name: &str, command: Command) -> Result<(), OpError> {
        let sender = {
            let state = self.lock();
            state
                .tunnels
                .get(&lookup(name)?)
                .ok_or_else(|| unknown(name))?
                .commander()
        };
        match sender.send(Message::Command(command)).await {
            Ok(()) => Ok(()),
            Err(_) => Err((
                ErrorKind::Internal,
                format!("tunnel `{name}` is shutting down"),
            )),
        }
    }

    /// Adds and starts a tunnel; written to the config file unless `temporary`.
    pub async fn add(&self, spec: &TunnelSpec, temporary: bool) -> Result<(), OpError> {
        let name = lookup(&spec.name)?;
        if self.lock().tunnels.contains_key(&name) {
            return Err((
                ErrorKind::BadRequest,
                format!("tunnel `{name}` already exists"),
            ));
        }
        let file = self.file.clone().ok_or((
            ErrorKind::Config,
            "the daemon runs without a config file".to_owned(),
        ))?;
        let env = self.env.clone();
        let spec = spec.clone();
        // Validated against the file either way, so a temporary tunnel cannot clash with it.
        let config = tokio::task::spawn_blocking(move || {
            if temporary {
                // Checked against the file as an edit reads it, never against an unreadable
                // one taken for empty.
                let text = config::read_for_edit(&file)?;
                let text = config::add_tunnel(&text, &spec)?;
                config::parse(&text, &file, &env).map_err(EditError::Invalid)
            } else {
                config::edit_file(&file, &env, |text| config::add_tunnel(text, &spec))
            }
        })
        .await
        .map_err(|e| (ErrorKind::Internal, e.to_string()))?
        .map_err(edit_error)?;
        let tunnel = config
            .tunnels
            .get(&name)
            .cloned()
            .ok_or_else(|| unknown(name.as_str()))?;
        let mut state = self.lock();
        if state.tunnels.contains_key(&name) {
            return Err((
                ErrorKind::BadRequest,
                format!("tunnel `{name}` already exists"),
            ));
        }
        if temporary {
            state.temporary.insert(name.clone());
        }
        tracing::info!(tunnel = %name, temporary, "tunnel added");
        state.tunnels.insert(
            name,
            TunnelHandle::spawn(tunnel, self.grace.clone(), self.changed.clone()),
        );
        drop(state);
        self.roster_changed();
        Ok(())
    }

    /// Stops and removes a tunnel; removed from the config file too unless `temporary`.
    pub async fn drop_tunnel(&self, name: &str, temporary: bool) -> Result<(), OpError> {
        let key = lookup(name)?;
        let in_file = !self.lock().temporary.contains(&key);
        if !self.lock().tunnels.contains_key(&key) {
            return Err(unknown(name));
        }
        if !temporary && in_file {
            let file = self.file.clone().ok_or((
                ErrorKind::Config,
                "the daemon runs without a config file".to_owned(),
            ))?;
            let (env, owned) = (self.env.clone(), name.to_owned());
            tokio::task::spawn_blocking(move || {
                config::edit_file(&file, &env, |text| config::drop_tunnel(text, &owned))
            })
            .await
            .map_err(|e| (ErrorKind::Internal, e.to_string()))?
            .map_err(edit_error)?;
        }
        let handle = {
            let mut state = self.lock();
            state.temporary.remove(&key);
            state.tunnels.remove(&key)
        };
        if let Some(handle) = handle {
            tracing::info!(tunnel = %key, "tunnel dropped");
            self.roster_changed();
            self.stopping.spawn(handle.shutdown());
        }
        Ok(())
    }

    /// Re-reads the config file and applies only the difference. An invalid file changes
    /// nothing and its error is returned.
    pub async fn reload(&self) -> Result<Diff, ConfigError> {
        let Some(file) = self.file.clone() else {
            return Ok(Diff::default());
        };
        let env = self.env.clone();
        let path = file.clone();
        let new = tokio::task::spawn_blocking(move || config::load(&path, &env))
            .await
            .map_err(|e| ConfigError::whole_file(&file, format!("reload failed: {e}")))??;
        warn_unhonoured(&new);
        self.grace.set(new.shutdown_grace);
        let (d, stopped) = {
            let mut state = self.lock();
            let running = state
                .tunnels
                .iter()
                .map(|(n, h)| (n.clone(), h.config().clone()))
                .collect();
            let d = diff(&running, &state.temporary, &new);
            let mut stopped = Vec::new();
            // A changed tunnel keeps what the user made of it (`down` stays down until `up`,
            // SPEC §3), unless the change itself turns `autostart` on.
            let mut enabled = BTreeMap::new();
            for name in d.removed.iter().chain(&d.changed) {
                state.temporary.remove(name);
                if let Some(old) = state.tunnels.remove(name) {
                    let was_enabled = old.status().state != TunnelState::Stopped;
                    enabled.insert(name.clone(), (was_enabled, old.config().autostart));
                    stopped.push(old);
                }
            }
            for name in d.added.iter().chain(&d.changed) {
                if let Some(tunnel) = new.tunnels.get(name) {
                    let on = match enabled.get(name) {
                        Some(&(was_enabled, was_autostart)) => {
                            was_enabled || (tunnel.autostart && !was_autostart)
                        }
                        None => tunnel.autostart,
                    };
                    let handle = TunnelHandle::spawn_enabled(
                        tunnel.clone(),
                        on,
                        self.grace.clone(),
                        self.changed.clone(),
                    );
                    state.tunnels.insert(name.clone(), handle);
                }
            }
            (d, stopped)
        };
        self.roster_changed();
        tracing::info!(
            added = d.added.len(),
            removed = d.removed.len(),
            changed = d.changed.len(),
            unchanged = d.unchanged.len(),
            "config reloaded"
        );
        for handle in stopped {
            self.stopping.spawn(handle.shutdown());
        }
        Ok(d)
    }

    /// Stops every tunnel at once (each gets the grace period for its live connections).
    pub async fn shutdown(&self) {
        tracing::info!(grace = ?self.grace.get(), "shutting down");
        let tunnels = std::mem::take(&mut self.lock().tunnels);
        self.roster.send_replace(true);
        futures_util::future::join_all(tunnels.into_values().map(TunnelHandle::shutdown)).await;
        self.stopping.close();
        self.stopping.wait().await;
        tracing::info!("all tunnels stopped");
    }

    /// A one-line summary ("3 tunnels: 2 up, 1 backoff") for service managers.
    pub fn summary(&self) -> String {
        let statuses = self.status(None).unwrap_or_default();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &statuses {
            *counts.entry(s.state.as_str()).or_default() += 1;
        }
        let parts: Vec<_> = counts
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        format!("{} tunnels: {}", statuses.len(), parts.join(", "))
    }
}

fn lookup(name: &str) -> Result<TunnelName, OpError> {
    TunnelName::new(name).map_err(|_| unknown(name))
}

fn unknown(name: &str) -> OpError {
    (
        ErrorKind::UnknownTunnel,
        format!("no tunnel named `{name}`"),
    )
}

fn edit_error(e: EditError) -> OpError {
    let kind = match &e {
        EditError::Invalid(_) | EditError::Toml(_) => ErrorKind::Config,
        EditError::Exists(_) | EditError::Missing(_) => ErrorKind::BadRequest,
        EditError::Io { .. } => ErrorKind::Internal,
    };
    (kind, e.to_string())
}

/// Logs what the ssh config says that pairtun cannot honour, at every load.
fn warn_unhonoured(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!("ssh config: {warning}");
    }
}

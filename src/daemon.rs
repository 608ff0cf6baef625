//! The daemon: every configured tunnel, each under its own supervisor.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Config, TunnelName};
use crate::tunnel::{TunnelHandle, TunnelStatus};

/// A running set of tunnels.
pub struct Daemon {
    tunnels: BTreeMap<TunnelName, TunnelHandle>,
    grace: Duration,
}

impl Daemon {
    /// Starts a supervisor per tunnel (autostart tunnels connect at once). Must be called within
    /// a tokio runtime.
    pub fn start(config: &Config) -> Self {
        let grace = config.shutdown_grace;
        let tunnels = config
            .tunnels
            .iter()
            .map(|(name, tunnel)| (name.clone(), TunnelHandle::spawn(tunnel.clone(), grace)))
            .collect();
        tracing::info!(tunnels = config.tunnels.len(), "daemon started");
        Daemon { tunnels, grace }
    }

    /// The tunnel called `name`.
    pub fn tunnel(&self, name: &str) -> Option<&TunnelHandle> {
        let name = TunnelName::new(name).ok()?;
        self.tunnels.get(&name)
    }

    /// Status of every tunnel, in name order.
    pub fn status(&self) -> Vec<TunnelStatus> {
        self.tunnels.values().map(TunnelHandle::status).collect()
    }

    /// Stops every tunnel at once (each gets the grace period for its live connections).
    pub async fn shutdown(self) {
        tracing::info!(grace = ?self.grace, "shutting down");
        let stops = self.tunnels.into_values().map(TunnelHandle::shutdown);
        futures_util::future::join_all(stops).await;
        tracing::info!("all tunnels stopped");
    }
}

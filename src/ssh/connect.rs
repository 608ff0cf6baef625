//! Establishing an authenticated session to the relay, every step under one deadline
//! (`connect_timeout` covers DNS, TCP, key exchange, auth and forward set-up, SPEC §2).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client;
use tokio::time::Instant;

use super::auth;
use super::classify;
use super::handler::{ClientHandler, HostKeyCheck};
use super::session::SessionShared;
use crate::config::{Timing, Transport, TunnelConfig};
use crate::error::{ErrorClass, TunnelError};
use crate::net;

/// An authenticated session. Dropping it does not end the session (channels keep it alive):
/// call [`disconnect`].
pub type Handle = client::Handle<ClientHandler>;

/// The russh client configuration for a tunnel's timing and transport settings.
pub fn client_config(timing: &Timing, transport: &Transport) -> Arc<client::Config> {
    let dead_after = net::dead_after(timing);
    let mut preferred = russh::Preferred::default();
    if let Some(ciphers) = &transport.ciphers {
        preferred.cipher = Cow::Owned(ciphers.clone());
    }
    Arc::new(client::Config {
        preferred,
        window_size: transport.window_size,
        keepalive_interval: Some(timing.keepalive_interval),
        keepalive_max: timing.keepalive_count as usize,
        // Backstop: russh does not poll its keepalive timer while parked in a stalled socket
        // write; keepalive replies reset this, so a healthy idle session is never cut by it.
        inactivity_timeout: Some(dead_after * 3),
        nodelay: true,
        ..Default::default()
    })
}

/// Dials, handshakes and authenticates before `deadline`.
pub async fn connect(
    tunnel: &TunnelConfig,
    shared: Arc<SessionShared>,
    deadline: Instant,
) -> Result<Handle, TunnelError> {
    let tcp = net::dial_relay(&tunnel.host, tunnel.port, &tunnel.timing, deadline).await?;
    let check = HostKeyCheck {
        host: tunnel.host.clone(),
        port: tunnel.port,
        known_hosts: tunnel.known_hosts.clone(),
        policy: tunnel.host_key_policy,
    };
    let handler = ClientHandler::new(check, shared.clone());
    let config = client_config(&tunnel.timing, &tunnel.transport);
    let mut handle =
        match tokio::time::timeout_at(deadline, client::connect_stream(config, tcp, handler)).await
        {
            Err(_) => return Err(phase_timeout("SSH handshake", tunnel)),
            Ok(Err(e)) => {
                // A refused host key surfaces as a generic handshake error; the handler knows why.
                return Err(SessionShared::take(&shared.host_key_error)
                    .unwrap_or_else(|| classify::session_error(&e)));
            }
            Ok(Ok(handle)) => handle,
        };
    match tokio::time::timeout_at(deadline, auth::authenticate(&mut handle, tunnel)).await {
        Err(_) => Err(phase_timeout("authentication", tunnel)),
        Ok(Err(e)) => {
            disconnect(&handle, "authentication failed").await;
            Err(e)
        }
        Ok(Ok(())) => Ok(handle),
    }
}

/// The error for `phase` running out of time.
pub fn phase_timeout(phase: &str, tunnel: &TunnelConfig) -> TunnelError {
    TunnelError::new(
        ErrorClass::Timeout,
        format!(
            "{phase} with {}:{} did not finish within connect_timeout ({})",
            tunnel.host,
            tunnel.port,
            humantime::format_duration(tunnel.timing.connect_timeout)
        ),
    )
}

/// Ends a session politely, without waiting long for a relay that may be gone.
pub async fn disconnect(handle: &Handle, why: &str) {
    let bye = handle.disconnect(russh::Disconnect::ByApplication, why, "en");
    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
}

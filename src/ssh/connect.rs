//! Establishing an authenticated session to the relay, every step under one deadline
//! (`connect_timeout` covers DNS, TCP, key exchange, auth and forward set-up, SPEC §2).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::{cipher, client};
use tokio::time::Instant;

use super::auth;
use super::classify;
use super::handler::{ClientHandler, HostKeyCheck};
use super::session::SessionShared;
use crate::config::{Cipher, Timing, Transport, TunnelConfig};
use crate::error::{ErrorClass, TunnelError};
use crate::net;

/// An authenticated session. Dropping it does not end the session (channels keep it alive):
/// call [`disconnect`].
pub type Handle = client::Handle<ClientHandler>;

/// The russh client configuration for a tunnel's timing and transport settings.
pub fn client_config(timing: &Timing, transport: &Transport) -> Arc<client::Config> {
    let dead_after = net::dead_after(timing);
    let mut preferred = russh::Preferred::default();
    match &transport.ciphers {
        Some(ciphers) => preferred.cipher = Cow::Owned(ciphers.clone()),
        None if aes_in_hardware() => preferred.cipher = Cow::Borrowed(AES_FIRST),
        None => {}
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

/// The cipher order when `ciphers` is not configured and the CPU has AES instructions:
/// AES-GCM moved ahead of russh's default (chacha20-poly1305 first): it measured the faster of
/// the two through pairtund on AES-NI hardware (BENCHMARKS.md).
const AES_FIRST: &[Cipher] = &[
    cipher::AES_128_GCM,
    cipher::AES_256_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// Whether AES-GCM runs on dedicated instructions (AES + carry-less multiply) here.
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[allow(unreachable_code)]
    false
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackoffConfig;

    fn timing() -> Timing {
        let second = Duration::from_secs(1);
        Timing {
            keepalive_interval: second,
            keepalive_count: 3,
            connect_timeout: second,
            connection_hold: second,
            backoff: BackoffConfig {
                initial: second,
                max: second,
                multiplier: 2.0,
                jitter: 0.0,
            },
        }
    }

    #[test]
    fn transport_settings_reach_russh() {
        let transport = Transport {
            ciphers: Some(vec![cipher::CHACHA20_POLY1305]),
            window_size: 16 << 20,
        };
        let config = client_config(&timing(), &transport);
        assert_eq!(&*config.preferred.cipher, &[cipher::CHACHA20_POLY1305]);
        assert_eq!(config.window_size, 16 << 20);
    }

    #[test]
    fn aes_gcm_comes_first_by_default_only_with_aes_instructions() {
        let transport = Transport {
            ciphers: None,
            window_size: Transport::DEFAULT_WINDOW_SIZE,
        };
        let config = client_config(&timing(), &transport);
        let first = config.preferred.cipher[0];
        let want = if aes_in_hardware() {
            cipher::AES_128_GCM
        } else {
            russh::Preferred::default().cipher[0]
        };
        assert_eq!(first, want);
    }
}

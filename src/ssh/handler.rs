//! The russh client handler: verifies the relay's host key, routes `forwarded-*` channels to
//! their local targets, and signals the end of the session by being dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::client::{self, ChannelOpenHandle, DisconnectReason, Msg, Session};
use russh::keys::PublicKeyOrCertificate;
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio_util::sync::DropGuard;

use super::classify;
use super::known_hosts::{self, Verdict};
use super::session::{RouteKey, SessionShared};
use crate::config::HostKeyPolicy;
use crate::error::{ErrorClass, TunnelError};
use crate::net;
use crate::tunnel::pump::{ConnectionGuard, pump};

/// How long connecting to a `-R` forward's local target may take before the relay is told
/// the connection failed.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The relay whose host key is being checked, and how.
#[derive(Debug, Clone)]
pub struct HostKeyCheck {
    /// Host as configured (the known_hosts lookup name).
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// known_hosts file.
    pub known_hosts: PathBuf,
    /// strict or accept-new.
    pub policy: HostKeyPolicy,
}

/// One session's handler. russh owns it inside the session task; when that task ends — however
/// it ends — the handler is dropped and `ended` fires. That is the only end-of-session signal
/// that cannot be skipped (russh's `disconnected` callback can be, see deps.md §2.7).
pub struct ClientHandler {
    check: HostKeyCheck,
    shared: Arc<SessionShared>,
    _ended: DropGuard,
}

/// Declines a channel the relay opened that pairtun did not ask for.
async fn refuse(reply: ChannelOpenHandle, kind: &str) {
    tracing::warn!(
        kind,
        "relay opened a channel pairtun did not ask for; refused"
    );
    reply
        .reject(ChannelOpenFailure::AdministrativelyProhibited)
        .await;
}

impl ClientHandler {
    /// A handler for one session attempt.
    pub fn new(check: HostKeyCheck, shared: Arc<SessionShared>) -> Self {
        let ended = shared.ended.clone().drop_guard();
        ClientHandler {
            check,
            shared,
            _ended: ended,
        }
    }

    /// [`verify`] on a blocking thread: known_hosts may sit on a home directory that hangs
    /// (NFS, automount after resume), and this runtime has one thread for every tunnel.
    async fn verify_off_thread(&self, key: &russh::keys::PublicKey) -> Result<(), TunnelError> {
        let (check, key) = (self.check.clone(), key.clone());
        tokio::task::spawn_blocking(move || verify(&check, &key))
            .await
            .unwrap_or_else(|e| {
                Err(TunnelError::new(
                    ErrorClass::Config,
                    format!("host key check failed: {e}"),
                ))
            })
    }
}

/// Checks the relay's host key against known_hosts under the tunnel's policy (learning it
/// under `accept-new`). Blocking file I/O.
fn verify(check: &HostKeyCheck, key: &russh::keys::PublicKey) -> Result<(), TunnelError> {
    let HostKeyCheck {
        host,
        port,
        known_hosts: path,
        policy,
    } = check;
    let shown = path.display();
    let name = known_hosts::lookup_name(host, *port);
    let fingerprint = key.fingerprint(Default::default());
    let error = |message: String| Err(TunnelError::new(ErrorClass::HostKey, message));
    match known_hosts::check(path, host, *port, key) {
        Ok(Verdict::Known) => Ok(()),
        Ok(Verdict::Unknown) if *policy == HostKeyPolicy::AcceptNew => {
            // Not a key mismatch: retried (at the longest backoff) rather than held until
            // the user acts, as a file that cannot be read or written today may be
            // tomorrow (a home directory not mounted yet after resume).
            known_hosts::learn(path, host, *port, key).map_err(|e| {
                TunnelError::new(
                    ErrorClass::Config,
                    format!("cannot record host key for {name} in {shown}: {e}"),
                )
            })?;
            tracing::info!(%name, %fingerprint, known_hosts = %shown, "learned new host key (accept-new)");
            Ok(())
        }
        Ok(Verdict::Unknown) => {
            // Keys of other types were asked for first (`host_key_order`), so the relay
            // has none of those, or none pairtund can verify: say so, or the user is told
            // to add a key next to the ones they trust already and not told why.
            let recorded = known_hosts::key_types_for(path, host, *port).unwrap_or_default();
            let held = match known_hosts::type_names(&recorded) {
                types if types.is_empty() => String::new(),
                types => format!(
                    " (it has only {types} key(s) for {name}, which the relay did not offer \
                         or pairtund cannot verify)"
                ),
            };
            error(format!(
                "{} host key for {name} ({fingerprint}) is not in {shown}{held}; verify it, \
                     then add it (ssh-keyscan -p {port} {host} >> {shown}) or set \
                     host_key_policy = \"accept-new\"",
                key.algorithm()
            ))
        }
        Ok(Verdict::Changed { path, line }) => error(format!(
            "HOST KEY CHANGED for {name}: relay offered {fingerprint}, {}:{line} has another key; \
                 possible man-in-the-middle — if the change is expected, remove that line",
            path.display()
        )),
        Ok(Verdict::Revoked { path, line }) => error(format!(
            "host key {fingerprint} for {name} is revoked ({}:{line})",
            path.display()
        )),
        Err(e) => Err(TunnelError::new(
            ErrorClass::Config,
            format!("cannot read known_hosts {shown}: {e}"),
        )),
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.verify_off_thread(key).await,
            PublicKeyOrCertificate::Certificate(_) => Err(TunnelError::new(
                ErrorClass::HostKey,
                "relay offered a host certificate; host certificates are not supported",
            )),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(e) => {
                SessionShared::note(&self.shared.host_key_error, e);
                Ok(false)
            }
        }
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(
            relay_listener = %format!("{connected_address}:{connected_port}"),
            originator = %format!("{originator_address}:{originator_port}"),
            "forwarded connection"
        );
        self.accept_forwarded(RouteKey::Port(connected_port), channel, reply);
        Ok(())
    }

    async fn channel_open_failure(
        &mut self,
        _channel: ChannelId,
        _reason: ChannelOpenFailure,
        description: &str,
        _language: &str,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(%description, "relay refused a channel");
        self.shared.note_open_failure(description);
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.accept_forwarded(RouteKey::Path(socket_path.to_owned()), channel, reply);
        Ok(())
    }

    // Channels the relay may open but pairtun never asked for: russh accepts them by default,
    // and nothing would read them (their unread data would end up blocking the session loop).

    async fn server_channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(reply, "session").await;
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(reply, "x11").await;
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(reply, "agent forwarding").await;
        Ok(())
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(reply, "direct-tcpip").await;
        Ok(())
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse(reply, "direct-streamlocal").await;
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let error = match &reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                if let Ok(mut said) = self.shared.disconnect_message.lock() {
                    said.get_or_insert_with(|| info.message.clone());
                }
                TunnelError::new(
                    ErrorClass::Network,
                    format!("relay closed the session: {}", info.message),
                )
            }
            DisconnectReason::Error(e) => classify::session_error(e),
        };
        SessionShared::note(&self.shared.end_reason, error);
        match reason {
            DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            DisconnectReason::Error(e) => Err(e),
        }
    }
}

impl ClientHandler {
    /// Connects the local target first and only then accepts the channel (as OpenSSH does), in a
    /// task of this session: handler methods run on the session loop and must not wait.
    fn accept_forwarded(&self, key: RouteKey, channel: Channel<Msg>, reply: ChannelOpenHandle) {
        let Some(route) = self.shared.route(&key) else {
            tracing::warn!(
                ?key,
                "relay forwarded a connection for a listener we did not ask for"
            );
            self.shared
                .tasks
                .spawn(reply.reject(ChannelOpenFailure::AdministrativelyProhibited));
            return;
        };
        let Ok(slot) = self.shared.remote_slots.clone().try_acquire_owned() else {
            if !self.shared.remote_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(forward = %route.spec, "max_connections reached: refusing connections from the relay until one ends");
            }
            self.shared
                .tasks
                .spawn(reply.reject(ChannelOpenFailure::ResourceShortage));
            return;
        };
        self.shared.remote_full.store(false, Ordering::Relaxed);
        let shared = self.shared.clone();
        self.shared.tasks.spawn(async move {
            let _slot = slot;
            let connect = tokio::time::timeout(TARGET_CONNECT_TIMEOUT, net::connect_target(&route.target));
            let local = match connect.await {
                Ok(Ok(local)) => local,
                Ok(Err(e)) => {
                    tracing::warn!(forward = %route.spec, destination = ?route.target, error = %e, "cannot reach target");
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                    return;
                }
                Err(_) => {
                    tracing::warn!(forward = %route.spec, destination = ?route.target, "target did not answer in time");
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                    return;
                }
            };
            reply.accept().await;
            let _live = ConnectionGuard::new(shared.counters.clone());
            tokio::select! {
                _ = shared.ended.cancelled() => {}
                r = pump(local, channel.into_stream(), &shared.counters) => {
                    if let Err(e) = r {
                        tracing::debug!(forward = %route.spec, error = %e, "forwarded connection ended");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILyP+TPE39WpDddN5WhSTkVSj5T9bHvDjlqfjUXAvkxg";

    fn verdict(known_hosts: PathBuf, policy: HostKeyPolicy) -> TunnelError {
        let check = HostKeyCheck {
            host: "relay.example.org".into(),
            port: 22,
            known_hosts,
            policy,
        };
        let handler = ClientHandler::new(check, SessionShared::new(Default::default()));
        let key = russh::keys::PublicKey::from_openssh(KEY).unwrap();
        verify(&handler.check, &key).unwrap_err()
    }

    /// Only a key that does not match holds the tunnel until the user acts; a known_hosts file
    /// that cannot be read or written is retried.
    #[test]
    fn known_hosts_that_cannot_be_read_is_not_a_key_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading it fails (for root too).
        let unreadable = verdict(dir.path().to_owned(), HostKeyPolicy::Strict);
        assert_eq!(unreadable.class, ErrorClass::Config, "{unreadable:?}");
        assert!(
            unreadable.message.contains("cannot read known_hosts"),
            "{unreadable:?}"
        );
        let unknown = verdict(dir.path().join("known_hosts"), HostKeyPolicy::Strict);
        assert_eq!(unknown.class, ErrorClass::HostKey, "{unknown:?}");
    }

    /// Under strict, a relay whose recorded keys are all of types it did not offer is told
    /// apart from one known_hosts has never seen.
    #[test]
    fn unknown_key_names_its_type_and_the_types_known_hosts_has() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let unseen = verdict(path.clone(), HostKeyPolicy::Strict);
        assert!(
            unseen
                .message
                .starts_with("ssh-ed25519 host key for relay.example.org (SHA256:"),
            "{unseen:?}"
        );
        assert!(!unseen.message.contains("it has only"), "{unseen:?}");
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOt9XkQew7znuSOmr9z3i/krmW5El14cWyMFLkoAQtwmNCkubNaAzKnKpK9N/RYo5b4vBNJ87wI8vxQQIjsDRow=";
        std::fs::write(&path, format!("relay.example.org {ecdsa}\n")).unwrap();
        let other_type = verdict(path, HostKeyPolicy::Strict);
        assert_eq!(other_type.class, ErrorClass::HostKey, "{other_type:?}");
        assert!(
            other_type
                .message
                .contains("(it has only ecdsa-sha2-nistp256 key(s) for relay.example.org, which"),
            "{other_type:?}"
        );
    }
}

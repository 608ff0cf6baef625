//! Establishing an authenticated session to the relay, every step under one deadline
//! (`connect_timeout` covers DNS, TCP, key exchange, auth and forward set-up, SPEC §2).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::{cipher, client};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::time::Instant;
use tokio_util::io::InspectReader;

use super::auth;
use super::classify;
use super::handler::{ClientHandler, HostKeyCheck};
use super::host_key_order;
use super::session::SessionShared;
use crate::config::{Cipher, Timing, Transport, TunnelConfig};
use crate::error::{ErrorClass, TunnelError};
use crate::net;

/// An authenticated session. Dropping it does not end the session (channels keep it alive):
/// call [`disconnect`].
pub type Handle = client::Handle<ClientHandler>;

/// The russh client configuration for a tunnel's timing and transport settings.
pub fn client_config(timing: &Timing, transport: &Transport) -> Arc<client::Config> {
    Arc::new(base_config(timing, transport))
}

fn base_config(timing: &Timing, transport: &Transport) -> client::Config {
    let dead_after = net::dead_after(timing);
    let mut preferred = russh::Preferred::default();
    match &transport.ciphers {
        Some(ciphers) => preferred.cipher = Cow::Owned(ciphers.clone()),
        None if aes_in_hardware() => preferred.cipher = Cow::Borrowed(AES_FIRST),
        None => {}
    }
    client::Config {
        preferred,
        window_size: transport.window_size,
        // Off: the tunnel's own keepalive (`tunnel::keepalive`) pings the relay and decides
        // death; a second timer per interval would only double the idle wake-ups.
        keepalive_interval: None,
        // Backstop for a session loop stuck in a socket write that no keepalive answer can
        // reach; keepalive answers reset it, so a healthy idle session is never cut by it.
        inactivity_timeout: Some(dead_after * 3),
        nodelay: true,
        ..Default::default()
    }
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

/// An authenticated session and the ProxyJump sessions it runs through (outermost first).
/// The jump sessions must live as long as it does, and be disconnected after it.
pub struct Connected {
    /// The session to the relay.
    pub handle: Handle,
    /// The jump hosts' sessions.
    pub jumps: Vec<Handle>,
}

/// What one read from the relay's socket asks for beyond the bytes russh wants. russh reads
/// each packet exactly: its first block, then the rest, then a read that finds the socket
/// empty (three `recvfrom` per keystroke-sized packet, one failing). Reading ahead this much
/// takes such a packet whole in one `recvfrom`, and a short read tells tokio the socket is
/// drained. Bulk packets (32 KiB) still go straight into russh's buffer: only a read smaller
/// than this is buffered, so at most this much of each packet is copied once more.
const READ_AHEAD: usize = 2048;

/// The relay's socket as russh should read it: see [`READ_AHEAD`].
fn reading_ahead<S: AsyncRead>(socket: S) -> BufReader<S> {
    BufReader::with_capacity(READ_AHEAD, socket)
}

/// `socket` with every read counted in [`SessionShared::received`].
fn counted<S: AsyncRead>(
    socket: S,
    shared: Arc<SessionShared>,
) -> InspectReader<S, impl FnMut(&[u8])> {
    InspectReader::new(socket, move |read: &[u8]| {
        shared
            .received
            .fetch_add(read.len() as u64, Ordering::Relaxed);
    })
}

/// A byte stream an SSH session can run over: a TCP socket, or a channel through a jump host.
trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}

/// Dials (through the jump hosts, if any), handshakes and authenticates, every step before
/// `deadline`. When a jump session ends, `shared.ended` fires too: russh does not tell the
/// session running through it (deps.md §0.4).
pub async fn connect(
    tunnel: &TunnelConfig,
    shared: Arc<SessionShared>,
    deadline: Instant,
) -> Result<Connected, TunnelError> {
    let mut jumps = Vec::new();
    match connect_chain(tunnel, shared, deadline, &mut jumps).await {
        Ok(handle) => Ok(Connected { handle, jumps }),
        Err(e) => {
            disconnect_all(&jumps, "connection through this jump host failed").await;
            Err(e)
        }
    }
}

async fn connect_chain(
    tunnel: &TunnelConfig,
    shared: Arc<SessionShared>,
    deadline: Instant,
    jumps: &mut Vec<Handle>,
) -> Result<Handle, TunnelError> {
    // Each hop as a tunnel of its own: same keys, known_hosts and timing (SPEC §2).
    let hops: Vec<TunnelConfig> = tunnel
        .jump
        .iter()
        .map(|j| TunnelConfig {
            host: j.host.clone(),
            port: j.port,
            user: j.user.clone(),
            ..tunnel.clone()
        })
        .chain(std::iter::once(tunnel.clone()))
        .collect();
    let first = &hops[0];
    let tcp = net::dial_relay(&first.host, first.port, &first.timing, deadline).await?;
    let mut stream: Box<dyn ByteStream> = Box::new(reading_ahead(counted(tcp, shared.clone())));
    for (hop, next) in hops.iter().zip(&hops[1..]) {
        let jump_shared = SessionShared::new(shared.counters.clone());
        let jump = handshake(hop, stream, jump_shared.clone(), deadline)
            .await
            .map_err(|e| e.context(&format!("jump host {}", describe(hop))))?;
        tokio::spawn(follow_jump(
            jump_shared.clone(),
            shared.clone(),
            describe(hop),
        ));
        let reasons = jump_shared.open_failures.subscribe();
        let open = jump.channel_open_direct_tcpip(
            next.host.as_str(),
            u32::from(next.port),
            "127.0.0.1",
            0,
        );
        let opened = tokio::time::timeout_at(deadline, open).await;
        jumps.push(jump);
        let channel = match opened {
            Err(_) => {
                return Err(phase_timeout(
                    &format!("opening a channel from jump host {}", describe(hop)),
                    next,
                ));
            }
            Ok(Err(e)) => {
                let why = SessionShared::open_error(reasons, &e).await;
                return Err(TunnelError::new(
                    ErrorClass::Network,
                    format!(
                        "jump host {} could not connect to {}:{}: {why}",
                        describe(hop),
                        next.host,
                        next.port
                    ),
                ));
            }
            Ok(Ok(channel)) => channel,
        };
        stream = Box::new(channel.into_stream());
    }
    handshake(tunnel, stream, shared, deadline).await
}

/// `user@host:port`, for messages.
fn describe(hop: &TunnelConfig) -> String {
    format!("{}@{}:{}", hop.user, hop.host, hop.port)
}

/// Ends `inner` when the jump session ends, with the jump's reason.
async fn follow_jump(jump: Arc<SessionShared>, inner: Arc<SessionShared>, name: String) {
    tokio::select! {
        _ = jump.ended.cancelled() => {
            let why = SessionShared::take(&jump.end_reason)
                .map_or_else(|| "session closed".to_owned(), |e| e.message);
            SessionShared::note(
                &inner.end_reason,
                TunnelError::new(ErrorClass::Network, format!("jump host {name} lost: {why}")),
            );
            inner.ended.cancel();
        }
        _ = inner.ended.cancelled() => {}
    }
}

/// Key exchange and authentication as `hop.user` over `stream`.
async fn handshake(
    hop: &TunnelConfig,
    stream: Box<dyn ByteStream>,
    shared: Arc<SessionShared>,
    deadline: Instant,
) -> Result<Handle, TunnelError> {
    let check = HostKeyCheck {
        host: hop.host.clone(),
        port: hop.port,
        known_hosts: hop.known_hosts.clone(),
        policy: hop.host_key_policy,
    };
    let mut config = base_config(&hop.timing, &hop.transport);
    let recorded = host_key_order::recorded(&check, deadline).await;
    config.preferred.key = Cow::Owned(host_key_order::order(&config.preferred.key, &recorded));
    let config = Arc::new(config);
    let handler = ClientHandler::new(check, shared.clone());
    let mut handle =
        match tokio::time::timeout_at(deadline, client::connect_stream(config, stream, handler))
            .await
        {
            Err(_) => return Err(phase_timeout("SSH handshake", hop)),
            Ok(Err(e)) => {
                // A refused host key surfaces as a generic handshake error; the handler knows why.
                return Err(SessionShared::take(&shared.host_key_error)
                    .unwrap_or_else(|| classify::session_error(&e)));
            }
            Ok(Ok(handle)) => handle,
        };
    match tokio::time::timeout_at(deadline, auth::authenticate(&mut handle, hop, &shared)).await {
        Err(_) => Err(phase_timeout("authentication", hop)),
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

/// Ends sessions politely, innermost (last) first.
pub async fn disconnect_all(handles: &[Handle], why: &str) {
    for handle in handles.iter().rev() {
        disconnect(handle, why).await;
    }
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

    /// Serves `data` in reads as large as asked, recording what each read asked for.
    struct Reads {
        data: Vec<u8>,
        at: usize,
        asked: Vec<usize>,
    }

    impl Reads {
        fn new(len: usize) -> Self {
            let data = (0..len).map(|i| i as u8).collect();
            Reads {
                data,
                at: 0,
                asked: Vec::new(),
            }
        }
    }

    impl AsyncRead for Reads {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let me = &mut *self;
            me.asked.push(buf.remaining());
            let n = buf.remaining().min(me.data.len() - me.at);
            buf.put_slice(&me.data[me.at..me.at + n]);
            me.at += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Reads one SSH packet of `len` bytes as russh does: its first 16-byte block, then the
    /// rest, exactly. Returns the reads that reached the socket.
    async fn russh_reads_a_packet(len: usize) -> Vec<usize> {
        use tokio::io::AsyncReadExt;
        let mut socket = reading_ahead(Reads::new(len));
        let mut packet = vec![0; len];
        socket.read_exact(&mut packet[..16]).await.unwrap();
        socket.read_exact(&mut packet[16..]).await.unwrap();
        assert_eq!(
            packet,
            Reads::new(len).data,
            "bytes arrive intact and in order"
        );
        socket.into_inner().asked
    }

    #[tokio::test]
    async fn bytes_read_from_the_relay_are_counted_as_they_arrive() {
        use tokio::io::AsyncReadExt;
        let shared = SessionShared::new(Default::default());
        let mut socket = reading_ahead(counted(Reads::new(5000), shared.clone()));
        let received = || shared.received.load(Ordering::Relaxed);
        let mut first = [0; 16];
        socket.read_exact(&mut first).await.unwrap();
        assert_eq!(received(), READ_AHEAD as u64, "the read-ahead came in");
        let mut rest = vec![0; 5000 - 16];
        socket.read_exact(&mut rest).await.unwrap();
        assert_eq!(received(), 5000);
    }

    #[tokio::test]
    async fn a_keystroke_sized_packet_is_taken_in_one_read() {
        assert_eq!(russh_reads_a_packet(64).await, [READ_AHEAD]);
    }

    #[tokio::test]
    async fn a_bulk_packet_goes_to_russh_with_one_buffered_read_before_it() {
        // The first block's read takes READ_AHEAD bytes; the rest of the packet is read
        // straight into russh's buffer (asked for whole), not through ours.
        let len = 32 * 1024 + 64;
        assert_eq!(
            russh_reads_a_packet(len).await,
            [READ_AHEAD, len - READ_AHEAD]
        );
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

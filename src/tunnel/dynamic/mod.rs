//! `-D` forwards: a SOCKS5 server (no authentication, `CONNECT`, IPv4/IPv6/domain targets) on
//! a local port, which also understands SOCKS4 and SOCKS4a (told apart by the first byte). Each request opens a `direct-tcpip` channel to its target — name resolution
//! happens on the relay, as with `ssh -D` — and a refusal comes back as the matching SOCKS
//! reply code. The listener is held across reconnects exactly like a `-L` listener.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use fast_socks5::server::{Socks5ServerProtocol, SocksServerError, states::CommandRead};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{ReplyError, Socks5Command};
use russh::ChannelOpenFailure;

use super::local::{self, CHANNEL_OPEN_TIMEOUT, ListenerContext};
use crate::config::DynamicForward;
use crate::net::LocalStream;
use crate::ssh::SessionShared;

/// How long a client may take to send its greeting and request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves forward `index` until the task is aborted, like [`local::serve`].
pub async fn serve(index: usize, forward: DynamicForward, ctx: ListenerContext) {
    let (listen, spec) = (forward.listen.clone(), forward.spec.clone());
    local::accept_loop(index, &spec, &listen, ctx, move |stream, peer, ctx| {
        connection(index, stream, peer, forward.spec.clone(), ctx)
    })
    .await
}

mod socks4;

/// A request read and not answered yet: each is answered exactly once.
enum Request {
    V5(Socks5ServerProtocol<LocalStream, CommandRead>),
    V4(LocalStream),
}

impl Request {
    /// Refuses with `reply` (SOCKS4 has a single "rejected" code).
    async fn refuse(self, reply: ReplyError) {
        match self {
            Request::V5(request) => {
                let _ = request.reply_error(&reply).await;
            }
            Request::V4(stream) => socks4::refuse(stream).await,
        }
    }

    /// Grants; the stream then carries the connection.
    async fn grant(self) -> Option<LocalStream> {
        match self {
            Request::V5(request) => {
                // The bound address is the relay's business; clients ignore it for CONNECT.
                let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
                request.reply_success(unspecified).await.ok()
            }
            Request::V4(stream) => socks4::grant(stream).await,
        }
    }
}

async fn connection(
    index: usize,
    stream: LocalStream,
    peer: String,
    spec: String,
    mut ctx: ListenerContext,
) {
    let (request, target) =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_request(stream)).await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                tracing::debug!(forward = %spec, %peer, error = %e, "SOCKS request refused");
                return;
            }
            Err(_) => {
                tracing::debug!(forward = %spec, %peer, "SOCKS client sent no request in time");
                return;
            }
        };
    let Some(live) = local::session(&mut ctx, &spec, &peer).await else {
        request.refuse(ReplyError::NetworkUnreachable).await;
        return;
    };
    let (host, port) = match &target {
        TargetAddr::Ip(addr) => (addr.ip().to_string(), addr.port()),
        TargetAddr::Domain(name, port) => (name.clone(), *port),
    };
    let (from, from_port) = local::originator(&peer);
    let reasons = live.shared.open_failures.subscribe();
    let open =
        live.handle
            .channel_open_direct_tcpip(host.as_str(), u32::from(port), from, from_port);
    let channel = match tokio::time::timeout(CHANNEL_OPEN_TIMEOUT, open).await {
        Ok(Ok(channel)) => {
            ctx.reporter.channel_opened(index);
            channel
        }
        Ok(Err(e)) => {
            let why = SessionShared::open_error(reasons, &e).await;
            let message = format!("relay could not open {target}: {why}");
            tracing::warn!(forward = %spec, %peer, error = %message, "SOCKS connection failed");
            ctx.reporter.channel_open_failed(index, message);
            request.refuse(reply_for(&e)).await;
            return;
        }
        Err(_) => {
            tracing::warn!(forward = %spec, %peer, %target, "relay did not confirm the channel in time");
            request.refuse(ReplyError::TtlExpired).await;
            return;
        }
    };
    let Some(stream) = request.grant().await else {
        return;
    };
    local::carry(index, stream, channel, &live, &ctx, &spec, &peer).await;
}

/// Greeting (no authentication) and request; anything but `CONNECT` is answered "command not
/// supported". The error says why the client was turned away.
async fn read_request(stream: LocalStream) -> Result<(Request, TargetAddr), String> {
    if first_byte(&stream).await == Some(socks4::VERSION) {
        let (stream, target) = socks4::read_request(stream).await?;
        return Ok((Request::V4(stream), target));
    }
    let socks = |e: SocksServerError| e.to_string();
    let (request, command, target) = Socks5ServerProtocol::accept_no_auth(stream)
        .await
        .map_err(socks)?
        .read_command()
        .await
        .map_err(socks)?;
    if !matches!(command, Socks5Command::TCPConnect) {
        let _ = request.reply_error(&ReplyError::CommandNotSupported).await;
        return Err(format!("{command:?} is not supported (only CONNECT)"));
    }
    Ok((Request::V5(request), target))
}

/// The version byte, peeked (left for the protocol reader).
async fn first_byte(stream: &LocalStream) -> Option<u8> {
    let LocalStream::Tcp(tcp) = stream else {
        return None;
    };
    let mut byte = [0u8];
    match tcp.peek(&mut byte).await {
        Ok(1) => Some(byte[0]),
        _ => None,
    }
}

/// The SOCKS reply for a refused channel (RFC 1928 §6).
fn reply_for(error: &russh::Error) -> ReplyError {
    match error {
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::AdministrativelyProhibited) => {
            ReplyError::ConnectionNotAllowed
        }
        russh::Error::ChannelOpenFailure(ChannelOpenFailure::ConnectFailed) => {
            ReplyError::ConnectionRefused
        }
        russh::Error::ChannelOpenFailure(_) => ReplyError::GeneralFailure,
        _ => ReplyError::NetworkUnreachable,
    }
}

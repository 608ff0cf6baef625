//! The peer probe: one channel to a `-L` forward's target, through the tunnel, reading the
//! first bytes. In pairing the target is the partner's `-R` port on the relay, leading to their
//! sshd, whose banner (`SSH-2.0-…`) says the partner is there. Made only for tunnels with
//! `probe_peer = true`: for any other target it is an unasked-for connection.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::Live;
use super::state::Peer;
use crate::config::HostPort;

/// How long the relay may take to connect, and the far end to send its banner.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes `target` over `live`; the channel is closed before returning.
pub async fn probe(live: &Live, target: &HostPort) -> Peer {
    let open = live.handle.channel_open_direct_tcpip(
        target.host.as_str(),
        u32::from(target.port),
        "127.0.0.1",
        0,
    );
    let channel = match tokio::time::timeout(PROBE_TIMEOUT, open).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(_)) | Err(_) => return Peer::NotListening,
    };
    let mut stream = channel.into_stream();
    let mut banner = [0u8; 4];
    match tokio::time::timeout(PROBE_TIMEOUT, stream.read_exact(&mut banner)).await {
        Ok(Ok(_)) if &banner == b"SSH-" => Peer::Up,
        _ => Peer::NoBanner,
    }
}

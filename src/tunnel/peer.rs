//! The far end of a `-L`, probed through the relay: in a pairing tunnel, whether the partner's
//! side is there (their sshd's banner) before anyone tries to connect.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::Live;
use super::local::open_channel;
use super::state::{Peer, PeerState, Reporter};
use crate::config::LocalForward;

/// How long the relay may take to confirm the probe's channel.
const OPEN_WITHIN: Duration = Duration::from_secs(5);

/// How long the far end may take to send its first bytes (SSH servers send a banner at once).
const BANNER_WITHIN: Duration = Duration::from_secs(2);

/// How often a far end that was not up is probed again, for as long as the session lasts.
const REPROBE_EVERY: Duration = Duration::from_secs(300);

/// Probes forward `index` at once and then every [`REPROBE_EVERY`] until its far end is up or
/// the session ends, publishing each result.
pub async fn watch(live: Arc<Live>, index: usize, forward: LocalForward, reporter: Reporter) {
    loop {
        let peer = tokio::select! {
            _ = live.shared.ended.cancelled() => return,
            peer = probe(&live, &forward) => peer,
        };
        let up = peer.state == PeerState::Up;
        reporter.set_peer(index, peer);
        if up {
            return;
        }
        tokio::select! {
            _ = live.shared.ended.cancelled() => return,
            _ = tokio::time::sleep(REPROBE_EVERY) => {}
        }
    }
}

/// One probe of `forward`'s far end through the session: open a channel to the target and
/// read what it says first.
pub async fn probe(live: &Live, forward: &LocalForward) -> Peer {
    let peer = |state, detail: String| Peer { state, detail };
    let channel = match tokio::time::timeout(
        OPEN_WITHIN,
        open_channel(live, &forward.target, "127.0.0.1:0"),
    )
    .await
    {
        Err(_) => {
            let why = format!("the relay did not confirm a channel within {OPEN_WITHIN:?}");
            return peer(PeerState::NotListening, why);
        }
        Ok(Err(e)) => return peer(PeerState::NotListening, live.shared.open_failure(&e).await),
        Ok(Ok(channel)) => channel,
    };
    let mut stream = channel.into_stream();
    let mut first = [0u8; 256];
    match tokio::time::timeout(BANNER_WITHIN, stream.read(&mut first)).await {
        Ok(Ok(n)) if first[..n].starts_with(b"SSH-") => {
            peer(PeerState::Up, banner_line(&first[..n]))
        }
        Ok(Ok(0)) => peer(
            PeerState::Open,
            "closed at once without a banner (nothing serves the port on the far side?)".into(),
        ),
        Ok(Ok(_)) => peer(
            PeerState::Open,
            "answers, but not with an SSH banner".into(),
        ),
        Ok(Err(e)) => peer(PeerState::Open, format!("connected, then: {e}")),
        Err(_) => peer(
            PeerState::Open,
            format!("connected, no banner within {BANNER_WITHIN:?}"),
        ),
    }
}

/// The banner's first line, printable characters only (it is outside input).
fn banner_line(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::banner_line;

    #[test]
    fn banner_line_is_the_first_printable_line() {
        assert_eq!(
            banner_line(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nrest"),
            "SSH-2.0-OpenSSH_9.2p1 Debian-2"
        );
        assert_eq!(banner_line(b"SSH-2.0-x\x1b[31m"), "SSH-2.0-x[31m");
        assert_eq!(banner_line(&[b'S'; 300]).len(), 100);
    }
}

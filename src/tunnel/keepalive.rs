//! The session's keepalive: one `keepalive@openssh.com` request per `keepalive_interval`, whose
//! answer is both the proof of life and the round trip shown in `status`. A relay that answers
//! none for `(keepalive_count + 1) × keepalive_interval` is declared dead (SPEC §4), also while
//! data is flowing and also while russh's session loop is stuck in a write.
//!
//! It is the only periodic timer of an idle tunnel: russh's own keepalive is off
//! (`ssh::client_config`), and the ticks come from a [`Ticker`] (one wake-up each). Jump hosts
//! need none of their own: the relay's answer travels through every hop.

use std::sync::Arc;

use tokio::time::Instant;

use super::Live;
use super::state::Reporter;
use crate::config::Timing;
use crate::error::{ErrorClass, TunnelError};
use crate::ssh::SessionShared;
use crate::ticker::Ticker;

/// Pings the relay every interval until the session ends; ends it when the relay stays silent.
pub(super) async fn run(live: Arc<Live>, reporter: Reporter, timing: Timing) {
    let shared = &live.shared;
    let mut ticker = Ticker::new(timing.keepalive_interval);
    loop {
        tokio::select! {
            _ = shared.ended.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let sent = Instant::now();
        let answer = live.handle.send_ping();
        tokio::pin!(answer);
        let mut silent = 0;
        loop {
            tokio::select! {
                _ = shared.ended.cancelled() => return,
                answered = &mut answer => {
                    // russh also completes a ping when the session is gone.
                    if answered.is_err() || live.handle.is_closed() {
                        return;
                    }
                    reporter.set_rtt(sent.elapsed());
                    break;
                }
                _ = ticker.tick() => {
                    silent += 1;
                    if silent > timing.keepalive_count {
                        let waited = sent.elapsed();
                        SessionShared::note(
                            &shared.end_reason,
                            TunnelError::new(
                                ErrorClass::Network,
                                format!(
                                    "relay stopped answering keepalives (none for {:.1} s)",
                                    waited.as_secs_f64()
                                ),
                            ),
                        );
                        shared.ended.cancel();
                        return;
                    }
                }
            }
        }
    }
}

//! `-R` forwards: asking the relay to listen, and retrying a refused forward on its own while
//! the session and the other forwards stay up (a stale session of ours often still holds the
//! port on the relay until its ClientAlive timeout frees it).

use std::sync::Arc;
use std::time::Duration;

use super::Live;
use super::state::{ForwardState, Reporter};
use crate::backoff::Backoff;
use crate::config::{BackoffConfig, RemoteForward, RemoteListen};
use crate::ssh::{Route, RouteKey};

/// Asks the relay to listen for forward `forward`; on success its connections are routed.
pub async fn request(
    live: &Live,
    forward: &RemoteForward,
    timeout: Duration,
) -> Result<(), String> {
    let route = Route {
        spec: forward.spec.clone(),
        target: forward.target.clone(),
    };
    let shared = &live.shared;
    let handle = &live.handle;
    let asked = async {
        match &forward.listen {
            RemoteListen::Tcp { bind, port } => {
                // Route a fixed port before asking: the relay may forward a connection as soon
                // as it has confirmed the listener.
                if *port != 0 {
                    shared.add_route(RouteKey::Port(u32::from(*port)), route.clone());
                }
                let allocated = handle.tcpip_forward(bind.as_str(), u32::from(*port)).await;
                match allocated {
                    Ok(allocated) if *port == 0 => {
                        tracing::info!(forward = %forward.spec, port = allocated, "relay picked port");
                        shared.add_route(RouteKey::Port(allocated), route);
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(russh::Error::RequestDenied) => Err(busy_message(bind, *port)),
                    Err(e) => Err(format!("relay did not set up {bind}:{port}: {e}")),
                }
            }
            RemoteListen::Unix(path) => {
                shared.add_route(RouteKey::Path(path.clone()), route);
                match handle.streamlocal_forward(path.as_str()).await {
                    Ok(()) => Ok(()),
                    Err(russh::Error::RequestDenied) => Err(format!(
                        "relay refused to listen on socket {path}: it exists or is not allowed; \
                         `StreamLocalBindUnlink yes` in the relay's sshd_config lets a new session take it over"
                    )),
                    Err(e) => Err(format!("relay did not set up socket {path}: {e}")),
                }
            }
        }
    };
    match tokio::time::timeout(timeout, asked).await {
        Ok(result) => result,
        Err(_) => {
            // The request stays with the relay: a late grant would hold the port (and the
            // retry would find it "busy") for as long as this session lives. Withdraw it; the
            // relay answers requests in order, so the cancel follows the grant.
            let cancel = async {
                match &forward.listen {
                    RemoteListen::Tcp { port: 0, .. } => {} // the port it would pick is unknown
                    RemoteListen::Tcp { bind, port } => {
                        let _ = handle
                            .cancel_tcpip_forward(bind.as_str(), u32::from(*port))
                            .await;
                    }
                    RemoteListen::Unix(path) => {
                        let _ = handle.cancel_streamlocal_forward(path.as_str()).await;
                    }
                }
            };
            // Sent at once; its answer is not worth waiting long for from a relay this slow.
            let _ = tokio::time::timeout(timeout.min(Duration::from_secs(1)), cancel).await;
            Err(format!(
                "relay did not answer the forward request within {timeout:?}"
            ))
        }
    }
}

fn busy_message(bind: &str, port: u16) -> String {
    format!(
        "remote port {port} busy on relay (bind {bind}): refused, typically because an earlier \
         session still holds it; the relay frees it after ClientAliveInterval × ClientAliveCountMax \
         (set e.g. `ClientAliveInterval 15` and `ClientAliveCountMax 3` in its sshd_config)"
    )
}

/// Retries forward `index` with its own backoff until it is established or the session ends.
pub async fn retry(
    live: Arc<Live>,
    index: usize,
    forward: RemoteForward,
    reporter: Reporter,
    backoff: BackoffConfig,
    timeout: Duration,
) {
    let mut delays = Backoff::new(backoff);
    loop {
        tokio::select! {
            _ = live.shared.ended.cancelled() => return,
            _ = tokio::time::sleep(delays.next_delay()) => {}
        }
        // A request in flight when the session ends answers for a session that is gone: the
        // next one reports this forward.
        let answer = tokio::select! {
            _ = live.shared.ended.cancelled() => return,
            answer = request(&live, &forward, timeout) => answer,
        };
        if live.shared.ended.is_cancelled() {
            return;
        }
        match answer {
            Ok(()) => {
                reporter.set_forward(index, ForwardState::Up, None);
                return;
            }
            Err(message) => reporter.set_forward(index, ForwardState::Error, Some(message)),
        }
    }
}

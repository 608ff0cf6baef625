//! `ChaosProxy`: a TCP relay between a client and an upstream (usually sshd) that can fail
//! on command — silently (blackhole, strand), loudly (reset) or politely (close).
//!
//! The kernel still ACKs what peers send into a frozen connection, so TCP's own timers never
//! fire: only application keepalives can notice a blackhole, as on a dead Wi-Fi link.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::background::Background;

mod relay;

/// How long `reset()`/`close()` wait for the connections to act on it.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// How `reset()`/`close()` end a connection; the sender acknowledges it was done.
pub(super) enum Kill {
    Reset(mpsc::Sender<()>),
    Close(mpsc::Sender<()>),
}

struct Conn {
    /// `true` while bytes may flow.
    gate: watch::Sender<bool>,
    stranded: bool,
    kill: oneshot::Sender<Kill>,
}

#[derive(Default)]
struct State {
    blackholed: bool,
    next_id: u64,
    conns: HashMap<u64, Conn>,
}

impl State {
    /// Adds a connection, frozen if the proxy is blackholed; returns its id and receivers.
    fn register(&mut self) -> (u64, watch::Receiver<bool>, oneshot::Receiver<Kill>) {
        let (gate, gate_rx) = watch::channel(!self.blackholed);
        let (kill, kill_rx) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(
            id,
            Conn {
                gate,
                stranded: false,
                kill,
            },
        );
        (id, gate_rx, kill_rx)
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panicking test thread must not make the proxy unusable for Drop.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fault-injecting TCP relay on 127.0.0.1:0, on its own thread; stops on Drop.
pub struct ChaosProxy {
    addr: SocketAddr,
    shared: Shared,
    _thread: Background,
}

impl ChaosProxy {
    /// Starts relaying connections on a fresh port to `upstream`.
    pub fn start(upstream: SocketAddr) -> ChaosProxy {
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        std_listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = std_listener.local_addr().expect("local_addr");
        let shared = Shared::default();
        let state = shared.clone();
        let thread = Background::spawn("chaos-proxy", move || async move {
            let listener = TcpListener::from_std(std_listener).expect("register listener");
            accept_loop(listener, upstream, state).await;
        });
        ChaosProxy {
            addr,
            shared,
            _thread: thread,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections currently open through the proxy (parked, live, frozen or stranded).
    /// `reset()`/`close()` drop them from the count at once; a connection that ends on its
    /// own leaves it a moment later, so wait for that with `wait::until`.
    pub fn connections(&self) -> usize {
        lock(&self.shared).conns.len()
    }

    /// Silent link death: stops relaying on every connection, in both directions, and parks
    /// new connections (accepted, not connected upstream). No FIN, no RST.
    pub fn blackhole(&self) {
        let mut state = lock(&self.shared);
        state.blackholed = true;
        for conn in state.conns.values() {
            conn.gate.send_replace(false);
        }
    }

    /// Undoes [`ChaosProxy::blackhole`]: frozen and parked connections resume (bytes and
    /// EOFs held back are delivered late); stranded ones stay frozen.
    pub fn heal(&self) {
        let mut state = lock(&self.shared);
        state.blackholed = false;
        for conn in state.conns.values().filter(|c| !c.stranded) {
            conn.gate.send_replace(true);
        }
    }

    /// Freezes the current connections for good while new ones relay normally: the old path
    /// died silently and a new one works (NAT rebinding, a changed client IP).
    pub fn strand(&self) {
        for conn in lock(&self.shared).conns.values_mut() {
            conn.stranded = true;
            conn.gate.send_replace(false);
        }
    }

    /// Aborts every current connection with RST on both sides (SO_LINGER 0).
    pub fn reset(&self) {
        self.kill_all(Kill::Reset);
    }

    /// Closes every current connection with FIN on both sides.
    pub fn close(&self) {
        self.kill_all(Kill::Close);
    }

    /// Sends `kind` to every current connection and waits (bounded) until each has acted.
    fn kill_all(&self, kind: fn(mpsc::Sender<()>) -> Kill) {
        let conns: Vec<Conn> = lock(&self.shared).conns.drain().map(|(_, c)| c).collect();
        let (ack, acked) = mpsc::channel();
        let mut told = 0;
        for conn in conns {
            // A connection that ended meanwhile refuses the message: expect no answer from it.
            if conn.kill.send(kind(ack.clone())).is_ok() {
                told += 1;
            }
        }
        for _ in 0..told {
            if acked.recv_timeout(ACK_TIMEOUT).is_err() {
                break;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Shared) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return; // out of file descriptors or similar: the test will fail on its own
        };
        let (id, gate, kill) = lock(&shared).register();
        let registered = Deregister(shared.clone(), id);
        conns.spawn(relay::connection(client, upstream, gate, kill, registered));
        while conns.try_join_next().is_some() {}
    }
}

/// Removes a connection from the registry when its task ends.
pub(super) struct Deregister(Shared, u64);

impl Drop for Deregister {
    fn drop(&mut self) {
        lock(&self.0).conns.remove(&self.1);
    }
}

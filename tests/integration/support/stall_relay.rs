//! In-process SSH servers (russh) for relays OpenSSH's sshd cannot play: [`RusshRelay`], and
//! [`stalling`], which completes the key exchange and then never answers an authentication
//! request (a relay that stalls mid-auth).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::server::{self, Auth, PublicKeyOffer, VerifiedPublicKey};
use tokio::net::TcpListener;

use super::background::Background;
use super::keys::{KeyKind, KeyPair};

/// An in-process russh server on 127.0.0.1:0, one `H` per connection, on its own thread;
/// stops on Drop. What it does is the handler's.
pub struct RusshRelay {
    addr: SocketAddr,
    host_key: KeyPair,
    _thread: Background,
}

impl RusshRelay {
    /// Starts it with a fresh host key generated in `dir` as `name`; `handler` makes the
    /// handler of each connection.
    pub fn start<H>(dir: &Path, name: &str, handler: impl Fn() -> H + Send + 'static) -> RusshRelay
    where
        H: server::Handler + Send + 'static,
    {
        let host_key = KeyPair::generate(dir, name, KeyKind::Ed25519);
        let key = russh::keys::load_secret_key(host_key.private_path(), None).expect("host key");
        let config = Arc::new(server::Config {
            keys: vec![key],
            auth_rejection_time: Duration::ZERO,
            ..Default::default()
        });
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        std_listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = std_listener.local_addr().expect("local_addr");
        let thread = Background::spawn(name, move || async move {
            let listener = TcpListener::from_std(std_listener).expect("register listener");
            while let Ok((tcp, _)) = listener.accept().await {
                let (config, handler) = (config.clone(), handler());
                tokio::spawn(async move {
                    if let Ok(session) = server::run_stream(config, tcp, handler).await {
                        let _ = session.await;
                    }
                });
            }
        });
        RusshRelay {
            addr,
            host_key,
            _thread: thread,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A known_hosts line that trusts this server at its port.
    pub fn known_hosts_line(&self) -> String {
        let key: Vec<&str> = self
            .host_key
            .public_line()
            .split_whitespace()
            .take(2)
            .collect();
        format!("[127.0.0.1]:{} {}", self.port(), key.join(" "))
    }
}

/// A relay that completes the key exchange and never answers an authentication request.
pub fn stalling(dir: &Path) -> RusshRelay {
    RusshRelay::start(dir, "stall_host", || Stall)
}

/// Never decides: every authentication request waits forever.
struct Stall;

impl server::Handler for Stall {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        std::future::pending().await
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        std::future::pending().await
    }
}

//! An SSH server (russh) that lets any key in and then misbehaves in one of two ways
//! ([`Mode`]): it opens, toward the client, the channels a client never asks for (session, x11,
//! direct-tcpip), recording how the client answered each; or it answers `tcpip-forward`
//! requests late, recording the requests and cancels it gets.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::server::{self, Auth, PublicKeyOffer, VerifiedPublicKey};
use tokio::net::TcpListener;

use super::background::Background;
use super::keys::{KeyKind, KeyPair};

/// How the relay misbehaves.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Opens a session, an x11 and a direct-tcpip channel once the client has logged in.
    OpensChannels,
    /// Grants every `tcpip-forward` request, but only after this long.
    AnswersForwardsAfter(Duration),
}

/// Accepts SSH connections on 127.0.0.1:0 on its own thread; stops on Drop.
pub struct PushyRelay {
    port: u16,
    host_key: KeyPair,
    answers: Arc<Mutex<Vec<String>>>,
    _thread: Background,
}

impl PushyRelay {
    /// Starts it with a fresh host key generated in `dir`.
    pub fn start(dir: &Path, mode: Mode) -> PushyRelay {
        let host_key = KeyPair::generate(dir, "pushy_host", KeyKind::Ed25519);
        let key = russh::keys::load_secret_key(host_key.private_path(), None).expect("host key");
        let config = Arc::new(server::Config {
            keys: vec![key],
            auth_rejection_time: Duration::ZERO,
            ..Default::default()
        });
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        std_listener.set_nonblocking(true).expect("set_nonblocking");
        let port = std_listener.local_addr().expect("local_addr").port();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let recorded = answers.clone();
        let thread = Background::spawn("pushy-relay", move || async move {
            let listener = TcpListener::from_std(std_listener).expect("register listener");
            while let Ok((tcp, _)) = listener.accept().await {
                let (config, answers) = (config.clone(), recorded.clone());
                tokio::spawn(async move {
                    let pushy = Pushy { answers, mode };
                    if let Ok(session) = server::run_stream(config, tcp, pushy).await {
                        let _ = session.await;
                    }
                });
            }
        });
        PushyRelay {
            port,
            host_key,
            answers,
            _thread: thread,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A known_hosts line that trusts this server at its port.
    pub fn known_hosts_line(&self) -> String {
        let key: Vec<&str> = self
            .host_key
            .public_line()
            .split_whitespace()
            .take(2)
            .collect();
        format!("[127.0.0.1]:{} {}", self.port, key.join(" "))
    }

    /// What happened so far: for each channel opened, `KIND: accepted` or `KIND: ERROR`; for
    /// each forward request `tcpip-forward PORT` and each cancel `cancel PORT`.
    pub fn answers(&self) -> Vec<String> {
        self.answers.lock().unwrap().clone()
    }
}

struct Pushy {
    answers: Arc<Mutex<Vec<String>>>,
    mode: Mode,
}

impl server::Handler for Pushy {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        port: &mut u32,
        _session: &mut server::Session,
    ) -> Result<bool, Self::Error> {
        self.answers
            .lock()
            .unwrap()
            .push(format!("tcpip-forward {port}"));
        if let Mode::AnswersForwardsAfter(late) = self.mode {
            tokio::time::sleep(late).await;
        }
        Ok(true)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        _address: &str,
        port: u32,
        _session: &mut server::Session,
    ) -> Result<bool, Self::Error> {
        self.answers.lock().unwrap().push(format!("cancel {port}"));
        Ok(true)
    }

    async fn auth_succeeded(&mut self, session: &mut server::Session) -> Result<(), Self::Error> {
        if !matches!(self.mode, Mode::OpensChannels) {
            return Ok(());
        }
        // Not from inside the handler: the session loop must run to deliver the answers.
        let handle = session.handle();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            let record = |kind: &str, r: Result<russh::Channel<server::Msg>, russh::Error>| {
                let answer = match r {
                    Ok(_) => "accepted".to_owned(),
                    Err(e) => e.to_string(),
                };
                answers.lock().unwrap().push(format!("{kind}: {answer}"));
            };
            record("session", handle.channel_open_session().await);
            record("x11", handle.channel_open_x11("127.0.0.1", 6000).await);
            let direct = handle
                .channel_open_direct_tcpip("127.0.0.1", 22, "127.0.0.1", 1)
                .await;
            record("direct-tcpip", direct);
        });
        Ok(())
    }
}

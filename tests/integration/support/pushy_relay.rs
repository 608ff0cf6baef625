//! An SSH server (russh) that lets any key in and then misbehaves in one of two ways
//! ([`Mode`]): it opens, toward the client, the channels a client never asks for (session, x11,
//! direct-tcpip), recording how the client answered each; or it answers `tcpip-forward`
//! requests late, recording the requests and cancels it gets.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::server::{self, Auth, PublicKeyOffer, VerifiedPublicKey};

use super::stall_relay::RusshRelay;

/// How the relay misbehaves.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Opens a session, an x11 and a direct-tcpip channel once the client has logged in.
    OpensChannels,
    /// Grants every `tcpip-forward` request, but only after this long.
    AnswersForwardsAfter(Duration),
}

/// A [`RusshRelay`] in one [`Mode`], recording what happened.
pub struct PushyRelay {
    relay: RusshRelay,
    answers: Arc<Mutex<Vec<String>>>,
}

impl PushyRelay {
    /// Starts it with a fresh host key generated in `dir`.
    pub fn start(dir: &Path, mode: Mode) -> PushyRelay {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let recorded = answers.clone();
        let relay = RusshRelay::start(dir, "pushy_host", move || Pushy {
            answers: recorded.clone(),
            mode,
        });
        PushyRelay { relay, answers }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.relay.port()
    }

    /// A known_hosts line that trusts this server at its port.
    pub fn known_hosts_line(&self) -> String {
        self.relay.known_hosts_line()
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

//! Authentication: ssh-agent first, then identity files — like OpenSSH (with `IdentitiesOnly`,
//! only the agent keys and certificates that belong to an identity file). An identity file's
//! OpenSSH certificate (`FILE-cert.pub`) goes before its plain key, which follows if the relay
//! refuses the certificate. RSA keys are offered with the best SHA-2 hash the relay supports
//! (OpenSSH ≥ 8.8 rejects SHA-1 `ssh-rsa`). Nothing the relay refused is offered again: each
//! refusal counts against its `MaxAuthTries`.

mod agent;
mod files;
mod signer;

use std::collections::HashSet;

use russh::client::AuthResult;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, Certificate, HashAlg};

use super::connect::Handle;
use super::session::SessionShared;
use crate::config::TunnelConfig;
use crate::error::{ErrorClass, TunnelError};

/// Authenticates as the tunnel's user; `Err` with class `auth` when the relay accepts nothing
/// or ends the session after refusing what was offered.
pub async fn authenticate(
    handle: &mut Handle,
    tunnel: &TunnelConfig,
    shared: &SessionShared,
) -> Result<(), TunnelError> {
    let mut login = Login {
        handle,
        tunnel,
        shared,
        offered: 0,
        notes: Vec::new(),
        rsa_hash: None,
        refused: HashSet::new(),
    };
    if login.try_agent().await? {
        return Ok(());
    }
    for path in tunnel.identities.paths() {
        if login.try_key_file(path).await? {
            if !login.notes.is_empty() {
                tracing::debug!(tunnel = %tunnel.name, skipped = %login.notes.join("; "), "authenticated after skipping identities");
            }
            return Ok(());
        }
    }
    Err(login.nothing_accepted())
}

/// A credential as the relay sees it, without comments (the agent's and a file's differ).
#[derive(PartialEq, Eq, Hash)]
enum Offered {
    Key(KeyData),
    Certificate(Box<Certificate>),
}

impl Offered {
    fn certificate(cert: &Certificate) -> Offered {
        let mut cert = cert.clone();
        cert.set_comment("");
        Offered::Certificate(Box::new(cert))
    }
}

/// One authentication's progress. Holds public keys and certificates, never private keys.
struct Login<'a> {
    handle: &'a mut Handle,
    tunnel: &'a TunnelConfig,
    shared: &'a SessionShared,
    /// Keys and certificates offered so far.
    offered: usize,
    /// What was skipped or failed, for the error message when nothing worked.
    notes: Vec<String>,
    /// The relay's best RSA hash, asked once per session.
    rsa_hash: Option<Option<HashAlg>>,
    /// What the relay refused.
    refused: HashSet<Offered>,
}

impl Login<'_> {
    /// Whether `credential` is worth offering (the relay has not refused it); counts it if so.
    fn fresh(&mut self, credential: &Offered) -> bool {
        if self.refused.contains(credential) {
            return false;
        }
        self.offered += 1;
        true
    }

    /// Books the outcome of offering `credential`: `Ok(true)` logged in, `Ok(false)` refused
    /// (or a local signer failed, noted), `Err` when the relay has ended the session meanwhile.
    fn settle(
        &mut self,
        credential: Offered,
        result: Result<AuthResult, String>,
    ) -> Result<bool, TunnelError> {
        if matches!(result, Ok(ref r) if r.success()) {
            return Ok(true);
        }
        // russh reports a session that ended mid-offer as a refusal (or a send error).
        if self.handle.is_closed() {
            return Err(self.interrupted());
        }
        match result {
            Ok(_) => {
                self.refused.insert(credential);
            }
            // Not refused by the relay: the same key may still work from a file.
            Err(note) => self.notes.push(note),
        }
        Ok(false)
    }

    /// Offers `certificate` signed by `signer` (the agent, or the key of the file beside it);
    /// a signer's failure is a note beginning with `what`.
    async fn offer_certificate<S>(
        &mut self,
        certificate: Certificate,
        signer: &mut S,
        what: &str,
    ) -> Result<bool, TunnelError>
    where
        S: russh::Signer,
        S::Error: std::fmt::Display,
    {
        let offered = Offered::certificate(&certificate);
        if !self.fresh(&offered) {
            return Ok(false);
        }
        let hash = self.rsa_hash(certificate.algorithm()).await;
        let result = self
            .handle
            .authenticate_certificate_with(&self.tunnel.user, certificate, hash, signer)
            .await
            .map_err(|e| format!("{what}: {e}"));
        self.settle(offered, result)
    }

    /// The hash to sign RSA keys with, asked of the relay once per session (it may wait up to
    /// 1 s for the relay's EXT_INFO).
    async fn rsa_hash(&mut self, algorithm: Algorithm) -> Option<HashAlg> {
        if !matches!(algorithm, Algorithm::Rsa { .. }) {
            return None;
        }
        if self.rsa_hash.is_none() {
            let best = self.handle.best_supported_rsa_hash().await;
            self.rsa_hash = Some(best.ok().flatten().flatten());
        }
        self.rsa_hash.flatten()
    }

    /// `user@host`, for messages.
    fn account(&self) -> String {
        format!("{}@{}", self.tunnel.user, self.tunnel.host)
    }

    /// `message`, then the notes in parentheses.
    fn with_notes(&self, mut message: String) -> String {
        if !self.notes.is_empty() {
            message.push_str(" (");
            message.push_str(&self.notes.join("; "));
            message.push(')');
        }
        message
    }

    /// The error when every offer was refused, or there was nothing to offer.
    fn nothing_accepted(&self) -> TunnelError {
        if self.handle.is_closed() {
            return self.interrupted();
        }
        let message = if self.offered == 0 {
            format!(
                "no key to offer for {}: no agent identities and no usable identity file",
                self.account()
            )
        } else {
            format!(
                "relay rejected all {} key(s) offered for {}",
                self.offered,
                self.account()
            )
        };
        TunnelError::new(ErrorClass::Auth, self.with_notes(message))
    }

    /// The error when the session ended during authentication. Once a key has been offered,
    /// a relay that hangs up (sshd's `MaxAuthTries`: "Too many authentication failures") is
    /// refusing us: class `auth`, so retries wait the longest backoff instead of filling the
    /// relay's auth log. A connection that broke, or ended before any offer, is `network`.
    fn interrupted(&self) -> TunnelError {
        let relay_said = self
            .shared
            .disconnect_message
            .lock()
            .ok()
            .and_then(|m| m.clone());
        let broke = self.shared.end_reason.lock().ok().and_then(|e| e.clone());
        match (relay_said, broke) {
            (Some(said), _) if self.offered > 0 => TunnelError::new(
                ErrorClass::Auth,
                self.with_notes(format!(
                    "relay ended authentication for {} after {} key(s) offered: {said}",
                    self.account(),
                    self.offered
                )),
            ),
            (Some(said), _) => TunnelError::new(
                ErrorClass::Network,
                format!("authentication interrupted: relay closed the session: {said}"),
            ),
            // What russh saw when the session ended without a word from the relay.
            (None, Some(broke)) => broke.context("authentication interrupted"),
            // russh may skip its `disconnected` callback (deps.md §2.7): nothing is known but
            // that the relay's side went away after refusing what it was offered.
            (None, None) if self.offered > 0 => TunnelError::new(
                ErrorClass::Auth,
                self.with_notes(format!(
                    "relay closed the connection during authentication for {} after {} key(s) offered",
                    self.account(),
                    self.offered
                )),
            ),
            (None, None) => TunnelError::new(
                ErrorClass::Network,
                "authentication interrupted: relay closed the connection",
            ),
        }
    }
}

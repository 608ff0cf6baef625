//! Offering ssh-agent's identities: keys as keys, certificates as certificates.

use russh::keys::PublicKey;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use tokio::net::UnixStream;

use super::{Login, Offered};
use crate::config::AgentSource;
use crate::error::TunnelError;

type Agent = AgentClient<UnixStream>;

impl Login<'_> {
    /// Offers the agent's identities (with `IdentitiesOnly`, those of the identity files);
    /// `Ok(true)` once one is accepted.
    pub(super) async fn try_agent(&mut self) -> Result<bool, TunnelError> {
        let path = match &self.tunnel.agent {
            AgentSource::Disabled => return Ok(false),
            AgentSource::Path(p) => p.clone(),
            AgentSource::Env => match AgentSource::from_env(|name| std::env::var_os(name)) {
                Some(path) => path,
                None => return Ok(false),
            },
        };
        // A fresh agent connection per attempt: the agent may have restarted since the last one.
        let mut agent = match AgentClient::connect_uds(&path).await {
            Ok(agent) => agent,
            Err(e) => {
                let note = format!("agent at {} unreachable: {e}", path.display());
                self.notes.push(note);
                return Ok(false);
            }
        };
        if let Some(binding) = self.handle.agent_session_binding() {
            let _ = agent.bind_session(binding, false).await;
        }
        let identities = match agent.request_identities().await {
            Ok(ids) => ids,
            Err(e) => {
                let note = format!("agent at {} failed: {e}", path.display());
                self.notes.push(note);
                return Ok(false);
            }
        };
        // IdentitiesOnly: only the agent's keys, and certificates for keys, of identity files.
        let wanted = self
            .tunnel
            .identities_only
            .then(|| self.identity_public_keys());
        for identity in identities {
            // Only the key data counts: comments differ between the agent and a `.pub` file.
            let key = identity.public_key();
            if wanted
                .as_ref()
                .is_some_and(|w| !w.iter().any(|k| k.key_data() == key.key_data()))
            {
                continue;
            }
            let accepted = match identity {
                AgentIdentity::PublicKey { key, .. } => self.offer_agent_key(&mut agent, key).await,
                AgentIdentity::Certificate { certificate, .. } => {
                    self.offer_certificate(certificate, &mut agent, "agent signing failed")
                        .await
                }
            };
            if accepted? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn offer_agent_key(
        &mut self,
        agent: &mut Agent,
        key: PublicKey,
    ) -> Result<bool, TunnelError> {
        let offered = Offered::Key(key.key_data().clone());
        if !self.fresh(&offered) {
            return Ok(false);
        }
        let hash = self.rsa_hash(key.algorithm()).await;
        let result = self
            .handle
            .authenticate_publickey_with(&self.tunnel.user, key, hash, agent)
            .await
            .map_err(|e| format!("agent signing failed: {e}"));
        self.settle(offered, result)
    }

    /// The public halves of the identity files: from `FILE.pub`, else from an unencrypted `FILE`.
    fn identity_public_keys(&self) -> Vec<PublicKey> {
        self.tunnel
            .identities
            .paths()
            .iter()
            .filter_map(|path| {
                let mut public = path.clone().into_os_string();
                public.push(".pub");
                let public = std::path::PathBuf::from(public);
                let regular = super::files::is_regular_file;
                let from_public = regular(&public)
                    .then(|| russh::keys::load_public_key(&public).ok())
                    .flatten();
                from_public.or_else(|| {
                    regular(path)
                        .then(|| russh::keys::load_secret_key(path, None).ok())
                        .flatten()
                        .map(|k| k.public_key().clone())
                })
            })
            .collect()
    }
}

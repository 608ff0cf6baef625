//! Authentication: ssh-agent first, then identity files — like OpenSSH (with `IdentitiesOnly`,
//! only the agent keys that match an identity file). RSA keys are offered
//! with the best SHA-2 hash the relay supports (OpenSSH ≥ 8.8 rejects SHA-1 `ssh-rsa`).

use std::path::Path;
use std::sync::Arc;

use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKey};

use super::connect::Handle;
use crate::config::{AgentSource, Identities, TunnelConfig};
use crate::error::{ErrorClass, TunnelError};

/// What was tried, for the error message when nothing worked. Never holds key material.
#[derive(Default)]
struct Attempts {
    offered: usize,
    notes: Vec<String>,
}

/// Authenticates as the tunnel's user; `Err` with class `auth` when the relay accepts nothing.
pub async fn authenticate(handle: &mut Handle, tunnel: &TunnelConfig) -> Result<(), TunnelError> {
    let mut attempts = Attempts::default();
    let mut rsa_hash = None;
    if try_agent(handle, tunnel, &mut attempts, &mut rsa_hash).await? {
        return Ok(());
    }
    for path in tunnel.identities.paths() {
        if try_key_file(handle, tunnel, path, &mut attempts, &mut rsa_hash).await? {
            if !attempts.notes.is_empty() {
                tracing::debug!(tunnel = %tunnel.name, skipped = %attempts.notes.join("; "), "authenticated after skipping identities");
            }
            return Ok(());
        }
    }
    let user = &tunnel.user;
    let mut message = if attempts.offered == 0 {
        format!(
            "no key to offer for {user}@{}: no agent identities and no usable identity file",
            tunnel.host
        )
    } else {
        format!(
            "relay rejected all {} key(s) offered for {user}@{}",
            attempts.offered, tunnel.host
        )
    };
    if !attempts.notes.is_empty() {
        message.push_str(" (");
        message.push_str(&attempts.notes.join("; "));
        message.push(')');
    }
    Err(TunnelError::new(ErrorClass::Auth, message))
}

/// The hash to sign RSA keys with, asked of the relay once per session (it may wait up to 1 s
/// for the relay's EXT_INFO).
async fn rsa_hash_for(
    handle: &Handle,
    key: &PublicKey,
    cache: &mut Option<Option<HashAlg>>,
) -> Option<HashAlg> {
    if !matches!(key.algorithm(), Algorithm::Rsa { .. }) {
        return None;
    }
    if cache.is_none() {
        *cache = Some(
            handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten(),
        );
    }
    cache.flatten()
}

async fn try_agent(
    handle: &mut Handle,
    tunnel: &TunnelConfig,
    attempts: &mut Attempts,
    rsa_hash: &mut Option<Option<HashAlg>>,
) -> Result<bool, TunnelError> {
    let path = match &tunnel.agent {
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
            attempts
                .notes
                .push(format!("agent at {} unreachable: {e}", path.display()));
            return Ok(false);
        }
    };
    if let Some(binding) = handle.agent_session_binding() {
        let _ = agent.bind_session(binding, false).await;
    }
    let identities = match agent.request_identities().await {
        Ok(ids) => ids,
        Err(e) => {
            attempts
                .notes
                .push(format!("agent at {} failed: {e}", path.display()));
            return Ok(false);
        }
    };
    // IdentitiesOnly: only the agent keys that belong to the configured identity files.
    let wanted = tunnel.identities_only.then(|| identity_public_keys(tunnel));
    for identity in identities {
        let key = identity.public_key().into_owned();
        // Only the key data counts: comments differ between the agent and a `.pub` file.
        if wanted
            .as_ref()
            .is_some_and(|w| !w.iter().any(|k| k.key_data() == key.key_data()))
        {
            continue;
        }
        let hash = rsa_hash_for(handle, &key, rsa_hash).await;
        attempts.offered += 1;
        let result = handle
            .authenticate_publickey_with(&tunnel.user, key, hash, &mut agent)
            .await;
        match result {
            Ok(r) if r.success() => return Ok(true),
            Ok(_) => {}
            Err(e) => attempts.notes.push(format!("agent signing failed: {e}")),
        }
    }
    Ok(false)
}

/// The public halves of the identity files: from `FILE.pub`, else from an unencrypted `FILE`.
fn identity_public_keys(tunnel: &TunnelConfig) -> Vec<PublicKey> {
    tunnel
        .identities
        .paths()
        .iter()
        .filter_map(|path| {
            let mut public = path.clone().into_os_string();
            public.push(".pub");
            russh::keys::load_public_key(&public).ok().or_else(|| {
                russh::keys::load_secret_key(path, None)
                    .ok()
                    .map(|k| k.public_key().clone())
            })
        })
        .collect()
}

async fn try_key_file(
    handle: &mut Handle,
    tunnel: &TunnelConfig,
    path: &Path,
    attempts: &mut Attempts,
    rsa_hash: &mut Option<Option<HashAlg>>,
) -> Result<bool, TunnelError> {
    let shown = path.display();
    if !path.exists() {
        if matches!(tunnel.identities, Identities::Configured(_)) {
            attempts
                .notes
                .push(format!("identity file {shown} not found"));
        }
        return Ok(false);
    }
    let key = match russh::keys::load_secret_key(path, None) {
        Ok(key) => key,
        Err(russh::keys::Error::KeyIsEncrypted) => {
            attempts.notes.push(format!(
                "{shown} is encrypted and no agent offered it: add it with `ssh-add {shown}`"
            ));
            return Ok(false);
        }
        Err(e) => {
            attempts.notes.push(format!("cannot load {shown}: {e}"));
            return Ok(false);
        }
    };
    let hash = rsa_hash_for(handle, key.public_key(), rsa_hash).await;
    attempts.offered += 1;
    let result = handle
        .authenticate_publickey(
            &tunnel.user,
            PrivateKeyWithHashAlg::new(Arc::new(key), hash),
        )
        .await
        .map_err(|e| {
            TunnelError::new(
                ErrorClass::Network,
                format!("authentication interrupted: {e}"),
            )
        })?;
    Ok(result.success())
}

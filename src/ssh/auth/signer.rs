//! An identity file's private key as a russh [`Signer`], so its certificate goes through
//! `authenticate_certificate_with`, which names the RSA hash in the offer
//! (`rsa-sha2-512-cert-v01@openssh.com`). russh's `authenticate_openssh_cert` offers an RSA
//! certificate as SHA-1 `ssh-rsa-cert-v01@openssh.com`, which OpenSSH ≥ 8.8 refuses.

use std::sync::Arc;

use russh::Signer;
use russh::keys::agent::AgentIdentity;
use russh::keys::signature::Signer as _;
use russh::keys::ssh_encoding::Encode;
use russh::keys::ssh_key::Signature;
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::{HashAlg, PrivateKey};

/// Signs with a private key loaded from a file.
pub(super) struct KeySigner(pub(super) Arc<PrivateKey>);

/// Why a [`KeySigner`] produced no signature.
#[derive(Debug, thiserror::Error)]
pub(super) enum SignError {
    #[error("session closed")]
    Send(#[from] russh::SendError),
    #[error("cannot sign: {0}")]
    Sign(String),
}

impl Signer for KeySigner {
    type Error = SignError;

    async fn auth_sign(
        &mut self,
        _identity: &AgentIdentity,
        hash_alg: Option<HashAlg>,
        mut to_sign: Vec<u8>,
    ) -> Result<Vec<u8>, SignError> {
        let signature: Result<Signature, _> = match self.0.key_data() {
            KeypairData::Rsa(rsa) => (rsa, hash_alg).try_sign(&to_sign),
            _ => self.0.try_sign(&to_sign),
        };
        let blob = signature
            .map_err(|e| SignError::Sign(e.to_string()))?
            .encode_vec()
            .map_err(|e| SignError::Sign(e.to_string()))?;
        // As an agent answers (russh appends what the signer returns): the signature blob as
        // one SSH string after the signed data.
        blob.encode(&mut to_sign)
            .map_err(|e| SignError::Sign(e.to_string()))?;
        Ok(to_sign)
    }
}

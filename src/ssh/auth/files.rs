//! Offering identity files: the OpenSSH certificate next to a key (`FILE-cert.pub`) first, then
//! the plain key, as OpenSSH does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::{Certificate, PrivateKey, PrivateKeyWithHashAlg};

use super::signer::KeySigner;
use super::{Login, Offered};
use crate::config::Identities;
use crate::error::TunnelError;

impl Login<'_> {
    /// Offers the identity file at `path`; `Ok(true)` once accepted.
    pub(super) async fn try_key_file(&mut self, path: &Path) -> Result<bool, TunnelError> {
        let shown = path.display();
        if !path.exists() {
            if matches!(self.tunnel.identities, Identities::Configured(_)) {
                self.notes.push(format!("identity file {shown} not found"));
            }
            return Ok(false);
        }
        if !is_regular_file(path) {
            self.notes
                .push(format!("identity file {shown} is not a regular file"));
            return Ok(false);
        }
        let key = match russh::keys::load_secret_key(path, None) {
            Ok(key) => Arc::new(key),
            Err(russh::keys::Error::KeyIsEncrypted) => {
                self.notes.push(format!(
                    "{shown} is encrypted and no agent offered it: add it with `ssh-add {shown}`"
                ));
                return Ok(false);
            }
            Err(e) => {
                self.notes.push(format!("cannot load {shown}: {e}"));
                return Ok(false);
            }
        };
        if let Some(certificate) = self.certificate_for(path, &key)
            && self
                .offer_certificate(
                    certificate,
                    &mut KeySigner(key.clone()),
                    &path.display().to_string(),
                )
                .await?
        {
            return Ok(true);
        }
        self.offer_file_key(key).await
    }

    /// The certificate OpenSSH would use with the key at `path`: `PATH-cert.pub`, if it exists
    /// and certifies that key (otherwise a note says why it is skipped).
    fn certificate_for(&mut self, path: &Path, key: &PrivateKey) -> Option<Certificate> {
        let cert_path = cert_path(path);
        if !is_regular_file(&cert_path) {
            return None;
        }
        let shown = cert_path.display();
        match russh::keys::load_openssh_certificate(&cert_path) {
            Ok(cert) if cert.public_key() == key.public_key().key_data() => Some(cert),
            Ok(_) => {
                let note = format!("certificate {shown} is not for the key {}", path.display());
                self.notes.push(note);
                None
            }
            Err(e) => {
                self.notes
                    .push(format!("cannot read certificate {shown}: {e}"));
                None
            }
        }
    }

    async fn offer_file_key(&mut self, key: Arc<PrivateKey>) -> Result<bool, TunnelError> {
        let offered = Offered::Key(key.public_key().key_data().clone());
        if !self.fresh(&offered) {
            return Ok(false);
        }
        let hash = self.rsa_hash(key.algorithm()).await;
        let result = self
            .handle
            .authenticate_publickey(&self.tunnel.user, PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(|e| e.to_string());
        self.settle(offered, result)
    }
}

/// `PATH-cert.pub`, where OpenSSH looks for the certificate of the key at `PATH`.
fn cert_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// Whether `path` is a regular file (after links): a FIFO or device where a key should be
/// would block the read, and with it the daemon's one runtime thread.
pub(super) fn is_regular_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

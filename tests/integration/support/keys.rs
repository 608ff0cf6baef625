//! SSH key pairs for tests, made by OpenSSH's own `ssh-keygen` so that both pairtun and the
//! OpenSSH tools read them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::run_with_timeout;

/// RSA keys take a noticeable time to generate; 2048 bits is plenty for tests.
const RSA_BITS: &str = "2048";
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The key algorithms a test can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `ssh-ed25519`
    Ed25519,
    /// `ssh-rsa` (2048 bits; signatures negotiated as rsa-sha2-256/512)
    Rsa,
    /// `ecdsa-sha2-nistp256`
    Ecdsa,
}

impl KeyKind {
    /// The name `ssh-keygen -t` takes.
    pub fn keygen_type(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Rsa => "rsa",
            KeyKind::Ecdsa => "ecdsa",
        }
    }
}

/// A key pair on disk: `DIR/NAME` (private, OpenSSH format, mode 0600) and `DIR/NAME.pub`.
#[derive(Clone, Debug)]
pub struct KeyPair {
    private: PathBuf,
    public_line: String,
    kind: KeyKind,
}

impl KeyPair {
    /// Generates an unencrypted key pair as `dir/name` and `dir/name.pub`.
    ///
    /// Panics if the files exist already or `ssh-keygen` fails.
    pub fn generate(dir: &Path, name: &str, kind: KeyKind) -> KeyPair {
        Self::generate_with_passphrase(dir, name, kind, "")
    }

    /// Like [`KeyPair::generate`], but the private key is encrypted with `passphrase`
    /// (an empty passphrase means unencrypted).
    pub fn generate_with_passphrase(
        dir: &Path,
        name: &str,
        kind: KeyKind,
        passphrase: &str,
    ) -> KeyPair {
        let private = dir.join(name);
        assert!(
            !private.exists(),
            "key file {} exists already",
            private.display()
        );
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", kind.keygen_type(), "-N", passphrase])
            .args(["-C", &format!("pairtun-test-{name}")])
            .arg("-f")
            .arg(&private);
        if kind == KeyKind::Rsa {
            cmd.args(["-b", RSA_BITS]);
        }
        let out = run_with_timeout(&mut cmd, KEYGEN_TIMEOUT);
        assert!(
            out.status.success(),
            "ssh-keygen for {} failed: {}",
            private.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let public_line = read_public_line(&pub_path(&private));
        KeyPair {
            private,
            public_line,
            kind,
        }
    }

    /// The private key file.
    pub fn private_path(&self) -> &Path {
        &self.private
    }

    /// The public key file (`private_path()` + `.pub`).
    pub fn public_path(&self) -> PathBuf {
        pub_path(&self.private)
    }

    /// The public key as one `authorized_keys` line: `TYPE BASE64 COMMENT`.
    pub fn public_line(&self) -> &str {
        &self.public_line
    }

    /// The SHA-256 fingerprint, `SHA256:…`, as sshd logs it on `Accepted publickey`.
    pub fn fingerprint(&self) -> String {
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-l", "-E", "sha256", "-f"])
            .arg(self.public_path());
        let out = run_with_timeout(&mut cmd, KEYGEN_TIMEOUT);
        let text = String::from_utf8_lossy(&out.stdout);
        match text.split_whitespace().nth(1) {
            Some(fp) if out.status.success() => fp.to_owned(),
            _ => panic!(
                "ssh-keygen -l failed for {}: {text}",
                self.private.display()
            ),
        }
    }

    /// Has `ca` sign this key's public half as a user certificate for `principal`
    /// (`ssh-keygen -s CA -I ID -n PRINCIPAL KEY.pub`), written as `KEY-cert.pub` where OpenSSH
    /// (and pairtun) look for it; returns that path.
    pub fn certify(&self, ca: &KeyPair, principal: &str) -> PathBuf {
        let mut cmd = Command::new("ssh-keygen");
        cmd.arg("-q")
            .arg("-s")
            .arg(ca.private_path())
            .args(["-I", "pairtun-test", "-n", principal])
            .arg(self.public_path());
        let out = run_with_timeout(&mut cmd, KEYGEN_TIMEOUT);
        assert!(
            out.status.success(),
            "ssh-keygen -s for {} failed: {}",
            self.private.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cert = self.private.as_os_str().to_owned();
        cert.push("-cert.pub");
        let cert = PathBuf::from(cert);
        assert!(cert.exists(), "ssh-keygen wrote no {}", cert.display());
        cert
    }

    /// The algorithm the key was generated with.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }
}

/// `private` + `.pub` (not `with_extension`: key names may contain dots).
fn pub_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Reads a `.pub` file and returns its key line without the trailing newline.
pub fn read_public_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read public key {}: {e}", path.display()));
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    assert!(
        line.split_whitespace().count() >= 2,
        "{} does not hold a public key line",
        path.display()
    );
    line
}

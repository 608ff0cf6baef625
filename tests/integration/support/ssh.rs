//! The OpenSSH client (`/usr/bin/ssh`) as a test tool: isolated from any user or system
//! config, agent and known_hosts, strict about host keys, never prompting.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;

use super::keys::{KeyKind, KeyPair};
use super::process::run_with_timeout;
use super::sshd::Sshd;

/// How long [`ssh_exec`] lets a command run before it kills it and panics.
pub const SSH_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// An `ssh` command for `user@127.0.0.1 -p port`, before the remote command: add `-N -L …`,
/// `-R …` or a command yourself. Uses only `key` and `known_hosts`.
pub fn ssh_command(port: u16, user: &str, key: &Path, known_hosts: &Path) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "UpdateHostKeys=no",
        ])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=10"])
        .arg(format!("{user}@127.0.0.1"));
    cmd
}

/// Runs `cmd` on the server through `ssh` and returns its output (status, stdout, stderr);
/// panics if it takes longer than [`SSH_EXEC_TIMEOUT`].
pub fn ssh_exec(port: u16, user: &str, key: &Path, known_hosts: &Path, cmd: &str) -> Output {
    run_with_timeout(
        ssh_command(port, user, key, known_hosts).arg(cmd),
        SSH_EXEC_TIMEOUT,
    )
}

/// A client identity for tests: a temp dir holding a key pair and a known_hosts file.
pub struct SshClient {
    dir: TempDir,
    key: KeyPair,
}

impl SshClient {
    /// A fresh client with an ed25519 key (`id_ed25519`) and an empty known_hosts.
    pub fn generate() -> SshClient {
        Self::generate_with(KeyKind::Ed25519)
    }

    /// A fresh client with a key of `kind` (`id_ed25519`, `id_rsa` or `id_ecdsa`).
    pub fn generate_with(kind: KeyKind) -> SshClient {
        let dir = tempfile::Builder::new()
            .prefix("pairtun-client-")
            .tempdir()
            .expect("temp dir");
        let key = KeyPair::generate(dir.path(), &format!("id_{}", kind.keygen_type()), kind);
        std::fs::write(dir.path().join("known_hosts"), "").expect("write known_hosts");
        SshClient { dir, key }
    }

    /// The client's key pair (authorize it with `SshdOptions::authorize`).
    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    /// The client's known_hosts file.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The client's directory, e.g. for Unix sockets or pairtun config files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Makes known_hosts trust `sshd` (only it) at its current host key.
    pub fn trust(&self, sshd: &Sshd) {
        sshd.write_known_hosts(&self.known_hosts());
    }

    /// [`ssh_exec`] against `sshd` with this client's key and known_hosts.
    pub fn exec(&self, sshd: &Sshd, cmd: &str) -> Output {
        let key = self.key.private_path();
        ssh_exec(sshd.port(), &sshd.user(), key, &self.known_hosts(), cmd)
    }
}

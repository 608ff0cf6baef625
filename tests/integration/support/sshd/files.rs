//! The files of an [`Sshd`]: host key and known_hosts lines, `authorized_keys`, and the log.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{HOST_KEY, LOG, Sshd};
use crate::support::keys::{KeyKind, KeyPair, read_public_line};

impl Sshd {
    /// The host public key line (`ssh-ed25519 AAAA… comment`), as on disk: after
    /// [`Sshd::regenerate_host_key`] the new key, even before the restart that serves it.
    pub fn host_public_key_line(&self) -> String {
        read_public_line(&self.path(&format!("{HOST_KEY}.pub")))
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA…` for the sshd's own port.
    pub fn known_hosts_line(&self) -> String {
        self.known_hosts_line_at(self.port)
    }

    /// The known_hosts line for this host key reached on another port (e.g. a proxy's).
    pub fn known_hosts_line_at(&self, port: u16) -> String {
        let key = self.host_public_key_line();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        format!("[127.0.0.1]:{port} {}", key.join(" "))
    }

    /// Writes a known_hosts file that trusts this sshd (and nothing else).
    pub fn write_known_hosts(&self, path: &Path) {
        fs::write(path, self.known_hosts_line() + "\n")
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Appends a line to `authorized_keys`; sshd reads it at the next login, no restart needed.
    pub fn authorize_line(&self, line: &str) {
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.path("authorized_keys"));
        writeln!(f.as_mut().expect("open authorized_keys"), "{line}").expect("append");
    }

    /// Everything sshd logged so far (all runs of this fixture).
    pub fn log(&self) -> String {
        self.log_since(0)
    }

    /// The current end of the log, for [`Sshd::log_since`].
    pub fn log_mark(&self) -> u64 {
        fs::metadata(self.path(LOG)).map_or(0, |m| m.len())
    }

    /// What sshd logged after `mark` (from [`Sshd::log_mark`]).
    pub fn log_since(&self, mark: u64) -> String {
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(self.path(LOG)) {
            let _ = f.seek(SeekFrom::Start(mark));
            let _ = f.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// How many log lines contain `pattern`. Each start/restart adds one readiness-probe
    /// connection (`Connection from …`, `Connection closed by … [preauth]`) before it returns.
    pub fn count_log(&self, pattern: &str) -> usize {
        self.log().lines().filter(|l| l.contains(pattern)).count()
    }

    /// Replaces the host key with a new ed25519 key; sshd serves it after [`Sshd::restart`].
    pub fn regenerate_host_key(&self) {
        for name in [HOST_KEY.to_owned(), format!("{HOST_KEY}.pub")] {
            fs::remove_file(self.path(&name)).expect("remove old host key");
        }
        KeyPair::generate(self.dir.path(), HOST_KEY, KeyKind::Ed25519);
    }

    /// The last `n` lines of the log.
    pub(super) fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

//! A private OpenSSH `sshd` on 127.0.0.1 for one test: its own temp dir, host key,
//! `authorized_keys`, config and log; stopped (listener *and* sessions) on Drop.

use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::keys::{KeyKind, KeyPair};
use super::{process, wait};
use probe::Probe;

mod config;
mod files;
mod probe;

pub use config::SshdOptions;

/// The sshd binary; sshd re-executes itself, so it must be started by absolute path.
pub const SSHD: &str = "/usr/sbin/sshd";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports to try when another process grabs the chosen one before sshd binds it.
const PORT_ATTEMPTS: usize = 5;
const HOST_KEY: &str = "ssh_host_ed25519_key";
const LOG: &str = "sshd.log";

/// Whether the OpenSSH server and client tools are installed (`.ci/run` installs them).
pub fn available() -> bool {
    Path::new(SSHD).exists() && Path::new("/usr/bin/ssh-keygen").exists()
}

/// Why a launch did not come up.
enum LaunchError {
    PortTaken,
    Failed(String),
}

/// A running sshd. See the module docs.
pub struct Sshd {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Sshd {
    /// Creates the temp dir, host key, `authorized_keys` and config, starts
    /// `sshd -D -e -f CONFIG -E LOG` and returns once the port answers with an SSH banner.
    pub fn start(options: SshdOptions) -> Sshd {
        assert!(
            available(),
            "{SSHD} is not installed; guard the test with require_sshd!()"
        );
        // sshd refuses to run without its privilege separation directory.
        let _ = fs::create_dir_all("/run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("pairtun-sshd-")
            .tempdir()
            .expect("temp dir");
        KeyPair::generate(dir.path(), HOST_KEY, KeyKind::Ed25519);
        let keys = options.authorized_keys_text();
        fs::write(dir.path().join("authorized_keys"), keys).expect("write authorized_keys");
        let mut sshd = Sshd {
            dir,
            port: 0,
            child: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            sshd.port = free_port();
            let config = options.config_text(sshd.dir(), sshd.port, HOST_KEY);
            fs::write(sshd.path("sshd_config"), config).expect("write sshd_config");
            sshd.check_config();
            match sshd.launch() {
                Ok(()) => return sshd,
                Err(LaunchError::PortTaken) => continue,
                Err(LaunchError::Failed(why)) => panic!("sshd did not start: {why}"),
            }
        }
        panic!("sshd could not bind a free port in {PORT_ATTEMPTS} attempts");
    }

    /// `name` in the fixture's directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn check_config(&self) {
        let mut cmd = Command::new(SSHD);
        cmd.arg("-t").arg("-f").arg(self.path("sshd_config"));
        let out = process::run_with_timeout(&mut cmd, READY_TIMEOUT);
        assert!(
            out.status.success(),
            "sshd -t rejected the config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `sshd -D -e -f CONFIG -E LOG`: foreground, logging to the fixture's log file.
    fn spawn(&self) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(LOG));
        Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(self.path("sshd_config"))
            .arg("-E")
            .arg(self.path(LOG))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.expect("open sshd.log"))
            .spawn()
            .expect("spawn sshd")
    }

    /// Spawns sshd on the configured port and waits until it greets.
    fn launch(&mut self) -> Result<(), LaunchError> {
        let (mark, addr) = (self.log_mark(), self.addr());
        let child = self.spawn();
        let child = self.child.insert(child);
        let pid = child.id();
        let what = format!("sshd on {addr} to send its SSH banner");
        let greeted = wait::until_some(&what, READY_TIMEOUT, || {
            match child.try_wait().expect("waitpid sshd") {
                Some(status) => Some(Err(status)),
                None => Probe::greet(addr).map(Ok),
            }
        });
        match greeted {
            Ok(probe) => {
                probe.finish(pid);
                Ok(())
            }
            Err(status) => {
                self.child = None;
                let log = self.log_since(mark);
                if log.contains("Address already in use") {
                    Err(LaunchError::PortTaken)
                } else {
                    let why = format!("sshd exited ({status}); log:\n{log}");
                    Err(LaunchError::Failed(why))
                }
            }
        }
    }

    /// The port sshd listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port()`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The user to log in as: the one running the tests (the authorized keys are theirs).
    pub fn user(&self) -> String {
        current_user()
    }

    /// The fixture's directory (config, keys, log); a good place for test Unix sockets.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The listener's PID, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// PIDs of the per-connection sshd processes (and their commands), read from `/proc`.
    pub fn session_pids(&self) -> Vec<u32> {
        self.pid().map(process::descendants).unwrap_or_default()
    }

    /// Kills every session but keeps the listener: the server side drops all connections.
    pub fn kill_sessions(&self) {
        process::terminate(&self.session_pids());
    }

    /// Stops the listener and all its sessions (collected before the listener dies). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::terminate_tree(&mut child);
        }
    }

    /// Stops, then starts again on the same port with the same keys and config; returns once
    /// the banner is back. Panics clearly if another process took the port meanwhile.
    pub fn restart(&mut self) {
        self.stop();
        match self.launch() {
            Ok(()) => {}
            Err(LaunchError::PortTaken) => panic!(
                "sshd restart: port {} was taken by another process while sshd was down",
                self.port
            ),
            Err(LaunchError::Failed(why)) => panic!("sshd restart failed: {why}"),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- sshd log tail (port {}) ---\n{}",
                self.port,
                self.log_tail(40)
            );
        }
    }
}

/// A port that was free a moment ago: bind 127.0.0.1:0, read the port, release it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `n` distinct ports that were free a moment ago: all bound at once, so the kernel cannot hand
/// out one twice (as separate [`free_port`] calls may), then released.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// The name of the user running the tests.
pub fn current_user() -> String {
    let uid = nix::unistd::Uid::effective();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        other => panic!("cannot look up the name of uid {uid}: {other:?}"),
    }
}

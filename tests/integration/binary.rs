//! The real `pairtund` binary: what only it can show — exit codes, signals, config errors on
//! stderr.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Relay, local_spec, write_config};
use crate::support::echo::{EchoServer, roundtrip};
use crate::support::sshd::free_port;
use crate::support::wait;

/// A `pairtund` child whose stderr is collected; killed on drop if still running.
pub struct Pairtund {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// Its control socket.
    pub socket: std::path::PathBuf,
}

impl Pairtund {
    /// Starts `pairtund --config CONFIG --socket <dir of config>/run/pairtund.sock`.
    pub fn start(config: &std::path::Path) -> Pairtund {
        let socket = config.with_file_name("run").join("pairtund.sock");
        Self::start_on(config, &socket)
    }

    /// Starts `pairtund` on an explicit socket path.
    pub fn start_on(config: &std::path::Path, socket: &std::path::Path) -> Pairtund {
        Self::start_with_env(config, socket, &[])
    }

    /// Starts `pairtund` with extra environment variables.
    pub fn start_with_env(
        config: &std::path::Path,
        socket: &std::path::Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Pairtund {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_pairtund")),
            config,
            socket,
            env,
        )
    }

    /// Starts `pairtund` through a wrapper that execs it (`prlimit … --`), so the child is
    /// still the daemon itself.
    pub fn start_wrapped(wrapper: &[&str], config: &std::path::Path) -> Pairtund {
        let (program, args) = wrapper.split_first().expect("a wrapper command");
        let mut cmd = Command::new(program);
        cmd.args(args).arg(env!("CARGO_BIN_EXE_pairtund"));
        let socket = config.with_file_name("run").join("pairtund.sock");
        Self::spawn(cmd, config, &socket, &[])
    }

    fn spawn(
        mut cmd: Command,
        config: &std::path::Path,
        socket: &std::path::Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Pairtund {
        let mut child = cmd
            .arg("--config")
            .arg(config)
            .arg("--socket")
            .arg(socket)
            .env("PAIRTUN_LOG", "info")
            // After the default, so a test can raise the level.
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pairtund");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Pairtund {
            child,
            stderr,
            socket: socket.to_path_buf(),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("kill");
    }

    /// Waits until the control socket answers.
    pub fn wait_ready(&self) {
        wait::until("control socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
        });
    }

    /// Runs `pairtunctl --socket SOCKET ARGS…`.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        pairtunctl(&self.socket, args)
    }

    /// Waits for the exit status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        wait::until_some("pairtund to exit", within, || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Pairtund {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `pairtunctl --socket SOCKET ARGS…` with a deadline.
pub fn pairtunctl(socket: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pairtunctl"));
    cmd.arg("--socket").arg(socket).args(args);
    crate::support::process::run_with_timeout(&mut cmd, Duration::from_secs(30))
}

#[test]
fn sigterm_stops_cleanly_with_exit_0() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let port = free_port();
    let config = write_config(
        relay.dir.path(),
        &relay.tunnel("t", vec![local_spec(port, echo.port())], vec![]),
    );
    let mut daemon = Pairtund::start(&config);
    wait::until("tunnel up in the log", Duration::from_secs(20), || {
        daemon.log().contains("state=\"up\"")
    });
    assert!(
        daemon.log().contains("tunnel=t"),
        "state changes carry the tunnel name:\n{}",
        daemon.log()
    );
    roundtrip(
        format!("127.0.0.1:{port}").parse().unwrap(),
        b"x",
        Duration::from_secs(5),
    )
    .expect("traffic");

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.log());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listener still open after exit"
    );
}

#[test]
fn invalid_config_exits_1_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[defaults]\nkeepalive_interval = \"15 seconds\"\n[tunnels.t]\nhost = \"h\"\nlocal = [\"1:a:2\"]\n",
    );
    let mut daemon = Pairtund::start(&config);
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    let expected = format!("{}:2:", config.display());
    wait::until("error printed", Duration::from_secs(5), || {
        daemon.log().contains(&expected)
    });
    assert!(
        daemon.log().contains("keepalive_interval"),
        "{}",
        daemon.log()
    );
}

/// An empty `PAIRTUN_SOCKET` or `PAIRTUN_CONFIG` (a unit or plist that sets it to nothing) is
/// unset, as for every other variable pairtun reads; it used to be a usage error (exit 2).
#[test]
fn empty_pairtun_variables_mean_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pairtunctl"));
    cmd.arg("ping")
        .env("PAIRTUN_SOCKET", "")
        .env("PAIRTUN_CONFIG", "")
        .env("XDG_RUNTIME_DIR", dir.path());
    let out = crate::support::process::run_with_timeout(&mut cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let default = dir.path().join("pairtun").join("pairtund.sock");
    assert!(
        stderr.contains(&format!("no socket at {}", default.display())),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
}

/// Output into a pipe whose reader is gone (`pairtunctl completions zsh | true`) ends quietly
/// with 0, like every other command; `completions` used to panic (exit 101).
#[test]
fn a_closed_pipe_is_a_quiet_end_for_local_commands() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["completions", "zsh"][..],
        &["completions", "bash", "--binary", "pairtund"],
        &["service", "install", "--dry-run"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // every write fails with EPIPE
        // Not `run_with_timeout`, which pipes stdout itself.
        let mut child = Command::new(env!("CARGO_BIN_EXE_pairtunctl"))
            .args(args)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status =
            crate::support::wait::poll(Duration::from_secs(30), || child.try_wait().unwrap());
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after 30 s");
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

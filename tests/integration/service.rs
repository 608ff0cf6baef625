//! Running under a service manager: a test that plays systemd (NOTIFY_SOCKET, watchdog) and
//! checks the unit and plist files.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::binary::Pairtund;
use crate::control::wait_state;
use crate::harness::{Relay, local_spec, write_config};
use crate::support::echo::EchoServer;

/// Collects sd_notify datagrams.
struct Systemd {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Systemd {
    fn bind(path: &std::path::Path) -> Systemd {
        let socket = UnixDatagram::bind(path).expect("bind NOTIFY_SOCKET");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Systemd {
            socket,
            seen: Vec::new(),
        }
    }

    /// Reads what has arrived so far, so the next [`Systemd::expect`] sees only what comes after.
    fn clear(&mut self) {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.socket.set_nonblocking(false).unwrap();
    }

    /// Waits for a datagram containing `needle`; returns it.
    fn expect(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(message.clone());
                if message.contains(needle) {
                    return message;
                }
            }
        }
        panic!(
            "no {needle:?} from pairtund within {within:?}; got {:?}",
            self.seen
        );
    }
}

#[test]
fn plays_systemd_ready_status_watchdog_reloading_stopping() {
    let dir = tempfile::tempdir().unwrap();
    // The relay is down (nothing listens on port 1): the unit must become ready anyway.
    let config = write_config(
        dir.path(),
        "[defaults]\nagent_socket = \"\"\nbackoff = { initial = \"100ms\", max = \"500ms\" }\n\n\
         [tunnels.down]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"nobody\"\nlocal = [\"127.0.0.1:1:x:1\"]\n"
            .replace("127.0.0.1:1:x:1", &format!("{}:localhost:22", crate::support::sshd::free_port()))
            .as_str(),
    );
    let notify = dir.path().join("notify.sock");
    let mut systemd = Systemd::bind(&notify);
    let socket = dir.path().join("run").join("pairtund.sock");
    let mut d = Pairtund::start_with_env(
        &config,
        &socket,
        &[
            ("NOTIFY_SOCKET", notify.as_os_str()),
            ("WATCHDOG_USEC", "400000".as_ref()),
        ],
    );
    let ready = systemd.expect("READY=1", Duration::from_secs(10));
    // READY only once the control socket listens.
    assert!(
        std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "READY before the socket listened"
    );
    assert!(ready.contains("STATUS=1 tunnels"), "{ready}");
    systemd.expect("STATUS=1 tunnels: 1 backoff", Duration::from_secs(10));
    systemd.expect("WATCHDOG=1", Duration::from_secs(5));
    systemd.expect("WATCHDOG=1", Duration::from_secs(5));

    d.signal(Signal::SIGHUP);
    let reloading = systemd.expect("RELOADING=1", Duration::from_secs(5));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    systemd.expect("READY=1", Duration::from_secs(5));

    d.signal(Signal::SIGTERM);
    systemd.expect("STOPPING=1", Duration::from_secs(5));
    assert_eq!(
        d.wait_exit(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        d.log()
    );
}

/// A tunnel letting a live connection finish after `down` is busy, not wedged: the watchdog
/// pings go on (they used to be withheld for the whole grace period, so a `shutdown_grace`
/// above half of `WatchdogSec` got the daemon, and every tunnel, killed by systemd).
#[test]
fn watchdog_pings_go_on_while_a_tunnel_lets_its_connections_finish() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let port = crate::support::sshd::free_port();
    let toml = format!(
        "[defaults]\nknown_hosts = {:?}\nidentity_files = [{:?}]\nagent_socket = \"\"\n\
         shutdown_grace = \"60s\"\n{}",
        relay.known_hosts().display().to_string(),
        relay.key.private_path().display().to_string(),
        relay.tunnel("t", vec![local_spec(port, echo.port())], vec![])
    );
    let config = write_config(relay.dir.path(), &toml);
    let notify = relay.dir.path().join("notify.sock");
    let mut systemd = Systemd::bind(&notify);
    let socket = relay.dir.path().join("run").join("pairtund.sock");
    let d = Pairtund::start_with_env(
        &config,
        &socket,
        &[
            ("NOTIFY_SOCKET", notify.as_os_str()),
            ("WATCHDOG_USEC", "400000".as_ref()),
        ],
    );
    systemd.expect("READY=1", Duration::from_secs(10));
    wait_state(&d, "t", "up");
    let mut live = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(&mut live, b"one").unwrap();
    std::io::Read::read_exact(&mut live, &mut [0u8; 3]).unwrap();

    let down = d.ctl(&["down", "t"]);
    assert!(down.status.success(), "{down:?}");
    // Draining once its listener is closed: the live connection holds it for up to a minute.
    crate::support::wait::until("listener closed", Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    // Pings every 200 ms; five sent after the drain began prove it is not one that slipped
    // through.
    systemd.clear();
    for _ in 0..5 {
        systemd.expect("WATCHDOG=1", Duration::from_secs(2));
    }
    assert!(
        !d.log().contains("did not answer"),
        "a ping was withheld: {}",
        d.log()
    );
    drop(live);
}

#[test]
fn launchd_agent_plist_has_the_keys_a_per_user_agent_needs() {
    let plist = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/launchd/dev.pairtun.pairtund.plist"
    );
    // Python's plistlib is the reference parser available on Linux CI.
    let check = r#"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
assert p["Label"] == "dev.pairtun.pairtund", p["Label"]
assert p["RunAtLoad"] is True
assert p["KeepAlive"] == {"SuccessfulExit": False}, "restart on crash, not after a clean stop"
assert isinstance(p["ThrottleInterval"], int) and p["ThrottleInterval"] >= 5
args = p["ProgramArguments"]
assert args[0].startswith("/") and args[0].endswith("/pairtund"), args
for key in ("StandardErrorPath", "StandardOutPath"):
    assert p[key].startswith("/") and "/Library/Logs/" in p[key], p[key]
print("ok")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", check, plist])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn service_install_writes_the_unit_with_real_paths_and_enables_it() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = dir.path().join("systemctl.calls");
    // A stand-in systemctl that records its arguments: no real user manager is touched.
    let fake = bin.join("systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config_home = dir.path().join("config");
    let ctl = |action: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pairtunctl"));
        cmd.args(["service", action])
            .env("PATH", &path)
            .env("XDG_CONFIG_HOME", &config_home);
        crate::support::process::run_with_timeout(&mut cmd, Duration::from_secs(20))
    };

    let out = ctl("install");
    assert!(out.status.success(), "{out:?}");
    let unit = std::fs::read_to_string(config_home.join("systemd/user/pairtund.service")).unwrap();
    let daemon = std::fs::canonicalize(env!("CARGO_BIN_EXE_pairtund")).unwrap();
    assert!(
        unit.contains(&format!("\nExecStart={}\n", daemon.display())),
        "{unit}"
    );
    let recorded = std::fs::read_to_string(&calls).unwrap();
    assert!(
        recorded.contains("--user daemon-reload")
            && recorded.contains("--user enable --now pairtund.service"),
        "{recorded}"
    );

    let out = ctl("uninstall");
    assert!(out.status.success(), "{out:?}");
    assert!(!config_home.join("systemd/user/pairtund.service").exists());
    assert!(
        std::fs::read_to_string(&calls)
            .unwrap()
            .contains("--user disable --now pairtund.service")
    );
}

#[test]
fn man_pages_and_completions_come_from_the_clap_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pairtunctl"));
        cmd.args(args);
        crate::support::process::run_with_timeout(&mut cmd, Duration::from_secs(20))
    };
    assert!(run(&["man", dir.path().to_str().unwrap()]).status.success());
    for page in ["pairtund.1", "pairtunctl.1", "pairtunctl-status.1"] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    assert!(
        std::fs::read_to_string(dir.path().join("pairtund.1"))
            .unwrap()
            .contains("socket")
    );
    let bash = run(&["completions", "bash"]);
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_pairtunctl()"));
    let zsh = run(&["completions", "zsh", "--binary", "pairtund"]);
    assert!(String::from_utf8_lossy(&zsh.stdout).contains("#compdef pairtund"));
}

/// Under systemd, stderr is the journal: pairtund must send structured entries (TUNNEL=,
/// STATE=, ERROR_CLASS=) instead of text. The test plays journald: in a private mount
/// namespace its own directory is `/run/systemd`, so `/run/systemd/journal/socket` is a
/// datagram socket the test owns; JOURNAL_STREAM names the stderr pipe given to the daemon.
#[test]
fn under_systemd_logs_go_to_the_journal_with_fields() {
    if !nix::unistd::geteuid().is_root()
        || std::process::Command::new("unshare")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("skipping: needs root and unshare for a private /run/systemd");
        return;
    }
    use std::os::fd::AsFd;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("journal")).unwrap();
    let journal = UnixDatagram::bind(dir.path().join("journal/socket")).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[tunnels.down]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"nobody\"\nagent_socket = \"\"\nlocal = [\"{}:localhost:22\"]\n",
            crate::support::sshd::free_port()
        ),
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let stat = nix::sys::stat::fstat(reader.as_fd()).unwrap();
    let mut child = std::process::Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" /run/systemd && exec \"$2\" --config \"$3\" --socket \"$4\"",
            "sh",
        ])
        .arg(dir.path())
        .arg(env!("CARGO_BIN_EXE_pairtund"))
        .arg(&config)
        .arg(dir.path().join("run").join("pairtund.sock"))
        .env("JOURNAL_STREAM", format!("{}:{}", stat.st_dev, stat.st_ino))
        .stderr(writer)
        .spawn()
        .expect("unshare");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = vec![0u8; 65536];
    let mut entries = Vec::new();
    let found = loop {
        if Instant::now() > deadline {
            break None;
        }
        if let Ok(n) = journal.recv(&mut buf) {
            let entry = journal_fields(&buf[..n]);
            let field = |k: &str| {
                entry
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
            };
            if field("TUNNEL") == Some("down") && field("STATE") == Some("backoff") {
                break Some(entry);
            }
            entries.push(entry);
        }
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    let _ = child.wait();
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut { reader }, &mut stderr);
    let entry = found.unwrap_or_else(|| {
        panic!("no TUNNEL=down STATE=backoff entry; got {entries:?}\nstderr: {stderr}")
    });
    let has = |k: &str, v: &str| entry.iter().any(|(key, value)| key == k && value == v);
    assert!(has("ERROR_CLASS", "network"), "{entry:?}");
    assert!(has("PRIORITY", "4"), "a backoff is a warning: {entry:?}");
    assert!(has("SYSLOG_IDENTIFIER", "pairtund"), "{entry:?}");
    assert!(
        stderr.is_empty(),
        "logs went to stderr instead of the journal: {stderr}"
    );
}

/// Decodes journald's native datagram format: `KEY=value\n`, or for values that may contain
/// newlines `KEY\n` + 64-bit little-endian length + value + `\n`.
fn journal_fields(mut data: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while let Some(end) = data.iter().position(|b| *b == b'\n' || *b == b'=') {
        let key = String::from_utf8_lossy(&data[..end]).into_owned();
        if data[end] == b'=' {
            let rest = &data[end + 1..];
            let stop = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            fields.push((key, String::from_utf8_lossy(&rest[..stop]).into_owned()));
            data = rest.get(stop + 1..).unwrap_or_default();
        } else {
            let rest = &data[end + 1..];
            let Some(len) = rest
                .get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
            else {
                break;
            };
            let Some(value) = rest.get(8..8 + len) else {
                break;
            };
            fields.push((key, String::from_utf8_lossy(value).into_owned()));
            data = rest.get(8 + len + 1..).unwrap_or_default();
        }
    }
    fields
}

//! Issue 3 with the real binaries: the control socket's security and robustness, pairtunctl's
//! commands and exit codes, persistence of `add`/`drop`, reload as a pure diff, and shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::binary::{Pairtund, pairtunctl};
use crate::harness::{Relay, local_spec, write_config};
use crate::support::echo::{EchoServer, roundtrip};
use crate::support::sshd::free_port;
use crate::support::wait;

const WITHIN: Duration = Duration::from_secs(20);

pub(crate) fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `status --json` of tunnel `name`, parsed.
pub(crate) fn status_json(d: &Pairtund, name: &str) -> serde_json::Value {
    let out = d.ctl(&["--json", "status", name]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("status --json is JSON");
    v["tunnels"][0].clone()
}

pub(crate) fn wait_state(d: &Pairtund, name: &str, state: &str) -> serde_json::Value {
    wait::until_some(&format!("{name} {state}"), WITHIN, || {
        let t = status_json(d, name);
        (t["state"] == state).then_some(t)
    })
}

/// A daemon with one tunnel `t` forwarding a fresh port to an echo server.
struct Setup {
    relay: Relay,
    echo: EchoServer,
    port: u16,
    daemon: Pairtund,
}

fn setup() -> Option<Setup> {
    setup_with("")
}

/// [`setup`] with extra `[defaults]` lines.
fn setup_with(defaults_extra: &str) -> Option<Setup> {
    let relay = Relay::start(&[])?;
    let echo = EchoServer::start();
    let port = free_port();
    // Defaults let tunnels added at run time reach the test relay too.
    let defaults = format!(
        "[defaults]\nknown_hosts = {:?}\nidentity_files = [{:?}]\nagent_socket = \"\"\n{defaults_extra}\n",
        relay.known_hosts().display().to_string(),
        relay.key.private_path().display().to_string()
    );
    let tunnel = relay.tunnel("t", vec![local_spec(port, echo.port())], vec![]);
    let toml = format!("# my pairing tunnels\n{defaults}{tunnel}");
    let config = write_config(relay.dir.path(), &toml);
    let daemon = Pairtund::start(&config);
    daemon.wait_ready();
    Some(Setup {
        relay,
        echo,
        port,
        daemon,
    })
}

#[test]
fn status_json_has_the_documented_shape() {
    let Some(s) = setup() else { return };
    let t = wait_state(&s.daemon, "t", "up");
    for key in [
        "name",
        "state",
        "since",
        "session",
        "forwards",
        "connections",
        "bytes_in",
        "bytes_out",
        "rtt_ms",
        "last_error",
    ] {
        assert!(t.get(key).is_some(), "missing {key} in {t}");
    }
    assert_eq!(t["session"], 1);
    assert_eq!(t["forwards"][0]["kind"], "local");
    assert_eq!(t["forwards"][0]["state"], "up");
    assert!(
        humantime::parse_rfc3339_weak(t["since"].as_str().unwrap()).is_ok(),
        "{t}"
    );
    let human = s.daemon.ctl(&["status"]);
    assert_eq!(human.status.code(), Some(0));
    assert!(
        stdout(&human).contains('t') && stdout(&human).contains("up"),
        "{}",
        stdout(&human)
    );
    let logs = s.daemon.ctl(&["logs", "t"]);
    assert_eq!(logs.status.code(), Some(0), "{logs:?}");
    assert!(
        stdout(&logs).contains("up"),
        "state changes are in the event log: {}",
        stdout(&logs)
    );
}

#[test]
fn exit_codes_follow_the_spec() {
    let Some(s) = setup() else { return };
    let unknown = s.daemon.ctl(&["up", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(stderr(&unknown).contains("nosuch"));
    let usage = s.daemon.ctl(&["frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let missing = pairtunctl(&dir.path().join("none.sock"), &["status"]);
    assert_eq!(missing.status.code(), Some(3), "{missing:?}");
    assert!(
        stderr(&missing).contains("pairtund"),
        "a hint how to start it: {}",
        stderr(&missing)
    );
    assert_eq!(s.daemon.ctl(&["ping"]).status.code(), Some(0));
}

#[test]
fn up_wait_ends_when_up_or_says_why_a_new_attempt_failed() {
    let Some(mut s) = setup() else { return };
    let up = s.daemon.ctl(&["up", "t", "--wait=20s"]);
    assert_eq!(up.status.code(), Some(0), "{up:?}");
    assert_eq!(status_json(&s.daemon, "t")["state"], "up");

    // The relay comes back with another host key: a failure pairtund does not retry.
    s.relay.sshd.regenerate_host_key();
    s.relay.sshd.restart();
    let before = wait_state(&s.daemon, "t", "failed");
    let failed = s.daemon.ctl(&["--json", "up", "t", "--wait=20s"]);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let lines: Vec<serde_json::Value> = stdout(&failed)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let (last, statuses) = lines.split_last().expect("a reply");
    assert_eq!(last["reply"], "error", "{lines:?}");
    assert_eq!(
        last["kind"], "tunnel-failed",
        "not the daemon's own fault: {lines:?}"
    );
    assert!(
        last["message"].as_str().unwrap().contains("CHANGED"),
        "the message is the tunnel's error: {lines:?}"
    );
    assert!(stderr(&failed).contains("CHANGED"), "{failed:?}");
    // The answer is a new attempt's, not the failure `up` found.
    let answered = &statuses.last().expect("status lines")["tunnels"][0];
    assert_eq!(answered["state"], "failed", "{lines:?}");
    assert_ne!(
        answered["since"], before["since"],
        "stale failure: {lines:?}"
    );
}

#[test]
fn socket_is_private_and_a_second_daemon_is_refused() {
    let Some(s) = setup() else { return };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.daemon.socket), 0o600);
    assert_eq!(mode(s.daemon.socket.parent().unwrap()), 0o700);
    let mut second = Pairtund::start_on(&s.relay.dir.path().join("config.toml"), &s.daemon.socket);
    let status = second.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    wait::until("the refusal message", Duration::from_secs(5), || {
        second.log().contains("already running")
    });
    assert_eq!(
        s.daemon.ctl(&["ping"]).status.code(),
        Some(0),
        "the first daemon still serves"
    );
}

#[test]
fn stale_socket_from_a_crashed_daemon_is_replaced() {
    let Some(mut s) = setup() else { return };
    s.daemon.signal(Signal::SIGKILL);
    s.daemon.wait_exit(Duration::from_secs(10));
    assert!(
        s.daemon.socket.exists(),
        "a crash leaves the socket file behind"
    );
    let next = Pairtund::start_on(&s.relay.dir.path().join("config.toml"), &s.daemon.socket);
    next.wait_ready();
    assert_eq!(next.ctl(&["ping"]).status.code(), Some(0));
}

#[test]
fn another_uid_is_refused_and_logged() {
    let Some(s) = setup() else { return };
    if !nix::unistd::geteuid().is_root()
        || std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("skipping: needs root and setpriv to act as another uid");
        return;
    }
    // Open the directory and socket up, as a careless admin might: the uid check must still hold.
    let dir = s.daemon.socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&s.daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_pairtunctl"),
        "--socket",
    ])
    .arg(&s.daemon.socket)
    .arg("ping");
    let out = crate::support::process::run_with_timeout(&mut cmd, Duration::from_secs(20));
    assert_ne!(
        out.status.code(),
        Some(0),
        "another uid was served: {out:?}"
    );
    wait::until("refusal logged", Duration::from_secs(5), || {
        s.daemon.log().contains("65534")
    });
    assert_eq!(s.daemon.ctl(&["ping"]).status.code(), Some(0));
}

/// Reads the greeting, sends `line`, returns the first reply line (or "" on close).
fn exchange(socket: &std::path::Path, line: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(
        greeting.contains("\"protocol\":1"),
        "greeting first: {greeting}"
    );
    let _ = stream.write_all(line);
    let mut reply = String::new();
    let _ = reader.read_line(&mut reply);
    reply
}

#[test]
fn hostile_input_gets_errors_and_the_daemon_keeps_serving() {
    let Some(s) = setup() else { return };
    let socket = &s.daemon.socket;
    assert!(exchange(socket, b"this is not json\n").contains("bad-request"));
    assert!(exchange(socket, b"{\"op\":\"status\",\"evil\":1}\n").contains("bad-request"));
    assert!(exchange(socket, b"{\"op\":\"up\",\"name\":\"nosuch\"}\n").contains("unknown-tunnel"));
    let huge = vec![b'x'; 1024 * 1024];
    assert!(exchange(socket, &huge).contains("too-large"));
    // A client that connects and says nothing is closed, not kept forever.
    let mut silent = UnixStream::connect(socket).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = silent.read_to_end(&mut sink);
    assert!(
        String::from_utf8_lossy(&sink).contains("timeout"),
        "{}",
        String::from_utf8_lossy(&sink)
    );
    // Many clients at once.
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || exchange(&socket, b"{\"op\":\"ping\"}\n"))
        })
        .collect();
    let replies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let answered = replies
        .iter()
        .filter(|r| r.contains("pong") || r.contains("busy"))
        .count();
    assert_eq!(answered, 50, "{replies:?}");
    assert_eq!(s.daemon.ctl(&["ping"]).status.code(), Some(0));
    assert!(s.daemon.ctl(&["status"]).status.success());
}

#[test]
fn add_persists_across_restart_and_drop_removes_it() {
    let Some(mut s) = setup() else { return };
    let config = s.relay.dir.path().join("config.toml");
    let port = free_port();
    let relay_port = s.relay.sshd.port().to_string();
    let l = local_spec(port, s.echo.port());
    let add = s.daemon.ctl(&[
        "add",
        "extra",
        "--host",
        "127.0.0.1",
        "--port",
        &relay_port,
        "-L",
        &l,
    ]);
    assert_eq!(add.status.code(), Some(0), "{add:?}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with("# my pairing tunnels\n"),
        "comments kept:\n{text}"
    );
    assert!(text.contains("[tunnels.extra]"), "{text}");
    wait_state(&s.daemon, "extra", "up");
    roundtrip(
        format!("127.0.0.1:{port}").parse().unwrap(),
        b"added",
        Duration::from_secs(5),
    )
    .expect("added tunnel works");

    s.daemon.signal(Signal::SIGTERM);
    assert_eq!(s.daemon.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let next = Pairtund::start(&config);
    next.wait_ready();
    assert!(
        status_json(&next, "extra")["name"] == "extra",
        "added tunnel survives a restart"
    );
    assert_eq!(next.ctl(&["drop", "extra"]).status.code(), Some(0));
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains("[tunnels.extra]")
    );
    assert_eq!(next.ctl(&["status", "extra"]).status.code(), Some(1));
    let temp = next.ctl(&[
        "add",
        "tmp",
        "--host",
        "127.0.0.1",
        "--port",
        &relay_port,
        "-L",
        &local_spec(free_port(), 9),
        "--temporary",
    ]);
    assert_eq!(temp.status.code(), Some(0), "{temp:?}");
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains("[tunnels.tmp]"),
        "--temporary is not written"
    );
    assert_eq!(next.ctl(&["reload"]).status.code(), Some(0));
    assert_eq!(
        status_json(&next, "tmp")["name"],
        "tmp",
        "temporary tunnels survive a reload"
    );
}

#[test]
fn reload_keeps_unchanged_sessions_and_rejects_a_bad_file() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = relay.tunnel("a", vec![local_spec(pa, echo.port())], vec![]);
    let b = relay.tunnel("b", vec![local_spec(pb, echo.port())], vec![]);
    let config = write_config(relay.dir.path(), &format!("{a}{b}"));
    let d = Pairtund::start(&config);
    d.wait_ready();
    wait_state(&d, "a", "up");
    wait_state(&d, "b", "up");
    let connections_before = relay.sshd.count_log("Accepted publickey");

    // b changes, a does not.
    let b2 = relay.tunnel("b", vec![local_spec(pc, echo.port())], vec![]);
    std::fs::write(&config, format!("{a}{b2}")).unwrap();
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    wait_state(&d, "b", "up");
    let a_after = status_json(&d, "a");
    assert_eq!(
        a_after["session"], 1,
        "unchanged tunnel kept its session: {a_after}"
    );
    assert_eq!(
        relay.sshd.count_log("Accepted publickey"),
        connections_before + 1,
        "only b reconnected"
    );
    roundtrip(
        format!("127.0.0.1:{pc}").parse().unwrap(),
        b"moved",
        Duration::from_secs(5),
    )
    .expect("b on its new port");

    // An invalid file changes nothing and the error names line and column.
    std::fs::write(&config, format!("{a}[tunnels.b]\nhost = 5\n")).unwrap();
    let bad = d.ctl(&["reload"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains(&format!("{}:", config.display())),
        "{}",
        stderr(&bad)
    );
    assert_eq!(status_json(&d, "b")["state"], "up");

    // SIGHUP reloads too.
    std::fs::write(&config, a.clone()).unwrap();
    d.signal(Signal::SIGHUP);
    wait::until("b removed by SIGHUP", WITHIN, || {
        d.ctl(&["status", "b"]).status.code() == Some(1)
    });
    assert_eq!(status_json(&d, "a")["session"], 1);
}

/// Once `t` is up, a connection through it that has carried one round trip.
fn live_connection(s: &Setup) -> std::net::TcpStream {
    wait_state(&s.daemon, "t", "up");
    let mut live = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    live.write_all(b"one").unwrap();
    let mut buf = [0u8; 3];
    live.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"one");
    live
}

#[test]
fn sigterm_lets_live_connections_finish_and_removes_the_socket() {
    let Some(mut s) = setup() else { return };
    let mut live = live_connection(&s);
    let mut buf = [0u8; 3];
    s.daemon.signal(Signal::SIGTERM);
    wait::until("listener closed", Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err()
    });
    // The accepted connection still works during the grace period.
    live.write_all(b"two").unwrap();
    live.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"two");
    drop(live);
    assert_eq!(s.daemon.wait_exit(Duration::from_secs(15)).code(), Some(0));
    assert!(!s.daemon.socket.exists(), "socket removed at exit");
}

/// `drop` answers once the tunnel is stopped and gone, while its live connections finish
/// their grace period behind it: a grace longer than a request may take (10 s) used to make
/// `drop` fail with `timeout` although it had done its work.
#[test]
fn drop_answers_without_waiting_out_a_long_grace() {
    let Some(s) = setup_with("shutdown_grace = \"30s\"") else {
        return;
    };
    let mut live = live_connection(&s);
    let mut buf = [0u8; 3];
    let dropped = s.daemon.ctl(&["drop", "t", "--temporary"]);
    assert_eq!(dropped.status.code(), Some(0), "{}", stderr(&dropped));
    assert_eq!(
        s.daemon.ctl(&["status", "t"]).status.code(),
        Some(1),
        "t is gone"
    );
    // The live connection still works in its grace period.
    live.write_all(b"two").unwrap();
    live.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"two");
}

#[test]
fn a_second_signal_exits_at_once() {
    let Some(mut s) = setup() else { return };
    wait_state(&s.daemon, "t", "up");
    let mut live = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    live.write_all(b"hold").unwrap();
    let mut buf = [0u8; 4];
    live.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    live.read_exact(&mut buf).unwrap();
    s.daemon.signal(Signal::SIGTERM);
    wait::until("draining", Duration::from_secs(5), || {
        s.daemon.log().contains("waiting for live connections")
    });
    s.daemon.signal(Signal::SIGTERM);
    // The grace period is 5 s and the connection is still open: only the second signal can
    // make it exit this soon.
    let status = s.daemon.wait_exit(Duration::from_secs(3));
    assert_ne!(
        status.code(),
        Some(0),
        "exited through the grace period instead"
    );
    assert!(!s.daemon.socket.exists(), "socket removed at exit");
    drop(live);
}

/// `up --wait` ends as soon as someone else runs `down` (it used to wait out its whole
/// `--wait`), and `logs` of a name that is no tunnel says so (it printed nothing and, with
/// `-f`, waited forever).
#[test]
fn up_wait_ends_at_a_down_and_logs_of_an_unknown_name_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let toml = format!(
        "[defaults]\nagent_socket = \"\"\nbackoff = {{ initial = \"1m\", max = \"1m\" }}\n\
         [tunnels.t]\nhost = \"127.0.0.1\"\nport = {closed}\nuser = \"nobody\"\n\
         autostart = false\nlocal = [\"127.0.0.1:{}:localhost:22\"]\n",
        free_port()
    );
    let config = write_config(dir.path(), &toml);
    let d = Pairtund::start(&config);
    d.wait_ready();

    let mut waiting = std::process::Command::new(env!("CARGO_BIN_EXE_pairtunctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["up", "t", "--wait=60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_state(&d, "t", "backoff");
    let down = d.ctl(&["down", "t"]);
    assert!(down.status.success(), "{down:?}");
    let ended = wait::until_some("up --wait ended", Duration::from_secs(10), || {
        waiting.try_wait().unwrap()
    });
    let out = waiting.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(ended.code(), Some(1), "{err}");
    assert!(err.contains("stopped (`down`) while waiting"), "{err}");

    for args in [&["logs", "nosuch"][..], &["logs", "-f", "nosuch"]] {
        let logs = d.ctl(args);
        assert_eq!(logs.status.code(), Some(1), "{args:?}: {logs:?}");
        assert!(
            stderr(&logs).contains("no tunnel named `nosuch`"),
            "{logs:?}"
        );
    }
    let known = d.ctl(&["logs", "t"]);
    assert_eq!(known.status.code(), Some(0), "{known:?}");
}

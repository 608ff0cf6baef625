//! Bounded resources (issue 8): floods at a local forward and at the control socket leave the
//! daemon's descriptors and memory bounded by its limits, and running out of descriptors
//! pauses accepting instead of spinning. Measured on the real `pairtund` through /proc.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::binary::Pairtund;
use crate::control::{status_json, wait_state};
use crate::harness::{Relay, local_spec, write_config};
use crate::support::echo::{EchoServer, roundtrip};
use crate::support::procfs::{descriptors_for, usage};
use crate::support::sshd::free_port;
use crate::support::wait;

const WITHIN: Duration = Duration::from_secs(20);
/// The acceptance bound for `pairtunctl status` under a flood (issue 8).
const STATUS_WITHIN: Duration = Duration::from_secs(1);
/// Descriptors the daemon may open beyond its limits and its idle baseline (a reconnect's
/// socket, a log or control connection in flight).
const FD_SLACK: usize = 32;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `n` connections to `port`, held open.
fn connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| TcpStream::connect(addr(port)).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect()
}

/// `pairtunctl status` succeeds within [`STATUS_WITHIN`].
fn assert_status_answers_quickly(d: &Pairtund) {
    let started = Instant::now();
    let out = d.ctl(&["status"]);
    let took = started.elapsed();
    eprintln!("status answered in {took:?}");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(took < STATUS_WITHIN, "status took {took:?}");
}

/// Whether the peer has closed nonblocking `stream` (it has not sent anything).
fn closed(mut stream: &TcpStream) -> bool {
    matches!(stream.read(&mut [0; 1]), Ok(0))
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_flood_at_a_local_forward_is_held_to_its_connection_limit() {
    const LIMIT: usize = 200;
    const FLOOD: usize = 5000;
    if !descriptors_for(FLOOD as u64 + 1024) {
        return;
    }
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let (flooded, other) = (free_port(), free_port());
    let limit = format!("max_connections = {LIMIT}\n");
    let port = relay.sshd.port();
    let toml = [
        relay.tunnel_via(
            "flooded",
            port,
            vec![local_spec(flooded, echo.port())],
            vec![],
            &limit,
        ),
        relay.tunnel("other", vec![local_spec(other, echo.port())], vec![]),
    ]
    .concat();
    let d = Pairtund::start(&write_config(relay.dir.path(), &toml));
    d.wait_ready();
    wait_state(&d, "flooded", "up");
    wait_state(&d, "other", "up");
    let before = usage(d.pid());

    let started = Instant::now();
    let held = connections(flooded, FLOOD);
    eprintln!("{FLOOD} connects took {:?}", started.elapsed());
    // LIMIT are served; every other one is closed as soon as the daemon accepts it.
    for stream in &held {
        stream.set_nonblocking(true).unwrap();
    }
    wait::until("all but the served connections closed", WITHIN, || {
        held.iter().filter(|s| closed(s)).count() == FLOOD - LIMIT
    });
    wait::until("the served connections live", WITHIN, || {
        status_json(&d, "flooded")["connections"] == LIMIT
    });
    let flooded_status = status_json(&d, "flooded");
    let during = usage(d.pid());
    eprintln!("{FLOOD} connections at a limit of {LIMIT}: {before:?} → {during:?}");
    assert!(
        during.fds <= before.fds + LIMIT + FD_SLACK,
        "{FLOOD} connections at a limit of {LIMIT}: {before:?} → {during:?}"
    );
    // An idle connection costs about 30 KiB (a task, an SSH channel, small buffers).
    let per_connection_kib = 128;
    assert!(
        during.rss_kib <= before.rss_kib + (LIMIT as u64) * per_connection_kib,
        "memory grew from {before:?} to {during:?}"
    );
    roundtrip(addr(other), b"still here", Duration::from_secs(5)).expect("the other tunnel");
    assert_status_answers_quickly(&d);
    let log = d.log();
    let reached = format!("connection limit ({LIMIT}) reached");
    assert_eq!(count(&log, &reached), 1, "one log line per burst:\n{log}");
    assert!(
        flooded_status["forwards"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&reached)),
        "status shows the limit: {flooded_status}"
    );

    drop(held);
    wait::until("the flood's connections closed", WITHIN, || {
        status_json(&d, "flooded")["connections"] == 0
    });
    roundtrip(addr(flooded), b"served again", Duration::from_secs(5)).expect("after the flood");
    let refused = format!("refused={}", FLOOD - LIMIT);
    wait::until("the burst's end logged", WITHIN, || {
        d.log()
            .lines()
            .any(|l| l.contains("back under the connection limit") && l.contains(&refused))
    });
}

#[test]
fn a_flood_of_idle_control_connections_cannot_lock_out_status() {
    const FLOOD: usize = 1000;
    /// pairtund's default `--control-connections`.
    const CONTROL_LIMIT: usize = 64;
    if !descriptors_for(FLOOD as u64 + 1024) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A tunnel that never connects on its own: this test is about the control socket.
    let toml = format!(
        "[tunnels.t]\nhost = \"127.0.0.1\"\nport = {}\nautostart = false\nagent_socket = \"\"\n\
         identity_files = []\nknown_hosts = {:?}\nlocal = [{:?}]\n",
        free_port(),
        dir.path().join("known_hosts").display().to_string(),
        local_spec(free_port(), free_port()),
    );
    let d = Pairtund::start(&write_config(dir.path(), &toml));
    d.wait_ready();
    let mut watch = Watch::start(&d);
    let before = usage(d.pid());

    let flood: Vec<UnixStream> = (0..FLOOD)
        .map(|i| UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    assert_status_answers_quickly(&d);
    let bound = before.fds + CONTROL_LIMIT + FD_SLACK;
    wait::until("evicted connections closed", WITHIN, || {
        usage(d.pid()).fds <= bound
    });
    eprintln!(
        "{FLOOD} control connections: {before:?} → {:?}",
        usage(d.pid())
    );
    // The longest-idle were evicted; a stream is never idle, so the watch survived.
    let closed = flood.iter().filter(|s| closed_by_daemon(s)).count();
    assert!(closed >= FLOOD - CONTROL_LIMIT, "only {closed} evicted");
    assert_eq!(d.ctl(&["up", "t"]).status.code(), Some(0));
    assert!(watch.next().contains("\"status\""), "watch still streams");
}

/// Whether the daemon has closed `stream` (after its `busy` goodbye), without blocking on one
/// it still holds.
fn closed_by_daemon(stream: &UnixStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut all = Vec::new();
    let mut reader = stream;
    let ended = reader.read_to_end(&mut all).is_ok();
    ended && String::from_utf8_lossy(&all).contains("busy")
}

/// A raw `watch` stream on the control socket.
struct Watch(BufReader<UnixStream>);

impl Watch {
    /// Connects, asks for `watch` and reads the first report.
    fn start(d: &Pairtund) -> Watch {
        let stream = UnixStream::connect(&d.socket).expect("connect");
        stream.set_read_timeout(Some(WITHIN)).unwrap();
        let mut watch = Watch(BufReader::new(stream));
        assert!(watch.next().contains("hello"));
        watch
            .0
            .get_mut()
            .write_all(b"{\"op\":\"watch\"}\n")
            .unwrap();
        assert!(watch.next().contains("\"status\""));
        watch
    }

    /// The next line; panics on end of stream or after [`WITHIN`].
    fn next(&mut self) -> String {
        let mut line = String::new();
        let n = self.0.read_line(&mut line).expect("a line in time");
        assert!(n > 0, "stream closed");
        line
    }
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning() {
    /// Enough for the daemon's own needs, few enough to run out after a few dozen clients.
    const NOFILE: usize = 64;
    /// A loop that retried at once would burn the whole window; the back-off costs a handful
    /// of ticks (10 ms each), keepalives and logging included.
    const MAX_TICKS: u64 = 20;
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let port = free_port();
    let spec = local_spec(port, echo.port());
    let config = write_config(
        relay.dir.path(),
        &relay.tunnel("t", vec![spec.clone()], vec![]),
    );
    let nofile = format!("--nofile={NOFILE}:{NOFILE}");
    let d = Pairtund::start_wrapped(&["prlimit", &nofile, "--"], &config);
    d.wait_ready();
    wait_state(&d, "t", "up");
    // Lines about one listener: the forward, or the control socket.
    let lines = |listener: &str, what: &str| {
        let listener = format!("listener={listener}");
        d.log()
            .lines()
            .filter(|l| l.contains(&listener) && l.contains(what))
            .count()
    };
    let listeners = [spec.as_str(), "control socket"];
    let idle = usage(d.pid()).fds;
    for episode in 1..=2 {
        let held = connections(port, NOFILE);
        wait::until("forward: accept failing", WITHIN, || {
            lines(&spec, "Too many open files") == episode
        });
        // Queued at the control socket, which cannot accept it either now.
        let control = UnixStream::connect(&d.socket).expect("control connect");
        wait::until("control socket: accept failing", WITHIN, || {
            lines("control socket", "Too many open files") == episode
        });
        let before = usage(d.pid());
        // The measurement window: time must pass for a busy loop to show.
        std::thread::sleep(Duration::from_secs(2));
        let after = usage(d.pid());
        eprintln!("out of descriptors for 2 s: {before:?} → {after:?}");
        let ticks = after.cpu_ticks - before.cpu_ticks;
        assert!(
            ticks < MAX_TICKS,
            "{ticks} ticks of CPU in 2 s while out of descriptors"
        );
        for listener in listeners {
            let logged = lines(listener, "Too many open files");
            assert_eq!(
                logged,
                episode,
                "{listener}: once per episode:\n{}",
                d.log()
            );
        }

        drop((held, control));
        for listener in listeners {
            wait::until(&format!("{listener}: accepting again"), WITHIN, || {
                lines(listener, "accepting again") == episode
            });
        }
        roundtrip(addr(port), b"served again", Duration::from_secs(5)).expect("after release");
        assert_eq!(
            d.ctl(&["status"]).status.code(),
            Some(0),
            "control served again"
        );
        // Every released connection closed, so the next episode starts from scratch.
        wait::until("descriptors back to idle", WITHIN, || {
            usage(d.pid()).fds <= idle
        });
    }
}

/// A forwarded port on the relay is open to every user of the relay host: `-R` connections
/// are held to `max_connections` too (they were unbounded), the one over the limit refused by
/// the relay's channel open, and a freed slot takes the next.
#[test]
fn remote_forward_connections_are_held_to_the_connection_limit() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let remote = free_port();
    let toml = relay.tunnel_via(
        "r",
        relay.sshd.port(),
        vec![],
        vec![format!("{remote}:127.0.0.1:{}", echo.port())],
        "max_connections = 2\n",
    );
    let d = Pairtund::start(&write_config(relay.dir.path(), &toml));
    d.wait_ready();
    wait_state(&d, "r", "up");
    let mut held = connections(remote, 2);
    for c in &mut held {
        c.set_read_timeout(Some(WITHIN)).unwrap();
        echo_on(c, b"held");
    }
    // The third is accepted by sshd, whose channel open pairtund refuses: sshd closes it.
    let third = TcpStream::connect(addr(remote)).unwrap();
    third.set_read_timeout(Some(WITHIN)).unwrap();
    assert!(closed(&third), "a third connection was carried");
    for c in &mut held {
        echo_on(c, b"still");
    }
    assert_eq!(count(&d.log(), "max_connections reached"), 1, "{}", d.log());
    drop(held.pop());
    let mut next = wait::until_some("a freed slot", WITHIN, || {
        let mut c = TcpStream::connect(addr(remote)).ok()?;
        c.set_read_timeout(Some(WITHIN)).unwrap();
        c.write_all(b"x").ok()?;
        let mut b = [0u8; 1];
        (c.read(&mut b).ok()? == 1).then_some(c)
    });
    echo_on(&mut next, b"next");
}

/// Sends `msg` on `stream` and reads it back.
fn echo_on(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

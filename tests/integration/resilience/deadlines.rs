//! Every blocking step of a connect has a deadline (SPEC §4): a name server that never
//! answers, a relay that never sends its banner, and one that stalls mid-authentication all
//! end in `backoff` with the phase named, after `connect_timeout` (5 s in harness::FAST).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pairtun::error::ErrorClass;
use pairtun::tunnel::TunnelState;

use crate::binary::pairtunctl;
use crate::harness::{TunnelToml, local_spec, start_daemon, wait_for, write_config};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::process::terminate_tree;
use crate::support::sshd::free_port;
use crate::support::stall_relay;
use crate::support::wait;

/// harness::FAST's connect_timeout, less scheduling slack.
const AT_LEAST: Duration = Duration::from_millis(4_500);

/// A tunnel to 127.0.0.1:`port` with identity `key`, trusting what `kh` says.
fn tunnel(name: &str, port: u16, key: &Path, kh: &Path) -> String {
    TunnelToml {
        name,
        port,
        key,
        known_hosts: kh,
        local: vec![local_spec(free_port(), 9)],
        remote: vec![],
        extra: "",
    }
    .render()
}

/// Runs an in-process daemon on `toml` and asserts it ends in `backoff` with a timeout
/// naming `phase`, no sooner than the deadline.
async fn assert_times_out_in(dir: &Path, name: &str, toml: &str, phase: &str) {
    let started = Instant::now();
    let daemon = start_daemon(dir, toml);
    let p = wait_for(&daemon, name, Duration::from_secs(8), "backoff", |p| {
        p.state == TunnelState::Backoff
    })
    .await;
    let took = started.elapsed();
    let error = p.last_error.expect("an error");
    assert_eq!(error.class, ErrorClass::Timeout, "{error:?}");
    assert!(error.message.contains(phase), "{}", error.message);
    assert!(took >= AT_LEAST, "gave up early: {took:?}");
    eprintln!("{name}: backoff after {took:?}: {}", error.message);
    daemon.shutdown().await;
}

/// A relay that accepts TCP and never sends its banner: the handshake deadline fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_relay_times_out_in_the_ssh_handshake() {
    // Never accepted: the kernel completes the TCP handshake from the backlog, no banner follows.
    let mute = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, kh) = (dir.path().join("no-key"), dir.path().join("known_hosts"));
    let toml = tunnel("mute", mute.local_addr().unwrap().port(), &key, &kh);
    assert_times_out_in(dir.path(), "mute", &toml, "SSH handshake").await;
}

/// Key exchange completes, then the relay never answers the authentication request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_stalling_mid_auth_times_out_in_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let relay = stall_relay::stalling(dir.path());
    let key = KeyPair::generate(dir.path(), "client", KeyKind::Ed25519);
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, relay.known_hosts_line() + "\n").unwrap();
    let toml = tunnel("stall", relay.port(), key.private_path(), &kh);
    assert_times_out_in(dir.path(), "stall", &toml, "authentication").await;
}

/// `pairtund` in a private network and mount namespace whose only name server (127.0.0.1:53,
/// a socket that reads and never answers) is the one in its `/etc/resolv.conf`.
struct MuteResolver {
    child: Child,
    socket: std::path::PathBuf,
}

impl MuteResolver {
    /// `None` when namespaces cannot be made here (needs root, unshare, ip, socat).
    fn start(dir: &Path, config: &Path) -> Option<MuteResolver> {
        let tools = ["unshare", "ip", "socat"];
        if !nix::unistd::geteuid().is_root()
            || tools
                .iter()
                .any(|t| Command::new(t).arg("-V").output().is_err())
        {
            return None;
        }
        let resolv = dir.join("resolv.conf");
        std::fs::write(
            &resolv,
            "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n",
        )
        .ok()?;
        let socket = dir.join("run").join("pairtund.sock");
        let script = r#"
            ip link set lo up && mount --bind "$1" /etc/resolv.conf || exit 97
            socat -u UDP-RECV:53,bind=127.0.0.1 /dev/null & dns=$!
            # Bound before pairtund asks (else the query is refused at once, not swallowed).
            for _ in $(seq 100); do ss -Huln 'sport = :53' | grep -q . && break; sleep 0.05; done
            "$2" --config "$3" --socket "$4"; status=$?
            kill $dns; exit $status
        "#;
        let child = Command::new("unshare")
            .args(["--mount", "--net", "sh", "-c", script, "sh"])
            .arg(&resolv)
            .arg(env!("CARGO_BIN_EXE_pairtund"))
            .arg(config)
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(MuteResolver { child, socket })
    }
}

impl Drop for MuteResolver {
    fn drop(&mut self) {
        terminate_tree(&mut self.child);
    }
}

/// The relay's name never resolves (the query is swallowed): the DNS deadline fires.
#[test]
fn unanswered_dns_times_out_in_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let (key, kh) = (dir.path().join("no-key"), dir.path().join("known_hosts"));
    // Only this test's namespace can answer for the name (and nothing does).
    let toml = tunnel("dns", 22, &key, &kh)
        .replace("host = \"127.0.0.1\"", "host = \"relay.pairtun.test\"");
    let config = write_config(dir.path(), &toml);
    let started = Instant::now();
    let Some(daemon) = MuteResolver::start(dir.path(), &config) else {
        eprintln!("skipping: needs root, unshare, ip and socat for a private resolver");
        return;
    };
    let error = wait::until_some("backoff with an error", Duration::from_secs(10), || {
        let out = pairtunctl(&daemon.socket, &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let tunnel = &status["tunnels"][0];
        (tunnel["state"] == "backoff").then(|| tunnel["last_error"].clone())
    });
    let took = started.elapsed();
    assert_eq!(error["class"], "timeout", "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("DNS lookup"), "{message}");
    assert!(took >= AT_LEAST, "gave up early: {took:?}");
    eprintln!("dns: backoff after {took:?}: {message}");
}

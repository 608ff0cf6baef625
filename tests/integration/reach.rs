//! Reaching relays the way people already use SSH (issue 6), against a real sshd on loopback:
//! a `~/.ssh/config` alias, `pairtunctl import`, `-D` SOCKS forwards (curl and raw SOCKS5),
//! ProxyJump with the jump path cut and healed, `doctor`, and pairing (`invite`, peer probe).

use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use pairtun::protocol::TunnelSpec;
use pairtun::tunnel::{Command, ForwardKind, ForwardState, Peer, Published, TunnelState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::binary::{Pairtund, pairtunctl};
use crate::control::{stderr, stdout, wait_state};
use crate::harness::{FAST, Relay, local_spec, start_daemon, wait_for, wait_up, write_config};
use crate::support::echo::{EchoServer, roundtrip, roundtrip_async};
use crate::support::proxy::ChaosProxy;
use crate::support::sshd::{current_user, free_port};
use crate::support::wait;

const UP_WITHIN: Duration = Duration::from_secs(20);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A tunnel table with `host` and `body` as given, the relay's known_hosts and FAST timings.
fn tunnel_toml(relay: &Relay, name: &str, host: &str, body: &str) -> String {
    format!(
        "[tunnels.{name}]\nhost = {host:?}\nknown_hosts = {kh:?}\n{body}\n{FAST}",
        kh = relay.known_hosts().display().to_string(),
    )
}

/// `user`, `port` and `identity_files` for the relay, as tunnel keys.
fn login_keys(relay: &Relay, port: u16) -> String {
    format!(
        "user = {:?}\nport = {port}\nidentity_files = [{:?}]\n",
        current_user(),
        relay.key.private_path().display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_config_alias_supplies_host_name_port_user_and_key() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let ssh_dir = relay.dir.path().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(
        ssh_dir.join("config"),
        format!(
            "Host relay-alias\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
             IdentityFile {key}\n  IdentitiesOnly yes\nHost *\n  Port 1\n  User nobody\n",
            port = relay.sshd.port(),
            user = current_user(),
            key = relay.key.private_path().display(),
        ),
    )
    .unwrap();
    let echo = EchoServer::start();
    let port = free_port();
    let body = format!("local = [{:?}]", local_spec(port, echo.port()));
    let daemon = start_daemon(
        relay.dir.path(),
        &tunnel_toml(&relay, "alias", "relay-alias", &body),
    );
    wait_up(&daemon, "alias", UP_WITHIN).await;
    roundtrip_async(loopback(port), b"through an alias", Duration::from_secs(5))
        .await
        .expect("echo through the alias tunnel");
}

/// A tiny HTTP/1.0 server on 127.0.0.1 answering every request with `body`; stops on Drop.
struct HttpServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    async fn start(body: &'static str) -> HttpServer {
        let listener = TcpListener::bind(loopback(0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = conn.read(&mut request).await;
                    let reply = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        HttpServer { port, task }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs curl through the SOCKS port; its stdout, or its exit code and stderr.
async fn curl(args: Vec<String>) -> Result<String, String> {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10"])
            .args(&args)
            .output()
    })
    .await
    .unwrap()
    .expect("curl is installed (.ci/run: curl)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// SOCKS5 CONNECT by hand: greeting, request for `atyp`/`addr`/`port`; the reply code and,
/// on success, the stream.
async fn socks_connect(proxy: u16, atyp: u8, addr: &[u8], port: u16) -> (u8, TcpStream) {
    let mut s = TcpStream::connect(loopback(proxy)).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0], "no-auth accepted");
    let mut request = vec![5, 1, 0, atyp];
    request.extend_from_slice(addr);
    request.extend_from_slice(&port.to_be_bytes());
    s.write_all(&request).await.unwrap();
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 5);
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        other => panic!("unexpected bound address type {other}"),
    };
    let mut bound = vec![0u8; rest];
    s.read_exact(&mut bound).await.unwrap();
    (head[1], s)
}

/// SOCKS4 (`host` = `None`: 127.0.0.1) or SOCKS4a (`host` named) CONNECT by hand; the reply
/// code (90 granted, 91 rejected) and the stream.
async fn socks4_connect(proxy: u16, host: Option<&str>, port: u16) -> (u8, TcpStream) {
    let mut s = TcpStream::connect(loopback(proxy)).await.unwrap();
    let mut request = vec![4, 1];
    request.extend_from_slice(&port.to_be_bytes());
    match host {
        None => request.extend_from_slice(&[127, 0, 0, 1, b'u', 0]),
        Some(host) => {
            request.extend_from_slice(&[0, 0, 0, 1, b'u', 0]);
            request.extend_from_slice(host.as_bytes());
            request.push(0);
        }
    }
    s.write_all(&request).await.unwrap();
    let mut reply = [0u8; 8];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[0], 0, "SOCKS4 reply version");
    (reply[1], s)
}

/// Writes `msg` and expects it back.
async fn echoes(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks_forward_carries_curl_ipv4_ipv6_socks4a_and_reports_refusals() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let http = HttpServer::start("hello through socks").await;
    let echo = EchoServer::start();
    let socks = free_port();
    let body = format!(
        "{}dynamic = [\"{socks}\"]",
        login_keys(&relay, relay.sshd.port())
    );
    let daemon = start_daemon(
        relay.dir.path(),
        &tunnel_toml(&relay, "socks", "127.0.0.1", &body),
    );
    let up = wait_up(&daemon, "socks", UP_WITHIN).await;
    assert_eq!(up.forwards.len(), 1);
    assert_eq!(
        (up.forwards[0].kind, up.forwards[0].state),
        (ForwardKind::Dynamic, ForwardState::Up)
    );

    // Domain name resolved on the relay (socks5-hostname), then an address resolved here.
    let proxy = format!("127.0.0.1:{socks}");
    let by_name = curl(vec![
        "--socks5-hostname".into(),
        proxy.clone(),
        format!("http://localhost:{}/", http.port),
    ])
    .await;
    assert_eq!(by_name.as_deref(), Ok("hello through socks"));
    let by_addr = curl(vec![
        "--socks5".into(),
        proxy,
        format!("http://127.0.0.1:{}/", http.port),
    ])
    .await;
    assert_eq!(by_addr.as_deref(), Ok("hello through socks"));

    // IPv4 by hand, with data both ways.
    let (code, mut s) = socks_connect(socks, 1, &[127, 0, 0, 1], echo.port()).await;
    assert_eq!(code, 0, "IPv4 CONNECT succeeded");
    echoes(&mut s, b"ping4").await;

    // SOCKS4 and SOCKS4a (host name resolved on the relay), then curl's own SOCKS4a.
    let (code, mut s) = socks4_connect(socks, None, echo.port()).await;
    assert_eq!(code, 90, "SOCKS4 CONNECT granted");
    echoes(&mut s, b"four").await;
    let (code, mut s) = socks4_connect(socks, Some("localhost"), echo.port()).await;
    assert_eq!(code, 90, "SOCKS4a CONNECT granted");
    echoes(&mut s, b"four-a").await;
    let by_4a = curl(vec![
        "--socks4a".into(),
        format!("127.0.0.1:{socks}"),
        format!("http://localhost:{}/", http.port),
    ])
    .await;
    assert_eq!(by_4a.as_deref(), Ok("hello through socks"));

    // IPv6 to a listener on ::1.
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await.unwrap();
    let v6_port = v6.local_addr().unwrap().port();
    let (code, _s) = socks_connect(socks, 4, &Ipv6Addr::LOCALHOST.octets(), v6_port).await;
    assert_eq!(code, 0, "IPv6 CONNECT succeeded");
    let accepted = tokio::time::timeout(Duration::from_secs(5), v6.accept()).await;
    assert!(matches!(accepted, Ok(Ok(_))), "relay connected to [::1]");

    // A closed port: the relay refuses the channel, the client hears "connection refused" (5).
    let closed = free_port();
    let (code, _s) = socks4_connect(socks, None, closed).await;
    assert_eq!(code, 91, "refused target answered with SOCKS4 code 91");
    let (code, _s) = socks_connect(socks, 1, &[127, 0, 0, 1], closed).await;
    assert_eq!(code, 5, "refused target answered with SOCKS code 5");
    let status = wait_for(
        &daemon,
        "socks",
        Duration::from_secs(5),
        "forward error shown",
        |p| p.forwards[0].error.is_some(),
    )
    .await;
    assert_eq!(
        status.state,
        TunnelState::Up,
        "a refused connection keeps the tunnel up"
    );
    let error = status.forwards[0].error.clone().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{closed}")) && error.contains("Connection refused"),
        "error names the target and gives the relay's reason: {error}"
    );
}

/// One sshd plays jump host (reached through a chaos proxy) and target (reached from the
/// jump host directly): cutting the jump path must take the tunnel out of `up` within the
/// keepalive bound, and healing it must bring the tunnel back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_jump_session_is_supervised_with_the_inner_one() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let proxy = ChaosProxy::start(relay.sshd.addr());
    write_known_hosts(
        &relay.known_hosts(),
        &[
            relay.sshd.known_hosts_line(),
            relay.sshd.known_hosts_line_at(proxy.port()),
        ],
    );
    let echo = EchoServer::start();
    let port = free_port();
    let body = format!(
        "{}local = [{:?}]\njump = \"{}@127.0.0.1:{}\"",
        login_keys(&relay, relay.sshd.port()),
        local_spec(port, echo.port()),
        current_user(),
        proxy.port(),
    );
    let daemon = start_daemon(
        relay.dir.path(),
        &tunnel_toml(&relay, "jumped", "127.0.0.1", &body),
    );
    wait_up(&daemon, "jumped", UP_WITHIN).await;
    assert!(
        proxy.connections() >= 1,
        "the session runs through the jump path"
    );
    roundtrip_async(loopback(port), b"via jump", Duration::from_secs(5))
        .await
        .expect("echo through the jump host");

    // FAST: keepalive 1 s × 2 → dead after 3 s of silence; allow scheduling slack.
    proxy.blackhole();
    let lost = wait_for(
        &daemon,
        "jumped",
        Duration::from_secs(8),
        "out of up",
        |p| p.state != TunnelState::Up,
    )
    .await;
    assert_ne!(
        lost.state,
        TunnelState::Failed,
        "a lost jump path is retried"
    );
    proxy.heal();
    let up = wait_up(&daemon, "jumped", UP_WITHIN).await;
    assert!(up.session >= 2, "a new session was established");
    roundtrip_async(loopback(port), b"via jump again", Duration::from_secs(5))
        .await
        .expect("echo after the jump path healed");
}

fn write_known_hosts(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// `pairtunctl import` with the real binaries: both forward forms, one of them in an included
/// file, persisted like `add`, started, and a note for the line OpenSSH itself would reject
/// naming the file it is in.
#[test]
fn import_turns_a_host_block_into_a_running_persisted_tunnel() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let (two_args, colon) = (free_port(), free_port());
    let ssh_config = relay.dir.path().join("ssh_config");
    let included = relay.dir.path().join("ssh_config.pairing");
    std::fs::write(
        &included,
        format!(
            "LocalForward {colon}:127.0.0.1:{echo}\n",
            echo = echo.port()
        ),
    )
    .unwrap();
    std::fs::write(
        &ssh_config,
        format!(
            "Host relay-alias\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  \
             IdentityFile {key}\n  LocalForward {two_args} 127.0.0.1:{echo}\n  \
             Include {included}\n\
             Match all\n  User mallory\n  Port 1\n",
            port = relay.sshd.port(),
            user = current_user(),
            key = relay.key.private_path().display(),
            echo = echo.port(),
            included = included.display(),
        ),
    )
    .unwrap();
    let config = write_config(
        relay.dir.path(),
        &format!(
            "[defaults]\nssh_config = {:?}\nknown_hosts = {:?}\n{FAST}",
            ssh_config.display().to_string(),
            relay.known_hosts().display().to_string(),
        ),
    );
    let daemon = Pairtund::start(&config);
    daemon.wait_ready();
    let file = ssh_config.display().to_string();
    // Without --ssh-config, import reads the file pairtun's config names in `ssh_config`.
    let config_arg = config.display().to_string();
    let out = daemon.ctl(&["--config", &config_arg, "import", "relay-alias"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).contains("relay-alias: imported from"),
        "{out:?}"
    );
    assert!(
        stderr(&out).contains(&format!(
            "{}:1: OpenSSH rejects this line",
            included.display()
        )),
        "{out:?}"
    );
    let up = wait_state(&daemon, "relay-alias", "up");
    assert_eq!(up["forwards"].as_array().map(Vec::len), Some(2), "{up}");
    for port in [two_args, colon] {
        roundtrip(loopback(port), b"imported", Duration::from_secs(5)).expect("echo");
    }
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(
        saved.contains("[tunnels.relay-alias]\nhost = \"relay-alias\""),
        "{saved}"
    );

    // The Match block was not applied (the tunnel is up as the right user on the right port),
    // and the daemon says so, with file and line, at every load.
    assert_eq!(daemon.ctl(&["reload"]).status.code(), Some(0));
    let warning = format!("{file}:8: `Match` is not supported by pairtun");
    wait::until("Match warning logged", Duration::from_secs(5), || {
        daemon.log().contains(&warning)
    });

    let again = daemon.ctl(&["import", "nosuch", "--ssh-config", &file]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("no LocalForward"), "{again:?}");
}

/// `pairtunctl doctor` runs its checks on the client and asks the daemon only what the relay
/// allowed: a healthy tunnel is all `ok`, a broken one names each problem with its fix.
#[test]
fn doctor_reports_each_problem_with_a_fix() {
    use std::os::unix::fs::PermissionsExt;
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let port = free_port();
    let loose_key = relay.dir.path().join("loose_key");
    std::fs::copy(relay.key.private_path(), &loose_key).unwrap();
    std::fs::set_permissions(&loose_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let good = relay.tunnel("good", vec![local_spec(port, echo.port())], vec![]);
    let bad = format!(
        "[tunnels.bad]\nhost = \"127.0.0.2\"\nport = 2\nidentity_files = [{:?}]\n\
         known_hosts = {:?}\nlocal = [\"{}:127.0.0.1:1\"]\nautostart = false\nagent_socket = \"\"\n",
        loose_key.display().to_string(),
        relay.known_hosts().display().to_string(),
        free_port(),
    );
    let config = write_config(relay.dir.path(), &format!("{good}\n{bad}"));
    let daemon = Pairtund::start(&config);
    daemon.wait_ready();
    wait_state(&daemon, "good", "up");
    let config = config.display().to_string();

    let healthy = daemon.ctl(&["--config", &config, "doctor", "good"]);
    assert_eq!(healthy.status.code(), Some(0), "{healthy:?}");
    let text = stdout(&healthy);
    assert!(!text.contains("FAIL") && !text.contains("warn"), "{text}");
    let known = format!(
        "1 key(s) for [127.0.0.1]:{} (ssh-ed25519)",
        relay.sshd.port()
    );
    assert!(text.contains(&known), "{known:?} missing in\n{text}");
    assert!(
        text.contains(&format!(
            "-L forward {} is up",
            local_spec(port, echo.port())
        )),
        "{text}"
    );

    let broken = daemon.ctl(&["--config", &config, "doctor"]);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let text = stdout(&broken);
    for needle in [
        "readable by others (mode 644)",
        &format!("fix: chmod 600 {}", loose_key.display()),
        "has no entry for [127.0.0.2]:2",
        "fix: pairtunctl up bad",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in\n{text}");
    }
    let json = daemon.ctl(&["--config", &config, "--json", "doctor", "bad"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    let levels: Vec<_> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["level"].as_str().unwrap().to_owned())
        .collect();
    assert!(levels.contains(&"fail".to_owned()), "{v}");
}

/// Pairing end to end on one relay: `invite` mirrors jane's `-L` as the partner's `-R`; before
/// the partner is there the probe says "not listening", after (at jane's next session) "up",
/// because the partner's `-R` leads to an sshd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_mirrors_the_forward_and_the_peer_probe_sees_the_partner() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let (lport, relay_port) = (free_port(), free_port());
    let defaults = format!(
        "[defaults]\nknown_hosts = {:?}\nidentity_files = [{:?}]\n{FAST}\n",
        relay.known_hosts().display().to_string(),
        relay.key.private_path().display().to_string(),
    );
    let jane = relay.tunnel_via(
        "jane",
        relay.sshd.port(),
        vec![local_spec(lport, relay_port)],
        vec![],
        "probe_peer = true\n",
    );
    let config = format!("{defaults}{jane}");
    let daemon = start_daemon(relay.dir.path(), &config);
    let peer_is = |want: Peer| move |p: &Published| p.forwards[0].peer == Some(want);
    wait_for(
        &daemon,
        "jane",
        UP_WITHIN,
        "peer not listening",
        peer_is(Peer::NotListening),
    )
    .await;

    // A connection while nobody listens there: the forward's error carries the relay's reason.
    let _refused = TcpStream::connect(loopback(lport)).await.unwrap();
    let refused = wait_for(&daemon, "jane", UP_WITHIN, "forward error", |p| {
        p.forwards[0].error.is_some()
    })
    .await;
    let error = refused.forwards[0].error.clone().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{relay_port}")) && error.contains("Connection refused"),
        "{error}"
    );

    let file = relay.dir.path().join("config.toml");
    let out = pairtunctl(
        &relay.dir.path().join("no-daemon.sock"),
        &["--config", &file.display().to_string(), "invite", "jane"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let mirrored = format!("{relay_port}:localhost:22");
    assert!(text.contains(&format!("remote = [{mirrored:?}]")), "{text}");
    assert!(text.contains("ClientAliveInterval 15"), "{text}");

    // The partner shares "their sshd" — the relay's own, on its real port.
    let partner = TunnelSpec {
        name: "partner".into(),
        host: "127.0.0.1".into(),
        port: Some(relay.sshd.port()),
        user: Some(current_user()),
        identity_files: vec![],
        local: vec![],
        remote: vec![mirrored.replace(":22", &format!(":{}", relay.sshd.port()))],
        dynamic: vec![],
        jump: None,
        autostart: true,
        probe_peer: false,
    };
    daemon.add(&partner, true).await.expect("partner added");
    wait_up(&daemon, "partner", UP_WITHIN).await;
    daemon
        .command("jane", Command::Restart)
        .await
        .expect("restart");
    let restarted = wait_for(&daemon, "jane", UP_WITHIN, "peer up", peer_is(Peer::Up)).await;
    assert!(
        restarted.forwards[0].error.is_some(),
        "a new session alone does not disprove the refusal: {restarted:?}"
    );

    // The next connection the relay does open clears "could not open" from jane's forward.
    let _through = TcpStream::connect(loopback(lport)).await.unwrap();
    wait_for(&daemon, "jane", UP_WITHIN, "forward error cleared", |p| {
        p.forwards[0].error.is_none()
    })
    .await;
}

/// Without `probe_peer` a `-L` target sees only the user's connections: after `up` and one
/// real round trip, the target has accepted exactly that one, and status shows no peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_probe_peer_the_target_sees_only_real_connections() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let (quiet_target, probed_target) = (EchoServer::start(), EchoServer::start());
    let quiet_port = free_port();
    let quiet = relay.tunnel(
        "quiet",
        vec![local_spec(quiet_port, quiet_target.port())],
        vec![],
    );
    // The control: the same relay with the key on, brought up only later (see below).
    let probed = relay.tunnel_via(
        "probed",
        relay.sshd.port(),
        vec![local_spec(free_port(), probed_target.port())],
        vec![],
        "probe_peer = true\nautostart = false\n",
    );
    let daemon = start_daemon(relay.dir.path(), &format!("{quiet}{probed}"));
    wait_up(&daemon, "quiet", UP_WITHIN).await;
    roundtrip_async(loopback(quiet_port), b"only me", UP_WITHIN)
        .await
        .expect("round trip through the quiet tunnel");
    assert_eq!(
        quiet_target.accepted(),
        1,
        "the round trip's own connection"
    );

    // Absence needs a moment in which a probe would have arrived. A probe starts at `up`; the
    // control starts only now, so by the time its probe reaches its target, a whole session
    // set-up plus a probe has passed since "quiet" was up: any probe of "quiet" would be there.
    daemon
        .command("probed", Command::Up)
        .await
        .expect("up probed");
    wait::until_async(
        "the control tunnel's probe reached its target",
        UP_WITHIN,
        || async { probed_target.accepted() >= 1 },
    )
    .await;
    assert_eq!(quiet_target.accepted(), 1, "a probe without probe_peer");
    let status = daemon
        .watch(Some("quiet"))
        .expect("tunnel exists")
        .remove(0);
    assert_eq!(
        status.borrow().forwards[0].peer,
        None,
        "a peer without probe_peer"
    );
}

/// A jump host that cannot reach the target: the tunnel backs off with the jump host's own
/// reason, naming both hops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jump_host_refusal_is_reported_with_the_relays_reason() {
    let Some(relay) = Relay::start(&[]) else {
        return;
    };
    let closed = free_port();
    let body = format!(
        "{}local = [\"{}:127.0.0.1:1\"]\njump = \"127.0.0.1:{}\"",
        login_keys(&relay, closed),
        free_port(),
        relay.sshd.port(),
    );
    let daemon = start_daemon(
        relay.dir.path(),
        &tunnel_toml(&relay, "nowhere", "127.0.0.1", &body),
    );
    let failed = wait_for(&daemon, "nowhere", UP_WITHIN, "backing off", |p| {
        p.state == TunnelState::Backoff
    })
    .await;
    let error = failed.last_error.expect("an error");
    let want = format!(
        "jump host {}@127.0.0.1:{} could not connect to 127.0.0.1:{closed}: Connection refused",
        current_user(),
        relay.sshd.port()
    );
    assert!(error.message.starts_with(&want), "{}", error.message);
}

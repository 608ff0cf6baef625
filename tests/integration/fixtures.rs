//! Self-tests of the fixtures in `support`: if these fail, fix the fixture before trusting
//! any other integration test.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::echo::{
    EchoServer, SinkServer, StallServer, roundtrip, roundtrip_async, transfer_and_verify,
};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::process::{self, run_with_timeout};
use crate::support::proxy::ChaosProxy;
use crate::support::ssh::SshClient;
use crate::support::sshd::{SSHD, Sshd, SshdOptions};
use crate::support::{require_sshd, wait};

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

fn sshd_for(client: &SshClient, options: SshdOptions) -> Sshd {
    let sshd = Sshd::start(options.authorize(client.key()));
    client.trust(&sshd);
    sshd
}

fn assert_ok(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ssh failed ({}): {stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sshd_runs_a_command_logs_the_key_and_cleans_up() {
    require_sshd!();
    let client = SshClient::generate();
    let sshd = sshd_for(&client, SshdOptions::new());
    // The readiness probe has closed politely and its sshd process is done logging.
    assert_eq!(
        sshd.count_log("Connection closed by 127.0.0.1"),
        1,
        "{}",
        sshd.log()
    );
    assert_eq!(sshd.count_log("Connection reset"), 0, "{}", sshd.log());
    assert_eq!(assert_ok(&client.exec(&sshd, "echo hi")), "hi\n");

    let accepted = format!("Accepted publickey for {} from 127.0.0.1", sshd.user());
    let fingerprint = client.key().fingerprint();
    wait::until("sshd to log the accepted key", LONG, || {
        sshd.log()
            .lines()
            .any(|l| l.contains(&accepted) && l.contains(&fingerprint))
    });
    assert_eq!(sshd.count_log(&accepted), 1);

    let (pid, dir) = (sshd.pid().expect("running"), sshd.dir().to_path_buf());
    drop(sshd);
    assert!(!process::is_alive(pid), "sshd {pid} survived Drop");
    assert!(!dir.exists(), "{} survived Drop", dir.display());
}

#[test]
fn sshd_restart_keeps_port_and_keys_and_ends_sessions() {
    require_sshd!();
    let client = SshClient::generate();
    let mut sshd = sshd_for(&client, SshdOptions::new());
    let (port, host_key) = (sshd.port(), sshd.host_public_key_line());
    let key = client.key().private_path();
    let mut session =
        crate::support::ssh::ssh_command(port, &sshd.user(), key, &client.known_hosts())
            .arg("sleep 60")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh");
    let is_sleep = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    };
    wait::until("the remote sleep to start", LONG, || {
        sshd.session_pids().iter().any(is_sleep)
    });

    sshd.restart();
    let ended = wait::poll(LONG, || session.try_wait().expect("waitpid ssh"));
    assert!(ended.is_some(), "the ssh session survived the restart");
    assert_eq!((sshd.port(), sshd.host_public_key_line()), (port, host_key));
    assert_eq!(assert_ok(&client.exec(&sshd, "echo again")), "again\n");
}

#[test]
fn sshd_new_host_key_is_refused_until_trusted() {
    require_sshd!();
    let client = SshClient::generate();
    let mut sshd = sshd_for(&client, SshdOptions::new());
    let old = sshd.known_hosts_line();
    sshd.regenerate_host_key();
    sshd.restart();
    assert_ne!(sshd.known_hosts_line(), old);
    let out = client.exec(&sshd, "true");
    assert!(!out.status.success(), "ssh accepted a changed host key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HOST IDENTIFICATION HAS CHANGED"),
        "{stderr}"
    );
    client.trust(&sshd);
    assert_ok(&client.exec(&sshd, "true"));
}

#[test]
fn sshd_restart_on_a_taken_port_fails_clearly() {
    require_sshd!();
    let mut sshd = Sshd::start(SshdOptions::new());
    sshd.stop();
    let _squatter = std::net::TcpListener::bind(sshd.addr()).expect("take the port");
    let restart = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sshd.restart()));
    let panic = restart.expect_err("sshd restarted on a port another process holds");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("was taken by another process"),
        "{message}"
    );
}

#[test]
fn sshd_extra_config_overrides_the_defaults() {
    require_sshd!();
    let client = SshClient::generate();
    let options = SshdOptions::new()
        .config("ClientAliveInterval 2")
        .config("AllowTcpForwarding no");
    let sshd = sshd_for(&client, options);
    let mut dump = Command::new(SSHD);
    dump.arg("-T").arg("-f").arg(sshd.dir().join("sshd_config"));
    let effective = String::from_utf8(run_with_timeout(&mut dump, LONG).stdout).unwrap();
    assert!(
        effective.contains("\nclientaliveinterval 2\n"),
        "{effective}"
    );
    assert!(
        effective.contains("\nallowtcpforwarding no\n"),
        "{effective}"
    );
}

#[test]
fn ssh_through_the_proxy_needs_the_proxy_port_in_known_hosts() {
    require_sshd!();
    let client = SshClient::generate();
    let sshd = sshd_for(&client, SshdOptions::new());
    let proxy = ChaosProxy::start(sshd.addr());
    std::fs::write(
        client.known_hosts(),
        sshd.known_hosts_line_at(proxy.port()) + "\n",
    )
    .unwrap();
    let key = client.key().private_path();
    let out = crate::support::ssh::ssh_exec(
        proxy.port(),
        &sshd.user(),
        key,
        &client.known_hosts(),
        "echo via proxy",
    );
    assert_eq!(assert_ok(&out), "via proxy\n");
}

#[test]
fn keys_of_every_kind_and_encrypted_ones() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, prefix) in [
        (KeyKind::Ed25519, "ssh-ed25519 "),
        (KeyKind::Rsa, "ssh-rsa "),
        (KeyKind::Ecdsa, "ecdsa-sha2-nistp256 "),
    ] {
        let key = KeyPair::generate(dir.path(), kind.keygen_type(), kind);
        assert!(
            key.public_line().starts_with(prefix),
            "{}",
            key.public_line()
        );
        assert!(key.fingerprint().starts_with("SHA256:"));
    }
    let locked = KeyPair::generate_with_passphrase(dir.path(), "locked", KeyKind::Ed25519, "pw");
    let derive = |pass: &str| {
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-y", "-P", pass, "-f"])
            .arg(locked.private_path());
        run_with_timeout(&mut cmd, LONG).status.success()
    };
    assert!(
        !derive(""),
        "the encrypted key opened without its passphrase"
    );
    assert!(derive("pw"));
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_blackhole_freezes_silently_and_heal_delivers() {
    let echo = EchoServer::start();
    let proxy = ChaosProxy::start(echo.addr());
    let mut stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let mut buf = [0u8; 6];
    stream.write_all(b"before").await.unwrap();
    stream.read_exact(&mut buf).await.unwrap();

    proxy.blackhole();
    stream.write_all(b"during").await.unwrap();
    let frozen = tokio::time::timeout(SHORT, stream.read_exact(&mut buf)).await;
    assert!(frozen.is_err(), "a byte crossed the blackhole: {frozen:?}");
    let parked = roundtrip_async(proxy.addr(), b"new", SHORT).await;
    assert_eq!(parked.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_eq!(echo.accepted(), 1, "a parked connection reached upstream");

    proxy.heal();
    tokio::time::timeout(LONG, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"during");
    roundtrip_async(proxy.addr(), b"after", LONG).await.unwrap();
}

#[test]
fn proxy_strand_freezes_old_connections_only() {
    let echo = EchoServer::start();
    let proxy = ChaosProxy::start(echo.addr());
    let mut old = TcpStream::connect(proxy.addr()).unwrap();
    old.write_all(b"x").unwrap();
    old.set_read_timeout(Some(LONG)).unwrap();
    old.read_exact(&mut [0u8; 1]).unwrap();
    proxy.strand();
    roundtrip(proxy.addr(), b"new path", LONG).unwrap();
    proxy.heal();
    old.write_all(b"y").unwrap();
    old.set_read_timeout(Some(SHORT)).unwrap();
    let err = old.read_exact(&mut [0u8; 1]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    assert_eq!(proxy.connections(), 1);
}

/// Connects through a fresh proxy and checks that the relay works.
fn relayed_stream(proxy: &ChaosProxy) -> TcpStream {
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    stream.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    assert_eq!(proxy.connections(), 1);
    stream
}

#[test]
fn proxy_reset_gives_econnreset() {
    let echo = EchoServer::start();
    let proxy = ChaosProxy::start(echo.addr());
    let mut stream = relayed_stream(&proxy);
    proxy.reset();
    assert_eq!(proxy.connections(), 0);
    let err = stream.read(&mut [0u8; 1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn proxy_close_gives_eof() {
    let echo = EchoServer::start();
    let proxy = ChaosProxy::start(echo.addr());
    let mut stream = relayed_stream(&proxy);
    proxy.close();
    assert_eq!(proxy.connections(), 0);
    assert_eq!(stream.read(&mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn transfer_of_8_mib_through_the_proxy_verifies() {
    let echo = EchoServer::start();
    let proxy = ChaosProxy::start(echo.addr());
    transfer_and_verify(proxy.addr(), 8 << 20, 42).unwrap();
    assert_eq!(echo.bytes_received(), 8 << 20);
}

#[test]
fn sink_counts_and_stall_holds() {
    let sink = SinkServer::start();
    TcpStream::connect(sink.addr())
        .unwrap()
        .write_all(&[7u8; 1000])
        .unwrap();
    wait::until("the sink to count 1000 bytes", LONG, || {
        sink.bytes_received() == 1000
    });
    let stall = StallServer::start();
    let _held = TcpStream::connect(stall.addr()).unwrap();
    wait::until("the stall server to accept", LONG, || stall.accepted() == 1);
    assert_eq!(stall.bytes_received(), 0);
}

#[test]
#[should_panic(expected = "timed out after 20ms waiting for the impossible")]
fn wait_until_names_what_timed_out() {
    wait::until("the impossible", Duration::from_millis(20), || false);
}

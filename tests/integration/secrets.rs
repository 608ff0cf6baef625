//! No secrets in logs (SPEC §5): a full connect / auth / forward / reconnect cycle with the
//! most verbose logging, russh's own packet logs included, must not print private key
//! material; neither may status or an encrypted key's error.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::binary::Pairtund;
use crate::harness::{Relay, TunnelToml, local_spec, write_config};
use crate::support::echo::{EchoServer, roundtrip};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::sshd::free_port;
use crate::support::wait;

/// The base64 lines of a private key file (its body, without the armour lines).
fn key_body(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect()
}

#[test]
fn trace_logs_and_status_carry_no_key_material() {
    let Some(mut relay) = Relay::start(&[]) else {
        return;
    };
    let echo = EchoServer::start();
    let rsa = KeyPair::generate(relay.dir.path(), "rsa", KeyKind::Rsa);
    let locked = KeyPair::generate_with_passphrase(
        relay.dir.path(),
        "locked",
        KeyKind::Ed25519,
        "hunter2-pairtun",
    );
    relay.sshd.authorize_line(rsa.public_line());
    let port = free_port();
    let kh = relay.known_hosts();
    // The encrypted key is offered first (and skipped, with a message); the RSA key logs in.
    let toml = TunnelToml {
        name: "s",
        port: relay.sshd.port(),
        key: locked.private_path(),
        known_hosts: &kh,
        local: vec![local_spec(port, echo.port())],
        remote: vec![],
        extra: "",
    }
    .render()
    .replace(
        &format!(
            "identity_files = [{:?}]",
            locked.private_path().display().to_string()
        ),
        &format!(
            "identity_files = [{:?}, {:?}]",
            locked.private_path().display().to_string(),
            rsa.private_path().display().to_string()
        ),
    );
    let config = write_config(relay.dir.path(), &toml);
    let socket = config.with_file_name("run").join("pairtund.sock");
    let trace = std::ffi::OsStr::new("trace");
    let mut d = Pairtund::start_with_env(&config, &socket, &[("PAIRTUN_LOG", trace)]);
    d.wait_ready();
    let up = |log: &str, session: &str| log.contains("state=\"up\"") && log.contains(session);
    wait::until("first session up", Duration::from_secs(20), || {
        up(&d.log(), "session=1")
    });
    roundtrip(
        format!("127.0.0.1:{port}").parse().unwrap(),
        b"secret?",
        Duration::from_secs(5),
    )
    .expect("traffic");
    relay.sshd.restart();
    wait::until("reconnected", Duration::from_secs(20), || {
        up(&d.log(), "session=2")
    });
    let status = d.ctl(&["--json", "status"]);
    let logs = d.ctl(&["logs"]);
    d.signal(Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(15));

    let everything = format!(
        "{}\n{}\n{}",
        d.log(),
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&logs.stdout)
    );
    assert!(
        everything.contains("TRACE") || everything.contains("DEBUG"),
        "not verbose enough to mean anything:\n{everything}"
    );
    assert!(
        everything.contains("encrypted"),
        "the skipped encrypted key is reported"
    );
    assert!(!everything.contains("hunter2-pairtun"));
    for path in [rsa.private_path(), locked.private_path()] {
        for line in key_body(path) {
            assert!(
                !everything.contains(&line),
                "private key material from {} in the output",
                path.display()
            );
        }
    }
}

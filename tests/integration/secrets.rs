//! No secrets leak (SPEC §5, issue 8): full connect / auth / forward / reconnect cycles with a
//! key file, an encrypted key and an agent, at the most verbose log level (russh's own packet
//! logs included), must not show private key material or a passphrase in the daemon's log,
//! `status`, `pairtunctl logs` or error messages; and `Debug` of the key and config types
//! redacts them.

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use nix::sys::signal::Signal;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

use crate::auth::Agent;
use crate::binary::Pairtund;
use crate::control::{status_json, wait_state};
use crate::harness::{Relay, TunnelToml, env_for, local_spec, write_config};
use crate::support::echo::{EchoServer, roundtrip};
use crate::support::keys::{KeyKind, KeyPair};
use crate::support::sshd::free_port;
use crate::support::wait;

const WITHIN: Duration = Duration::from_secs(20);

/// The base64 lines of a private key file (its body, without the armour lines).
fn key_body(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect()
}

/// Fails if `text` holds a line of any of `keys`' private key files or any of `passphrases`.
fn assert_no_secrets(text: &str, keys: &[&KeyPair], passphrases: &[&str]) {
    for pass in passphrases {
        assert!(!text.contains(pass), "a passphrase in the output");
    }
    for key in keys {
        let path = key.private_path();
        for line in key_body(path) {
            assert!(
                !text.contains(&line),
                "private key material from {} in the output",
                path.display()
            );
        }
    }
}

/// Fails if `text` shows `secret` as hex, base64 or a `Debug` byte list.
fn assert_no_secret_bytes(text: &str, secret: &[u8], what: &str) {
    assert!(secret.len() >= 16, "{what}: too short to mean anything");
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let list = format!("{:?}", &secret[..8]);
    let forms = [
        hex.clone(),
        hex.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        list.trim_end_matches(']').to_owned(),
    ];
    for form in forms {
        assert!(!text.contains(&form), "{what}: secret shown as {form:?}");
    }
}

/// The secret scalar of a loaded key.
fn secret_bytes(key: &PrivateKey) -> Vec<u8> {
    let data = key.key_data();
    if let Some(ed25519) = data.ed25519() {
        ed25519.private.to_bytes().to_vec()
    } else if let Some(rsa) = data.rsa() {
        rsa.private().d().as_bytes().to_vec()
    } else if let Some(ecdsa) = data.ecdsa() {
        ecdsa.private_key_bytes().to_vec()
    } else {
        panic!("unexpected key type {:?}", key.algorithm())
    }
}

/// What a user sees of daemon `d`: its log so far, `status --json`, `pairtunctl logs` and
/// `extra` command outputs (stdout and stderr).
fn visible(d: &Pairtund, extra: &[Output]) -> String {
    let mut all = d.log();
    let outputs = [d.ctl(&["--json", "status"]), d.ctl(&["logs"])];
    for out in outputs.iter().chain(extra) {
        all.push_str(&String::from_utf8_lossy(&out.stdout));
        all.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    all
}

fn assert_verbose(everything: &str) {
    assert!(
        everything.contains("TRACE") || everything.contains("DEBUG"),
        "not verbose enough to mean anything:\n{everything}"
    );
}

/// `pairtund` logging at trace level.
fn traced(config: &std::path::Path) -> Pairtund {
    let socket = config.with_file_name("run").join("pairtund.sock");
    let trace = std::ffi::OsStr::new("trace");
    let d = Pairtund::start_with_env(config, &socket, &[("PAIRTUN_LOG", trace)]);
    d.wait_ready();
    d
}

/// Waits until tunnel `name` is up in session `session` and carries traffic on `port`.
fn up_in_session(d: &Pairtund, name: &str, session: u64, port: u16) {
    wait::until(&format!("{name} up in session {session}"), WITHIN, || {
        let t = status_json(d, name);
        t["state"] == "up" && t["session"] == session
    });
    roundtrip(
        format!("127.0.0.1:{port}").parse().unwrap(),
        b"secret?",
        Duration::from_secs(5),
    )
    .expect("traffic");
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
    let mut d = traced(&write_config(relay.dir.path(), &toml));
    up_in_session(&d, "s", 1, port);
    relay.sshd.restart();
    up_in_session(&d, "s", 2, port);
    let seen = visible(&d, &[]);
    d.signal(Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(15));

    let everything = format!("{seen}\n{}", d.log());
    assert_verbose(&everything);
    assert!(
        everything.contains("encrypted"),
        "the skipped encrypted key is reported"
    );
    assert_no_secrets(&everything, &[&rsa, &locked], &["hunter2-pairtun"]);
}

/// The agent's key and an encrypted key with no agent (which must fail, naming the key) through
/// connect, auth, forward and reconnect; `up` on the failed tunnel adds its error message.
#[test]
fn agent_and_encrypted_key_cycles_carry_no_key_material() {
    const PASSPHRASE: &str = "correct-horse-pairtun";
    let Some(mut relay) = Relay::start(&[]) else {
        return;
    };
    let dir = relay.dir.path().to_path_buf();
    let echo = EchoServer::start();
    let agent = Agent::start(&dir);
    let in_agent = KeyPair::generate(&dir, "in-agent", KeyKind::Ecdsa);
    agent.add(in_agent.private_path());
    let locked = KeyPair::generate_with_passphrase(&dir, "locked", KeyKind::Ed25519, PASSPHRASE);
    for key in [&in_agent, &locked] {
        relay.sshd.authorize_line(key.public_line());
    }
    let (agent_port, locked_port) = (free_port(), free_port());
    let kh = relay.known_hosts();
    let tunnel = |name, key, port| TunnelToml {
        name,
        port: relay.sshd.port(),
        key,
        known_hosts: &kh,
        local: vec![local_spec(port, echo.port())],
        remote: vec![],
        extra: "",
    };
    let missing = dir.join("no-such-key");
    let toml = [
        // Only the agent can log this one in.
        tunnel("a", &missing, agent_port).render().replace(
            "agent_socket = \"\"",
            &format!("agent_socket = {:?}", agent.socket.display().to_string()),
        ),
        // No agent (FAST disables it): the encrypted key cannot be used.
        tunnel("l", locked.private_path(), locked_port).render(),
    ]
    .concat();
    let mut d = traced(&write_config(&dir, &toml));
    up_in_session(&d, "a", 1, agent_port);
    let failed = wait_state(&d, "l", "failed");
    let message = failed["last_error"]["message"].as_str().unwrap_or_default();
    let shown = locked.private_path().display().to_string();
    assert!(
        message.contains(&shown) && message.contains("encrypted"),
        "failed naming the key: {failed}"
    );
    relay.sshd.restart();
    up_in_session(&d, "a", 2, agent_port);
    let retried = d.ctl(&["up", "l", "--wait=5s"]);
    let seen = visible(&d, &[retried]);
    d.signal(Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(15));

    let everything = format!("{seen}\n{}", d.log());
    assert_verbose(&everything);
    assert_no_secrets(&everything, &[&in_agent, &locked], &[PASSPHRASE]);
}

#[test]
fn debug_of_keys_and_config_redacts_key_material() {
    const PASSPHRASE: &str = "debug-pass-pairtun";
    let dir = tempfile::tempdir().unwrap();
    let keys = [KeyKind::Ed25519, KeyKind::Rsa, KeyKind::Ecdsa]
        .map(|kind| KeyPair::generate(dir.path(), kind.keygen_type(), kind));
    let locked =
        KeyPair::generate_with_passphrase(dir.path(), "locked", KeyKind::Ed25519, PASSPHRASE);
    let all: Vec<&KeyPair> = keys.iter().chain([&locked]).collect();
    for pair in &all {
        let pass = (pair.private_path() == locked.private_path()).then_some(PASSPHRASE);
        let key = russh::keys::load_secret_key(pair.private_path(), pass).expect("load");
        let secret = secret_bytes(&key);
        // The type the daemon hands to russh to sign with, and the key inside it.
        let signer = PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None);
        let printed = format!("{key:?}\n{key:#?}\n{signer:?}\n{signer:#?}");
        let what = pair.private_path().display().to_string();
        assert_no_secret_bytes(&printed, &secret, &what);
        assert_no_secrets(&printed, &[pair], &[PASSPHRASE]);
    }

    // The configuration names key files and the agent; it never holds what is in them.
    let first = &keys[0];
    let kh = dir.path().join("known_hosts");
    let toml = TunnelToml {
        name: "t",
        port: free_port(),
        key: first.private_path(),
        known_hosts: &kh,
        local: vec![local_spec(free_port(), free_port())],
        remote: vec![],
        extra: "agent_socket = \"/run/agent.sock\"\n",
    }
    .render()
    .replace("agent_socket = \"\"\n", "");
    let path = write_config(dir.path(), &toml);
    let config = pairtun::config::load(&path, &env_for(dir.path())).expect("config");
    let printed = format!("{config:?}\n{config:#?}");
    assert!(
        printed.contains(&first.private_path().display().to_string()),
        "the config under test names the key: {printed}"
    );
    assert_no_secrets(&printed, &all, &[PASSPHRASE]);
}

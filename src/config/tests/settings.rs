//! Every key's happy path and default, and the precedence tunnel → `[defaults]` → built-in.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn only(text: &str) -> TunnelConfig {
    let cfg = ok(text);
    assert_eq!(cfg.tunnels.len(), 1);
    cfg.tunnels.into_values().next().unwrap()
}

#[test]
fn built_in_defaults() {
    let t = only(&format!("[tunnels.t]\n{MIN}"));
    assert_eq!(t.name.as_str(), "t");
    assert_eq!((t.user.as_str(), t.port, t.autostart), ("me", 22, true));
    assert!(!t.probe_peer, "the peer probe is opt-in");
    assert_eq!(
        t.identities,
        Identities::Defaults(
            ["id_ed25519", "id_ecdsa", "id_rsa"]
                .map(|f| PathBuf::from("/home/me/.ssh").join(f))
                .to_vec()
        )
    );
    assert_eq!(t.agent, AgentSource::Env);
    assert_eq!(t.host_key_policy, HostKeyPolicy::Strict);
    assert_eq!(t.known_hosts, PathBuf::from("/home/me/.ssh/known_hosts"));
    let want = Timing {
        keepalive_interval: secs(15),
        keepalive_count: 3,
        connect_timeout: secs(20),
        connection_hold: secs(30),
        backoff: BackoffConfig {
            initial: secs(1),
            max: secs(60),
            multiplier: 2.0,
            jitter: 0.2,
        },
    };
    assert_eq!(t.timing, want);
    assert_eq!(t.max_connections, 1024);
    assert_eq!(
        t.transport,
        Transport {
            ciphers: None,
            window_size: 4 * 1024 * 1024
        }
    );
}

#[test]
fn every_tunnel_key_set() {
    let t = only(
        r#"[tunnels.work-1]
host = "relay.example.org"
user = "ann"
port = 2222
identity_files = ["~/.ssh/work", "$KEYS/${KEYS}x", "/abs/key"]
local = ["9999:localhost:1235", "/tmp/l.sock:/tmp/r.sock"]
remote = ["0:localhost:22"]
dynamic = []
jump = ""
autostart = false
probe_peer = true
keepalive_interval = "250ms"
keepalive_count = 100
connect_timeout = "1m30s"
connection_hold = "2m"
max_connections = 1
backoff = { initial = "2s", max = "1h", multiplier = 1.0, jitter = 0.0 }
host_key_policy = "accept-new"
known_hosts = "$KEYS/known_hosts"
agent_socket = "~/agent.sock"
ciphers = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]
window_size = 16777216
"#,
    );
    assert_eq!(t.name.as_str(), "work-1");
    assert_eq!(
        (t.host.as_str(), t.user.as_str(), t.port),
        ("relay.example.org", "ann", 2222)
    );
    assert_eq!(
        t.identities,
        Identities::Configured(vec![
            PathBuf::from("/home/me/.ssh/work"),
            PathBuf::from("/keys//keysx"),
            PathBuf::from("/abs/key"),
        ])
    );
    assert_eq!((t.local.len(), t.remote.len(), t.autostart), (2, 1, false));
    assert!(t.probe_peer);
    assert_eq!(t.timing.keepalive_interval, Duration::from_millis(250));
    assert_eq!(t.timing.keepalive_count, 100);
    assert_eq!(t.timing.connect_timeout, secs(90));
    assert_eq!(t.timing.connection_hold, secs(120));
    assert_eq!(t.max_connections, 1);
    assert_eq!(
        t.timing.backoff,
        BackoffConfig {
            initial: secs(2),
            max: secs(3600),
            multiplier: 1.0,
            jitter: 0.0
        }
    );
    assert_eq!(t.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(t.known_hosts, PathBuf::from("/keys/known_hosts"));
    assert_eq!(
        t.agent,
        AgentSource::Path(PathBuf::from("/home/me/agent.sock"))
    );
    assert_eq!(
        t.transport,
        Transport {
            ciphers: Some(vec![
                russh::cipher::AES_128_GCM,
                russh::cipher::CHACHA20_POLY1305
            ]),
            window_size: 16 * 1024 * 1024
        }
    );
}

#[test]
fn transport_keys_come_from_defaults_unless_the_tunnel_sets_them() {
    let cfg = ok(&format!(
        "[defaults]\nciphers = [\"aes256-gcm@openssh.com\"]\nwindow_size = 65536\n\
         [tunnels.a]\n{MIN}\
         [tunnels.b]\nhost = \"h\"\nlocal = [\"2:x:3\"]\nwindow_size = 1073741824\n"
    ));
    let a = &tunnel(&cfg, "a").transport;
    let b = &tunnel(&cfg, "b").transport;
    assert_eq!(a.ciphers, Some(vec![russh::cipher::AES_256_GCM]));
    assert_eq!((a.window_size, b.window_size), (65536, 1 << 30));
    assert_eq!(b.ciphers, a.ciphers);
}

#[test]
fn every_defaults_key_applies_to_tunnels() {
    let cfg = ok(&format!(
        r#"[defaults]
user = "dee"
port = 2200
identity_files = ["/k/one"]
keepalive_interval = "5s"
keepalive_count = 1
connect_timeout = "3s"
connection_hold = "45s"
max_connections = 50
backoff = {{ initial = "500ms", max = "10s", multiplier = 3, jitter = 0.5 }}
host_key_policy = "accept-new"
known_hosts = "/etc/kh"
agent_socket = ""
shutdown_grace = "0s"

[tunnels.t]
{MIN}"#
    ));
    assert_eq!(cfg.shutdown_grace, Duration::ZERO);
    let t = tunnel(&cfg, "t");
    assert_eq!((t.user.as_str(), t.port), ("dee", 2200));
    assert_eq!(
        t.identities,
        Identities::Configured(vec![PathBuf::from("/k/one")])
    );
    assert_eq!(
        t.timing,
        Timing {
            keepalive_interval: secs(5),
            keepalive_count: 1,
            connect_timeout: secs(3),
            connection_hold: secs(45),
            backoff: BackoffConfig {
                initial: Duration::from_millis(500),
                max: secs(10),
                multiplier: 3.0,
                jitter: 0.5
            },
        }
    );
    assert_eq!(t.max_connections, 50);
    assert_eq!(t.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(t.known_hosts, PathBuf::from("/etc/kh"));
    assert_eq!(t.agent, AgentSource::Disabled);
}

#[test]
fn tunnel_keys_override_defaults() {
    let cfg = ok(&format!(
        r#"[defaults]
user = "dee"
port = 2200
identity_files = ["/k/one"]
keepalive_interval = "5s"
max_connections = 10
host_key_policy = "accept-new"
agent_socket = "/run/a"

[tunnels.a]
{MIN}
[tunnels.b]
host = "h"
remote = ["1:x:2"]
user = "bee"
port = 22
identity_files = []
keepalive_interval = "7s"
max_connections = 20
host_key_policy = "strict"
agent_socket = "$SSH_AUTH_SOCK"
"#
    ));
    let (a, b) = (tunnel(&cfg, "a"), tunnel(&cfg, "b"));
    assert_eq!((a.max_connections, b.max_connections), (10, 20));
    assert_eq!(
        (a.user.as_str(), a.port, b.user.as_str(), b.port),
        ("dee", 2200, "bee", 22)
    );
    assert_eq!(
        a.identities,
        Identities::Configured(vec![PathBuf::from("/k/one")])
    );
    assert_eq!(b.identities, Identities::Configured(vec![]));
    assert_eq!(
        (a.timing.keepalive_interval, b.timing.keepalive_interval),
        (secs(5), secs(7))
    );
    assert_eq!(
        (a.host_key_policy, b.host_key_policy),
        (HostKeyPolicy::AcceptNew, HostKeyPolicy::Strict)
    );
    assert_eq!(
        (a.agent.clone(), b.agent.clone()),
        (AgentSource::Path("/run/a".into()), AgentSource::Env)
    );
}

#[test]
fn backoff_merges_field_by_field() {
    let cfg = ok(&format!(
        "[defaults.backoff]\ninitial = \"3s\"\njitter = 0.1\n\n\
         [tunnels.a]\n{MIN}\n\
         [tunnels.b]\nhost = \"h\"\nremote = [\"1:x:2\"]\nbackoff = {{ max = \"9s\", multiplier = 1.5 }}\n"
    ));
    let a = tunnel(&cfg, "a").timing.backoff;
    let b = tunnel(&cfg, "b").timing.backoff;
    assert_eq!(
        a,
        BackoffConfig {
            initial: secs(3),
            max: secs(60),
            multiplier: 2.0,
            jitter: 0.1
        }
    );
    assert_eq!(
        b,
        BackoffConfig {
            initial: secs(3),
            max: secs(9),
            multiplier: 1.5,
            jitter: 0.1
        }
    );
}

#[test]
fn agent_socket_forms() {
    let cases = [
        ("$SSH_AUTH_SOCK", AgentSource::Env),
        ("${SSH_AUTH_SOCK}", AgentSource::Env),
        ("", AgentSource::Disabled),
        (
            "/run/user/1/agent",
            AgentSource::Path("/run/user/1/agent".into()),
        ),
        ("$KEYS/agent", AgentSource::Path("/keys/agent".into())),
        ("~/.agent", AgentSource::Path("/home/me/.agent".into())),
    ];
    for (value, want) in cases {
        let t = only(&format!("[tunnels.t]\n{MIN}agent_socket = {value:?}\n"));
        assert_eq!(t.agent, want, "{value}");
    }
}

#[test]
fn durations_in_every_form() {
    let cases = [
        ("250ms", 250),
        ("15s", 15_000),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("1m30s", 90_000),
    ];
    for (text, ms) in cases {
        let t = only(&format!("[tunnels.t]\n{MIN}connect_timeout = {text:?}\n"));
        assert_eq!(
            t.timing.connect_timeout,
            Duration::from_millis(ms),
            "{text}"
        );
    }
}

#[test]
fn connection_hold_tunnel_overrides_defaults() {
    let cfg = ok(&format!(
        "[defaults]\nconnection_hold = \"10s\"\n\n[tunnels.own]\n{MIN}connection_hold = \"500ms\"\n\n\
         [tunnels.inherits]\nhost = \"h\"\nlocal = [\"9998:x:1\"]\n"
    ));
    let hold = |name| tunnel(&cfg, name).timing.connection_hold;
    assert_eq!(hold("own"), Duration::from_millis(500));
    assert_eq!(hold("inherits"), secs(10));
}

#[test]
fn shutdown_grace_default_and_set() {
    assert_eq!(ok("").shutdown_grace, secs(5));
    assert_eq!(
        ok("[defaults]\nshutdown_grace = \"30s\"\n").shutdown_grace,
        secs(30)
    );
}

#[test]
fn tunnels_are_keyed_by_name_and_may_be_inline() {
    let cfg = ok(
        "[tunnels]\nb = { host = \"h\", local = [\"1:x:2\"] }\na = { host = \"h\", local = [\"3:x:4\"] }\n",
    );
    let names: Vec<_> = cfg.tunnels.keys().map(TunnelName::as_str).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn no_user_anywhere_is_an_error() {
    let text = format!("[tunnels.t]\n{MIN}");
    let homeless = Env::default();
    let e = parse(&text, Path::new(FILE), &homeless).unwrap_err();
    assert_eq!((e.line, e.column), (1, 1));
    assert!(e.message.contains("no `user` set"), "{e}");
    // With a user but no home: default identities are skipped, default known_hosts is an error.
    let e = parse(
        &text,
        Path::new(FILE),
        &Env {
            user: "u".into(),
            ..Env::default()
        },
    )
    .unwrap_err();
    assert!(e.message.contains("home directory is unknown"), "{e}");
}

#[test]
fn the_agent_from_the_environment_falls_back_to_the_runtime_dirs_agent_socket() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().to_str().unwrap().to_owned();
    let vars = |pairs: &'static [(&'static str, &'static str)], runtime: String| {
        move |name: &str| {
            if name == "XDG_RUNTIME_DIR" {
                return Some(std::ffi::OsString::from(runtime.clone()));
            }
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        }
    };
    let set = vars(&[("SSH_AUTH_SOCK", "/run/agent.sock")], runtime.clone());
    assert_eq!(
        AgentSource::from_env(set),
        Some(PathBuf::from("/run/agent.sock"))
    );
    // No socket there yet: no agent, rather than a path that cannot work.
    assert_eq!(AgentSource::from_env(vars(&[], runtime.clone())), None);
    let socket = dir.path().join("ssh-agent.socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    assert_eq!(
        AgentSource::from_env(vars(&[], runtime.clone())),
        Some(socket.clone())
    );
    // An empty SSH_AUTH_SOCK is unset.
    let empty = vars(&[("SSH_AUTH_SOCK", "")], runtime);
    assert_eq!(AgentSource::from_env(empty), Some(socket));
    assert_eq!(AgentSource::from_env(|_| None), None);
}

//! Table tests for the config loader, hermetic: every test builds its own [`Env`] and never
//! reads the real home directory or environment.

mod clashes;
mod forwards;
mod rejections;
mod schema;
mod settings;
mod ssh;

use std::path::{Path, PathBuf};

use super::*;

const FILE: &str = "/cfg/pairtun.toml";

fn env() -> Env {
    Env {
        home: PathBuf::from("/home/me"),
        user: "me".into(),
        vars: [("SSH_AUTH_SOCK", "/run/agent.sock"), ("KEYS", "/keys")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

fn ok(text: &str) -> Config {
    parse(text, Path::new(FILE), &env()).unwrap_or_else(|e| panic!("unexpected error: {e}\n{text}"))
}

fn err(text: &str) -> ConfigError {
    match parse(text, Path::new(FILE), &env()) {
        Ok(cfg) => panic!("expected an error, got {cfg:#?}\n{text}"),
        Err(e) => e,
    }
}

/// Asserts an error's line, column and a substring of its message.
#[track_caller]
fn check_err(text: &str, line: usize, column: usize, needle: &str) {
    let e = err(text);
    assert!(
        e.line == line && e.column == column && e.message.contains(needle),
        "want {line}:{column} containing {needle:?}\n got {e}\n--- text ---\n{text}"
    );
}

/// Runs a table of `(text, line, column, needle)` cases, reporting every mismatch at once.
fn check_all(cases: &[(&str, usize, usize, &str)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|&(text, line, column, needle)| {
            let e = err(text);
            let good = e.line == line && e.column == column && e.message.contains(needle);
            (!good).then(|| {
                format!("want {line}:{column} containing {needle:?}\n got {e}\n in {text:?}")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

fn tunnel<'c>(cfg: &'c Config, name: &str) -> &'c TunnelConfig {
    let name = TunnelName::new(name).unwrap();
    cfg.tunnels
        .get(&name)
        .unwrap_or_else(|| panic!("no tunnel {name}"))
}

/// A minimal valid tunnel body, for tests about one other key.
const MIN: &str = "host = \"saturn\"\nlocal = [\"9999:localhost:1235\"]\n";

/// SPEC §2's example file.
const SEED: &str = r#"[defaults]                       # every key optional; shown with its default
keepalive_interval = "15s"       # like ServerAliveInterval; "0s" is rejected
keepalive_count = 3              # like ServerAliveCountMax: dead after (count+1) silent intervals
connect_timeout = "20s"          # DNS + TCP + key exchange + auth + every forward set up
backoff = { initial = "1s", max = "60s", multiplier = 2.0, jitter = 0.2 }
host_key_policy = "strict"       # strict | accept-new (trust on first use, then pin)
known_hosts = "~/.ssh/known_hosts"
agent_socket = "$SSH_AUTH_SOCK"   # where to find ssh-agent; "" = do not use an agent
# user, port and identity_files may also be set here, for every tunnel

[tunnels.jane]                   # `pairtunctl up jane`
host = "saturn"                  # hostname, or a Host alias in ~/.ssh/config
user = "saturn_user"             # default: ~/.ssh/config User, else the local user name
port = 22                        # default: ~/.ssh/config Port, else 22
identity_files = ["~/.ssh/id_ed25519"]   # default: ssh-agent, then ~/.ssh/config IdentityFile, then ~/.ssh/id_*
local = ["9999:localhost:1235"]  # ssh -L syntax: [bind:]port:host:hostport, also [::1] and Unix sockets
remote = []                      # ssh -R syntax: [bind:]port:host:hostport
dynamic = []                     # ssh -D syntax: [bind:]port (SOCKS5)
jump = "bastion"                 # optional ProxyJump, as OpenSSH: [user@]host[:port] or a ~/.ssh/config
                                 # alias; a chain "a,b"; jump hosts use the tunnel's keys/known_hosts
autostart = true                 # bring up when the daemon starts

[tunnels.from-you]
host = "saturn"
remote = ["1235:localhost:22"]
"#;

#[test]
fn seed_scenario() {
    use std::time::Duration;
    let cfg = ok(SEED);
    assert_eq!(cfg.source.as_deref(), Some(Path::new(FILE)));
    assert_eq!(cfg.shutdown_grace, Duration::from_secs(5));
    assert_eq!(cfg.tunnels.len(), 2);

    let jane = tunnel(&cfg, "jane");
    assert_eq!(
        (jane.host.as_str(), jane.user.as_str(), jane.port),
        ("saturn", "saturn_user", 22)
    );
    assert_eq!(
        jane.identities,
        Identities::Configured(vec![PathBuf::from("/home/me/.ssh/id_ed25519")])
    );
    assert_eq!(
        jane.local,
        vec![parse_forward_local("9999:localhost:1235").unwrap()]
    );
    assert!(jane.remote.is_empty() && jane.dynamic.is_empty() && jane.autostart);
    assert_eq!(
        jane.jump,
        vec![JumpHost {
            host: "bastion".into(),
            port: 22,
            user: "me".into()
        }]
    );
    assert!(tunnel(&cfg, "from-you").jump.is_empty());
    assert_eq!(jane.agent, AgentSource::Env);
    assert_eq!(jane.host_key_policy, HostKeyPolicy::Strict);
    assert_eq!(jane.known_hosts, PathBuf::from("/home/me/.ssh/known_hosts"));

    let from_you = tunnel(&cfg, "from-you");
    assert_eq!(from_you.user, "me");
    assert_eq!(
        from_you.remote,
        vec![parse_forward_remote("1235:localhost:22").unwrap()]
    );
    assert_eq!(
        from_you.remote[0].listen,
        RemoteListen::Tcp {
            bind: "localhost".into(),
            port: 1235
        }
    );
    assert_eq!(
        from_you.remote[0].target,
        Target::Tcp(HostPort {
            host: "localhost".into(),
            port: 22
        })
    );
    assert_eq!(jane.timing, from_you.timing);
}

#[test]
fn empty_text_is_an_empty_config() {
    let cfg = ok("# nothing yet\n");
    assert!(cfg.tunnels.is_empty());
    assert_eq!(cfg.shutdown_grace, Config::empty().shutdown_grace);
}

#[test]
fn display_is_file_line_column_message() {
    let e = err("[tunnels.t]\nhots = 1\n");
    let shown = e.to_string();
    assert!(
        shown.starts_with("/cfg/pairtun.toml:2:1: unknown key `hots`"),
        "{shown}"
    );
}

#[test]
fn column_counts_characters_not_bytes() {
    // "é" is two bytes: the `0` is at byte column 29 but character column 27.
    check_err(
        "[tunnels]\nt = { host = \"éé\", port = 0, local = [] }\n",
        2,
        27,
        "port 0",
    );
}

#[test]
fn load_missing_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let cfg = load(&path, &env()).unwrap();
    assert!(cfg.tunnels.is_empty());
    assert_eq!(cfg.source, Some(path));
}

#[test]
fn load_reads_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, format!("[tunnels.t]\n{MIN}")).unwrap();
    let cfg = load(&path, &env()).unwrap();
    assert_eq!(cfg.source, Some(path.clone()));
    assert_eq!(tunnel(&cfg, "t").host, "saturn");

    std::fs::write(&path, "[tunnels.t]\nport = 0\nhost = \"h\"\n").unwrap();
    let e = load(&path, &env()).unwrap_err();
    assert_eq!((e.path.as_path(), e.line, e.column), (path.as_path(), 2, 8));
}

#[test]
fn load_unreadable_file_names_the_io_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory cannot be read as a file, even by root (tests may run as root).
    let e = load(dir.path(), &env()).unwrap_err();
    assert_eq!((e.line, e.column), (1, 1));
    assert!(
        e.message.starts_with("cannot read the config file: "),
        "{e}"
    );
}

#[test]
fn load_invalid_utf8_points_at_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, b"[tunnels.t]\nhost = \"ab\xff\"\n").unwrap();
    let e = load(&path, &env()).unwrap_err();
    assert_eq!((e.line, e.column), (2, 11), "{e}");
    assert!(e.message.contains("not valid UTF-8"), "{e}");
}

/// Prints every table case's message, to review their wording:
/// `cargo test --lib show_messages -- --ignored --nocapture`.
#[test]
#[ignore]
fn show_messages() {
    let tables = [schema::CASES, rejections::CASES, clashes::CASES];
    for (text, ..) in tables.into_iter().flatten() {
        println!("{}", err(text));
    }
}

/// Every prefix of some valid and invalid files, and of some specs: errors, never a panic.
#[test]
fn truncated_input_never_panics() {
    let texts = [
        SEED,
        "[tunnels]\nt = { host = \"é\", local = [\"[::1]:1:[::1]:2\"] }\n",
    ];
    for text in texts {
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let _ = parse(&text[..end], Path::new(FILE), &env());
        }
    }
    for spec in ["[::1]:9999:[fe80::1]:22", "/a/b:/c/d", "*:0:h:1"] {
        for end in 0..=spec.len() {
            let _ = parse_forward_local(&spec[..end]);
            let _ = parse_forward_remote(&spec[end..]);
        }
    }
}

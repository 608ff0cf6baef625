//! `~/.ssh/config` in the config file: precedence tunnel → ssh config → `[defaults]` →
//! built-in, as a table, and jump hosts resolved through it.

use super::*;

/// Parses `toml` with `[defaults] ssh_config` pointing at a file holding `ssh`; the temporary
/// directory is returned so it lives as long as the test.
fn with_ssh(ssh: &str, defaults: &str, body: &str) -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssh_config");
    std::fs::write(&file, ssh).unwrap();
    let text = format!(
        "[defaults]\nssh_config = {:?}\n{defaults}\n[tunnels.t]\nlocal = [\"9999:localhost:1\"]\n{body}",
        file.display().to_string()
    );
    (ok(&text), dir)
}

const SSH: &str = "Host saturn\n  HostName saturn.example.org\n  User ssh_user\n  Port 2222\n  \
                   IdentityFile /keys/ssh_key\n";

/// Expected host, user, port and identity file (`None`: the built-in default files).
type Want<'a> = (&'a str, &'a str, u16, Option<&'a str>);

#[test]
fn precedence_table() {
    // (ssh config, [defaults], tunnel keys, want)
    let cases: &[(&str, &str, &str, Want)] = &[
        // tunnel keys beat everything
        (
            SSH,
            "user = \"d_user\"\nport = 3333\nidentity_files = [\"/keys/d\"]",
            "host = \"saturn\"\nuser = \"t_user\"\nport = 4444\nidentity_files = [\"/keys/t\"]",
            ("saturn.example.org", "t_user", 4444, Some("/keys/t")),
        ),
        // ssh config beats [defaults]
        (
            SSH,
            "user = \"d_user\"\nport = 3333\nidentity_files = [\"/keys/d\"]",
            "host = \"saturn\"",
            (
                "saturn.example.org",
                "ssh_user",
                2222,
                Some("/keys/ssh_key"),
            ),
        ),
        // [defaults] where the ssh config is silent (another host)
        (
            SSH,
            "user = \"d_user\"\nport = 3333\nidentity_files = [\"/keys/d\"]",
            "host = \"mars\"",
            ("mars", "d_user", 3333, Some("/keys/d")),
        ),
        // built-in defaults last
        (SSH, "", "host = \"mars\"", ("mars", "me", 22, None)),
    ];
    for (ssh, defaults, body, (host, user, port, key)) in cases {
        let (cfg, _dir) = with_ssh(ssh, defaults, body);
        let t = tunnel(&cfg, "t");
        assert_eq!(
            (t.host.as_str(), t.user.as_str(), t.port),
            (*host, *user, *port),
            "case {body:?} with defaults {defaults:?}"
        );
        match key {
            Some(key) => assert_eq!(
                t.identities,
                Identities::Configured(vec![PathBuf::from(key)]),
                "{body:?}"
            ),
            None => assert!(matches!(t.identities, Identities::Defaults(_)), "{body:?}"),
        }
    }
}

#[test]
fn proxy_jump_from_ssh_config_resolves_each_hop() {
    let ssh = "Host target\n  ProxyJump bastion,ops@10.0.0.1:2200\n  IdentitiesOnly yes\n\
               Host bastion\n  HostName bastion.example.org\n  User jumper\n  Port 2022\n";
    let (cfg, _dir) = with_ssh(ssh, "", "host = \"target\"");
    let t = tunnel(&cfg, "t");
    assert!(t.identities_only);
    assert_eq!(
        t.jump,
        vec![
            JumpHost {
                host: "bastion.example.org".into(),
                port: 2022,
                user: "jumper".into()
            },
            JumpHost {
                host: "10.0.0.1".into(),
                port: 2200,
                user: "ops".into()
            },
        ]
    );
    // The tunnel's own `jump` wins, and "none" means direct.
    let (cfg, _dir) = with_ssh(ssh, "", "host = \"target\"\njump = \"none\"");
    assert!(tunnel(&cfg, "t").jump.is_empty());
    let (cfg, _dir) = with_ssh(
        ssh,
        "user = \"d\"",
        "host = \"target\"\njump = \"[::1]:22\"",
    );
    assert_eq!(
        tunnel(&cfg, "t").jump,
        vec![JumpHost {
            host: "::1".into(),
            port: 22,
            user: "d".into()
        }]
    );
}

#[test]
fn ssh_config_warnings_reach_the_config_and_empty_path_disables_it() {
    let (cfg, dir) = with_ssh(
        "Host saturn\n  User a\nMatch all\n  User b\n",
        "",
        "host = \"saturn\"",
    );
    assert_eq!(tunnel(&cfg, "t").user, "a");
    assert_eq!(cfg.warnings.len(), 1);
    assert!(cfg.warnings[0].contains("ssh_config:3: `Match` is not supported"));
    assert_eq!(cfg.ssh_config, Some(dir.path().join("ssh_config")));

    let text = format!("[defaults]\nssh_config = \"\"\n[tunnels.t]\n{MIN}");
    let none = ok(&text);
    assert!(none.warnings.is_empty() && none.ssh_config.is_none());
    // Not set: OpenSSH's own file.
    let default = ok(&format!("[tunnels.t]\n{MIN}"));
    assert_eq!(
        default.ssh_config,
        Some(PathBuf::from("/home/me/.ssh/config"))
    );
}

/// A FIFO where a config file should be is refused at once: opening it to read would wait for
/// a writer (and hold a reload, or the daemon's start, until one came).
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    std::thread::spawn(move || {
        tx.send(crate::config::read_file(&reader).map_err(|e| e.to_string()))
    });
    let read = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("read_file returned without a writer");
    let e = read.expect_err("a FIFO is not a config file");
    assert!(e.contains("not a regular file"), "{e}");
    // Unblock the reader if it did wait (the test has failed by then).
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo),
    );
}

/// Regression (found reading the fuzz targets): a path naming something endless must not be
/// read until memory runs out.
#[test]
fn endless_or_huge_files_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge");
    std::fs::write(&huge, vec![b'#'; MAX_FILE_SIZE as usize + 1]).unwrap();
    for (path, why) in [
        (Path::new("/dev/zero"), "not a regular file"),
        (huge.as_path(), "larger than 1024 KiB"),
    ] {
        let e = load(path, &env()).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
        let text = format!(
            "[defaults]\nssh_config = {:?}\n[tunnels.t]\nhost = \"h\"\nlocal = [\"9999:localhost:1\"]\n",
            path.display().to_string()
        );
        let config = ok(&text);
        assert!(
            config.warnings.iter().any(|w| w.contains(why)),
            "{:?}",
            config.warnings
        );
        let (config, _dir) = with_ssh(
            &format!("Include {}\nHost saturn\n  User u\n", path.display()),
            "",
            "host = \"saturn\"",
        );
        assert!(
            config.warnings.iter().any(|w| w.contains(why)),
            "{:?}",
            config.warnings
        );
    }
}

#[test]
fn ssh_config_identity_files_are_expanded_for_the_connection_as_ssh_does() {
    let ssh = "Host saturn\n  HostName saturn.example.org\n  Port 2222\n  \
               IdentityFile %d/keys/%h_%r_%p\n  IdentityFile ~/keys/%n-%u\n";
    let (cfg, _dir) = with_ssh(ssh, "", "host = \"saturn\"\nuser = \"jane\"");
    let t = tunnel(&cfg, "t");
    let home = env().home;
    assert_eq!(
        t.identities,
        Identities::Configured(vec![
            home.join("keys/saturn.example.org_jane_2222"),
            home.join("keys/saturn-me"),
        ])
    );
    // pairtun's own paths are not ssh's: a `%` there is a character.
    let (cfg, _dir) = with_ssh(ssh, "identity_files = [\"/keys/100%\"]", "host = \"mars\"");
    let t = tunnel(&cfg, "t");
    assert_eq!(
        t.identities,
        Identities::Configured(vec![PathBuf::from("/keys/100%")])
    );
}

#[test]
fn an_identity_file_ssh_could_not_expand_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ssh_config");
    std::fs::write(&file, "Host saturn\n  IdentityFile /keys/%z\n").unwrap();
    let text = format!(
        "[defaults]\nssh_config = {:?}\n[tunnels.t]\nhost = \"saturn\"\nlocal = [\"9999:localhost:1\"]\n",
        file.display().to_string()
    );
    let e = err(&text).to_string();
    assert!(
        e.contains("IdentityFile /keys/%z in the ssh config for \"saturn\": unknown token %z"),
        "{e}"
    );
    assert!(
        e.contains("pairtun.toml:3:1:"),
        "points at the tunnel's header: {e}"
    );
}

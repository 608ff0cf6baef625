//! Parsing of every command, and the usage errors for bad values.

use std::time::Duration;

use clap::Parser;

use super::*;

fn parse(args: &[&str]) -> Cli {
    let argv = std::iter::once("pairtunctl").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

fn command(args: &[&str]) -> Command {
    parse(args).command
}

/// The rendered usage error, which must exit 2 like every clap error.
fn usage_error(args: &[&str]) -> String {
    let argv = std::iter::once("pairtunctl").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} should be a usage error, got {cli:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
            e.to_string()
        }
    }
}

fn name(n: &str) -> String {
    n.to_owned()
}

#[test]
fn status_with_and_without_name_and_watch() {
    let all = Command::Status {
        name: None,
        watch: false,
    };
    assert_eq!(command(&["status"]), all);
    let one = Command::Status {
        name: Some(name("jane")),
        watch: true,
    };
    assert_eq!(command(&["status", "jane", "--watch"]), one);
    assert_eq!(command(&["status", "-w", "jane"]), one);
}

#[test]
fn up_wait_without_value_uses_the_default() {
    let wait = |d| Command::Up {
        name: name("jane"),
        wait: d,
    };
    assert_eq!(command(&["up", "jane"]), wait(None));
    assert_eq!(
        command(&["up", "jane", "--wait"]),
        wait(Some(Duration::from_secs(30)))
    );
    // `--wait NAME` must not swallow the name as a timeout.
    assert_eq!(
        command(&["up", "--wait", "jane"]),
        wait(Some(Duration::from_secs(30)))
    );
}

#[test]
fn up_wait_with_a_value() {
    let wait = |d| Command::Up {
        name: name("jane"),
        wait: Some(d),
    };
    assert_eq!(
        command(&["up", "jane", "--wait=5s"]),
        wait(Duration::from_secs(5))
    );
    assert_eq!(
        command(&["up", "jane", "--wait=2m"]),
        wait(Duration::from_secs(120))
    );
    assert_eq!(
        command(&["up", "jane", "--wait=1m30s"]),
        wait(Duration::from_secs(90))
    );
    assert_eq!(
        command(&["up", "jane", "--wait=45"]),
        wait(Duration::from_secs(45))
    );
    assert_eq!(
        command(&["up", "jane", "--wait=250ms"]),
        wait(Duration::from_millis(250))
    );
}

#[test]
fn up_wait_with_a_bad_value_is_a_usage_error() {
    let e = usage_error(&["up", "jane", "--wait=soon"]);
    assert!(
        e.contains("soon") && e.contains("expected a duration like 30s"),
        "{e}"
    );
    usage_error(&["up"]);
    // A deadline is formed from it: a value that would overflow the clock is refused.
    for huge in [
        "--wait=18446744073709551615",
        "--wait=100000000000h",
        "--wait=25h",
    ] {
        let e = usage_error(&["up", "jane", huge]);
        assert!(e.contains("at most 24h"), "{e}");
    }
    assert_eq!(
        command(&["up", "jane", "--wait=24h"]),
        Command::Up {
            name: name("jane"),
            wait: Some(Duration::from_secs(24 * 3600))
        }
    );
}

#[test]
fn down_restart_drop_reload_ping_version() {
    assert_eq!(
        command(&["down", "jane"]),
        Command::Down { name: name("jane") }
    );
    assert_eq!(
        command(&["restart", "jane"]),
        Command::Restart { name: name("jane") }
    );
    assert_eq!(
        command(&["drop", "jane"]),
        Command::Drop {
            name: name("jane"),
            temporary: false
        }
    );
    assert_eq!(
        command(&["drop", "jane", "--temporary"]),
        Command::Drop {
            name: name("jane"),
            temporary: true
        }
    );
    assert_eq!(command(&["reload"]), Command::Reload);
    assert_eq!(command(&["ping"]), Command::Ping);
    assert_eq!(command(&["version"]), Command::Version);
    usage_error(&["down"]);
    usage_error(&["reload", "jane"]);
}

#[test]
fn logs_with_name_and_follow() {
    assert_eq!(
        command(&["logs"]),
        Command::Logs {
            name: None,
            follow: false
        }
    );
    let followed = Command::Logs {
        name: Some(name("jane")),
        follow: true,
    };
    assert_eq!(command(&["logs", "jane", "-f"]), followed);
    assert_eq!(command(&["logs", "--follow", "jane"]), followed);
}

#[test]
fn add_with_every_flag() {
    let line = "add jane --host saturn --port 2222 --user saturn_user \
        --identity ~/.ssh/id_ed25519 -i /keys/other -L 9999:localhost:1235 \
        --local [::1]:8080:localhost:80 -R 1235:localhost:22 -D 1080 --jump bastion \
        --no-autostart --probe-peer --temporary";
    let args: Vec<&str> = line.split_whitespace().collect();
    let expected = AddArgs {
        name: name("jane"),
        host: name("saturn"),
        port: Some(2222),
        user: Some(name("saturn_user")),
        identity: vec![name("~/.ssh/id_ed25519"), name("/keys/other")],
        local: vec![name("9999:localhost:1235"), name("[::1]:8080:localhost:80")],
        remote: vec![name("1235:localhost:22")],
        dynamic: vec![name("1080")],
        jump: Some(name("bastion")),
        no_autostart: true,
        probe_peer: true,
        temporary: true,
    };
    assert_eq!(command(&args), Command::Add(expected));
}

#[test]
fn add_minimal_and_its_usage_errors() {
    let Command::Add(add) = command(&["add", "jane", "--host", "saturn", "-R", "0:localhost:22"])
    else {
        panic!("not add")
    };
    assert_eq!(
        (add.port, add.no_autostart, add.temporary),
        (None, false, false)
    );
    let e = usage_error(&["add", "jane", "--host", "saturn"]);
    assert!(e.contains("--local"), "a tunnel needs a forward: {e}");
    usage_error(&["add", "jane", "-L", "1:x:2"]);
    let e = usage_error(&["add", ".jane", "--host", "h", "-L", "1:x:2"]);
    assert!(e.contains("must not start with '-' or '.'"), "{e}");
    let e = usage_error(&["add", "ja/ne", "--host", "h", "-L", "1:x:2"]);
    assert!(e.contains("contains '/'"), "{e}");
    let e = usage_error(&["add", "jane", "--host", "h", "-p", "0", "-L", "1:x:2"]);
    assert!(e.contains("'0'"), "{e}");
}

#[test]
fn bad_forward_specs_are_usage_errors_naming_spec_and_problem() {
    let e = usage_error(&["add", "jane", "--host", "h", "-L", "99999:localhost:22"]);
    assert!(e.contains("'99999:localhost:22'"), "names the spec: {e}");
    assert!(
        e.contains("listen port 99999 is out of range (1-65535)"),
        "{e}"
    );
    assert!(
        !e.contains("\"99999:localhost:22\""),
        "quoted once, not twice: {e}"
    );
    let e = usage_error(&["add", "jane", "--host", "h", "-R", "1235"]);
    assert!(
        e.contains("'1235'") && e.contains("remote dynamic (SOCKS)"),
        "{e}"
    );
    let e = usage_error(&["add", "jane", "--host", "h", "-L", "1:x:2", "-D", "socks"]);
    assert!(e.contains("'socks'") && e.contains("not a number"), "{e}");
}

#[test]
fn spec_parsers() {
    assert_eq!(
        parse_local("9999:localhost:1235"),
        Ok(name("9999:localhost:1235"))
    );
    assert_eq!(parse_remote("0:localhost:22"), Ok(name("0:localhost:22")));
    assert_eq!(
        parse_local("0:localhost:22").unwrap_err(),
        "listen port 0 is out of range (1-65535); port 0 (relay picks) is only allowed for \
         remote forwards"
    );
    assert!(
        parse_local("9999:localhost")
            .unwrap_err()
            .contains("missing parts")
    );
    for ok in [
        "1080",
        "localhost:1080",
        "[::1]:1080",
        "*:1080",
        ":1080",
        "127.0.0.1:1080",
    ] {
        assert_eq!(parse_dynamic(ok), Ok(name(ok)), "{ok}");
    }
    for bad in ["", "0", "65536", "+80", "::1:1080", "[::1:1080", "x:"] {
        assert!(parse_dynamic(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn global_flags_go_anywhere_and_read_the_environment_names() {
    let cli = parse(&[
        "--json",
        "status",
        "--socket",
        "/tmp/s.sock",
        "--config",
        "/c.toml",
    ]);
    assert!(cli.json);
    assert_eq!(
        cli.socket.as_deref(),
        Some(std::path::Path::new("/tmp/s.sock"))
    );
    assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/c.toml")));
    let cli = parse(&["ping", "--json"]);
    assert!(cli.json && cli.command == Command::Ping);
    usage_error(&["frobnicate"]);
    usage_error(&[]);
}

#[test]
fn import_doctor_and_invite_arguments() {
    let line = "import saturn.lab --name lab --ssh-config /etc/ssh/mine --no-autostart --temporary";
    let args: Vec<&str> = line.split_whitespace().collect();
    let expected = ImportArgs {
        host: name("saturn.lab"),
        name: Some(name("lab")),
        ssh_config: Some(PathBuf::from("/etc/ssh/mine")),
        no_autostart: true,
        temporary: true,
    };
    assert_eq!(command(&args), Command::Import(expected));
    assert!(Cli::try_parse_from(["pairtunctl", "import", "h", "--name", "bad name"]).is_err());
    assert_eq!(command(&["doctor"]), Command::Doctor { name: None });
    assert_eq!(
        command(&["doctor", "jane"]),
        Command::Doctor {
            name: Some(name("jane"))
        }
    );
    assert_eq!(
        command(&["invite", "jane"]),
        Command::Invite { name: name("jane") }
    );
}

#[test]
fn add_refuses_empty_host_user_identity_and_jump() {
    for flag in ["--host=", "-l=", "-i=", "-J="] {
        let mut args = vec!["add", "jane", "-R", "1235:localhost:22"];
        if flag != "--host=" {
            args.extend(["--host", "relay"]);
        }
        args.push(flag);
        usage_error(&args);
    }
}

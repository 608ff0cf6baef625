use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::{self, Env, TunnelName};

fn env() -> Env {
    Env {
        home: PathBuf::from("/home/me"),
        user: "me".to_owned(),
        vars: HashMap::new(),
    }
}

fn tunnel(toml: &str, name: &str) -> TunnelConfig {
    let config = config::parse(toml, Path::new("/home/me/config.toml"), &env())
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    config.tunnels[&TunnelName::new(name).unwrap()].clone()
}

#[test]
fn the_seed_scenario_mirrors_into_a_config_the_partner_can_load() {
    let ours = tunnel(
        "[tunnels.jane]\nhost = \"saturn\"\nlocal = [\"9999:localhost:1235\"]\n",
        "jane",
    );
    let invite = invite(&ours, 22);
    assert_eq!(invite.remote, ["1235:localhost:22"]);
    assert_eq!(invite.connect_port, Some(9999));
    let text = invite.render();
    let theirs = tunnel(&text, "jane-partner");
    assert_eq!(theirs.host, "saturn");
    assert_eq!(theirs.port, 22);
    assert_eq!(theirs.remote[0].spec, "1235:localhost:22");
    assert!(theirs.local.is_empty());
    for line in [
        "ssh -N -o ServerAliveInterval=15 -o ExitOnForwardFailure=yes -R 1235:localhost:22 saturn",
        "ClientAliveInterval 15",
        "ClientAliveCountMax 2",
        "StreamLocalBindUnlink yes",
        "ssh -p 9999 YOUR_USER@localhost",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn every_forward_kind_is_mirrored_or_said_why_not() {
    let ours = tunnel(
        r#"[tunnels.both]
host = "relay.example"
port = 2222
local = ["9999:127.0.0.1:1235", "5432:db.internal:5432", "7000:/run/pair.sock"]
remote = ["8080:localhost:3000", "0:localhost:22"]
"#,
        "both",
    );
    let invite = invite(&ours, 2200);
    assert_eq!(
        invite.remote,
        ["1235:localhost:2200", "/run/pair.sock:localhost:2200"]
    );
    assert_eq!(invite.local, ["8080:localhost:8080"]);
    assert_eq!(invite.skipped.len(), 2, "{:?}", invite.skipped);
    assert!(invite.skipped[0].contains("db.internal:5432"));
    assert!(invite.skipped[1].contains("relay picks the port"));
    let text = invite.render();
    assert!(text.contains("-p 2222 "), "{text}");
    let theirs = tunnel(&text, "both-partner");
    assert_eq!(
        (theirs.port, theirs.remote.len(), theirs.local.len()),
        (2222, 2, 1)
    );
}

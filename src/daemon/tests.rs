//! Reload against running tunnels: what the user did at run time, and daemon-wide settings.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Daemon;
use crate::config::{self, Env};
use crate::tunnel::{Command, TunnelState};

fn env(dir: &Path) -> Env {
    Env {
        home: dir.to_owned(),
        user: "t".to_owned(),
        vars: Default::default(),
    }
}

/// A loopback port nothing listens on: attempts fail at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The config file: `defaults` lines, then one tunnel per `(name, extra lines)`, each to the
/// closed `relay` port.
fn write(dir: &Path, defaults: &str, relay: u16, tunnels: &[(&str, &str)]) -> PathBuf {
    let mut text = format!("[defaults]\nagent_socket = \"\"\n{defaults}\n");
    for (name, extra) in tunnels {
        text += &format!(
            "[tunnels.{name}]\nhost = \"127.0.0.1\"\nport = {relay}\n\
             local = [\"127.0.0.1:{}:localhost:22\"]\n{extra}\n",
            closed_port()
        );
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn state(daemon: &Daemon, name: &str) -> TunnelState {
    daemon.status(Some(name)).unwrap()[0].state
}

async fn wait_state(daemon: &Daemon, name: &str, want: impl Fn(TunnelState) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want(state(daemon, name)) {
        assert!(
            Instant::now() < deadline,
            "{name}: still {:?}",
            state(daemon, name)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_reload_that_changes_a_tunnel_keeps_the_users_up_or_down() {
    let dir = tempfile::tempdir().unwrap();
    let relay = closed_port();
    let before = [
        ("downed", "keepalive_interval = \"15s\""),
        ("upped", "autostart = false\nkeepalive_interval = \"15s\""),
        (
            "switched_on",
            "autostart = false\nkeepalive_interval = \"15s\"",
        ),
    ];
    let path = write(dir.path(), "", relay, &before);
    let config = config::load(&path, &env(dir.path())).unwrap();
    let daemon = Daemon::start(&config, env(dir.path()));
    daemon.command("downed", Command::Down).await.unwrap();
    daemon.command("upped", Command::Up).await.unwrap();
    wait_state(&daemon, "downed", |s| s == TunnelState::Stopped).await;
    wait_state(&daemon, "upped", |s| s != TunnelState::Stopped).await;

    let after = [
        ("downed", "keepalive_interval = \"20s\""),
        ("upped", "autostart = false\nkeepalive_interval = \"20s\""),
        (
            "switched_on",
            "autostart = true\nkeepalive_interval = \"20s\"",
        ),
    ];
    write(dir.path(), "", relay, &after);
    let diff = daemon.reload().await.unwrap();
    assert_eq!(diff.changed.len(), 3, "{diff:?}");
    // Answered probes: each new supervisor has published how it started.
    assert!(daemon.probe(Duration::from_secs(5)).await);
    assert_eq!(
        state(&daemon, "downed"),
        TunnelState::Stopped,
        "`down` undone by a reload"
    );
    assert_ne!(
        state(&daemon, "upped"),
        TunnelState::Stopped,
        "`up` undone by a reload"
    );
    // The change itself turned `autostart` on: the tunnel starts.
    assert_ne!(state(&daemon, "switched_on"), TunnelState::Stopped);
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_reload_applies_a_changed_shutdown_grace() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "", closed_port(), &[]);
    let config = config::load(&path, &env(dir.path())).unwrap();
    let daemon = Daemon::start(&config, env(dir.path()));
    assert_eq!(daemon.grace.get(), config.shutdown_grace);
    write(dir.path(), "shutdown_grace = \"1s\"", closed_port(), &[]);
    daemon.reload().await.unwrap();
    assert_eq!(daemon.grace.get(), Duration::from_secs(1));
}

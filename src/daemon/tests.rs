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

mod watch {
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;
    use crate::control::{Handler, Reply};
    use crate::daemon::ControlHandler;
    use crate::protocol::{Request, Response};

    async fn start(dir: &Path, tunnels: &[(&str, &str)]) -> (Arc<Daemon>, u16) {
        let relay = closed_port();
        let path = write(dir, "", relay, tunnels);
        let config = config::load(&path, &env(dir)).unwrap();
        (Arc::new(Daemon::start(&config, env(dir))), relay)
    }

    async fn watch(daemon: &Arc<Daemon>) -> tokio::sync::mpsc::Receiver<Response> {
        let handler = ControlHandler::new(daemon.clone());
        let Reply::Stream(rx) = handler.handle(Request::Watch { name: None }).await else {
            panic!("watch is a stream");
        };
        rx
    }

    /// Statuses until one lists `name` (panics after 5 s).
    async fn until_listed(rx: &mut tokio::sync::mpsc::Receiver<Response>, name: &str) {
        let listed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match rx.recv().await {
                    Some(Response::Status { tunnels })
                        if tunnels.iter().any(|t| t.name == name) =>
                    {
                        return;
                    }
                    Some(Response::Status { .. }) => {}
                    other => panic!("the watch ended: {other:?}"),
                }
            }
        });
        listed
            .await
            .unwrap_or_else(|_| panic!("`{name}` never appeared in the watch"));
    }

    #[tokio::test]
    async fn a_watch_with_no_tunnels_waits_for_some() {
        let dir = tempfile::tempdir().unwrap();
        let (daemon, relay) = start(dir.path(), &[]).await;
        let mut rx = watch(&daemon).await;
        assert!(
            matches!(rx.recv().await, Some(Response::Status { tunnels }) if tunnels.is_empty())
        );
        write(dir.path(), "", relay, &[("late", "autostart = false")]);
        daemon.reload().await.unwrap();
        until_listed(&mut rx, "late").await;
        daemon.shutdown().await;
        // The daemon stopping ends every watch.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(r) = rx.recv().await {
                if matches!(r, Response::Ok { .. }) {
                    return;
                }
            }
            panic!("the watch ended without `ok`");
        });
        end.await.expect("the watch ends when the daemon stops");
    }

    #[tokio::test]
    async fn a_watch_follows_tunnels_added_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (daemon, relay) = start(dir.path(), &[("a", "autostart = false")]).await;
        let mut rx = watch(&daemon).await;
        until_listed(&mut rx, "a").await;
        let both = [("a", "autostart = false"), ("b", "autostart = false")];
        write(dir.path(), "", relay, &both);
        daemon.reload().await.unwrap();
        until_listed(&mut rx, "b").await;
        // `a` replaced by a reload that changes it, then brought up: the watch hears it.
        write(
            dir.path(),
            "",
            relay,
            &[("a", ""), ("b", "autostart = false")],
        );
        daemon.reload().await.unwrap();
        let up = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(Response::Status { tunnels }) = rx.recv().await
                    && tunnels
                        .iter()
                        .any(|t| t.name == "a" && t.state != TunnelState::Stopped)
                {
                    return;
                }
            }
        });
        up.await
            .expect("the replaced tunnel's new state reached the watch");
        daemon.shutdown().await;
    }

    /// `echo '{"op":"watch"}' | socat - UNIX-CONNECT:…`: the request, then end of input.
    #[tokio::test]
    async fn a_client_that_half_closes_still_gets_the_first_replies() {
        let dir = tempfile::tempdir().unwrap();
        let (daemon, _) = start(dir.path(), &[("a", "autostart = false")]).await;
        let socket = dir.path().join("ctl").join("pairtund.sock");
        let listener = crate::control::bind(&socket).await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(crate::control::serve(
            listener,
            Arc::new(ControlHandler::new(daemon.clone())),
            stop.clone(),
            Default::default(),
        ));
        // Something in the log's backlog for `logs` to send.
        crate::daemon::events::EventLog::global().push(crate::protocol::LogEvent {
            time: "2026-12-01T00:00:00.000Z".to_owned(),
            tunnel: None,
            level: "info".to_owned(),
            message: "backlog".to_owned(),
        });
        for request in [&b"{\"op\":\"watch\"}\n"[..], b"{\"op\":\"logs\"}\n"] {
            let mut conn = tokio::net::UnixStream::connect(&socket).await.unwrap();
            conn.write_all(request).await.unwrap();
            conn.shutdown().await.unwrap();
            let mut lines = Vec::new();
            let mut reader = BufReader::new(conn);
            let mut line = String::new();
            let read = async {
                while reader.read_line(&mut line).await.unwrap() > 0 {
                    lines.push(std::mem::take(&mut line));
                }
            };
            tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .expect("a finite stream");
            let want = if request.starts_with(b"{\"op\":\"watch") {
                "\"reply\":\"status\""
            } else {
                "\"reply\":\"log\""
            };
            assert!(lines.iter().any(|l| l.contains(want)), "{want}: {lines:?}");
            assert!(
                lines.last().is_some_and(|l| l.contains("\"reply\":\"ok\"")),
                "{lines:?}"
            );
        }
        stop.cancel();
        let _ = server.await;
        daemon.shutdown().await;
    }
}

/// A reload that changes a tunnel (not its `-L` port) hands the port over: the replacement
/// takes it as soon as the old listener closes, without showing "address in use".
#[tokio::test]
async fn a_changed_tunnel_takes_its_local_port_over_at_once() {
    use crate::tunnel::ForwardState;
    let dir = tempfile::tempdir().unwrap();
    let relay = closed_port();
    let port = closed_port();
    let local = format!("local = [\"127.0.0.1:{port}:localhost:22\"]");
    let tunnel = |keepalive: &str| {
        format!(
            "[defaults]\nagent_socket = \"\"\n[tunnels.a]\nhost = \"127.0.0.1\"\nport = {relay}\n\
             {local}\nkeepalive_interval = \"{keepalive}\"\n"
        )
    };
    let path = dir.path().join("config.toml");
    std::fs::write(&path, tunnel("15s")).unwrap();
    let config = config::load(&path, &env(dir.path())).unwrap();
    let daemon = Daemon::start(&config, env(dir.path()));
    let forward = |d: &Daemon| d.status(Some("a")).unwrap()[0].forwards[0].clone();
    let listening = Instant::now() + Duration::from_secs(10);
    while forward(&daemon).state != ForwardState::Up {
        assert!(Instant::now() < listening, "{:?}", forward(&daemon));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(&path, tunnel("20s")).unwrap();
    let reloaded = Instant::now();
    assert_eq!(daemon.reload().await.unwrap().changed.len(), 1);
    // Until the new listener accepts a connection: no error on the way, and well before the
    // 2 s an "address in use" waits between tries.
    loop {
        let f = forward(&daemon);
        assert_ne!(f.state, ForwardState::Error, "{f:?}");
        if f.state == ForwardState::Up
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        {
            break;
        }
        assert!(reloaded.elapsed() < Duration::from_secs(1), "{f:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.shutdown().await;
}

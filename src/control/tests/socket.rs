//! Claiming the socket: permissions, stale files, a live daemon, unsafe directories.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::control::{BindError, Client, ClientError};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn private_dir_and_socket_removed_on_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("run").join("pairtun").join("pairtund.sock");
    let listener = bind(&path).await.expect("bind");
    assert_eq!(listener.path(), path);
    assert_eq!(mode(path.parent().expect("parent")), 0o700);
    #[cfg(target_os = "linux")]
    assert_eq!(mode(&path), 0o600);
    drop(listener);
    assert!(!path.exists(), "the listener removes its socket file");
}

#[tokio::test]
async fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pairtund.sock");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // A std listener leaves its file behind when dropped, like a crashed daemon.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("std bind"));
    assert!(path.exists());
    let err = Client::connect(&path).await.expect_err("nobody listens");
    assert!(matches!(err, ClientError::NotRunning(_)), "{err}");
    assert_eq!(err.exit_code(), 3);

    let listener = bind(&path).await.expect("stale socket replaced");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(Mock::default()),
        shutdown.clone(),
        Limits::default(),
    ));
    let mut client = within("connect", Client::connect(&path))
        .await
        .expect("connect");
    let pong = client.request(&Request::Ping {}).await.expect("ping");
    assert!(matches!(pong, Response::Pong { .. }), "{pong:?}");
    shutdown.cancel();
    within("stop", server).await.expect("server");
    assert!(!path.exists(), "serve removes the socket when it ends");
}

#[tokio::test]
async fn a_live_daemon_is_never_displaced() {
    let mut fixture = Fixture::start(Limits::default()).await;
    let err = bind(&fixture.path).await.expect_err("second bind");
    assert!(matches!(err, BindError::AlreadyRunning(_)), "{err}");
    assert!(err.to_string().contains("already running"), "{err}");
    // The first daemon still answers on the same file.
    let mut client = Client::connect(&fixture.path).await.expect("connect");
    let pong = client.request(&Request::Ping {}).await.expect("ping");
    assert!(matches!(pong, Response::Pong { .. }), "{pong:?}");
    fixture.stop().await;
}

#[tokio::test]
async fn refuses_what_it_must_not_touch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let open = dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = bind(&open.join("s.sock")).await.expect_err("0755 dir");
    assert!(matches!(err, BindError::UnsafeDir { .. }), "{err}");
    assert!(err.to_string().contains("mode is 0755"), "{err}");

    let private = dir.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let file = private.join("notes.txt");
    std::fs::write(&file, "keep me").expect("write");
    let err = bind(&file).await.expect_err("a regular file");
    assert!(matches!(err, BindError::NotASocket(_)), "{err}");
    assert!(file.exists(), "never deleted");

    let long = private.join("x".repeat(120));
    let err = bind(&long).await.expect_err("too long");
    assert!(matches!(err, BindError::PathTooLong { .. }), "{err}");
}

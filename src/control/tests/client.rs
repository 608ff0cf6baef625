//! The client's view: greeting checks, errors with exit codes, streams.

use super::*;
use crate::control::{Client, ClientError};

#[tokio::test]
async fn missing_socket_means_not_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = Client::connect(&dir.path().join("none.sock"))
        .await
        .expect_err("no socket");
    assert!(matches!(err, ClientError::NotRunning(_)), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert!(
        err.to_string().contains("systemctl --user start pairtund"),
        "{err}"
    );
}

#[tokio::test]
async fn protocol_mismatch_is_explained() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("future.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let future_daemon = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("accept");
        let hello = b"{\"hello\":{\"protocol\":99,\"daemon\":\"9.0.0\",\"new\":true}}\n";
        conn.write_all(hello).await.expect("write");
        conn
    });
    let err = Client::connect(&path).await.expect_err("mismatch");
    let _conn = future_daemon.await.expect("fake daemon");
    assert!(
        matches!(&err, ClientError::ProtocolMismatch { protocol: 99, daemon } if daemon == "9.0.0"),
        "{err}"
    );
    assert!(
        err.to_string().contains("speaks control protocol 99"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);
}

#[tokio::test]
async fn requests_and_daemon_errors() {
    let mut fixture = Fixture::start(Limits::default()).await;
    let mut client = Client::connect(&fixture.path).await.expect("connect");
    assert_eq!(client.daemon().protocol, PROTOCOL_VERSION);
    let reply = client
        .request(&Request::Down {
            name: "ghost".into(),
        })
        .await
        .expect("reply");
    assert!(is_error(&reply, ErrorKind::UnknownTunnel), "{reply:?}");
    let watch = Request::Watch { name: None };
    let misuse = client
        .request(&watch)
        .await
        .expect_err("stream via request");
    assert!(
        misuse.to_string().contains("use Client::stream"),
        "{misuse}"
    );
    // The connection is still in sync after both.
    let reply = client.request(&Request::Reload {}).await.expect("reply");
    assert_eq!(reply, Response::ok());
    fixture.stop().await;
}

#[tokio::test]
async fn finite_stream_ends_with_ok() {
    let mut fixture = Fixture::start(Limits::default()).await;
    let client = Client::connect(&fixture.path).await.expect("connect");
    let logs = Request::Logs {
        name: None,
        follow: false,
    };
    let mut stream = client.stream(&logs).await.expect("stream");
    let mut messages = Vec::new();
    while let Some(reply) = within("log", stream.next()).await {
        match reply.expect("reply") {
            Response::Log { event } => messages.push(event.message),
            other => messages.push(format!("{other:?}")),
        }
    }
    assert_eq!(messages, ["one", "two", "Ok { message: None }"]);
    fixture.stop().await;
}

#[tokio::test]
async fn watch_stops_on_request_and_when_the_client_leaves() {
    let mut fixture = Fixture::start(Limits::default()).await;
    let client = Client::connect(&fixture.path).await.expect("connect");
    let watch = Request::Watch { name: None };
    let mut stream = client.stream(&watch).await.expect("stream");
    let first = within("status", stream.next())
        .await
        .expect("item")
        .expect("ok");
    assert_eq!(first, Response::Status { tunnels: vec![] });
    // Stopping hands back a usable connection, and the handler sees its receiver dropped.
    let mut client = stream.stop().await.expect("stop");
    within("watch ended", fixture.mock.watch_ended.notified()).await;
    let pong = client.request(&Request::Ping {}).await.expect("ping");
    assert!(matches!(pong, Response::Pong { .. }), "{pong:?}");

    let mut stream = client.stream(&watch).await.expect("stream");
    within("status", stream.next())
        .await
        .expect("item")
        .expect("ok");
    drop(stream);
    within(
        "watch ended on disconnect",
        fixture.mock.watch_ended.notified(),
    )
    .await;
    fixture.stop().await;
}

#[tokio::test]
async fn half_closed_client_still_gets_a_finite_stream() {
    let mut fixture = Fixture::start(Limits::default()).await;
    // interprocess cannot shut down one direction; tokio's UnixStream can, as socat does.
    let mut conn = tokio::net::UnixStream::connect(&fixture.path)
        .await
        .expect("connect");
    conn.write_all(b"{\"op\":\"logs\"}\n").await.expect("write");
    conn.shutdown().await.expect("shutdown writes");
    let mut all = String::new();
    within(
        "read to end",
        tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut all),
    )
    .await
    .expect("read");
    let replies: Vec<&str> = all.lines().skip(1).collect();
    assert_eq!(replies.len(), 3, "two events and ok: {all}");
    assert_eq!(replies[2], r#"{"reply":"ok"}"#);
    fixture.stop().await;
}

//! The server's guarantees against awkward clients, on the wire.

use std::time::Instant;

use super::*;
use crate::control::{Client, ClientError};

fn quick(limits: Limits) -> Limits {
    Limits {
        idle_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(200),
        ..limits
    }
}

#[tokio::test]
async fn greets_first_then_answers_lines() {
    let mut fixture = Fixture::start(Limits::default()).await;
    let mut raw = Raw::connect(&fixture.path).await;
    let hello = raw.line().await.expect("greeting");
    assert_eq!(hello, r#"{"hello":{"protocol":1,"daemon":"0.1.0"}}"#);
    raw.send(b"{\"op\":\"ping\"}\n\n  \n{\"op\":\"version\"}\n")
        .await;
    assert_eq!(
        raw.line().await.as_deref(),
        Some(r#"{"reply":"pong","daemon":"test","protocol":1}"#)
    );
    // Blank lines are skipped, not answered.
    assert_eq!(raw.line().await.as_deref(), Some(r#"{"reply":"ok"}"#));
    fixture.stop().await;
}

#[tokio::test]
async fn garbage_gets_bad_request_and_the_connection_stays_usable() {
    let mut fixture = Fixture::start(Limits::default()).await;
    let mut raw = Raw::greeted(&fixture.path).await;
    for garbage in [
        &b"not json\n"[..],
        b"{\"op\":\"up\"}\n",
        b"{\"op\":\"ping\",\"extra\":1}\n",
        b"\xff\xfe\n",
    ] {
        raw.send(garbage).await;
        let reply = raw.reply().await;
        assert!(is_error(&reply, ErrorKind::BadRequest), "{reply:?}");
    }
    raw.send(b"{\"op\":\"up\",\"name\":\"jane\"}\n").await;
    assert_eq!(raw.reply().await, Response::ok());
    fixture.stop().await;
}

#[tokio::test]
async fn oversized_line_is_refused_and_others_are_still_served() {
    let mut fixture = Fixture::start(Limits::default()).await;
    let name = fixture
        .path
        .as_path()
        .to_fs_name::<GenericFilePath>()
        .expect("name");
    let conn = Stream::connect(name).await.expect("connect");
    let mut reader = BufReader::new(&conn);
    let mut line = Vec::new();
    let huge = vec![b'x'; 1 << 20];
    let mut writer = &conn;
    // The server stops reading at the cap, so this write fails once it closes; ignore that.
    let read_two = async {
        let mut lines = Vec::new();
        while let Ok(Frame::Line) = read_frame(&mut reader, &mut line, 1 << 20).await {
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        lines
    };
    let (_, lines) = within("too-large", async {
        tokio::join!(writer.write_all(&huge), read_two)
    })
    .await;
    assert_eq!(lines.len(), 2, "greeting, error, then closed: {lines:?}");
    let reply: Response = serde_json::from_str(&lines[1]).expect("reply");
    assert!(is_error(&reply, ErrorKind::TooLarge), "{reply:?}");

    let mut client = Client::connect(&fixture.path).await.expect("connect");
    let pong = client.request(&Request::Ping {}).await.expect("ping");
    assert!(matches!(pong, Response::Pong { .. }), "{pong:?}");
    fixture.stop().await;
}

#[tokio::test]
async fn silent_client_is_closed_after_the_idle_deadline() {
    let mut fixture = Fixture::start(quick(Limits::default())).await;
    let started = Instant::now();
    let mut raw = Raw::greeted(&fixture.path).await;
    let reply = raw.reply().await;
    assert!(is_error(&reply, ErrorKind::Timeout), "{reply:?}");
    assert_eq!(raw.line().await, None, "closed");
    assert!(started.elapsed() >= Duration::from_millis(200));

    // A request sent in time is answered; dribbling a line slower than the deadline is not.
    let mut raw = Raw::greeted(&fixture.path).await;
    raw.send(b"{\"op\":").await;
    let reply = raw.reply().await;
    assert!(is_error(&reply, ErrorKind::Timeout), "{reply:?}");
    fixture.stop().await;
}

#[tokio::test]
async fn slow_handler_gets_a_timeout_reply() {
    let mut fixture = Fixture::start(quick(Limits::default())).await;
    let mut client = Client::connect(&fixture.path).await.expect("connect");
    let slow = Request::Up {
        name: "slow".into(),
        wait: false,
    };
    let reply = client.request(&slow).await.expect("reply");
    assert!(is_error(&reply, ErrorKind::Timeout), "{reply:?}");
    let pong = client
        .request(&Request::Ping {})
        .await
        .expect("still usable");
    assert!(matches!(pong, Response::Pong { .. }), "{pong:?}");
    fixture.stop().await;
}

#[tokio::test]
async fn hundred_concurrent_clients_are_all_answered() {
    let limits = Limits {
        max_connections: 128,
        ..Limits::default()
    };
    let mut fixture = Fixture::start(limits).await;
    // All connect before any asks, so all 100 connections are open at once.
    let connects = (0..100).map(|_| Client::connect(&fixture.path));
    let clients = within("connects", futures_util::future::join_all(connects)).await;
    let pings = clients.into_iter().map(|client| async move {
        let mut client = client.expect("connect");
        client.request(&Request::Ping {}).await.expect("ping")
    });
    let pongs = within("pings", futures_util::future::join_all(pings)).await;
    assert_eq!(pongs.len(), 100);
    assert!(pongs.iter().all(|p| matches!(p, Response::Pong { .. })));
    fixture.stop().await;
}

#[tokio::test]
async fn at_the_limit_the_longest_idle_client_makes_room() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let mut fixture = Fixture::start(limits).await;
    let mut oldest = Raw::greeted(&fixture.path).await;
    let mut newer = Raw::greeted(&fixture.path).await;
    let mut client = Client::connect(&fixture.path).await.expect("room made");
    let pong = client.request(&Request::Ping {}).await.expect("ping");
    assert!(matches!(pong, Response::Pong { .. }), "{pong:?}");

    let goodbye = oldest.reply().await;
    assert!(is_error(&goodbye, ErrorKind::Busy), "{goodbye:?}");
    assert_eq!(oldest.line().await, None, "evicted and closed");
    newer.send(b"{\"op\":\"ping\"}\n").await;
    assert!(matches!(newer.reply().await, Response::Pong { .. }));
    fixture.stop().await;
}

#[tokio::test]
async fn over_the_limit_with_every_client_busy_is_busy() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let mut fixture = Fixture::start(limits).await;
    let watch = || async {
        let client = Client::connect(&fixture.path).await.expect("connect");
        let mut stream = client
            .stream(&Request::Watch { name: None })
            .await
            .expect("watch");
        within("status", stream.next())
            .await
            .expect("item")
            .expect("ok");
        stream
    };
    let first = watch().await;
    let _second = watch().await;
    let err = Client::connect(&fixture.path).await.expect_err("third");
    assert!(
        matches!(
            err,
            ClientError::Refused {
                kind: ErrorKind::Busy,
                ..
            }
        ),
        "{err}"
    );
    // A slot frees up once a client leaves (the server notices asynchronously).
    drop(first);
    within("a free slot", async {
        loop {
            match Client::connect(&fixture.path).await {
                Ok(client) => return client,
                Err(ClientError::Refused { .. }) => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    fixture.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_connections_and_removes_the_socket() {
    let mut fixture = Fixture::start(Limits::default()).await;
    let mut idle = Raw::greeted(&fixture.path).await;
    let watching = Client::connect(&fixture.path).await.expect("connect");
    let mut watch = watching
        .stream(&Request::Watch { name: None })
        .await
        .expect("watch");
    within("status", watch.next())
        .await
        .expect("item")
        .expect("ok");

    fixture.stop().await;
    assert_eq!(idle.line().await, None, "idle connection closed");
    let end = within("stream end", watch.next()).await.expect("an item");
    assert!(matches!(end, Err(ClientError::Closed(_))), "{end:?}");
    assert!(!fixture.path.exists());
    let err = Client::connect(&fixture.path).await.expect_err("gone");
    assert!(matches!(err, ClientError::NotRunning(_)), "{err}");
}

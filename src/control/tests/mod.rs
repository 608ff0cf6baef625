//! The control plane end to end on real Unix sockets in temp dirs: a mock [`Handler`] behind
//! the real server, driven by the real client or by raw lines. Every wait has a deadline;
//! nothing sleeps to let time pass.

mod client;
mod server;
mod socket;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::GenericFilePath;
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::tokio::prelude::*;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::frame::{Frame, read_frame};
use super::{Handler, Limits, Reply, bind, serve};
use crate::protocol::{ErrorKind, LogEvent, PROTOCOL_VERSION, Request, Response};

/// Long enough for a loaded CI machine, short enough to fail fast.
const DEADLINE: Duration = Duration::from_secs(10);

/// Fails the test instead of hanging it.
async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: not within {DEADLINE:?}"),
    }
}

/// Answers from a script; see the match arms.
#[derive(Default)]
struct Mock {
    /// Notified when a `watch` client has gone away (its stream receiver was dropped).
    watch_ended: Arc<Notify>,
}

impl Handler for Mock {
    async fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Ping {} => Response::Pong {
                daemon: "test".into(),
                protocol: PROTOCOL_VERSION,
            }
            .into(),
            Request::Up { name, .. } if name == "slow" => {
                std::future::pending::<()>().await;
                Response::ok().into()
            }
            Request::Down { name } => Response::error(
                ErrorKind::UnknownTunnel,
                format!("no tunnel named `{name}`"),
            )
            .into(),
            Request::Watch { .. } => {
                let (tx, rx) = mpsc::channel(4);
                let ended = self.watch_ended.clone();
                tokio::spawn(async move {
                    let _ = tx.send(Response::Status { tunnels: vec![] }).await;
                    tx.closed().await;
                    ended.notify_one();
                });
                Reply::Stream(rx)
            }
            Request::Logs { .. } => {
                let (tx, rx) = mpsc::channel(4);
                for message in ["one", "two"] {
                    let event = LogEvent {
                        time: "2026-11-23T10:00:00Z".into(),
                        tunnel: None,
                        level: "info".into(),
                        message: message.into(),
                    };
                    let _ = tx.try_send(Response::Log { event });
                }
                // Dropping `tx` ends the stream; the server adds the final `ok`.
                Reply::Stream(rx)
            }
            _ => Response::ok().into(),
        }
    }
}

/// A served socket in a temp dir; stops the server on drop.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    shutdown: CancellationToken,
    server: Option<JoinHandle<()>>,
    mock: Arc<Mock>,
}

impl Fixture {
    async fn start(limits: Limits) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pairtun").join("pairtund.sock");
        let listener = bind(&path).await.expect("bind");
        let shutdown = CancellationToken::new();
        let mock = Arc::new(Mock::default());
        let server = tokio::spawn(serve(listener, mock.clone(), shutdown.clone(), limits));
        Fixture {
            _dir: dir,
            path,
            shutdown,
            server: Some(server),
            mock,
        }
    }

    /// Cancels the server and waits for it (and every connection) to end.
    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            within("server stop", server).await.expect("server task");
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A client that speaks raw lines, to test what the real client never sends.
struct Raw {
    reader: BufReader<Stream>,
}

impl Raw {
    async fn connect(path: &Path) -> Raw {
        let name = path.to_fs_name::<GenericFilePath>().expect("name");
        let stream = within("connect", Stream::connect(name))
            .await
            .expect("connect");
        Raw {
            reader: BufReader::new(stream),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let mut writer = self.reader.get_ref();
        writer.write_all(bytes).await.expect("send");
    }

    /// The next line without its newline; `None` at end of stream (or a reset, which is how
    /// a Unix socket reports a close with our unread request bytes still queued).
    async fn line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        match within(
            "reply line",
            read_frame(&mut self.reader, &mut line, 1 << 20),
        )
        .await
        {
            Ok(Frame::Line) => Some(String::from_utf8(line).expect("utf-8").trim_end().into()),
            Ok(Frame::Eof) | Err(_) => None,
            Ok(Frame::TooLarge) => panic!("reply too large"),
        }
    }

    /// Reads the greeting, checking it is the first line.
    async fn greeted(path: &Path) -> Raw {
        let mut raw = Raw::connect(path).await;
        let hello = raw.line().await.expect("greeting");
        assert!(hello.starts_with(r#"{"hello":{"protocol":1,"#), "{hello}");
        raw
    }

    async fn reply(&mut self) -> Response {
        let line = self.line().await.expect("a reply");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

fn is_error(response: &Response, want: ErrorKind) -> bool {
    matches!(response, Response::Error { kind, .. } if *kind == want)
}

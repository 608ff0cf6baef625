//! The client side of the control socket, as `pairtunctl` uses it: connect and check the
//! greeting, then one request at a time, or one stream.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::GenericFilePath;
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::tokio::prelude::*;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::time::timeout;

use super::frame::{Frame, read_frame};
use super::socket::is_not_listening;
use crate::protocol::{
    ErrorKind, Greeting, Hello, MAX_REPLY_FRAME, PROTOCOL_VERSION, REQUEST_TIMEOUT, Request,
    Response, encode,
};

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error(
        "pairtund is not running (nothing listens on {}); start it with `pairtund` or \
         `systemctl --user start pairtund`",
        .0.display()
    )]
    NotRunning(PathBuf),
    /// The daemon speaks another protocol version.
    #[error(
        "pairtund {daemon} speaks control protocol {protocol}, this pairtunctl speaks \
         {PROTOCOL_VERSION}; use matching versions (restart the daemon after an upgrade)"
    )]
    ProtocolMismatch {
        /// The daemon's protocol version.
        protocol: u32,
        /// The daemon's package version.
        daemon: String,
    },
    /// The daemon sent an error instead of its greeting (e.g. `busy`).
    #[error("pairtund refused the connection: {message}")]
    Refused {
        /// Why.
        kind: ErrorKind,
        /// The daemon's explanation.
        message: String,
    },
    /// No reply within the deadline.
    #[error("pairtund did not answer within {0:?}")]
    Timeout(Duration),
    /// The daemon closed the connection (it refuses other users without a word).
    #[error("pairtund closed the connection{0}")]
    Closed(&'static str),
    /// The daemon sent something this client cannot read.
    #[error("unexpected reply from pairtund: {0}")]
    Protocol(String),
    /// [`Client::request`] was given a request that is answered with a stream.
    #[error("`{0}` is answered with a stream; use Client::stream")]
    StreamRequest(&'static str),
    /// The socket failed.
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
}

impl ClientError {
    /// `pairtunctl`'s exit status for this failure (SPEC §3: 3 when the daemon is not running).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NotRunning(_) => 3,
            _ => 1,
        }
    }
}

/// A connection to the daemon, greeting checked.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<Stream>,
    line: Vec<u8>,
    hello: Hello,
    timeout: Duration,
}

impl Client {
    /// Connects to the daemon at `path` and checks that it speaks our protocol.
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let name = path.to_fs_name::<GenericFilePath>()?;
        let stream = match Stream::connect(name).await {
            Ok(stream) => stream,
            Err(e) if is_not_listening(&e) => return Err(ClientError::NotRunning(path.into())),
            Err(e) => return Err(e.into()),
        };
        let mut client = Client {
            reader: BufReader::new(stream),
            line: Vec::new(),
            hello: Greeting::current().hello,
            // A little over the daemon's own deadline, so its `timeout` reply arrives first.
            timeout: REQUEST_TIMEOUT + Duration::from_secs(2),
        };
        let first = client
            .read_line(Some(client.timeout))
            .await
            .map_err(|e| match e {
                ClientError::Closed(_) => {
                    ClientError::Closed(" before greeting (is it running as another user?)")
                }
                e => e,
            })?;
        if let Ok(greeting) = serde_json::from_slice::<Greeting>(first) {
            let Hello { protocol, daemon } = greeting.hello;
            if protocol != PROTOCOL_VERSION {
                return Err(ClientError::ProtocolMismatch { protocol, daemon });
            }
            client.hello = Hello { protocol, daemon };
            return Ok(client);
        }
        match serde_json::from_slice::<Response>(first) {
            Ok(Response::Error { kind, message }) => Err(ClientError::Refused { kind, message }),
            _ => Err(ClientError::Protocol(format!(
                "expected a greeting, got {}",
                String::from_utf8_lossy(first).trim_end()
            ))),
        }
    }

    /// The daemon's greeting.
    pub fn daemon(&self) -> &Hello {
        &self.hello
    }

    /// Changes how long [`Client::request`] waits for a reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends a request that has one reply and returns it. A daemon-side failure is an
    /// `Ok(Response::Error { .. })`; stream requests belong to [`Client::stream`].
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        if request.is_stream() {
            return Err(ClientError::StreamRequest(request.op()));
        }
        self.send(request).await?;
        self.read_response(Some(self.timeout)).await
    }

    /// Sends a stream request (`watch`, `logs`, `up` with `wait`) and returns its replies.
    pub async fn stream(mut self, request: &Request) -> Result<ResponseStream, ClientError> {
        self.send(request).await?;
        Ok(ResponseStream {
            client: self,
            done: false,
        })
    }

    async fn send(&mut self, message: &Request) -> Result<(), ClientError> {
        let mut writer = self.reader.get_ref();
        Ok(writer.write_all(&encode(message)).await?)
    }

    async fn read_response(&mut self, deadline: Option<Duration>) -> Result<Response, ClientError> {
        let line = self.read_line(deadline).await?;
        serde_json::from_slice(line).map_err(|e| {
            let shown = String::from_utf8_lossy(line);
            ClientError::Protocol(format!("{e}: {}", shown.trim_end()))
        })
    }

    async fn read_line(&mut self, deadline: Option<Duration>) -> Result<&[u8], ClientError> {
        let read = read_frame(&mut self.reader, &mut self.line, MAX_REPLY_FRAME);
        let frame = match deadline {
            Some(deadline) => timeout(deadline, read)
                .await
                .map_err(|_| ClientError::Timeout(deadline))??,
            None => read.await?,
        };
        match frame {
            Frame::Line => Ok(&self.line),
            Frame::Eof => Err(ClientError::Closed("")),
            Frame::TooLarge => Err(ClientError::Protocol(format!(
                "reply longer than {MAX_REPLY_FRAME} bytes"
            ))),
        }
    }
}

/// The replies to a stream request, ending after the first `ok` or `error`.
#[derive(Debug)]
pub struct ResponseStream {
    client: Client,
    done: bool,
}

impl ResponseStream {
    /// The next reply; `None` once the stream has ended. Waits as long as it takes: `watch`
    /// may be quiet for hours.
    pub async fn next(&mut self) -> Option<Result<Response, ClientError>> {
        if self.done {
            return None;
        }
        let next = self.client.read_response(None).await;
        // After a broken connection there is nothing more to read either.
        self.done = match &next {
            Ok(response) => response.is_final(),
            Err(_) => true,
        };
        Some(next)
    }

    /// Ends the stream early (the daemon answers `ok`), dropping replies still in flight, and
    /// hands back the connection for more requests.
    pub async fn stop(mut self) -> Result<Client, ClientError> {
        if self.done {
            return Ok(self.client);
        }
        let mut writer = self.client.reader.get_ref();
        writer.write_all(b"\n").await?;
        let deadline = Some(self.client.timeout);
        while !self.client.read_response(deadline).await?.is_final() {}
        Ok(self.client)
    }
}

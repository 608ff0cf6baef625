//! SOCKS4 and SOCKS4a `CONNECT`, for clients that speak nothing newer (fast-socks5 has no
//! SOCKS4 server side). A request is `4, 1, port, IPv4, user id, NUL`; SOCKS4a marks a host
//! name by the address `0.0.0.x` (x ≠ 0) and appends the name, NUL-terminated. The user id is
//! ignored, like the SOCKS5 side accepts no authentication.

use std::net::SocketAddr;

use fast_socks5::util::target_addr::TargetAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::LocalStream;

/// The first byte of a SOCKS4 request.
pub const VERSION: u8 = 4;
const CONNECT: u8 = 1;
const GRANTED: u8 = 90;
const REJECTED: u8 = 91;
/// Longest user id or host name accepted (the same bound SOCKS5 puts on names).
const MAX_FIELD: usize = 255;

/// Reads a request; a command other than `CONNECT` is refused here.
pub async fn read_request(mut stream: LocalStream) -> Result<(LocalStream, TargetAddr), String> {
    let mut head = [0u8; 8];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| format!("reading the SOCKS4 request: {e}"))?;
    let [_, command, p0, p1, a, b, c, d] = head;
    let port = u16::from_be_bytes([p0, p1]);
    read_field(&mut stream, "user id").await?;
    let target = if [a, b, c] == [0, 0, 0] && d != 0 {
        TargetAddr::Domain(read_field(&mut stream, "host name").await?, port)
    } else {
        TargetAddr::Ip(SocketAddr::from(([a, b, c, d], port)))
    };
    if command != CONNECT {
        refuse(stream).await;
        return Err(format!(
            "SOCKS4 command {command} is not supported (only CONNECT)"
        ));
    }
    Ok((stream, target))
}

/// Answers "request rejected or failed" (SOCKS4 has no finer codes).
pub async fn refuse(mut stream: LocalStream) {
    let _ = stream.write_all(&reply(REJECTED)).await;
}

/// Answers "request granted"; the stream then carries the connection.
pub async fn grant(mut stream: LocalStream) -> Option<LocalStream> {
    stream.write_all(&reply(GRANTED)).await.ok()?;
    Some(stream)
}

fn reply(code: u8) -> [u8; 8] {
    [0, code, 0, 0, 0, 0, 0, 0]
}

/// A NUL-terminated field of at most [`MAX_FIELD`] bytes.
async fn read_field(stream: &mut LocalStream, what: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    loop {
        let byte = stream
            .read_u8()
            .await
            .map_err(|e| format!("reading the SOCKS4 {what}: {e}"))?;
        if byte == 0 {
            break;
        }
        if bytes.len() == MAX_FIELD {
            return Err(format!("SOCKS4 {what} is longer than {MAX_FIELD} bytes"));
        }
        bytes.push(byte);
    }
    String::from_utf8(bytes).map_err(|_| format!("SOCKS4 {what} is not UTF-8"))
}

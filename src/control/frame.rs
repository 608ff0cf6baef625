//! Reading one JSON line with a hard size cap, so a peer that never sends `\n` costs at most
//! the cap in memory, never more.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What [`read_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A line is in the buffer (its `\n` included, absent only at end of stream).
    Line,
    /// The peer closed the stream before sending anything more.
    Eof,
    /// The line exceeded the cap; the stream is no longer in sync and must be closed.
    TooLarge,
}

/// Reads up to and including the next `\n` into `line` (cleared first), refusing to hold more
/// than `max` bytes. A last line without `\n` before end of stream still counts as a line, so
/// `printf '{"op":"ping"}' | socat …` works.
pub(crate) async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Frame> {
    line.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Frame::Eof
            } else {
                Frame::Line
            });
        }
        let (take, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if line.len() + take > max {
            return Ok(Frame::TooLarge);
        }
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if complete {
            return Ok(Frame::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<(Frame, Vec<u8>)> {
        // A tiny buffer makes lines span several fills.
        let mut reader = tokio::io::BufReader::with_capacity(3, input);
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            let frame = read_frame(&mut reader, &mut line, max)
                .await
                .expect("in memory");
            let stop = frame != Frame::Line;
            out.push((frame, line.clone()));
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_and_caps_them() {
        let got = frames(b"ab\ncdef\ng", 8).await;
        let want = vec![
            (Frame::Line, b"ab\n".to_vec()),
            (Frame::Line, b"cdef\n".to_vec()),
            (Frame::Line, b"g".to_vec()),
            (Frame::Eof, vec![]),
        ];
        assert_eq!(got, want);
        // Exactly `max` bytes with the newline fits; one more does not.
        assert_eq!(frames(b"1234\n", 5).await[0].0, Frame::Line);
        assert_eq!(frames(b"12345\n", 5).await[0].0, Frame::TooLarge);
        assert_eq!(frames(&[b'x'; 100], 10).await[0].0, Frame::TooLarge);
    }
}

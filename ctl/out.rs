//! Where output goes and how it looks: JSON or human, colour or not, a terminal or a pipe.
//! Every write returns its error, so a closed pipe ends the command instead of panicking the
//! way `println!` would.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

use pairtun::protocol::{Response, encode};

use crate::failure::Failure;

/// Output settings, decided once from the flags and the environment.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// `--json`: machine-readable lines only.
    pub json: bool,
    /// stdout is a terminal (`status --watch` redraws in place).
    pub tty: bool,
    /// Colour the human output.
    pub colour: bool,
}

impl Out {
    /// Settings for this process: colour only on a terminal and without `NO_COLOR`
    /// (<https://no-color.org>: any non-empty value disables colour).
    pub fn detect(json: bool) -> Out {
        let tty = io::stdout().is_terminal();
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Out {
            json,
            tty,
            colour: tty && !no_colour && !json,
        }
    }

    /// Writes text as is (the caller supplies newlines); flushed, for streams.
    pub fn text(&self, text: &str) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()
    }

    /// Writes one line of human output.
    pub fn line(&self, line: &str) -> io::Result<()> {
        self.text(&format!("{line}\n"))
    }

    /// Writes a value as one JSON line.
    pub fn json_line<T: Serialize>(&self, value: &T) -> io::Result<()> {
        self.bytes(&encode(value))
    }

    /// Writes bytes already encoded (one or more JSON lines).
    pub fn bytes(&self, bytes: &[u8]) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        stdout.write_all(bytes)?;
        stdout.flush()
    }

    /// The failure for an `error` reply. With `--json` the reply object is printed too, so a
    /// script reading stdout sees the `kind` as well as the exit status.
    pub fn error_reply(&self, response: &Response) -> Failure {
        let Response::Error { message, .. } = response else {
            return Failure::unexpected(response);
        };
        if self.json
            && let Err(e) = self.json_line(response)
        {
            return e.into();
        }
        Failure::Request(message.clone())
    }
}

//! Output: the `status` table (widths computed by hand, colour only when asked), log lines,
//! the `reload` summary, and the JSON shapes `--json` promises (SPEC §3).

use std::time::SystemTime;

use serde::Serialize;

use pairtun::protocol::LogEvent;
use pairtun::tunnel::{ForwardKind, ForwardStatus, TunnelState, TunnelStatus};

use crate::human;

const HEADERS: [&str; 9] = [
    "NAME", "STATE", "SINCE", "FORWARDS", "CONN", "IN", "OUT", "RTT", "RETRY",
];
/// Column index of FORWARDS, the only column continuation rows fill.
const FORWARDS: usize = 3;
const GAP: &str = "  ";

/// ANSI colours for states and levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    Green,
    Yellow,
    Red,
}

impl Colour {
    fn paint(self, text: &str) -> String {
        let code = match self {
            Colour::Green => 32,
            Colour::Yellow => 33,
            Colour::Red => 31,
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

fn state_colour(state: TunnelState) -> Option<Colour> {
    match state {
        TunnelState::Up => Some(Colour::Green),
        TunnelState::Degraded | TunnelState::Backoff => Some(Colour::Yellow),
        TunnelState::Failed => Some(Colour::Red),
        TunnelState::Stopped | TunnelState::Connecting => None,
    }
}

/// One table cell: the text decides the width, the colour is added after padding so escape
/// codes never skew the alignment.
#[derive(Debug, Default)]
struct Cell {
    text: String,
    colour: Option<Colour>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, colour: None }
    }
}

/// `L 9999:localhost:1235`: the ssh flag that would make this forward, and its spec.
fn forward_name(f: &ForwardStatus) -> String {
    let flag = match f.kind {
        ForwardKind::Local => "L",
        ForwardKind::Remote => "R",
        ForwardKind::Dynamic => "D",
    };
    format!("{flag} {}", f.spec)
}

/// `L 9999:localhost:1235 up`, and `(peer: up)` once probed.
fn forward_label(f: &ForwardStatus) -> String {
    match f.peer {
        Some(peer) => format!(
            "{} {} (peer: {})",
            forward_name(f),
            f.state.as_str(),
            peer.as_str()
        ),
        None => format!("{} {}", forward_name(f), f.state.as_str()),
    }
}

/// The rows of one tunnel: its own, then one per further forward.
fn rows(t: &TunnelStatus, now: SystemTime) -> Vec<Vec<Cell>> {
    let labels: Vec<String> = t.forwards.iter().map(forward_label).collect();
    let first = labels.first().cloned().unwrap_or_else(|| "-".to_owned());
    let state = Cell {
        text: t.state.as_str().to_owned(),
        colour: state_colour(t.state),
    };
    let mut rows = vec![vec![
        Cell::from(t.name.clone()),
        state,
        human::since(&t.since, now).into(),
        first.into(),
        t.connections.to_string().into(),
        human::bytes(t.bytes_in).into(),
        human::bytes(t.bytes_out).into(),
        human::rtt(t.rtt_ms).into(),
        human::retry(t).into(),
    ]];
    for label in labels.into_iter().skip(1) {
        let mut row: Vec<Cell> = HEADERS.iter().map(|_| Cell::default()).collect();
        row[FORWARDS] = label.into();
        rows.push(row);
    }
    rows
}

/// The indented lines under a tunnel: why it is not up, then each forward's own error.
fn details(t: &TunnelStatus) -> Vec<String> {
    let mut lines = Vec::new();
    // `last_error` outlives recovery; under an `up` or `stopped` tunnel it would be noise.
    let troubled = !matches!(t.state, TunnelState::Up | TunnelState::Stopped);
    if let Some(e) = t.last_error.as_ref().filter(|_| troubled) {
        lines.push(format!(
            "  error ({}): {}",
            e.class,
            human::printable(&e.message)
        ));
    }
    for f in &t.forwards {
        if let Some(error) = &f.error {
            let error = human::printable(error);
            lines.push(format!("    {}: {error}", forward_name(f)));
        }
    }
    lines
}

fn write_row(out: &mut String, cells: &[Cell], widths: &[usize], colour: bool) {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str(GAP);
        }
        let pad = width.saturating_sub(cell.text.chars().count());
        match cell.colour.filter(|_| colour) {
            Some(c) => line.push_str(&c.paint(&cell.text)),
            None => line.push_str(&cell.text),
        }
        line.extend(std::iter::repeat_n(' ', pad));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The human `status` table, `now` being the time `since` is measured against.
pub fn table(tunnels: &[TunnelStatus], now: SystemTime, colour: bool) -> String {
    if tunnels.is_empty() {
        return "no tunnels; add one with `pairtunctl add` or in the config file\n".to_owned();
    }
    let blocks: Vec<_> = tunnels.iter().map(|t| (rows(t, now), details(t))).collect();
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.len()).collect();
    for row in blocks.iter().flat_map(|(rows, _)| rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.text.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<Cell> = HEADERS
        .iter()
        .map(|h| Cell::from((*h).to_owned()))
        .collect();
    write_row(&mut out, &header, &widths, colour);
    for (rows, details) in &blocks {
        for row in rows {
            write_row(&mut out, row, &widths, colour);
        }
        for line in details {
            let line = if colour {
                Colour::Red.paint(line)
            } else {
                line.clone()
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The `status --json` object, exactly `{"tunnels":[...]}`, as one line.
pub fn status_json(tunnels: &[TunnelStatus]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Status<'a> {
        tunnels: &'a [TunnelStatus],
    }
    pairtun::protocol::encode(&Status { tunnels })
}

/// One `logs` line: `2026-11-23T10:00:00.000Z warn  jane: message`.
pub fn log_line(event: &LogEvent, colour: bool) -> String {
    let level = format!("{:<5}", event.level);
    let level = match (colour, event.level.as_str()) {
        (true, "error") => Colour::Red.paint(&level),
        (true, "warn") => Colour::Yellow.paint(&level),
        _ => level,
    };
    let message = human::printable(&event.message);
    match &event.tunnel {
        Some(tunnel) => format!("{} {level} {tunnel}: {message}", event.time),
        None => format!("{} {level} {message}", event.time),
    }
}

/// What `reload` did, in one line: `reloaded: added b; changed a; 2 unchanged`.
pub fn reloaded(
    added: &[String],
    removed: &[String],
    changed: &[String],
    unchanged: usize,
) -> String {
    let mut parts = Vec::new();
    for (what, names) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !names.is_empty() {
            parts.push(format!("{what} {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        return format!("reloaded: nothing changed ({unchanged} unchanged)");
    }
    if unchanged > 0 {
        parts.push(format!("{unchanged} unchanged"));
    }
    format!("reloaded: {}", parts.join("; "))
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

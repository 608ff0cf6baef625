//! The table on the four kinds of row (up, backoff, failed, degraded), its alignment and
//! colouring, and the other renderers.

use pairtun::protocol::LogEvent;

use super::*;
use crate::fixtures::{backoff, degraded, failed, now, up};

fn all() -> Vec<TunnelStatus> {
    vec![up(), backoff(), failed(), degraded()]
}

/// Byte offset of each column in the header line: where a word starts.
fn columns(table: &str) -> Vec<usize> {
    let header = table.lines().next().unwrap_or_default();
    let starts: Vec<usize> = (0..header.len())
        .filter(|&i| header.as_bytes()[i] != b' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
        .collect();
    assert_eq!(starts.len(), HEADERS.len(), "{header:?}");
    starts
}

#[test]
fn the_table_pins_every_kind_of_row() {
    let expected = "\
NAME      STATE     SINCE  FORWARDS                     CONN  IN       OUT      RTT     RETRY
jane      up        3m12s  L 9999:localhost:1235 up     1     1.2 MiB  812 B    12 ms   -
from-you  backoff   12s    R 1235:localhost:22 pending  0     0 B      0 B      -       #3 in 4s
  error (network): saturn:22: connection refused
web       failed    2h3m   L 8080:localhost:80 pending  0     0 B      0 B      -       no retry
  error (host-key): host key for saturn changed
pair      degraded  1h3m   L 9998:localhost:1235 up     2     5.0 KiB  3.0 GiB  250 ms  -
                           R 1236:localhost:22 error
  error (forward): 1 of 2 forwards not established
    R 1236:localhost:22: relay refused the port (a stale session holds it)
";
    assert_eq!(table(&all(), now(), false), expected);
}

#[test]
fn every_cell_starts_under_its_header() {
    let out = table(&all(), now(), false);
    let cols = columns(&out);
    for line in out.lines().skip(1).filter(|l| !l.starts_with("  ")) {
        for (i, col) in cols.iter().enumerate().skip(1) {
            let before = line.get(col - 2..*col).unwrap_or("  ");
            assert_eq!(before, "  ", "column {} of {line:?} misaligned", HEADERS[i]);
            if let Some(c) = line[*col..].chars().next() {
                assert_ne!(
                    c, ' ',
                    "column {} of {line:?} does not start at {col}",
                    HEADERS[i]
                );
            }
        }
    }
}

#[test]
fn a_long_name_widens_its_column_for_every_row() {
    let mut long = up();
    long.name = "a-rather-long-tunnel-name".to_owned();
    let out = table(&[long, backoff()], now(), false);
    let cols = columns(&out);
    assert_eq!(cols[1], "a-rather-long-tunnel-name".len() + 2);
    for line in out.lines().filter(|l| !l.starts_with(' ')) {
        assert!(line[cols[1]..].starts_with(['S', 'u', 'b']), "{line:?}");
    }
}

#[test]
fn a_recovered_tunnel_hides_its_old_error() {
    let mut t = up();
    t.last_error = backoff().last_error;
    assert_eq!(
        table(&[t], now(), false).lines().count(),
        2,
        "header and one row"
    );
}

#[test]
fn colour_wraps_states_and_errors_without_moving_columns() {
    let plain = table(&all(), now(), false);
    let coloured = table(&all(), now(), true);
    assert!(coloured.contains("\x1b[32mup\x1b[0m"));
    assert!(coloured.contains("\x1b[33mbackoff\x1b[0m"));
    assert!(coloured.contains("\x1b[33mdegraded\x1b[0m"));
    assert!(coloured.contains("\x1b[31mfailed\x1b[0m"));
    assert!(coloured.contains("\x1b[31m  error (host-key):"));
    let stripped = coloured
        .replace("\x1b[32m", "")
        .replace("\x1b[33m", "")
        .replace("\x1b[31m", "")
        .replace("\x1b[0m", "");
    assert_eq!(stripped, plain);
    assert!(!plain.contains('\x1b'));
}

#[test]
fn no_tunnels_says_how_to_add_one() {
    assert!(table(&[], now(), false).contains("pairtunctl add"));
}

#[test]
fn status_json_is_exactly_the_tunnels_object() {
    let line = status_json(&[up()]);
    assert_eq!(line.last(), Some(&b'\n'));
    let value: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
    let keys: Vec<_> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["tunnels"]);
    assert_eq!(value["tunnels"][0]["name"], "jane");
    assert_eq!(value["tunnels"][0]["state"], "up");
    assert_eq!(value["tunnels"][0]["forwards"][0]["kind"], "local");
    assert_eq!(value["tunnels"][0]["last_error"], serde_json::Value::Null);
    let empty = String::from_utf8_lossy(&status_json(&[])).into_owned();
    assert_eq!(empty, "{\"tunnels\":[]}\n");
}

#[test]
fn retry_column_and_progress_lines() {
    use crate::human::{retry, state_line};
    assert_eq!(retry(&up()), "-");
    assert_eq!(retry(&backoff()), "#3 in 4s");
    assert_eq!(retry(&failed()), "no retry");
    let mut connecting = backoff();
    connecting.state = TunnelState::Connecting;
    connecting.retry_in_ms = None;
    assert_eq!(retry(&connecting), "#3");
    assert_eq!(state_line(&connecting), "connecting (attempt 3)");
    assert_eq!(
        state_line(&backoff()),
        "backoff (attempt 3, retry in 4s): network: saturn:22: connection refused"
    );
    assert_eq!(state_line(&up()), "up");
    assert_eq!(
        state_line(&degraded()),
        "degraded; 1236:localhost:22 relay refused the port (a stale session holds it)"
    );
}

#[test]
fn log_lines_with_and_without_a_tunnel() {
    let mut event = LogEvent {
        time: "2026-11-23T10:00:00.000Z".to_owned(),
        tunnel: Some("jane".to_owned()),
        level: "warn".to_owned(),
        message: "tunnel state backoff".to_owned(),
    };
    assert_eq!(
        log_line(&event, false),
        "2026-11-23T10:00:00.000Z warn  jane: tunnel state backoff"
    );
    assert!(log_line(&event, true).contains("\x1b[33mwarn \x1b[0m"));
    event.tunnel = None;
    event.level = "info".to_owned();
    assert_eq!(
        log_line(&event, true),
        "2026-11-23T10:00:00.000Z info  tunnel state backoff"
    );
    // A message quoting what a SOCKS client asked for cannot drive the terminal.
    event.message = "relay could not open \x1b]0;pwned\x07:80".to_owned();
    assert_eq!(
        log_line(&event, false),
        "2026-11-23T10:00:00.000Z info  relay could not open \\u{1b}]0;pwned\\u{7}:80"
    );
}

#[test]
fn reload_summaries() {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        reloaded(&[], &[], &[], 3),
        "reloaded: nothing changed (3 unchanged)"
    );
    assert_eq!(
        reloaded(&s(&["b", "c"]), &s(&["d"]), &s(&["a"]), 2),
        "reloaded: added b, c; removed d; changed a; 2 unchanged"
    );
    assert_eq!(reloaded(&s(&["b"]), &[], &[], 0), "reloaded: added b");
}

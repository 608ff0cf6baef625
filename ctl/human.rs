//! Numbers for people: `3m12s` ago, `1.2 MiB`, `12 ms`, `#3 in 4s`, and the one-line
//! summary of a tunnel's state that `up --wait` prints. Pure functions, so the table and the
//! progress lines are tested without a clock or a daemon.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use pairtun::tunnel::{TunnelState, TunnelStatus};

/// `text` with its control characters written as escapes (`\u{1b}`, `\n`): the daemon's
/// messages quote the relay, and forwarded connections' requested hosts, which must not be able
/// to move the cursor, retitle the window or set the clipboard of whoever reads `status` or
/// `logs`, or forge a line of their own.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect(),
    )
}

/// A duration in its two largest units: `45s`, `3m12s`, `2h5m`, `3d4h`; sub-second is `0s`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m{s}s"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// A countdown in milliseconds, rounded up: "retry in 1s" must not read "0s" while waiting.
pub fn countdown(ms: u64) -> String {
    duration(Duration::from_secs(ms.div_ceil(1000)))
}

/// How long ago the RFC 3339 time `since` was, or `?` if the daemon sent something else.
/// A time in the future (clock adjusted under us) counts as just now.
pub fn since(since: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339_weak(since) {
        Ok(then) => duration(now.duration_since(then).unwrap_or_default()),
        Err(_) => "?".to_owned(),
    }
}

/// Bytes in binary units, one decimal from KiB up: `812 B`, `5.0 KiB`, `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // f64 loses precision above 2^53 bytes, far below what one decimal shows.
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Round first, so 1023.96 KiB prints as 1.0 MiB rather than 1024.0 KiB.
    while (value * 10.0).round() / 10.0 >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The keepalive round trip: `12 ms`, or `-` before the first one.
pub fn rtt(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"))
}

/// The RETRY column: the attempt and its countdown while connecting, backing off or failed.
pub fn retry(t: &TunnelStatus) -> String {
    let attempt = t.attempt.map(|a| format!("#{a}"));
    match (t.state, attempt, t.retry_in_ms) {
        (TunnelState::Backoff | TunnelState::Failed, Some(a), Some(ms)) => {
            format!("{a} in {}", countdown(ms))
        }
        (TunnelState::Backoff | TunnelState::Failed, None, Some(ms)) => {
            format!("in {}", countdown(ms))
        }
        // Failed with nothing planned: only the user can bring it back (`up`).
        (TunnelState::Failed, _, None) => "no retry".to_owned(),
        (TunnelState::Backoff | TunnelState::Connecting, Some(a), _) => a,
        _ => "-".to_owned(),
    }
}

/// One line about where a tunnel is, for `up --wait` progress and its timeout message:
/// `connecting (attempt 2)`, `backoff (attempt 3, retry in 4s): network: refused`.
pub fn state_line(t: &TunnelStatus) -> String {
    let mut details = Vec::new();
    if let Some(a) = t.attempt {
        details.push(format!("attempt {a}"));
    }
    if let (TunnelState::Backoff | TunnelState::Failed, Some(ms)) = (t.state, t.retry_in_ms) {
        details.push(format!("retry in {}", countdown(ms)));
    }
    let mut line = t.state.as_str().to_owned();
    if !details.is_empty() {
        line = format!("{line} ({})", details.join(", "));
    }
    let failing = matches!(t.state, TunnelState::Backoff | TunnelState::Failed);
    if let Some(e) = t.last_error.as_ref().filter(|_| failing) {
        line = format!("{line}: {}: {}", e.class, printable(&e.message));
    }
    if t.state == TunnelState::Degraded {
        let broken: Vec<_> = t.forwards.iter().filter(|f| f.error.is_some()).collect();
        for f in broken {
            let error = printable(f.error.as_deref().unwrap_or(""));
            line = format!("{line}; {} {error}", f.spec);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert!(matches!(printable("relay: refused"), Cow::Borrowed(_)));
        assert_eq!(
            printable("evil\u{1b}]52;c;aGk=\u{7}.com:80\nfake line"),
            "evil\\u{1b}]52;c;aGk=\\u{7}.com:80\\nfake line"
        );
        assert_eq!(printable("caf\u{e9} \u{9b}2J"), "caf\u{e9} \\u{9b}2J");
    }

    #[test]
    fn durations_keep_two_units() {
        let s = Duration::from_secs;
        assert_eq!(duration(Duration::from_millis(999)), "0s");
        assert_eq!(duration(s(45)), "45s");
        assert_eq!(duration(s(60)), "1m0s");
        assert_eq!(duration(s(192)), "3m12s");
        assert_eq!(duration(s(3600 + 5 * 60 + 59)), "1h5m");
        assert_eq!(duration(s(3 * 86_400 + 4 * 3600 + 59)), "3d4h");
    }

    #[test]
    fn countdowns_round_up() {
        assert_eq!(countdown(0), "0s");
        assert_eq!(countdown(1), "1s");
        assert_eq!(countdown(3_200), "4s");
        assert_eq!(countdown(60_000), "1m0s");
    }

    #[test]
    fn since_parses_the_daemons_rfc3339() {
        let now = humantime::parse_rfc3339("2026-11-23T10:03:12Z").unwrap();
        assert_eq!(since("2026-11-23T10:00:00.000Z", now), "3m12s");
        assert_eq!(
            since("2026-11-23T10:05:00.000Z", now),
            "0s",
            "future: just now"
        );
        assert_eq!(since("yesterday", now), "?");
    }

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(5120), "5.0 KiB");
        assert_eq!(bytes(1_258_291), "1.2 MiB");
        assert_eq!(bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn round_trips() {
        assert_eq!(rtt(Some(12)), "12 ms");
        assert_eq!(rtt(None), "-");
    }
}

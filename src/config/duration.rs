//! Duration values as written in the config file: `"250ms"`, `"15s"`, `"2m"`, `"1h"`, `"1m30s"`.
//!
//! A deliberately small grammar rather than `humantime::parse_duration`: humantime also takes
//! `"15 seconds"`, `"1.5d"` and more, and a config format is easier to read and to document
//! when there is exactly one way to write each value.

use std::time::Duration;

/// What every duration error ends with, so users see the accepted shape.
const EXPECTED: &str = "expected a number and a unit like \"250ms\", \"15s\", \"2m\", \"1h\"";

/// The longest duration any setting takes. Far beyond any sensible keepalive, timeout or
/// backoff, and small enough that every sum and product the daemon forms from these settings
/// (`keepalive_interval` times `keepalive_count + 1`, times 3; a clock reading plus a timeout)
/// stays far from overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses one or more `<integer><unit>` groups (units `ms`, `s`, `m`, `h`) and sums them; at
/// most [`MAX_DURATION`].
///
/// `key` names the setting in the error message, e.g.
/// `invalid duration "15 seconds" for keepalive_interval: expected a number and a unit like …`.
pub(crate) fn parse_duration(text: &str, key: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} for {key}: {EXPECTED}");
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid());
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after) = after.split_at(unit_len);
        let number: u64 = number.parse().map_err(|_| too_large(text, key))?;
        let part = match unit {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            _ => return Err(invalid()),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| too_large(text, key))?;
        rest = after;
    }
    if total > MAX_DURATION {
        return Err(too_large(text, key));
    }
    Ok(total)
}

fn too_large(text: &str, key: &str) -> String {
    format!("duration {text:?} for {key} is too large (at most 24h)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("15s", Duration::from_secs(15)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text, "k"), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejected_forms() {
        for text in [
            "",
            "15",
            "15 seconds",
            "s",
            "1.5s",
            "-1s",
            "15sec",
            "1d",
            " 15s",
            "15s ",
        ] {
            let err = parse_duration(text, "keepalive_interval").unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "invalid duration {text:?} for keepalive_interval: expected"
                )),
                "{text}: {err}"
            );
        }
        let err = parse_duration("99999999999999999999h", "k").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        let err = parse_duration("18446744073709551615h", "k").unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn at_most_a_day_so_nothing_formed_from_it_overflows() {
        assert_eq!(parse_duration("24h", "k"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("23h59m60s", "k"), Ok(MAX_DURATION));
        assert_eq!(
            parse_duration("24h1ms", "connect_timeout"),
            Err("duration \"24h1ms\" for connect_timeout is too large (at most 24h)".to_owned())
        );
        // The largest value formed from settings: russh's inactivity timeout, three times the
        // dead-link time (`keepalive_count` is at most 100), added to a clock reading.
        let _ = std::time::Instant::now() + MAX_DURATION * 101 * 3;
        let _ = tokio::time::Instant::now() + MAX_DURATION * 101 * 3;
    }
}

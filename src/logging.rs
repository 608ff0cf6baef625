//! Log output: journald with structured fields when stderr is the journal (running under
//! systemd), human-readable stderr otherwise. `PAIRTUN_LOG` (else `RUST_LOG`) filters.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// russh logs every packet at debug: keep it at warn unless asked for by name.
pub const DEFAULT_FILTER: &str = "info,russh=warn";

/// Installs the global subscriber. Call once, early in `main`. A filter that does not parse is
/// reported (once the log works) and the default is used.
pub fn init() {
    let spec = ["PAIRTUN_LOG", "RUST_LOG"].iter().find_map(|var| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| (*var, v))
    });
    let (filter, refused) = match spec.map(|(var, v)| (var, filter(&v))) {
        Some((_, Ok(filter))) => (filter, None),
        Some((var, Err(e))) => (default_filter(), Some((var, e))),
        None => (default_filter(), None),
    };
    let journald = if stderr_is_journal() {
        tracing_journald::layer().ok().map(|l| {
            l.with_syslog_identifier("pairtund".into())
                // Fields keep their names: `tunnel` → TUNNEL=, `state` → STATE=,
                // `error_class` → ERROR_CLASS= (`journalctl --user TUNNEL=jane`).
                .with_field_prefix(None)
                .with_priority_mappings(priorities())
        })
    } else {
        None
    };
    let stderr = journald.is_none().then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .with(crate::daemon::EventLayer)
        .init();
    if let Some((var, e)) = refused {
        tracing::warn!("{var} ignored: {e}; using \"{DEFAULT_FILTER}\"");
    }
}

/// A log filter: comma-separated `LEVEL` (the default) and `TARGET=LEVEL` directives, e.g.
/// `debug,russh=info`.
pub fn filter(spec: &str) -> Result<Targets, String> {
    spec.parse::<Targets>()
        .map_err(|e| format!("log filter {spec:?} is not LEVEL or TARGET=LEVEL[,...] ({e})"))
}

fn default_filter() -> Targets {
    filter(DEFAULT_FILTER).unwrap_or_default()
}

/// Journal priorities: tracing-journald maps INFO to "notice" by default, which would make
/// every state change stand out in `journalctl -p notice`; state changes are "info".
fn priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// systemd sets `JOURNAL_STREAM=dev:ino` for a service's stderr; the variable is inherited by
/// children whose stderr goes elsewhere, so compare it with fd 2 itself.
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/dev/stderr").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn levels_and_targets_parse() {
        let f = filter("debug,russh=warn,pairtun::tunnel=trace").unwrap();
        assert!(f.would_enable("pairtun::config", &Level::DEBUG));
        assert!(!f.would_enable("russh::client", &Level::INFO));
        assert!(f.would_enable("pairtun::tunnel::pump", &Level::TRACE));
        let d = default_filter();
        assert!(d.would_enable("pairtun", &Level::INFO));
        assert!(!d.would_enable("pairtun", &Level::DEBUG));
        assert!(!d.would_enable("russh", &Level::INFO));
    }

    #[test]
    fn a_bad_filter_is_named() {
        for bad in ["russh=shouting", "info,pairtun=verbose"] {
            let e = filter(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}

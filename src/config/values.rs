//! Single values from the config file, each checked where it is written so its error points
//! there: durations, counts, ports, backoff factors, paths and the agent socket.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::duration::parse_duration;
use super::env::Env;
use super::error::Fault;
use super::model::{AgentSource, Cipher, Transport};
use super::raw::{DurationText, SpStr};

/// A duration that may be zero (`shutdown_grace`).
pub(crate) fn duration(d: &Spanned<DurationText>, key: &str) -> Result<Duration, Fault> {
    parse_duration(&d.get_ref().0, key).map_err(|e| Fault::new(d.span().start, e))
}

pub(crate) fn positive_duration(d: &Spanned<DurationText>, key: &str) -> Result<Duration, Fault> {
    let value = duration(d, key)?;
    if value.is_zero() {
        return Err(Fault::new(
            d.span().start,
            format!("{key} must be greater than 0s"),
        ));
    }
    Ok(value)
}

pub(crate) fn non_empty(s: &SpStr, key: &str) -> Result<String, Fault> {
    if s.get_ref().trim().is_empty() {
        return Err(Fault::new(
            s.span().start,
            format!("{key} must not be empty"),
        ));
    }
    Ok(s.get_ref().clone())
}

pub(crate) fn ssh_port(p: &Spanned<i64>) -> Result<u16, Fault> {
    u16::try_from(*p.get_ref())
        .ok()
        .filter(|&n| n != 0)
        .ok_or_else(|| {
            Fault::new(
                p.span().start,
                format!("port {} is out of range (1-65535)", p.get_ref()),
            )
        })
}

pub(crate) fn keepalive_count(c: &Spanned<i64>) -> Result<u32, Fault> {
    match *c.get_ref() {
        // russh reads 0 as "never give up", which would hide a dead link forever.
        0 => Err(Fault::new(
            c.span().start,
            "keepalive_count must be at least 1 (0 would never declare a silent link dead)",
        )),
        n @ 1..=100 => Ok(n as u32),
        n => Err(Fault::new(
            c.span().start,
            format!("keepalive_count {n} is out of range (1-100)"),
        )),
    }
}

/// The most `max_connections` may be: far beyond any pairing session, still bounded.
pub(crate) const MAX_CONNECTIONS_LIMIT: i64 = 1_000_000;

pub(crate) fn max_connections(c: &Spanned<i64>) -> Result<usize, Fault> {
    match *c.get_ref() {
        n @ 1..=MAX_CONNECTIONS_LIMIT => Ok(n as usize),
        n => Err(Fault::new(
            c.span().start,
            format!("max_connections {n} is out of range (1-{MAX_CONNECTIONS_LIMIT})"),
        )),
    }
}

pub(crate) fn multiplier(m: &Spanned<f64>) -> Result<f64, Fault> {
    let v = *m.get_ref();
    if (1.0..=100.0).contains(&v) {
        return Ok(v);
    }
    Err(Fault::new(
        m.span().start,
        format!("backoff multiplier {v} is out of range (1.0-100)"),
    ))
}

pub(crate) fn jitter(j: &Spanned<f64>) -> Result<f64, Fault> {
    let v = *j.get_ref();
    if (0.0..1.0).contains(&v) {
        return Ok(v);
    }
    Err(Fault::new(
        j.span().start,
        format!("backoff jitter {v} is out of range (at least 0, below 1)"),
    ))
}

pub(crate) fn path(p: &SpStr, key: &str, env: &Env) -> Result<PathBuf, Fault> {
    let raw = p.get_ref();
    if raw.is_empty() {
        return Err(Fault::new(
            p.span().start,
            format!("{key} must not be empty"),
        ));
    }
    env.expand_path(raw)
        .map_err(|e| Fault::new(p.span().start, format!("{key} {raw:?}: {e}")))
}

pub(crate) fn agent(a: &SpStr, env: &Env) -> Result<AgentSource, Fault> {
    match a.get_ref().as_str() {
        // Kept symbolic: the daemon re-reads the variable at each attempt, as the agent may move.
        "$SSH_AUTH_SOCK" | "${SSH_AUTH_SOCK}" => Ok(AgentSource::Env),
        "" => Ok(AgentSource::Disabled),
        _ => path(a, "agent_socket", env).map(AgentSource::Path),
    }
}

/// Ciphers russh implements that only a misconfiguration would ask for: no encryption at all.
const REFUSED_CIPHERS: [&str; 2] = ["none", "clear"];

/// A non-empty list of cipher names russh implements, in preference order.
pub(crate) fn ciphers(list: &Spanned<Vec<SpStr>>) -> Result<Vec<Cipher>, Fault> {
    if list.get_ref().is_empty() {
        return Err(Fault::new(
            list.span().start,
            "ciphers must name at least one cipher, e.g. [\"aes128-gcm@openssh.com\"]",
        ));
    }
    list.get_ref()
        .iter()
        .map(|name| {
            Cipher::try_from(name.get_ref().as_str())
                .ok()
                .filter(|_| !REFUSED_CIPHERS.contains(&name.get_ref().as_str()))
                .ok_or_else(|| {
                    Fault::new(
                        name.span().start,
                        format!(
                            "unknown cipher {:?}; expected one of {}",
                            name.get_ref(),
                            supported_ciphers().join(", ")
                        ),
                    )
                })
        })
        .collect()
}

/// The cipher names `ciphers` accepts.
fn supported_ciphers() -> Vec<&'static str> {
    russh::cipher::ALL_CIPHERS
        .iter()
        .map(|name| name.as_ref())
        .filter(|name| !REFUSED_CIPHERS.contains(name))
        .collect()
}

/// A channel window in bytes, between [`Transport::MIN_WINDOW_SIZE`] and
/// [`Transport::MAX_WINDOW_SIZE`].
pub(crate) fn window_size(w: &Spanned<i64>) -> Result<u32, Fault> {
    let (min, max) = (Transport::MIN_WINDOW_SIZE, Transport::MAX_WINDOW_SIZE);
    u32::try_from(*w.get_ref())
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            Fault::new(
                w.span().start,
                format!(
                    "window_size {} is out of range ({min}-{max} bytes)",
                    w.get_ref()
                ),
            )
        })
}

//! OpenSSH `-L` / `-R` / `-D` forward specs → [`LocalForward`] / [`RemoteForward`] /
//! [`DynamicForward`].
//!
//! Shared by the config file (`local = [..]`, `remote = [..]`) and the CLI's `-L`/`-R` flags, so
//! both accept exactly the same text. A spec is split on `:` into parts, with `[...]` keeping an
//! IPv6 address whole; a part starting with `/` is a Unix socket path. The target is read from
//! the end (one socket path, or host and port), and what is left is the listen side.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::model::{
    DynamicForward, HostPort, LocalForward, LocalListen, RemoteForward, RemoteListen, Target,
};

const LOCAL_FORMS: &str = "[bind:]port:host:hostport, [bind:]port:/remote/socket, \
     /local/socket:host:hostport or /local/socket:/remote/socket";
const DYNAMIC_FORMS: &str = "[bind:]port";
const REMOTE_FORMS: &str = "[bind:]port:host:hostport, [bind:]port:/local/socket, \
     /remote/socket:host:hostport or /remote/socket:/local/socket";

/// Parses an `ssh -L` spec. Without a bind address the listener is loopback-only (SPEC §5);
/// `*` or an empty bind means all interfaces, explicitly.
///
/// Errors quote the spec: `"99999:localhost:22": port 99999 is out of range (1-65535)`.
pub fn parse_forward_local(spec: &str) -> Result<LocalForward, String> {
    local(spec).map_err(|e| format!("{spec:?}: {e}"))
}

/// Parses an `ssh -R` spec. The bind address is sent to the relay as written (`[::1]` without
/// brackets), `"localhost"` when absent and `""` (all interfaces) for `*`, as OpenSSH does;
/// port 0 lets the relay pick.
pub fn parse_forward_remote(spec: &str) -> Result<RemoteForward, String> {
    remote(spec).map_err(|e| format!("{spec:?}: {e}"))
}

/// Parses an `ssh -D` spec: where the SOCKS server listens, loopback unless a bind address
/// is named (like `-L`).
pub fn parse_forward_dynamic(spec: &str) -> Result<DynamicForward, String> {
    dynamic(spec).map_err(|e| format!("{spec:?}: {e}"))
}

fn dynamic(spec: &str) -> Result<DynamicForward, String> {
    let parts = split(spec, DYNAMIC_FORMS)?;
    let (addr, port) = match parts.as_slice() {
        [port] => (IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        [bind, port] => (local_bind(bind)?, port),
        _ => return Err(format!("expected {DYNAMIC_FORMS}")),
    };
    Ok(DynamicForward {
        spec: spec.to_owned(),
        listen: LocalListen::Tcp {
            addr,
            port: port_number(port, "listen port", 1)?,
        },
    })
}

fn local(spec: &str) -> Result<LocalForward, String> {
    let parts = split(spec, LOCAL_FORMS)?;
    let (target, listen) = split_target(&parts, LOCAL_FORMS)?;
    let listen = match listen {
        [path] if path.is_socket() => LocalListen::Unix(PathBuf::from(path.text)),
        [port] => LocalListen::Tcp {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: port_number(port, "listen port", 1)?,
        },
        [bind, port] => LocalListen::Tcp {
            addr: local_bind(bind)?,
            port: port_number(port, "listen port", 1)?,
        },
        _ => return Err(too_many(LOCAL_FORMS)),
    };
    Ok(LocalForward {
        spec: spec.to_owned(),
        listen,
        target,
    })
}

fn remote(spec: &str) -> Result<RemoteForward, String> {
    let parts = split(spec, REMOTE_FORMS)?;
    // OpenSSH reads `-R [bind:]port` as a remote SOCKS proxy; say so instead of "missing parts".
    if parts.len() <= 2 && !parts.iter().any(Part::is_socket) {
        return Err(format!(
            "remote dynamic (SOCKS) forwarding `-R [bind:]port` is not supported; \
             expected {REMOTE_FORMS}"
        ));
    }
    let (target, listen) = split_target(&parts, REMOTE_FORMS)?;
    let listen = match listen {
        [path] if path.is_socket() => RemoteListen::Unix(path.text.to_owned()),
        [port] => RemoteListen::Tcp {
            bind: "localhost".to_owned(),
            port: port_number(port, "listen port", 0)?,
        },
        [bind, port] => RemoteListen::Tcp {
            bind: remote_bind(bind)?,
            port: port_number(port, "listen port", 0)?,
        },
        _ => return Err(too_many(REMOTE_FORMS)),
    };
    Ok(RemoteForward {
        spec: spec.to_owned(),
        listen,
        target,
    })
}

/// One `:`-separated part; `bracketed` when it was written as `[...]` (brackets removed).
#[derive(Debug, Clone, Copy)]
struct Part<'a> {
    text: &'a str,
    bracketed: bool,
}

impl Part<'_> {
    fn is_socket(&self) -> bool {
        !self.bracketed && self.text.starts_with('/')
    }
}

fn split<'a>(spec: &'a str, forms: &str) -> Result<Vec<Part<'a>>, String> {
    if spec.is_empty() {
        return Err(format!("empty forward spec; expected {forms}"));
    }
    if spec.contains(char::is_whitespace) {
        return Err(format!("forward specs contain no spaces; expected {forms}"));
    }
    let mut parts = Vec::new();
    let mut rest = spec;
    loop {
        let (part, after) = if let Some(inner) = rest.strip_prefix('[') {
            let close = inner
                .find(']')
                .ok_or_else(|| "unbalanced `[`: missing `]`".to_owned())?;
            let (text, after) = (&inner[..close], &inner[close + 1..]);
            if text.contains('[') {
                return Err("unbalanced `[`: brackets do not nest".to_owned());
            }
            if !(after.is_empty() || after.starts_with(':')) {
                return Err(format!("expected `:` after `[{text}]`"));
            }
            (
                Part {
                    text,
                    bracketed: true,
                },
                after,
            )
        } else {
            let end = rest.find(':').unwrap_or(rest.len());
            let text = &rest[..end];
            if text.contains(['[', ']']) {
                return Err(format!(
                    "unbalanced brackets in {text:?}; write IPv6 addresses as [::1]"
                ));
            }
            (
                Part {
                    text,
                    bracketed: false,
                },
                &rest[end..],
            )
        };
        parts.push(part);
        match after.strip_prefix(':') {
            Some(next) => rest = next,
            None => return Ok(parts),
        }
    }
}

/// Takes the target off the end: a socket path, or `host:hostport`. Returns the listen parts.
fn split_target<'p, 'a>(
    parts: &'p [Part<'a>],
    forms: &str,
) -> Result<(Target, &'p [Part<'a>]), String> {
    if let Some((last, listen)) = parts.split_last().filter(|(last, _)| last.is_socket()) {
        if listen.is_empty() {
            return Err(format!(
                "missing the listen side before {:?}; expected {forms}",
                last.text
            ));
        }
        return Ok((Target::Unix(PathBuf::from(last.text)), listen));
    }
    if parts.len() < 3 {
        return Err(format!("missing parts; expected {forms}"));
    }
    let (listen, target) = parts.split_at(parts.len() - 2);
    let host = target_host(&target[0])?;
    let port = port_number(&target[1], "target port", 1)?;
    Ok((Target::Tcp(HostPort { host, port }), listen))
}

fn target_host(part: &Part) -> Result<String, String> {
    if part.text.is_empty() {
        return Err("target host is empty".to_owned());
    }
    if part.is_socket() {
        return Err(format!(
            "{:?} looks like a socket path; a socket path must be a whole side of the forward",
            part.text
        ));
    }
    Ok(part.text.to_owned())
}

/// A port of at least `min` (0 only for remote listens, where the relay picks).
fn port_number(part: &Part, what: &str, min: u16) -> Result<u16, String> {
    let text = part.text;
    if text.is_empty() {
        return Err(format!("{what} is missing"));
    }
    if part.bracketed || !text.bytes().all(|b| b.is_ascii_digit()) {
        let hint = if text.contains(['/', '~']) {
            " (socket paths must be absolute and start with /)"
        } else {
            ""
        };
        return Err(format!("{what} {text:?} is not a number{hint}"));
    }
    match text.parse::<u32>() {
        Ok(n) if n >= u32::from(min) => u16::try_from(n).map_err(|_| out_of_range(what, text, min)),
        _ => Err(out_of_range(what, text, min)),
    }
}

fn out_of_range(what: &str, text: &str, min: u16) -> String {
    let shown = text.trim_start_matches('0');
    let shown = if shown.is_empty() { "0" } else { shown };
    let extra = if min > 0 && shown == "0" && what == "listen port" {
        "; port 0 (relay picks) is only allowed for remote forwards"
    } else {
        ""
    };
    format!("{what} {shown} is out of range ({min}-65535){extra}")
}

fn local_bind(part: &Part) -> Result<IpAddr, String> {
    if part.bracketed {
        return part
            .text
            .parse()
            .map_err(|_| format!("[{}] is not an IP address", part.text));
    }
    match part.text {
        "" | "*" => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "localhost" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        text => text.parse().map_err(|_| {
            format!("bind address {text:?} must be an IP address, `localhost` or `*`")
        }),
    }
}

fn remote_bind(part: &Part) -> Result<String, String> {
    match (part.bracketed, part.text) {
        (true, "") => Err("empty `[]` bind address".to_owned()),
        // RFC 4254 §7.1 spells "all interfaces" as ""; OpenSSH maps `*` to it too.
        (false, "*") => Ok(String::new()),
        (_, text) => Ok(text.to_owned()),
    }
}

fn too_many(forms: &str) -> String {
    format!("too many `:`-separated parts (write IPv6 addresses as [::1]); expected {forms}")
}

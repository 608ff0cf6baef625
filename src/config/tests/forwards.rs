//! `-L` / `-R` spec parsing: every form, IPv6, sockets, and the errors.

use std::net::IpAddr;

use super::*;

fn tcp(host: &str, port: u16) -> Target {
    Target::Tcp(HostPort {
        host: host.into(),
        port,
    })
}

fn unix(path: &str) -> Target {
    Target::Unix(PathBuf::from(path))
}

fn ltcp(addr: &str, port: u16) -> LocalListen {
    LocalListen::Tcp {
        addr: addr.parse::<IpAddr>().unwrap(),
        port,
    }
}

fn rtcp(bind: &str, port: u16) -> RemoteListen {
    RemoteListen::Tcp {
        bind: bind.into(),
        port,
    }
}

#[test]
fn local_forms() {
    let cases = [
        (
            "9999:localhost:1235",
            ltcp("127.0.0.1", 9999),
            tcp("localhost", 1235),
        ),
        (
            "127.0.0.1:9999:localhost:22",
            ltcp("127.0.0.1", 9999),
            tcp("localhost", 22),
        ),
        ("localhost:9999:h:22", ltcp("127.0.0.1", 9999), tcp("h", 22)),
        ("*:9999:h:22", ltcp("0.0.0.0", 9999), tcp("h", 22)),
        (":9999:h:22", ltcp("0.0.0.0", 9999), tcp("h", 22)),
        (
            "192.168.1.5:80:h:8080",
            ltcp("192.168.1.5", 80),
            tcp("h", 8080),
        ),
        ("[::1]:9999:[::1]:22", ltcp("::1", 9999), tcp("::1", 22)),
        ("[::]:9999:h:22", ltcp("::", 9999), tcp("h", 22)),
        (
            "9999:[fe80::1]:22",
            ltcp("127.0.0.1", 9999),
            tcp("fe80::1", 22),
        ),
        ("65535:h:65535", ltcp("127.0.0.1", 65535), tcp("h", 65535)),
        (
            "9999:/run/remote.sock",
            ltcp("127.0.0.1", 9999),
            unix("/run/remote.sock"),
        ),
        ("[::1]:9999:/r.sock", ltcp("::1", 9999), unix("/r.sock")),
        (
            "/tmp/local.sock:h:22",
            LocalListen::Unix("/tmp/local.sock".into()),
            tcp("h", 22),
        ),
        (
            "/tmp/l.sock:/tmp/r.sock",
            LocalListen::Unix("/tmp/l.sock".into()),
            unix("/tmp/r.sock"),
        ),
    ];
    for (spec, listen, target) in cases {
        let got = parse_forward_local(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            got,
            LocalForward {
                spec: spec.into(),
                listen,
                target
            },
            "{spec}"
        );
    }
}

#[test]
fn remote_forms() {
    let cases = [
        (
            "1235:localhost:22",
            rtcp("localhost", 1235),
            tcp("localhost", 22),
        ),
        ("0:localhost:22", rtcp("localhost", 0), tcp("localhost", 22)),
        ("relay.lan:1235:h:22", rtcp("relay.lan", 1235), tcp("h", 22)),
        ("[::1]:1235:[::1]:22", rtcp("::1", 1235), tcp("::1", 22)),
        ("*:1235:h:22", rtcp("", 1235), tcp("h", 22)),
        (":1235:h:22", rtcp("", 1235), tcp("h", 22)),
        ("0.0.0.0:1235:h:22", rtcp("0.0.0.0", 1235), tcp("h", 22)),
        (
            "1235:/run/sshd.sock",
            rtcp("localhost", 1235),
            unix("/run/sshd.sock"),
        ),
        (
            "/tmp/relay.sock:h:22",
            RemoteListen::Unix("/tmp/relay.sock".into()),
            tcp("h", 22),
        ),
        (
            "/tmp/relay.sock:/tmp/here.sock",
            RemoteListen::Unix("/tmp/relay.sock".into()),
            unix("/tmp/here.sock"),
        ),
    ];
    for (spec, listen, target) in cases {
        let got = parse_forward_remote(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            got,
            RemoteForward {
                spec: spec.into(),
                listen,
                target
            },
            "{spec}"
        );
    }
}

#[test]
fn local_errors() {
    let cases = [
        ("", "empty forward spec; expected [bind:]port:host:hostport"),
        (
            "99999:localhost:22",
            "\"99999:localhost:22\": listen port 99999 is out of range (1-65535)",
        ),
        (
            "0:h:22",
            "listen port 0 is out of range (1-65535); port 0 (relay picks) is only allowed for remote",
        ),
        ("9999:h:0", "target port 0 is out of range (1-65535)"),
        ("9999:h:70000", "target port 70000 is out of range"),
        ("abc:h:22", "listen port \"abc\" is not a number"),
        ("9999:h:ssh", "target port \"ssh\" is not a number"),
        ("9999:h:+22", "target port \"+22\" is not a number"),
        ("9999:h:", "target port is missing"),
        ("9999:h", "missing parts; expected"),
        ("9999", "missing parts"),
        (
            "/only.sock",
            "missing the listen side before \"/only.sock\"",
        ),
        ("9999::22", "target host is empty"),
        ("9999:/s:22", "looks like a socket path"),
        (
            "example.com:9999:h:22",
            "bind address \"example.com\" must be an IP address, `localhost` or `*`",
        ),
        ("[foo]:9999:h:22", "[foo] is not an IP address"),
        (
            "::1:9999:h:22",
            "too many `:`-separated parts (write IPv6 addresses as [::1])",
        ),
        ("[::1:9999:h:22", "unbalanced `[`: missing `]`"),
        ("::1]:9999:h:22", "unbalanced brackets"),
        ("[::1]x:9999:h:22", "expected `:` after `[::1]`"),
        ("[[::1]]:9999:h:22", "brackets do not nest"),
        ("9999 localhost:22", "forward specs contain no spaces"),
        (
            "~/l.sock:h:22",
            "listen port \"~/l.sock\" is not a number (socket paths must be absolute",
        ),
        ("[22]:h:22", "listen port \"22\" is not a number"),
    ];
    for (spec, want) in cases {
        let e = parse_forward_local(spec).unwrap_err();
        assert!(e.contains(want), "{spec}: {e}");
        assert!(e.starts_with(&format!("{spec:?}: ")), "{spec}: {e}");
    }
}

#[test]
fn remote_errors() {
    let cases = [
        (
            "",
            "empty forward spec; expected [bind:]port:host:hostport, [bind:]port:/local/socket",
        ),
        (
            "1080",
            "remote dynamic (SOCKS) forwarding `-R [bind:]port` is not supported",
        ),
        ("localhost:1080", "not supported"),
        ("70000:h:22", "listen port 70000 is out of range (0-65535)"),
        ("1235:h:0", "target port 0 is out of range (1-65535)"),
        ("[]:1235:h:22", "empty `[]` bind address"),
        ("x:1235:h:22:9", "too many"),
        ("/r.sock", "missing the listen side"),
    ];
    for (spec, want) in cases {
        let e = parse_forward_remote(spec).unwrap_err();
        assert!(e.contains(want), "{spec}: {e}");
    }
}

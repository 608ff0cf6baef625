//! Golden tests: the exact wire strings of every message. A failure here means the protocol
//! changed — update PROTOCOL.md and, if old clients would break, `PROTOCOL_VERSION`.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::error::{ErrorClass, TunnelError};
use crate::tunnel::{ForwardKind, ForwardState, ForwardStatus, Peer, TunnelState};

/// `value` encodes to exactly `wire`, and `wire` decodes to exactly `value`.
fn golden<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T, wire: &str) {
    let encoded = encode(&value);
    assert_eq!(String::from_utf8_lossy(&encoded), format!("{wire}\n"));
    let decoded: T = serde_json::from_str(wire).expect("golden literal decodes");
    assert_eq!(decoded, value, "decoding {wire}");
}

fn name(s: &str) -> Option<String> {
    Some(s.to_owned())
}

fn spec() -> TunnelSpec {
    TunnelSpec {
        name: "jane".into(),
        host: "saturn".into(),
        port: Some(2222),
        user: name("saturn_user"),
        identity_files: vec!["~/.ssh/id_ed25519".into()],
        local: vec!["9999:localhost:1235".into()],
        remote: vec![],
        dynamic: vec!["1080".into()],
        jump: name("bastion"),
        autostart: false,
        probe_peer: false,
    }
}

fn tunnel_status() -> TunnelStatus {
    TunnelStatus {
        name: "jane".into(),
        state: TunnelState::Backoff,
        since: "2026-11-23T10:00:00.000Z".into(),
        session: 2,
        forwards: vec![ForwardStatus {
            kind: ForwardKind::Local,
            spec: "9999:localhost:1235".into(),
            state: ForwardState::Pending,
            error: None,
            peer: None,
        }],
        connections: 0,
        bytes_in: 10,
        bytes_out: 20,
        rtt_ms: None,
        attempt: Some(3),
        retry_in_ms: Some(4000),
        last_error: Some(TunnelError::new(ErrorClass::Network, "connection refused")),
    }
}

#[test]
fn greeting_wire() {
    let hello = Greeting {
        hello: Hello {
            protocol: 1,
            daemon: "0.1.0".into(),
        },
    };
    golden(hello, r#"{"hello":{"protocol":1,"daemon":"0.1.0"}}"#);
    assert_eq!(Greeting::current().hello.protocol, PROTOCOL_VERSION);
}

/// Every request, in its shortest and its fullest form.
fn request_goldens() -> Vec<(Request, &'static str)> {
    vec![
        (Request::Ping {}, r#"{"op":"ping"}"#),
        (Request::Version {}, r#"{"op":"version"}"#),
        (Request::Status { name: None }, r#"{"op":"status"}"#),
        (
            Request::Status { name: name("jane") },
            r#"{"op":"status","name":"jane"}"#,
        ),
        (Request::Watch { name: None }, r#"{"op":"watch"}"#),
        (
            Request::Watch { name: name("jane") },
            r#"{"op":"watch","name":"jane"}"#,
        ),
        (
            Request::Up {
                name: "jane".into(),
                wait: true,
            },
            r#"{"op":"up","name":"jane","wait":true}"#,
        ),
        (
            Request::Down {
                name: "jane".into(),
            },
            r#"{"op":"down","name":"jane"}"#,
        ),
        (
            Request::Restart {
                name: "jane".into(),
            },
            r#"{"op":"restart","name":"jane"}"#,
        ),
        (
            Request::Add {
                tunnel: spec(),
                temporary: true,
            },
            concat!(
                r#"{"op":"add","tunnel":{"name":"jane","host":"saturn","port":2222,"#,
                r#""user":"saturn_user","identity_files":["~/.ssh/id_ed25519"],"#,
                r#""local":["9999:localhost:1235"],"remote":[],"dynamic":["1080"],"#,
                r#""jump":"bastion","autostart":false},"temporary":true}"#
            ),
        ),
        (
            Request::Drop {
                name: "jane".into(),
                temporary: false,
            },
            r#"{"op":"drop","name":"jane","temporary":false}"#,
        ),
        (Request::Reload {}, r#"{"op":"reload"}"#),
        (
            Request::Logs {
                name: None,
                follow: false,
            },
            r#"{"op":"logs","follow":false}"#,
        ),
        (
            Request::Logs {
                name: name("jane"),
                follow: true,
            },
            r#"{"op":"logs","name":"jane","follow":true}"#,
        ),
    ]
}

fn response_goldens() -> Vec<(Response, &'static str)> {
    vec![
        (
            Response::Pong {
                daemon: "0.1.0".into(),
                protocol: 1,
            },
            r#"{"reply":"pong","daemon":"0.1.0","protocol":1}"#,
        ),
        (
            Response::Version {
                daemon: "0.1.0".into(),
                protocol: 1,
            },
            r#"{"reply":"version","daemon":"0.1.0","protocol":1}"#,
        ),
        (
            Response::Status { tunnels: vec![] },
            r#"{"reply":"status","tunnels":[]}"#,
        ),
        (
            Response::Status {
                tunnels: vec![tunnel_status()],
            },
            concat!(
                r#"{"reply":"status","tunnels":[{"name":"jane","state":"backoff","#,
                r#""since":"2026-11-23T10:00:00.000Z","session":2,"forwards":[{"kind":"local","#,
                r#""spec":"9999:localhost:1235","state":"pending","error":null}],"#,
                r#""connections":0,"bytes_in":10,"bytes_out":20,"rtt_ms":null,"attempt":3,"#,
                r#""retry_in_ms":4000,"last_error":{"class":"network","#,
                r#""message":"connection refused"}}]}"#
            ),
        ),
        (
            Response::Status {
                tunnels: vec![TunnelStatus {
                    state: TunnelState::Up,
                    forwards: vec![
                        ForwardStatus {
                            kind: ForwardKind::Local,
                            spec: "9999:localhost:1235".into(),
                            state: ForwardState::Up,
                            error: None,
                            peer: Some(Peer::NotListening),
                        },
                        ForwardStatus {
                            kind: ForwardKind::Dynamic,
                            spec: "1080".into(),
                            state: ForwardState::Up,
                            error: None,
                            peer: None,
                        },
                    ],
                    attempt: None,
                    retry_in_ms: None,
                    last_error: None,
                    ..tunnel_status()
                }],
            },
            concat!(
                r#"{"reply":"status","tunnels":[{"name":"jane","state":"up","#,
                r#""since":"2026-11-23T10:00:00.000Z","session":2,"forwards":[{"kind":"local","#,
                r#""spec":"9999:localhost:1235","state":"up","error":null,"peer":"not-listening"},"#,
                r#"{"kind":"dynamic","spec":"1080","state":"up","error":null}],"#,
                r#""connections":0,"bytes_in":10,"bytes_out":20,"rtt_ms":null,"attempt":null,"#,
                r#""retry_in_ms":null,"last_error":null}]}"#
            ),
        ),
        (Response::ok(), r#"{"reply":"ok"}"#),
        (
            Response::ok_with("jane is up"),
            r#"{"reply":"ok","message":"jane is up"}"#,
        ),
        (
            Response::Reloaded {
                added: vec!["a".into()],
                removed: vec!["b".into()],
                changed: vec![],
                unchanged: vec!["c".into(), "d".into()],
            },
            r#"{"reply":"reloaded","added":["a"],"removed":["b"],"changed":[],"unchanged":["c","d"]}"#,
        ),
        (
            Response::Log {
                event: LogEvent {
                    time: "2026-11-23T10:00:00.000Z".into(),
                    tunnel: name("jane"),
                    level: "warn".into(),
                    message: "tunnel state backoff".into(),
                },
            },
            concat!(
                r#"{"reply":"log","event":{"time":"2026-11-23T10:00:00.000Z","tunnel":"jane","#,
                r#""level":"warn","message":"tunnel state backoff"}}"#
            ),
        ),
        (
            Response::Log {
                event: LogEvent {
                    time: "2026-11-23T10:00:00.000Z".into(),
                    tunnel: None,
                    level: "info".into(),
                    message: "daemon started".into(),
                },
            },
            concat!(
                r#"{"reply":"log","event":{"time":"2026-11-23T10:00:00.000Z","#,
                r#""level":"info","message":"daemon started"}}"#
            ),
        ),
    ]
}

const ERROR_KINDS: [(ErrorKind, &str); 8] = [
    (ErrorKind::UnknownTunnel, "unknown-tunnel"),
    (ErrorKind::BadRequest, "bad-request"),
    (ErrorKind::Config, "config"),
    (ErrorKind::TooLarge, "too-large"),
    (ErrorKind::Timeout, "timeout"),
    (ErrorKind::Busy, "busy"),
    (ErrorKind::TunnelFailed, "tunnel-failed"),
    (ErrorKind::Internal, "internal"),
];

#[test]
fn request_wire() {
    for (request, wire) in request_goldens() {
        golden(request, wire);
    }
}

#[test]
fn response_wire() {
    for (response, wire) in response_goldens() {
        golden(response, wire);
    }
}

#[test]
fn error_wire_for_every_kind() {
    for (kind, spelling) in ERROR_KINDS {
        assert_eq!(kind.as_str(), spelling);
        assert_eq!(kind.exit_code(), 1, "SPEC §3: a failed request exits 1");
        golden(
            Response::error(kind, "no tunnel named `x`"),
            &format!(r#"{{"reply":"error","kind":"{spelling}","message":"no tunnel named `x`"}}"#),
        );
    }
}

/// A newer daemon's error kind reaches an older client as `Other`, its message intact (the
/// whole reply used to fail to parse: "unexpected reply").
#[test]
fn an_unknown_error_kind_is_other_and_keeps_its_message() {
    let wire = r#"{"reply":"error","kind":"rate-limited","message":"slow down"}"#;
    let reply: Response = serde_json::from_str(wire).unwrap();
    assert_eq!(reply, Response::error(ErrorKind::Other, "slow down"));
}

/// The variant names each list covers; the exhaustive matches make a new variant a compile
/// error here until it has a golden line.
fn request_op(r: &Request) -> &'static str {
    match r {
        Request::Ping {} => "ping",
        Request::Version {} => "version",
        Request::Status { .. } => "status",
        Request::Watch { .. } => "watch",
        Request::Up { .. } => "up",
        Request::Down { .. } => "down",
        Request::Restart { .. } => "restart",
        Request::Add { .. } => "add",
        Request::Drop { .. } => "drop",
        Request::Reload {} => "reload",
        Request::Logs { .. } => "logs",
    }
}

fn response_reply(r: &Response) -> &'static str {
    match r {
        Response::Pong { .. } => "pong",
        Response::Version { .. } => "version",
        Response::Status { .. } => "status",
        Response::Ok { .. } => "ok",
        Response::Reloaded { .. } => "reloaded",
        Response::Log { .. } => "log",
        Response::Error { .. } => "error",
    }
}

#[test]
fn round_trip_every_variant() {
    let requests: Vec<Request> = request_goldens().into_iter().map(|(r, _)| r).collect();
    let ops: BTreeSet<_> = requests.iter().map(request_op).collect();
    assert_eq!(
        ops.len(),
        11,
        "a request variant lacks a golden line: {ops:?}"
    );
    for request in requests {
        let line = encode(&request);
        assert_eq!(decode_request(&line), Ok(request));
    }

    let mut responses: Vec<Response> = response_goldens().into_iter().map(|(r, _)| r).collect();
    responses.extend(ERROR_KINDS.map(|(kind, _)| Response::error(kind, "m")));
    let replies: BTreeSet<_> = responses.iter().map(response_reply).collect();
    assert_eq!(
        replies.len(),
        7,
        "a response variant lacks a golden line: {replies:?}"
    );
    for response in responses {
        let line = encode(&response);
        let back: Response = serde_json::from_slice(&line).expect("round trip");
        assert_eq!(back, response);
    }
}

#[test]
fn omitted_fields_take_their_defaults() {
    let up = decode_request(br#"{"op":"up","name":"jane"}"#);
    assert_eq!(
        up,
        Ok(Request::Up {
            name: "jane".into(),
            wait: false
        })
    );
    let add = decode_request(br#"{"op":"add","tunnel":{"name":"n","host":"h"}}"#);
    let want = TunnelSpec {
        name: "n".into(),
        host: "h".into(),
        port: None,
        user: None,
        identity_files: vec![],
        local: vec![],
        remote: vec![],
        dynamic: vec![],
        jump: None,
        autostart: true,
        probe_peer: false,
    };
    assert_eq!(
        add,
        Ok(Request::Add {
            tunnel: want,
            temporary: false
        })
    );
    // A trailing newline and surrounding blanks are part of a normal line.
    assert_eq!(
        decode_request(b" {\"op\":\"ping\"} \n"),
        Ok(Request::Ping {})
    );
    // Replies ignore fields they do not know, so the daemon may add some.
    let ok: Response = serde_json::from_str(r#"{"reply":"ok","extra":1}"#).expect("lenient");
    assert_eq!(ok, Response::ok());
}

#[test]
fn decode_failures_name_the_problem() {
    let cases: [(&[u8], &str); 13] = [
        (b"hello", "expected a JSON object"),
        (b"{\"op\":", "EOF while parsing"),
        (b"", "EOF"),
        (b"{}", "missing field `op`"),
        (b"[\"ping\"]", "expected a JSON object"),
        (br#"{"op":"fly"}"#, "unknown variant `fly`"),
        (br#"{"op":"up"}"#, "missing field `name`"),
        (
            br#"{"op":"up","name":7}"#,
            "invalid type: integer `7`, expected a string",
        ),
        (
            br#"{"op":"up","name":"j","wait":"yes"}"#,
            "expected a boolean",
        ),
        (
            br#"{"op":"down","name":"j","force":true}"#,
            "unknown field `force`",
        ),
        (br#"{"op":"ping","x":1}"#, "unknown field `x`"),
        (
            br#"{"op":"add","tunnel":{"name":"n","host":"h","port":70000}}"#,
            "expected u16",
        ),
        (
            br#"{"op":"add","tunnel":{"name":"n","host":"h","locals":[]}}"#,
            "unknown field `locals`",
        ),
    ];
    for (line, want) in cases {
        let err = decode_request(line).expect_err(&String::from_utf8_lossy(line));
        assert!(err.starts_with("invalid request: "), "{err}");
        assert!(
            err.contains(want),
            "{}: {err}",
            String::from_utf8_lossy(line)
        );
    }
}

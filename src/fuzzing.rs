//! Entry points of the fuzz targets in `fuzz/` (see fuzz/README.md), one per target.
//!
//! Each takes arbitrary bytes and panics only when a property fails, so the same functions
//! serve `cargo fuzz` and the regression test that replays every committed corpus and crash
//! file under plain `cargo test` (`fuzzing::tests`). Built for tests and with the `fuzzing`
//! feature; nothing here is part of pairtun's API.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::BufReader;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::config::ssh_config::{SshConfig, parse_ssh_config_import};
use crate::config::{
    self, ConfigError, Env, LocalForward, LocalListen, RemoteForward, RemoteListen, Target,
    parse_forward_dynamic, parse_forward_local, parse_forward_remote,
};
use crate::control::frame::{Frame, read_frame};
use crate::control::server::{Handler, Reply, answer};
use crate::daemon::{ControlHandler, Daemon};
use crate::protocol::{ErrorKind, MAX_FRAME, Request, Response, decode_request, encode};

#[cfg(test)]
mod tests;

/// `forward_spec`: the three forward parsers on the input as text. A parsed spec keeps the text as
/// written, and its canonical spelling parses back to the same forward; an error quotes the
/// spec.
pub fn forward_spec(data: &[u8]) {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    check_parser(
        spec,
        parse_forward_local,
        |f| &f.spec,
        local_spelling,
        |f| (f.listen, f.target),
    );
    check_parser(
        spec,
        parse_forward_remote,
        |f| &f.spec,
        remote_spelling,
        |f| (f.listen, f.target),
    );
    check_parser(
        spec,
        parse_forward_dynamic,
        |f| &f.spec,
        |f| listen_spelling(&f.listen),
        |f| f.listen,
    );
}

/// One forward parser's properties on `spec`: a parsed forward keeps the text as `written`,
/// its canonical `spelling` parses back to the same forward (compared by `key`), and an error
/// quotes the spec.
fn check_parser<F, K: PartialEq + std::fmt::Debug>(
    spec: &str,
    parse: fn(&str) -> Result<F, String>,
    written: fn(&F) -> &str,
    spelling: fn(&F) -> String,
    key: fn(F) -> K,
) {
    match parse(spec) {
        Ok(forward) => {
            assert_eq!(written(&forward), spec);
            let again = parse(&spelling(&forward))
                .unwrap_or_else(|e| panic!("{spec:?} parsed, its canonical spelling not: {e}"));
            assert_eq!(key(again), key(forward));
        }
        Err(e) => assert!(
            e.starts_with(&format!("{spec:?}: ")),
            "error does not quote the spec: {e}"
        ),
    }
}

/// A `-L` spec with every part explicit.
fn local_spelling(forward: &LocalForward) -> String {
    format!(
        "{}:{}",
        listen_spelling(&forward.listen),
        target_spelling(&forward.target)
    )
}

/// The listen side of a `-L` or `-D` spec, every part explicit.
fn listen_spelling(listen: &LocalListen) -> String {
    match listen {
        LocalListen::Tcp { addr, port } if addr.is_ipv6() => format!("[{addr}]:{port}"),
        LocalListen::Tcp { addr, port } => format!("{addr}:{port}"),
        LocalListen::Unix(path) => path.display().to_string(),
    }
}

/// A `-R` spec with every part explicit.
fn remote_spelling(forward: &RemoteForward) -> String {
    let listen = match &forward.listen {
        RemoteListen::Tcp { bind, port } if bind.is_empty() => format!("*:{port}"),
        RemoteListen::Tcp { bind, port } => format!("{}:{port}", part(bind, bind == "*")),
        RemoteListen::Unix(path) => path.clone(),
    };
    format!("{listen}:{}", target_spelling(&forward.target))
}

fn target_spelling(target: &Target) -> String {
    match target {
        Target::Tcp(hp) => format!("{}:{}", part(&hp.host, false), hp.port),
        Target::Unix(path) => path.display().to_string(),
    }
}

/// A host or bind part, bracketed where it would otherwise read as something else.
fn part(text: &str, bracket: bool) -> String {
    if bracket || text.contains(':') || text.starts_with('/') {
        format!("[{text}]")
    } else {
        text.to_owned()
    }
}

/// The file name config errors carry in the `config` target.
const CONFIG_PATH: &str = "/fuzz/pairtun.toml";

/// A fixed environment, so that the outcome depends on the input alone.
fn config_env() -> Env {
    Env {
        // Does not exist, so neither does the default `~/.ssh/config`.
        home: PathBuf::from("/nonexistent/fuzz"),
        user: "fuzz".to_owned(),
        vars: [("SSH_AUTH_SOCK", "/run/agent.sock"), ("KEYS", "/keys")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// `config`: the input as a config file, through the daemon's loader. It loads or fails with
/// a one-line error at a real place in the text; a loaded file stays valid with any one
/// tunnel dropped by `pairtunctl drop`'s editor, and loses exactly that tunnel. A file whose
/// `[defaults] ssh_config` names a file is skipped: loading would read that real file.
pub fn config(data: &[u8]) {
    if names_an_ssh_config(data) {
        return;
    }
    let (path, env) = (Path::new(CONFIG_PATH), config_env());
    match config::parse_bytes(data, path, &env) {
        Ok(loaded) => {
            let text = std::str::from_utf8(data).expect("a loaded file is UTF-8");
            for name in loaded.tunnels.keys() {
                let edited = config::drop_tunnel(text, name.as_str())
                    .unwrap_or_else(|e| panic!("cannot drop `{name}`: {e}"));
                let after = config::parse(&edited, path, &env)
                    .unwrap_or_else(|e| panic!("invalid after dropping `{name}`: {e}\n{edited}"));
                let mut want = loaded.tunnels.clone();
                want.remove(name);
                assert_eq!(
                    after.tunnels, want,
                    "dropping `{name}` changed other tunnels"
                );
            }
        }
        Err(e) => check_located(&e, data, path),
    }
}

fn names_an_ssh_config(data: &[u8]) -> bool {
    let Some(table) = std::str::from_utf8(data)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
    else {
        return false;
    };
    let named = table.get("defaults").and_then(|d| d.get("ssh_config"));
    named.is_some_and(|file| file.as_str() != Some(""))
}

fn check_located(e: &ConfigError, data: &[u8], path: &Path) {
    let text = String::from_utf8_lossy(data);
    let line = text.split('\n').nth(e.line.saturating_sub(1));
    let line = line.unwrap_or_else(|| panic!("line {} is past the end: {e}", e.line));
    assert!(e.path == path, "wrong path: {e}");
    assert!(
        e.column >= 1 && e.column <= line.chars().count() + 1,
        "column {} is outside line {}: {e}",
        e.column,
        e.line
    );
    assert!(
        !e.message.trim().is_empty() && !e.message.contains('\n'),
        "message must be one non-empty line: {e:?}"
    );
}

/// Whether a forward spec parses (the error when not).
type SpecCheck = fn(&str) -> Result<(), String>;

/// The file name ssh config warnings carry in the `ssh_config` target.
const SSH_CONFIG_PATH: &str = "/fuzz/ssh_config";

/// `ssh_config`: the first line is a host alias, the rest an ssh config. `pairtunctl import`'s
/// parser returns only specs pairtun's own parsers accept, without repeats, and notes in line
/// order that point into the text. The daemon's host lookup (`SshConfig::from_text`, then
/// `host`) never panics and names the file in every warning; it is skipped for inputs that
/// mention `Include`, which reads real files.
pub fn ssh_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (alias, text) = text.split_once('\n').unwrap_or((text, ""));
    let imported = parse_ssh_config_import(text, alias);
    let parsers: [(&[String], SpecCheck); 3] = [
        (&imported.local, |s| parse_forward_local(s).map(drop)),
        (&imported.remote, |s| parse_forward_remote(s).map(drop)),
        (&imported.dynamic, |s| parse_forward_dynamic(s).map(drop)),
    ];
    for (specs, parse) in parsers {
        for (i, spec) in specs.iter().enumerate() {
            parse(spec).unwrap_or_else(|e| panic!("imported {spec:?} does not parse: {e}"));
            assert!(!specs[..i].contains(spec), "{spec:?} imported twice");
        }
    }
    let lines = text.lines().count();
    let mut previous = 1;
    for note in &imported.notes {
        assert!(
            (previous..=lines).contains(&note.line),
            "note for line {} out of order or past line {lines}: {note:?}",
            note.line
        );
        assert!(!note.message.trim().is_empty(), "empty note: {note:?}");
        previous = note.line;
    }
    if text.to_ascii_lowercase().contains("include") {
        return;
    }
    let loaded = SshConfig::from_text(text, Path::new(SSH_CONFIG_PATH), Path::new("/fuzz/home"));
    for warning in &loaded.warnings {
        assert!(warning.starts_with(SSH_CONFIG_PATH), "{warning}");
    }
    let _ = loaded.host(alias);
}

thread_local! {
    /// For the futures of the `control_frame` target, which never wait on anything.
    static FRAME_RUNTIME: Runtime = current_thread();
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// `control_frame`: the daemon's request framing and decoding. The first byte sets the read
/// buffer's size (so lines straddle reads) and, with its top bit, a small frame cap; the rest
/// is the byte stream. Frames reassemble the input exactly and respect the cap; a decoded
/// request re-encodes to a line that decodes to the same request; so does any reply line a
/// client would accept.
pub fn control_frame(data: &[u8]) {
    let Some((&knob, input)) = data.split_first() else {
        return;
    };
    let capacity = usize::from(knob & 0x0f) + 1;
    let max = if knob & 0x80 == 0 {
        MAX_FRAME
    } else {
        usize::from((knob >> 4) & 0x07) + 1
    };
    let frames = FRAME_RUNTIME.with(|rt| rt.block_on(frames(input, capacity, max)));
    let mut seen = Vec::with_capacity(input.len());
    for line in &frames.lines {
        assert!(
            !line.is_empty() && line.len() <= max,
            "bad frame of {}",
            line.len()
        );
        seen.extend_from_slice(line);
        check_request_line(line);
        check_reply_line(line);
    }
    if frames.end == Frame::Eof {
        assert_eq!(seen, input, "frames lost or invented bytes");
    } else {
        let rest = input
            .strip_prefix(seen.as_slice())
            .expect("frames are a prefix of the input");
        let next = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        assert!(
            next > max,
            "a {next}-byte line was refused under a cap of {max}"
        );
    }
}

/// What [`read_frame`] made of a whole input.
struct Frames {
    lines: Vec<Vec<u8>>,
    /// `Eof` or `TooLarge`.
    end: Frame,
}

async fn frames(input: &[u8], capacity: usize, max: usize) -> Frames {
    let mut reader = BufReader::with_capacity(capacity, input);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    // Every `Line` consumes at least one byte, so this ends.
    loop {
        match read_frame(&mut reader, &mut line, max).await {
            Ok(Frame::Line) => lines.push(std::mem::take(&mut line)),
            Ok(end) => return Frames { lines, end },
            Err(e) => unreachable!("reading memory failed: {e}"),
        }
    }
}

fn check_request_line(line: &[u8]) {
    match decode_request(line) {
        Ok(request) => {
            let wire = encode(&request);
            assert_eq!(decode_request(&wire).as_ref(), Ok(&request), "{wire:?}");
        }
        Err(message) => assert!(message.starts_with("invalid request: "), "{message}"),
    }
}

fn check_reply_line(line: &[u8]) {
    if let Ok(reply) = serde_json::from_slice::<Response>(line) {
        let wire = encode(&reply);
        let again: Response = serde_json::from_slice(&wire).expect("an encoded reply decodes");
        assert_eq!(again, reply);
    }
}

/// Requests per input in `control_request`; more are ignored.
const MAX_REQUESTS: usize = 16;
/// Replies read from one stream before the client "leaves".
const MAX_STREAM_REPLIES: usize = 32;
/// Any request slower than this is a hang (the daemon allows 10 s).
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// `control_request`: each input line is a request, answered by the daemon's own handler on
/// a fresh daemon whose config file (in a temporary directory) has one tunnel, `seed`, that
/// listens on a Unix socket there and connects to a closed port on 127.0.0.1. Every request
/// is answered in time with replies a client can decode; nothing panics.
///
/// Sandboxing: an `add` gets host 127.0.0.1, that closed port and `autostart = false`, and
/// tunnels added by the input are never brought up (their listeners would bind wherever the
/// input says), so no input reaches the network or the file system outside the directory.
pub struct ControlSandbox {
    runtime: Runtime,
    /// A loopback port nothing listens on.
    closed_port: u16,
}

impl ControlSandbox {
    /// A sandbox with its runtime; reuse it for every input.
    pub fn new() -> io::Result<Self> {
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Ok(ControlSandbox {
            runtime: current_thread(),
            closed_port,
        })
    }

    /// Runs one input; returns every reply, in order.
    pub fn run(&self, data: &[u8]) -> Vec<Response> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("config.toml");
        let socket = dir.path().join("seed.sock");
        let text = format!(
            "[defaults]\nagent_socket = \"\"\nconnect_timeout = \"1s\"\n\n\
             [tunnels.seed]\nhost = \"127.0.0.1\"\nport = {port}\nautostart = false\n\
             local = [\"{socket}:localhost:22\"]\n",
            port = self.closed_port,
            socket = socket.display(),
        );
        std::fs::write(&file, text).expect("writing the sandbox config");
        let env = Env {
            home: dir.path().to_owned(),
            user: "fuzz".to_owned(),
            vars: Default::default(),
        };
        let loaded = config::load(&file, &env).expect("the sandbox config is valid");
        self.runtime.block_on(async {
            let mut replies = Vec::new();
            let daemon = Arc::new(Daemon::start(&loaded, env));
            let handler = Sandboxed {
                inner: ControlHandler::new(daemon.clone()),
                closed_port: self.closed_port,
                added: Mutex::new(Vec::new()),
            };
            for line in data.split_inclusive(|&b| b == b'\n').take(MAX_REQUESTS) {
                match answer(&handler, line, ANSWER_DEADLINE).await {
                    None => {}
                    Some(Reply::One(response)) => replies.push(response),
                    Some(Reply::Stream(rx)) => drain(rx, &mut replies).await,
                }
            }
            daemon.shutdown().await;
            replies.iter().for_each(check_reply);
            replies
        })
    }
}

/// [`ControlHandler`] behind the sandbox's rewrites.
struct Sandboxed {
    inner: ControlHandler,
    closed_port: u16,
    /// Names of tunnels the input added.
    added: Mutex<Vec<String>>,
}

impl Handler for Sandboxed {
    async fn handle(&self, mut request: Request) -> Reply {
        match &mut request {
            Request::Add { tunnel, .. } => {
                tunnel.host = "127.0.0.1".to_owned();
                tunnel.port = Some(self.closed_port);
                tunnel.autostart = false;
                let mut added = self.added.lock().expect("not poisoned");
                added.push(tunnel.name.clone());
            }
            Request::Up { name, .. } | Request::Restart { name }
                if self.added.lock().expect("not poisoned").contains(name) =>
            {
                return Response::error(ErrorKind::BadRequest, "sandbox: not enabled").into();
            }
            _ => {}
        }
        self.inner.handle(request).await
    }
}

/// Reads a stream like a client that leaves after a while.
async fn drain(mut rx: mpsc::Receiver<Response>, replies: &mut Vec<Response>) {
    for _ in 0..MAX_STREAM_REPLIES {
        match rx.try_recv() {
            Ok(response) => {
                let last = response.is_final();
                replies.push(response);
                if last {
                    return;
                }
            }
            Err(mpsc::error::TryRecvError::Empty) => tokio::task::yield_now().await,
            Err(mpsc::error::TryRecvError::Disconnected) => return,
        }
    }
}

fn check_reply(response: &Response) {
    let wire = encode(response);
    let decoded: Response = serde_json::from_slice(&wire).expect("a client decodes every reply");
    assert_eq!(&decoded, response);
    if let Response::Error { kind, message } = response {
        assert!(*kind != ErrorKind::Timeout, "a request hung: {message}");
        assert!(!message.trim().is_empty(), "{kind} error without a message");
    }
}

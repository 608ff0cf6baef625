//! Replays every committed corpus and crash file of each fuzz target through its entry point,
//! so what the fuzzer learned keeps being checked by plain `cargo test` on stable.

use std::path::{Path, PathBuf};

use super::*;

/// The files of `fuzz/corpus/TARGET` and `fuzz/regressions/TARGET`, in name order.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flat_map(|dir| dir.map(|entry| entry.expect("a readable directory").path()))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a readable corpus file");
            (path, bytes)
        })
        .collect()
}

/// Runs `entry` on every input of `target`, naming the file that fails.
fn replay(target: &str, entry: impl Fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no seed corpus for `{target}`");
    for (path, bytes) in inputs {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry(&bytes)));
        assert!(
            outcome.is_ok(),
            "{} fails; see the panic above",
            path.display()
        );
    }
}

#[test]
fn forward_spec_corpus() {
    replay("forward_spec", forward_spec);
}

#[test]
fn config_corpus() {
    replay("config", config);
}

#[test]
fn control_frame_corpus() {
    replay("control_frame", control_frame);
}

#[test]
fn ssh_config_corpus() {
    replay("ssh_config", ssh_config);
}

#[test]
fn control_request_corpus() {
    let sandbox = ControlSandbox::new().expect("a sandbox");
    replay("control_request", |data| drop(sandbox.run(data)));
}

/// The sandbox really drives the daemon: the seed tunnel answers, an added tunnel exists but
/// stays down, and the seed tunnel comes up far enough to try its closed port.
#[test]
fn control_sandbox_serves_and_confines() {
    let sandbox = ControlSandbox::new().expect("a sandbox");
    let lines = [
        r#"{"op":"status","name":"seed"}"#,
        r#"{"op":"add","tunnel":{"name":"x","host":"example.org","local":["9998:h:22"]}}"#,
        r#"{"op":"up","name":"x"}"#,
        r#"{"op":"status","name":"x"}"#,
        r#"{"op":"nope"}"#,
        // The stream's replies depend on timing; the status after it must not.
        r#"{"op":"up","name":"seed","wait":true}"#,
        r#"{"op":"status","name":"seed"}"#,
    ];
    let replies = sandbox.run((lines.join("\n") + "\n").as_bytes());
    let summary: Vec<String> = replies
        .iter()
        .map(|r| match r {
            Response::Status { tunnels } => {
                let t = &tunnels[0];
                format!("status {} {}", t.name, t.state.as_str())
            }
            Response::Error { kind, .. } => format!("error {kind}"),
            other => format!("{other:?}"),
        })
        .collect();
    let want = [
        "status seed stopped",
        "Ok { message: None }",
        "error bad-request",
        "status x stopped",
        "error bad-request",
    ];
    assert_eq!(summary[..want.len()], want, "{summary:?}");
    let last = summary.last().expect("replies");
    assert!(
        last.starts_with("status seed ") && last != "status seed stopped",
        "{summary:?}"
    );
}

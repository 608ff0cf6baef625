//! Child processes of the tests: finding a process's descendants in `/proc`, stopping
//! processes by PID (never by name), and running a command with a timeout.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::wait;

/// How long [`terminate`] gives processes to exit on SIGTERM before it sends SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long output may keep arriving after a command exited.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// Reads `/proc/PID/stat` and returns (state, ppid), or `None` if the process is gone.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let mut rest = text[text.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is a live process (a zombie counts as exited: it only waits to be reaped).
pub fn is_alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// All live descendants of `root` (children, grandchildren, …), read from `/proc`.
///
/// Collect them *before* killing `root`: afterwards they are reparented and untraceable.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some((_, ppid)) = stat(pid).filter(|_| is_alive(pid)) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &kid in children.get(&pid).into_iter().flatten() {
            // A PID table snapshot is a tree; the check only guards against a torn read.
            if kid != root && !found.contains(&kid) {
                found.push(kid);
                stack.push(kid);
            }
        }
    }
    found
}

/// The inode of the IPv4 TCP socket with local port `local` and peer port `peer`.
fn tcp_inode(local: u16, peer: u16) -> Option<u64> {
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 9 && port(f[1]) == Some(local) && port(f[2]) == Some(peer) {
            f[9].parse().ok().filter(|&inode| inode != 0)
        } else {
            None
        }
    })
}

/// Which of `pids` hold the TCP socket with local port `local` and peer port `peer`
/// (empty if it is closed or their fds are not readable).
pub fn tcp_socket_holders(pids: &[u32], local: u16, peer: u16) -> Vec<u32> {
    let Some(inode) = tcp_inode(local, peer) else {
        return Vec::new();
    };
    let target = format!("socket:[{inode}]");
    let holds = |pid: u32| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten();
        fds.filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|link| link.as_os_str() == target.as_str())
    };
    pids.iter().copied().filter(|&pid| holds(pid)).collect()
}

fn signal(pids: &[u32], sig: Signal) {
    for &pid in pids {
        // ESRCH (already gone) is the expected race here, not an error.
        let _ = kill(Pid::from_raw(pid as i32), sig);
    }
}

/// Waits up to `timeout` until none of `pids` is alive; whether that happened.
pub fn wait_exited(pids: &[u32], timeout: Duration) -> bool {
    let all_gone = || !pids.iter().any(|&pid| is_alive(pid));
    wait::poll(timeout, || all_gone().then_some(())).is_some()
}

/// Stops `pids`: SIGTERM, up to two seconds for them to exit, then SIGKILL for the rest.
pub fn terminate(pids: &[u32]) {
    signal(pids, Signal::SIGTERM);
    if wait_exited(pids, TERM_GRACE) {
        return;
    }
    let left: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
    signal(&left, Signal::SIGKILL);
    // No panic: this runs from Drop, possibly while a test is already panicking.
    if !wait_exited(&left, TERM_GRACE) {
        eprintln!("warning: processes {left:?} still alive after SIGKILL");
    }
}

/// Stops `child` and every process below it, then reaps `child`.
pub fn terminate_tree(child: &mut Child) {
    let mut pids = vec![child.id()];
    pids.extend(descendants(child.id()));
    terminate(&pids);
    // It got SIGKILL at the latest, so this returns at once.
    let _ = child.wait();
}

/// Reads `r` to its end on a thread; the receiver yields what was read.
fn read_all(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// What a [`read_all`] thread collected; empty if the pipe is still held open after `PIPE_GRACE`
/// (by a grandchild that outlived the child).
fn collected(rx: &mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
    rx.recv_timeout(PIPE_GRACE).unwrap_or_default()
}

/// Runs `cmd` with stdin closed, capturing its output; panics if it has not exited after
/// `timeout` (it is then killed, and the panic shows what it printed so far).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    let status = wait::poll(timeout, || child.try_wait().expect("waitpid failed"));
    let Some(status) = status else {
        terminate_tree(&mut child);
        let err = collected(&stderr);
        panic!(
            "{what} still running after {timeout:?}; killed. stderr:\n{}",
            String::from_utf8_lossy(&err)
        );
    };
    Output {
        status,
        stdout: collected(&stdout),
        stderr: collected(&stderr),
    }
}

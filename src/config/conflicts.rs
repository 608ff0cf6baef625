//! Forwards that cannot all be set up at once: two local listeners (`local` or `dynamic`) on
//! one port or socket (anywhere in the file, since one daemon binds them all), and two remote
//! listens in one tunnel on one port or socket (the relay would refuse the second, or its
//! connections could not be told from the first's). Caught here rather than as a run-time
//! "address in use" that would look like a network problem.

use super::error::Fault;
use super::model::{LocalListen, RemoteListen, TunnelName};
use super::validate::Built;

/// Reports the second of two clashing forwards, naming the first.
pub(crate) fn check(tunnels: &[Built]) -> Result<(), Fault> {
    let mut bound: Vec<(&LocalListen, &TunnelName, String)> = Vec::new();
    for t in tunnels {
        let local = t.config.local.iter().map(|f| &f.listen).zip(&t.local_at);
        let dynamic = t
            .config
            .dynamic
            .iter()
            .map(|f| &f.listen)
            .zip(&t.dynamic_at);
        let labels = (0..t.config.local.len())
            .map(|i| format!("local[{i}]"))
            .chain((0..t.config.dynamic.len()).map(|i| format!("dynamic[{i}]")));
        for ((listen, &at), label) in local.chain(dynamic).zip(labels) {
            if let Some((_, owner, first)) = bound.iter().find(|(l, ..)| local_clash(l, listen)) {
                return Err(Fault::new(
                    at,
                    format!(
                        "{} is already used by tunnel \"{owner}\" ({first})",
                        describe_local(listen)
                    ),
                ));
            }
            bound.push((listen, &t.config.name, label));
        }
        check_remote(t)?;
    }
    Ok(())
}

fn check_remote(t: &Built) -> Result<(), Fault> {
    let remote = &t.config.remote;
    for (i, (fwd, &at)) in remote.iter().zip(&t.remote_at).enumerate() {
        if let Some(j) = remote[..i]
            .iter()
            .position(|r| remote_clash(&r.listen, &fwd.listen))
        {
            return Err(Fault::new(
                at,
                format!(
                    "{} is already requested by remote[{j}] of tunnel \"{}\"",
                    describe_remote(&fwd.listen),
                    t.config.name
                ),
            ));
        }
    }
    Ok(())
}

/// Same port on the same address, or on any address when either side is a wildcard (the
/// wildcard listener covers every address, so the second bind fails).
fn local_clash(a: &LocalListen, b: &LocalListen) -> bool {
    match (a, b) {
        (LocalListen::Tcp { addr: a, port: p }, LocalListen::Tcp { addr: b, port: q }) => {
            p == q && (a == b || a.is_unspecified() || b.is_unspecified())
        }
        (LocalListen::Unix(a), LocalListen::Unix(b)) => a == b,
        _ => false,
    }
}

/// Port 0 never clashes: the relay picks a fresh port for each request. Two fixed ports clash
/// when equal whatever their bind addresses: the relay names the port a connection arrived on,
/// and pairtun tells a tunnel's forwards apart by it (sshd, moreover, binds loopback for every
/// address unless `GatewayPorts clientspecified`).
fn remote_clash(a: &RemoteListen, b: &RemoteListen) -> bool {
    match (a, b) {
        (RemoteListen::Tcp { port: p, .. }, RemoteListen::Tcp { port: q, .. }) => *p != 0 && p == q,
        (RemoteListen::Unix(a), RemoteListen::Unix(b)) => a == b,
        _ => false,
    }
}

fn describe_local(listen: &LocalListen) -> String {
    match listen {
        LocalListen::Tcp { port, .. } => format!("local port {port}"),
        LocalListen::Unix(path) => format!("local socket {}", path.display()),
    }
}

fn describe_remote(listen: &RemoteListen) -> String {
    match listen {
        RemoteListen::Tcp { bind, port } if bind.is_empty() => {
            format!("remote port {port} on all interfaces (\"*\")")
        }
        RemoteListen::Tcp { bind, port } => format!("remote port {port} on {bind:?}"),
        RemoteListen::Unix(path) => format!("remote socket {path}"),
    }
}

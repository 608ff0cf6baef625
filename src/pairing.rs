//! The partner's side of a pairing tunnel (`pairtunctl invite`): this side's forwards mirrored
//! through the same relay, with the relay settings that keep a dead session's ports short.
//!
//! A `-L` to the relay's loopback becomes the partner's `-R` from that relay port to their
//! sshd; a `-R` of ours becomes their `-L` to the same relay port. Forwards that reach past the
//! relay (`-L 5432:db.internal:5432`) have no partner side and are listed as such.

use std::fmt::Write as _;

use crate::config::{LocalForward, LocalListen, RemoteForward, RemoteListen, Target, TunnelConfig};

/// What the partner's tunnel should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// Name for the partner's tunnel.
    pub name: String,
    /// The relay, as this side reaches it.
    pub host: String,
    /// The relay's SSH port.
    pub port: u16,
    /// The partner's `-R` specs.
    pub remote: Vec<String>,
    /// The partner's `-L` specs.
    pub local: Vec<String>,
    /// This side's forwards that have no partner side, with why.
    pub skipped: Vec<String>,
    /// The local port this side connects to (`ssh -p PORT user@localhost`), if any.
    pub connect_port: Option<u16>,
}

/// Mirrors `tunnel`; `partner_port` is the port the partner's sshd (or other service) listens
/// on, on their machine.
pub fn invite(tunnel: &TunnelConfig, partner_port: u16) -> Invite {
    let mut invite = Invite {
        name: format!("{}-partner", tunnel.name),
        host: tunnel.host.clone(),
        port: tunnel.port,
        remote: Vec::new(),
        local: Vec::new(),
        skipped: Vec::new(),
        connect_port: None,
    };
    for forward in &tunnel.local {
        match mirror_local(forward, partner_port) {
            Ok(spec) => {
                invite.remote.push(spec);
                if let LocalListen::Tcp { port, .. } = forward.listen {
                    invite.connect_port.get_or_insert(port);
                }
            }
            Err(why) => invite.skipped.push(why),
        }
    }
    for forward in &tunnel.remote {
        match mirror_remote(forward) {
            Ok(spec) => invite.local.push(spec),
            Err(why) => invite.skipped.push(why),
        }
    }
    invite
}

/// Our `-L …:relay-loopback:P` → their `-R P:localhost:partner_port`.
fn mirror_local(forward: &LocalForward, partner_port: u16) -> Result<String, String> {
    match &forward.target {
        Target::Tcp(hp) if is_loopback(&hp.host) => {
            Ok(format!("{}:localhost:{partner_port}", hp.port))
        }
        Target::Unix(path) => Ok(format!("{}:localhost:{partner_port}", path.display())),
        Target::Tcp(hp) => Err(format!(
            "-L {}: reaches {hp} from the relay, not a port your partner can serve",
            forward.spec
        )),
    }
}

/// Our `-R P:…` → their `-L P:localhost:P`.
fn mirror_remote(forward: &RemoteForward) -> Result<String, String> {
    match &forward.listen {
        RemoteListen::Tcp { port: 0, .. } => Err(format!(
            "-R {}: the relay picks the port at each connect; give it a fixed port to share it",
            forward.spec
        )),
        RemoteListen::Tcp { port, .. } => Ok(format!("{port}:localhost:{port}")),
        RemoteListen::Unix(path) => Err(format!(
            "-R {}: a socket on the relay ({path}); your partner reaches it with ssh -L PORT:{path}",
            forward.spec
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Invite {
    /// The text to send: the partner's pairtun config, the OpenSSH equivalent, and the relay
    /// settings. Everything but the `[tunnels.…]` table is a TOML comment, so the whole text
    /// can be appended to a config file as it is.
    pub fn render(&self) -> String {
        let mut t = String::new();
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(t, "# pairtun config for your pair partner: add it to");
        let _ = writeln!(
            t,
            "# ~/.config/pairtun/config.toml, then `pairtunctl reload`."
        );
        let _ = writeln!(t, "[tunnels.{}]", self.name);
        let _ = writeln!(t, "host = {:?}", self.host);
        let _ = writeln!(t, "port = {}", self.port);
        let _ = writeln!(t, "# user = \"...\"   # your login on the relay");
        if !self.local.is_empty() {
            let _ = writeln!(t, "local = [{}]", list(&self.local));
        }
        if !self.remote.is_empty() {
            let _ = writeln!(t, "remote = [{}]", list(&self.remote));
        }
        for why in &self.skipped {
            let _ = writeln!(t, "# not mirrored: {why}");
        }
        let _ = writeln!(t, "#");
        let _ = writeln!(t, "# Without pairtun, the same with OpenSSH:");
        let flags: Vec<String> = (self.remote.iter().map(|s| format!("-R {s}")))
            .chain(self.local.iter().map(|s| format!("-L {s}")))
            .collect();
        let port = if self.port == 22 {
            String::new()
        } else {
            format!("-p {} ", self.port)
        };
        let _ = writeln!(
            t,
            "#   ssh -N -o ServerAliveInterval=15 -o ExitOnForwardFailure=yes {port}{} {}",
            flags.join(" "),
            self.host
        );
        let _ = writeln!(t, "#");
        let _ = writeln!(
            t,
            "# On the relay ({}), in /etc/ssh/sshd_config, so that a dead session frees",
            self.host
        );
        let _ = writeln!(t, "# its ports within a minute instead of hours:");
        let _ = writeln!(t, "#   ClientAliveInterval 15");
        let _ = writeln!(t, "#   ClientAliveCountMax 2");
        let _ = writeln!(t, "#   StreamLocalBindUnlink yes");
        if let Some(port) = self.connect_port {
            let _ = writeln!(t, "#");
            let _ = writeln!(
                t,
                "# Once both sides are up, your pair reaches you with: ssh -p {port} YOUR_USER@localhost"
            );
        }
        t
    }
}

#[cfg(test)]
mod tests;

//! `pairtunctl invite NAME`: the partner's side of a pairing tunnel. Each `-L` that leads to a
//! port on the relay itself is mirrored as the `-R` that must be listening there, and each `-R`
//! as the `-L` that reaches it; the relay settings that make a dropped session free its ports
//! quickly come along, since the partner reconnecting needs them as much as we do.

use serde::{Deserialize, Serialize};

use crate::config::{LocalForward, RemoteForward, RemoteListen, Target, TunnelConfig};

/// The port a mirrored `-R` leads to on the partner's machine: their sshd, the usual thing
/// to share when pairing. The text says to change it.
pub const PARTNER_PORT: u16 = 22;

/// The relay's sshd settings that bound how long a dead session keeps its `-R` ports.
pub const RELAY_SETTINGS: [&str; 2] = ["ClientAliveInterval 15", "ClientAliveCountMax 2"];

/// The partner's matching configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The tunnel (the partner's gets the same name).
    pub name: String,
    /// The relay as the partner dials it (`host` or `host:port`).
    pub relay: String,
    /// The relay's SSH port when not 22.
    pub port: Option<u16>,
    /// ProxyJump, without users (theirs differ).
    pub jump: Option<String>,
    /// Their `-R` specs, mirroring our `-L`.
    pub remote: Vec<String>,
    /// Their `-L` specs, mirroring our `-R`.
    pub local: Vec<String>,
    /// Forwards that have no mirror, and why.
    pub skipped: Vec<String>,
    /// Lines for the relay's `sshd_config`.
    pub relay_settings: Vec<String>,
}

/// The invitation for `tunnel`.
pub fn invitation(tunnel: &TunnelConfig) -> Invitation {
    let mut skipped = Vec::new();
    let remote = tunnel
        .local
        .iter()
        .filter_map(|f| mirror_local(f).map_err(|why| skipped.push(why)).ok())
        .collect();
    let local = tunnel
        .remote
        .iter()
        .filter_map(|f| mirror_remote(f).map_err(|why| skipped.push(why)).ok())
        .collect();
    skipped.extend(tunnel.dynamic.iter().map(|f| {
        format!(
            "-D {}: a SOCKS proxy needs nothing on the other side",
            f.spec
        )
    }));
    let jump = (!tunnel.jump.is_empty()).then(|| {
        tunnel
            .jump
            .iter()
            .map(|j| host_port(&j.host, j.port))
            .collect::<Vec<_>>()
            .join(",")
    });
    Invitation {
        name: tunnel.name.to_string(),
        relay: tunnel.host.clone(),
        port: (tunnel.port != 22).then_some(tunnel.port),
        jump,
        remote,
        local,
        skipped,
        relay_settings: RELAY_SETTINGS.iter().map(|s| s.to_string()).collect(),
    }
}

/// Our `-L` to the relay's own port P becomes their `-R P:localhost:22`.
fn mirror_local(f: &LocalForward) -> Result<String, String> {
    match &f.target {
        Target::Tcp(hp) if is_relay_itself(&hp.host) => {
            Ok(format!("{}:localhost:{PARTNER_PORT}", hp.port))
        }
        Target::Unix(path) => Ok(format!("{}:localhost:{PARTNER_PORT}", path.display())),
        Target::Tcp(hp) => Err(format!(
            "-L {}: leads to {hp} as seen from the relay, not to a port on the relay; \
             nothing to mirror",
            f.spec
        )),
    }
}

/// Our `-R` listening on the relay's port P becomes their `-L P:localhost:P`.
fn mirror_remote(f: &RemoteForward) -> Result<String, String> {
    match &f.listen {
        RemoteListen::Tcp { port: 0, .. } => Err(format!(
            "-R {}: the relay picks the port, so there is no fixed port to give",
            f.spec
        )),
        RemoteListen::Tcp { bind, port } => {
            let host = if bind.is_empty() || bind == "*" {
                "localhost"
            } else {
                bind.as_str()
            };
            Ok(format!("{port}:{}:{port}", bracketed(host)))
        }
        // The same path on their machine: as good a default as any, and easy to recognise.
        RemoteListen::Unix(path) => Ok(format!("{path}:{path}")),
    }
}

fn is_relay_itself(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("{}:{port}", bracketed(host))
    }
}

/// `text` as a TOML string (Rust's `{:?}` escapes differently, e.g. `\u{1b}`).
fn toml_str(text: &str) -> String {
    toml_edit::Value::from(text).to_string()
}

impl Invitation {
    /// The text to send the partner: a config table, the same as a `pairtunctl add` and an
    /// `ssh` command line, and the relay settings.
    pub fn text(&self) -> String {
        let list = |v: &[String]| v.iter().map(|s| toml_str(s)).collect::<Vec<_>>().join(", ");
        let mut t = format!(
            "# Your side of pairing tunnel \"{name}\", through {relay}.\n\
             # Add to ~/.config/pairtun/config.toml (set `user` if your login on the relay\n\
             # differs from your local user name), then `pairtunctl reload`:\n\n\
             [tunnels.{key}]\nhost = {host}\n",
            name = self.name,
            relay = self.relay,
            key = toml_edit::Key::new(self.name.as_str()),
            host = toml_str(&self.relay),
        );
        if let Some(port) = self.port {
            t.push_str(&format!("port = {port}\n"));
        }
        if let Some(jump) = &self.jump {
            t.push_str(&format!("jump = {}\n", toml_str(jump)));
        }
        if !self.remote.is_empty() {
            t.push_str(&format!(
                "remote = [{}]   # the relay's port → your port {PARTNER_PORT} (change it to the port you share)\n",
                list(&self.remote)
            ));
        }
        if !self.local.is_empty() {
            t.push_str(&format!("local = [{}]\n", list(&self.local)));
            // These `-L` lead to our sshd: let their status say whether it answers.
            t.push_str("probe_peer = true   # status shows \"peer: up\" when the other side's sshd answers\n");
        }
        let mut flags = String::new();
        if let Some(port) = self.port {
            flags.push_str(&format!(" -p {port}"));
        }
        if let Some(jump) = &self.jump {
            flags.push_str(&format!(" -J {jump}"));
        }
        for spec in &self.remote {
            flags.push_str(&format!(" -R {spec}"));
        }
        for spec in &self.local {
            flags.push_str(&format!(" -L {spec}"));
        }
        let add_flags = if self.local.is_empty() {
            flags.clone()
        } else {
            format!("{flags} --probe-peer")
        };
        t.push_str(&format!(
            "\n# Or: pairtunctl add {name} --host {relay}{add_flags}\n\
             # Or with OpenSSH: ssh -N -o ExitOnForwardFailure=yes -o ServerAliveInterval=15{flags} {relay}\n",
            name = self.name,
            relay = self.relay,
        ));
        for why in &self.skipped {
            t.push_str(&format!("# Not mirrored: {why}\n"));
        }
        t.push_str(
            "\n# On the relay, in /etc/ssh/sshd_config, so that a dropped connection frees its\n\
             # ports within about 45 s and a reconnect can take them back:\n",
        );
        for line in &self.relay_settings {
            t.push_str(&format!("#   {line}\n"));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Env, parse};

    fn tunnel(body: &str) -> TunnelConfig {
        let env = Env {
            home: "/home/me".into(),
            user: "me".into(),
            vars: Default::default(),
        };
        let text =
            format!("[defaults]\nssh_config = \"\"\n[tunnels.jane]\nhost = \"saturn\"\n{body}");
        let cfg = parse(&text, Path::new("/c.toml"), &env).unwrap();
        cfg.tunnels.into_values().next().unwrap()
    }

    #[test]
    fn local_mirrors_as_remote_and_remote_as_local() {
        let inv = invitation(&tunnel(
            "port = 2222\njump = \"ops@bastion:2200\"\n\
             local = [\"9999:localhost:1235\", \"8080:intranet:80\", \"7777:/run/x.sock\"]\n\
             remote = [\"1236:localhost:22\", \"0:localhost:22\", \"*:1237:localhost:22\"]\n\
             dynamic = [\"1080\"]\n",
        ));
        assert_eq!(
            inv.remote,
            ["1235:localhost:22", "/run/x.sock:localhost:22"]
        );
        assert_eq!(inv.local, ["1236:localhost:1236", "1237:localhost:1237"]);
        assert_eq!(inv.skipped.len(), 3, "{:?}", inv.skipped);
        assert_eq!(
            (inv.port, inv.jump.as_deref()),
            (Some(2222), Some("bastion:2200"))
        );
        let text = inv.text();
        for needle in [
            "[tunnels.jane]\nhost = \"saturn\"\nport = 2222\njump = \"bastion:2200\"\n",
            "remote = [\"1235:localhost:22\", \"/run/x.sock:localhost:22\"]",
            "pairtunctl add jane --host saturn -p 2222 -J bastion:2200 -R 1235:localhost:22",
            "#   ClientAliveInterval 15\n#   ClientAliveCountMax 2\n",
            "# Not mirrored: -L 8080:intranet:80",
            "local = [\"1236:localhost:1236\", \"1237:localhost:1237\"]\nprobe_peer = true",
            "-L 1237:localhost:1237 --probe-peer\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in\n{text}");
        }
    }

    #[test]
    fn the_side_reaching_our_sshd_probes_it_and_the_text_parses() {
        let text = invitation(&tunnel("remote = [\"1236:localhost:22\"]\n")).text();
        let table = text
            .split("\n\n")
            .find(|block| block.starts_with("[tunnels.jane]"))
            .unwrap_or_else(|| panic!("no table in\n{text}"));
        let partner = tunnel(&table.replace("[tunnels.jane]\nhost = \"saturn\"\n", ""));
        assert!(partner.probe_peer, "{table}");
        let no_local = invitation(&tunnel("local = [\"9999:localhost:1235\"]\n")).text();
        assert!(!no_local.contains("probe_peer"), "{no_local}");
    }

    #[test]
    fn a_dotted_name_is_a_quoted_key_and_the_text_loads() {
        let env = Env {
            home: "/home/me".into(),
            user: "me".into(),
            vars: Default::default(),
        };
        let text = "[defaults]\nssh_config = \"\"\n[tunnels.\"jane.lab\"]\nhost = \"saturn\"\n\
                    remote = [\"1236:localhost:22\"]\n";
        let cfg = parse(text, Path::new("/c.toml"), &env).unwrap();
        let invite = invitation(cfg.tunnels.values().next().unwrap()).text();
        assert!(invite.contains("[tunnels.\"jane.lab\"]\n"), "{invite}");
        let table = invite
            .split("\n\n")
            .find(|block| block.starts_with("[tunnels."))
            .unwrap_or_else(|| panic!("no table in\n{invite}"));
        let partner = parse(
            &format!("[defaults]\nssh_config = \"\"\n{table}"),
            Path::new("/p.toml"),
            &env,
        )
        .unwrap_or_else(|e| panic!("{e}\n{table}"));
        assert!(
            partner
                .tunnels
                .keys()
                .any(|name| name.as_str() == "jane.lab")
        );
    }
}

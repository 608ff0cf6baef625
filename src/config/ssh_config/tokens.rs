//! What OpenSSH expands in an `IdentityFile` after `~` (which the parser already did): the
//! `%` tokens of ssh_config(5)'s TOKENS section and `${VAR}` environment variables. A key
//! named per host (`IdentityFile ~/.ssh/%h.key`) must name the same file for pairtun as for ssh.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

/// The connection an `IdentityFile` is expanded for.
pub struct Tokens<'a> {
    /// `%d`: the local home directory.
    pub home: &'a Path,
    /// `%u`: the local user name.
    pub local_user: &'a str,
    /// `%n`, and `%k` (pairtun has no `HostKeyAlias`): the alias as configured.
    pub alias: &'a str,
    /// `%h`: the host name dialled (after `HostName`).
    pub host: &'a str,
    /// `%p`: the port.
    pub port: u16,
    /// `%r`: the remote user.
    pub remote_user: &'a str,
    /// `%j`: the jump chain as written, empty without one.
    pub jump: &'a str,
    /// For `${VAR}`.
    pub vars: &'a HashMap<String, String>,
}

/// `path` with its tokens and `${VAR}`s replaced; an unknown token, a lone `%` or an unset
/// variable is an error naming it (as ssh refuses to connect then). A path that is not UTF-8
/// has nothing to expand.
pub fn expand_identity(path: &Path, tokens: &Tokens) -> Result<PathBuf, String> {
    let Some(text) = path.to_str() else {
        return Ok(path.to_owned());
    };
    let text = crate::config::env::expand_variables(text, tokens.vars, false)?;
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&tokens.home.to_string_lossy()),
            Some('u') => out.push_str(tokens.local_user),
            Some('n' | 'k') => out.push_str(tokens.alias),
            Some('h') => out.push_str(tokens.host),
            Some('p') => write!(out, "{}", tokens.port).unwrap_or_default(),
            Some('r') => out.push_str(tokens.remote_user),
            Some('j') => out.push_str(tokens.jump),
            Some('i') => write!(out, "{}", nix::unistd::getuid()).unwrap_or_default(),
            Some('l') => out.push_str(&local_host_name()),
            Some('L') => out.push_str(short(&local_host_name())),
            Some('C') => out.push_str(&connection_hash(tokens)),
            Some(other) => return Err(format!("unknown token %{other}")),
            None => return Err("a lone `%` at the end (write %% for a percent sign)".to_owned()),
        }
    }
    Ok(PathBuf::from(out))
}

/// `%l`: this machine's host name (empty if it cannot be read).
fn local_host_name() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `%L`: the host name up to its first dot.
fn short(host_name: &str) -> &str {
    host_name.split('.').next().unwrap_or_default()
}

/// `%C`: the SHA-1 of `%l%h%p%r%j`, in hex, as OpenSSH computes it.
fn connection_hash(tokens: &Tokens) -> String {
    let mut hasher = Sha1::new();
    hasher.update(local_host_name());
    hasher.update(tokens.host);
    hasher.update(tokens.port.to_string());
    hasher.update(tokens.remote_user);
    hasher.update(tokens.jump);
    hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(40), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(path: &str, vars: &[(&str, &str)]) -> Result<String, String> {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let tokens = Tokens {
            home: Path::new("/home/me"),
            local_user: "me",
            alias: "relay",
            host: "relay.example.org",
            port: 2222,
            remote_user: "jane",
            jump: "bastion",
            vars: &vars,
        };
        expand_identity(Path::new(path), &tokens).map(|p| p.to_string_lossy().into_owned())
    }

    #[test]
    fn tokens_and_braced_variables_are_expanded_as_ssh_does() {
        let cases = [
            (
                "/home/me/.ssh/%h.key",
                "/home/me/.ssh/relay.example.org.key",
            ),
            ("%d/.ssh/id_%n", "/home/me/.ssh/id_relay"),
            ("/keys/%r@%h:%p", "/keys/jane@relay.example.org:2222"),
            ("/keys/%u-%k-%j", "/keys/me-relay-bastion"),
            ("/keys/100%%", "/keys/100%"),
            ("${KEYS}/id", "/srv/keys/id"),
            ("/keys/$KEYS", "/keys/$KEYS"),
            ("/plain/path", "/plain/path"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                expand(raw, &[("KEYS", "/srv/keys")]).as_deref(),
                Ok(want),
                "{raw}"
            );
        }
        let uid = nix::unistd::getuid().to_string();
        assert_eq!(expand("/k/%i", &[]), Ok(format!("/k/{uid}")));
        let host = local_host_name();
        assert_eq!(expand("/k/%l", &[]), Ok(format!("/k/{host}")));
        assert_eq!(expand("/k/%L", &[]), Ok(format!("/k/{}", short(&host))));
    }

    #[test]
    fn the_connection_hash_is_sha1_of_local_host_host_port_user_and_jump() {
        let hash = expand("%C", &[]).unwrap();
        let mut hasher = Sha1::new();
        hasher.update(format!(
            "{}relay.example.org2222janebastion",
            local_host_name()
        ));
        let want: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash, want);
        assert_eq!(hash.len(), 40);
    }

    #[test]
    fn unknown_tokens_lone_percents_and_unset_variables_are_named() {
        let cases = [
            ("/k/%z", "unknown token %z"),
            ("/k/50%", "a lone `%`"),
            ("${NOPE}/k", "environment variable `NOPE` is not set"),
            ("${KEYS/k", "unclosed `${`"),
        ];
        for (raw, want) in cases {
            let err = expand(raw, &[]).unwrap_err();
            assert!(err.contains(want), "{raw}: {err}");
        }
    }
}

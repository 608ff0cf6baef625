//! OpenSSH client configuration (`~/.ssh/config`) as far as pairtun honours it: for a tunnel's
//! `host` alias (and each jump host) the `HostName`, `User`, `Port`, `IdentityFile`,
//! `IdentitiesOnly` and `ProxyJump` of the matching `Host` blocks, first value wins, with host
//! patterns (`*`, `?`, `!negation`) and `Include` — OpenSSH's semantics.
//!
//! The file is read here, line by line, before [`ssh2_config`] sees it (module `flatten`): `Include`
//! is expanded in place, and every line pairtun cannot honour is left out *with a warning that
//! names the file and line*. `Match` in particular: ssh2-config does not implement it and
//! would apply the options under it to the preceding `Host` block (notes/deps.md §7), a silent
//! misread; pairtun drops the whole `Match` block and says so. Only the keywords above reach
//! ssh2-config, so a syntax it rejects elsewhere in the file cannot disable the rest.
//!
//! The forwarding lines of a block (`LocalForward` …) are read by [`parse_ssh_config_import`]
//! for `pairtunctl import`, not here: an ordinary tunnel's forwards are its own.

mod flatten;
mod import;
#[cfg(test)]
mod tests;
mod tokens;

use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig as Parsed};

pub use import::{ImportNote, Imported, import_ssh_config, parse_ssh_config_import};
pub use tokens::{Tokens, expand_identity};

/// What the `Host` blocks matching one alias say, each `None` when no block sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostEntry {
    /// `HostName`, with `%h` replaced by the alias (the network name to dial).
    pub host_name: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// `Port`.
    pub port: Option<u16>,
    /// Every `IdentityFile` of every matching block, in order (they accumulate, as in OpenSSH).
    pub identity_files: Option<Vec<PathBuf>>,
    /// `IdentitiesOnly`.
    pub identities_only: Option<bool>,
    /// `ProxyJump`: the hops in order; `Some(vec![])` for `ProxyJump none`.
    pub proxy_jump: Option<Vec<String>>,
}

/// A loaded ssh client configuration (possibly none) and what could not be honoured in it.
#[derive(Debug)]
pub struct SshConfig {
    /// The file's text, where it was read from and the home directory: each alias is looked
    /// up in the file as flattened for it (see `flatten`).
    source: Option<(String, PathBuf, PathBuf)>,
    /// One line per problem, each naming the file and line: `Match` blocks and `ProxyCommand`
    /// ignored, unreadable `Include`s, a file the parser rejected.
    pub warnings: Vec<String>,
}

impl SshConfig {
    /// No ssh config at all (`ssh_config = ""`).
    pub fn none() -> SshConfig {
        SshConfig {
            source: None,
            warnings: Vec::new(),
        }
    }

    /// Reads `path` and what it includes; `home` expands `~` and relative `Include`s. A missing
    /// file is no configuration, silently (most people have none); any other problem is a warning.
    pub fn load(path: &Path, home: &Path) -> SshConfig {
        match crate::config::read_file(path) {
            Ok(bytes) => SshConfig::from_text(&String::from_utf8_lossy(&bytes), path, home),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SshConfig::none(),
            Err(e) => SshConfig {
                source: None,
                warnings: vec![format!(
                    "{}: cannot read the ssh config ({e}); it is not used",
                    path.display()
                )],
            },
        }
    }

    /// Parses `text` as if read from `path` (which names it in warnings and anchors nothing
    /// else: `Include`s are relative to `home`/.ssh, as in OpenSSH).
    pub fn from_text(text: &str, path: &Path, home: &Path) -> SshConfig {
        let flat = flatten::flatten(text, path, home, None);
        let mut warnings = flat.warnings;
        if let Err(e) = parse(&flat.text, home) {
            warnings.push(format!(
                "{}: cannot parse the ssh config ({e}); it is not used",
                path.display()
            ));
            return SshConfig {
                source: None,
                warnings,
            };
        }
        let source = Some((text.to_owned(), path.to_owned(), home.to_owned()));
        SshConfig { source, warnings }
    }

    /// The settings for `alias`, as `ssh alias` would see them (ssh lowercases the name
    /// before matching it against `Host` patterns).
    pub fn host(&self, alias: &str) -> HostEntry {
        let Some((text, path, home)) = &self.source else {
            return HostEntry::default();
        };
        let alias = alias.to_lowercase();
        // Its problems were reported by `from_text`, which read every Include.
        let flat = flatten::flatten(text, path, home, Some(&alias));
        let Ok(parsed) = parse(&flat.text, home) else {
            return HostEntry::default();
        };
        let params = parsed.query(&alias);
        let identities_only = params
            .unsupported_fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("identitiesonly"))
            .and_then(|(_, v)| v.first())
            .map(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"));
        let proxy_jump = params.proxy_jump.map(|hops| {
            let hops: Vec<String> = hops
                .into_iter()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect();
            if hops.len() == 1 && hops[0].eq_ignore_ascii_case("none") {
                Vec::new()
            } else {
                hops
            }
        });
        HostEntry {
            host_name: params.host_name.map(|h| expand_host_tokens(&h, &alias)),
            user: params.user,
            port: params.port,
            identity_files: params.identity_file,
            identities_only,
            proxy_jump,
        }
    }
}

/// `%h` → the alias and `%%` → `%` in `HostName` (the only tokens it commonly carries).
fn expand_host_tokens(host_name: &str, alias: &str) -> String {
    let mut out = String::with_capacity(host_name.len());
    let mut chars = host_name.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some('h')) => {
                out.push_str(alias);
                chars.next();
            }
            ('%', Some('%')) => {
                out.push('%');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// The flattened text as ssh2-config reads it.
fn parse(flat: &str, home: &Path) -> Result<Parsed, ssh2_config::SshParserError> {
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    Parsed::default()
        .home_dir(home)
        .parse(&mut flat.as_bytes(), rules)
}

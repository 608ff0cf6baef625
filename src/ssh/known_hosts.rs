//! Reading and appending OpenSSH `known_hosts` files (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT").
//!
//! russh's own `check_known_hosts_path` ignores `@revoked`, knows neither wildcards nor
//! negation, and splits fields on single spaces only, so host keys are verified here instead.
//! Host certificates (`@cert-authority`) are out of scope: such lines are skipped.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, PublicKey};
use sha1::Sha1;

/// What a known_hosts file says about the key a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An entry for this host holds exactly this key.
    Known,
    /// No entry for this host holds a key of this algorithm (or the file does not exist).
    Unknown,
    /// An entry for this host holds a different key of the same algorithm; `line` (1-based) is
    /// the first such entry.
    Changed { path: PathBuf, line: usize },
    /// The key is marked `@revoked` at `line` (1-based), whatever host that line names.
    Revoked { path: PathBuf, line: usize },
}

/// Looks up `key` for `host` (as the user configured it: a name or IP address) on SSH server
/// port `port`. A missing file is [`Verdict::Unknown`]; malformed lines are skipped.
pub fn check(path: &Path, host: &str, port: u16, key: &PublicKey) -> io::Result<Verdict> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Verdict::Unknown),
        Err(e) => return Err(e),
    };
    // ssh(1) lowercases the host before looking it up, and hashed entries hash that form.
    let name = lookup_name(host, port).to_ascii_lowercase();
    let (mut known, mut changed) = (false, None);
    for (line, entry) in entries(&data, path) {
        // Only the key data counts: the comment is not part of a key's identity.
        let same_key = entry.key.key_data() == key.key_data();
        if entry.revoked {
            // A revoked key is bad for every host, so there is no need to look further.
            if same_key {
                return Ok(Verdict::Revoked {
                    path: path.into(),
                    line,
                });
            }
        } else if host_matches(&name, entry.hosts) {
            if same_key {
                known = true;
            } else if changed.is_none() && entry.key.algorithm() == key.algorithm() {
                changed = Some(line);
            }
        }
    }
    // Keep scanning after a hit: a later `@revoked` line still has to win.
    Ok(match (known, changed) {
        (true, _) => Verdict::Known,
        (false, Some(line)) => Verdict::Changed {
            path: path.into(),
            line,
        },
        (false, None) => Verdict::Unknown,
    })
}

/// The key types of the entries `path` has for `host` on `port`, one per entry in file order:
/// whether a strict host key check can succeed at all, and which host key algorithms to ask
/// the relay for first. `@revoked` lines do not count, nor do `@cert-authority` ones (skipped
/// as everywhere here). A missing file has none.
pub fn key_types_for(path: &Path, host: &str, port: u16) -> io::Result<Vec<Algorithm>> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let name = lookup_name(host, port).to_ascii_lowercase();
    Ok(entries(&data, path)
        .filter(|(_, entry)| !entry.revoked && host_matches(&name, entry.hosts))
        .map(|(_, entry)| entry.key.algorithm())
        .collect())
}

/// `types` as a message lists them: each name once, in the order given.
pub fn type_names(types: &[Algorithm]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in types.iter().map(Algorithm::as_str) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

/// The parseable lines of a known_hosts file with their 1-based numbers; the rest are skipped
/// (logged at debug).
fn entries<'a>(data: &'a [u8], path: &'a Path) -> impl Iterator<Item = (usize, Entry<'a>)> {
    data.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(move |(index, raw)| {
            let line = index + 1;
            let entry = std::str::from_utf8(raw)
                .map_err(|_| "not UTF-8")
                .and_then(parse_line);
            match entry {
                Ok(entry) => entry.map(|e| (line, e)),
                Err(reason) => {
                    tracing::debug!(path = %path.display(), line, reason, "skipping known_hosts line");
                    None
                }
            }
        })
}

/// Appends a plain (unhashed) entry for `host`/`port` holding `key`, in the form
/// `ssh-keyscan` prints. Creates missing parent directories (0700) and the file (0600).
pub fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> io::Result<()> {
    // Such a name would be read back as a pattern, a marker or several fields.
    let unsafe_char = |c: char| c.is_whitespace() || c.is_control() || matches!(c, ',' | '*' | '?');
    if host.is_empty() || host.contains(unsafe_char) || host.starts_with(['!', '@', '#', '|']) {
        let message = format!("host name {host:?} cannot be recorded in known_hosts");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    let blob = key.to_bytes().map_err(io::Error::other)?;
    let name = lookup_name(host, port);
    let mut record = format!(
        "{name} {} {}\n",
        key.algorithm().as_str(),
        STANDARD.encode(blob)
    );
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    // Host key checks run on blocking threads, so two tunnels to one new relay may both get
    // here: under the lock, the second finds the key the first wrote.
    file.lock()?;
    if matches!(check(path, host, port, key)?, Verdict::Known) {
        return Ok(());
    }
    // A hand-edited file may lack its final newline; appending would then corrupt its last line.
    if file.seek(SeekFrom::End(0))? > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            record.insert(0, '\n');
        }
    }
    // One write, so a concurrent reader never sees the newline without the entry.
    file.write_all(record.as_bytes())?;
    file.sync_all()
}

/// The name OpenSSH files a host under: bare for port 22, `[host]:port` otherwise.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// One usable key line.
struct Entry<'a> {
    revoked: bool,
    hosts: &'a str,
    key: PublicKey,
}

/// `Ok(None)` for blank and comment lines, `Err(reason)` for lines to skip.
fn parse_line(text: &str) -> Result<Option<Entry<'_>>, &'static str> {
    // `\r` too, so files with CRLF line ends still parse.
    let mut fields = text.split([' ', '\t', '\r']).filter(|f| !f.is_empty());
    let Some(mut hosts) = fields.next().filter(|f| !f.starts_with('#')) else {
        return Ok(None);
    };
    let revoked = match hosts {
        "@revoked" => true,
        "@cert-authority" => return Err("@cert-authority lines are not supported"),
        marker if marker.starts_with('@') => return Err("unknown marker"),
        _ => false,
    };
    if revoked {
        hosts = fields.next().ok_or("missing host patterns")?;
    }
    let kind = fields.next().ok_or("missing key type")?;
    let blob = STANDARD
        .decode(fields.next().ok_or("missing key")?)
        .map_err(|_| "bad base64")?;
    let key = PublicKey::from_bytes(&blob).map_err(|_| "undecodable key")?;
    // Also rejects unknown key types: the blob names its own algorithm.
    if key.algorithm().as_str() != kind {
        return Err("key type does not match key");
    }
    Ok(Some(Entry {
        revoked,
        hosts,
        key,
    }))
}

/// OpenSSH's `match_hostname`: any pattern matching `name` makes the line apply, unless a
/// negated (`!`) pattern matches too. `name` is lowercase already.
fn host_matches(name: &str, patterns: &str) -> bool {
    let mut positive = false;
    for pattern in patterns.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let hit = match pattern.strip_prefix("|1|") {
            Some(hashed) => hash_matches(name, hashed),
            None => glob(name.as_bytes(), pattern.to_ascii_lowercase().as_bytes()),
        };
        if hit && negated {
            return false;
        }
        positive |= hit;
    }
    positive
}

/// A hashed name `base64(salt)|base64(HMAC-SHA1(salt, name))` (the part after `|1|`).
fn hash_matches(name: &str, hashed: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    Hmac::<Sha1>::new_from_slice(&salt)
        .is_ok_and(|mac| mac.chain_update(name).verify_slice(&hash).is_ok())
}

/// `*` (any run) and `?` (any one byte) wildcards. Iterative with one backtrack point, so a
/// hostile pattern like `*a*a*a*b` cannot blow up the way naive recursion does.
fn glob(name: &[u8], pattern: &[u8]) -> bool {
    let (mut n, mut p) = (0, 0);
    let mut star = None; // (pattern index after the last `*`, name index it resumes from)
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, n));
            }
            Some(&c) if c == b'?' || c == name[n] => (p, n) = (p + 1, n + 1),
            _ => match star {
                // Let the last `*` swallow one more byte and retry.
                Some((after, from)) => {
                    (p, n) = (after, from + 1);
                    star = Some((after, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests;

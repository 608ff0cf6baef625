//! Comment-preserving edits of the config file for `pairtunctl add` / `drop` (SPEC §3, and
//! "Nothing lost" in §4): everything outside the tunnel added or dropped stays byte-identical,
//! and the file is replaced, atomically, only by text that validates.
//!
//! Edits splice the text rather than re-render a `toml_edit::DocumentMut`: toml_edit hangs each
//! comment on the item below it (a file's header belongs to its first table, notes/deps.md §8),
//! so removing an item through it can take comments that belong to something else. toml_edit
//! parses the text only to find where things are. What a dropped tunnel takes with it:
//! - the comment lines directly above its `[tunnels.NAME]` header (no blank line in between),
//!   so a file's leading comment block survives when a blank line separates it;
//! - its body, with comments inside it and directly below its last key, and its sub-tables;
//! - one run of blank lines, so the paragraphs around it stay evenly spaced.
//!
//! A comment after a blank line, or directly above the next header, belongs to what follows.
//! `add` appends after one blank line, so `drop` of what `add` wrote gives back the original
//! text (for any file that ends with a newline and no blank line).

mod file;
mod inline;
mod lines;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

use toml_edit::{Array, Document, DocumentMut, Item, Table, TableLike, TomlError};

use super::{Config, ConfigError, Env, parse};
use crate::protocol::TunnelSpec;

/// Why an edit was refused. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// `add` of a name already in the file, in whatever form it was written.
    #[error("tunnel `{0}` already exists in the config file")]
    Exists(String),
    /// `drop` of a name the file does not have.
    #[error("no tunnel named `{0}` in the config file")]
    Missing(String),
    /// The text is not TOML, or has no usable `tunnels` table.
    #[error("{0}")]
    Toml(String),
    /// The edited file would not validate; the location is in the file as it would have been.
    #[error("{0} (in the edited text; the file was left unchanged)")]
    Invalid(ConfigError),
    /// Reading or replacing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// New text of `source` with `[tunnels.NAME]` appended after a blank line, keys in schema
/// order; unset, empty and default values are left out (`autostart` is written only when
/// false, `probe_peer` only when true). A file that writes `tunnels = { .. }` inline gets the
/// tunnel inside that table instead, because TOML forbids extending an inline table with a
/// header.
pub fn add_tunnel(source: &str, spec: &TunnelSpec) -> Result<String, EditError> {
    let doc = parse_toml(source)?;
    if let Some(tunnels) = doc.get("tunnels") {
        if tunnels_table(tunnels)?.contains_key(&spec.name) {
            return Err(EditError::Exists(spec.name.clone()));
        }
        if tunnels.is_inline_table() {
            return inline::add(source, spec);
        }
    }
    // Lines end the way the file's first line does.
    let crlf = source
        .split_inclusive('\n')
        .next()
        .is_some_and(|l| l.ends_with("\r\n"));
    let newline = if crlf { "\r\n" } else { "\n" };
    let mut text = source.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push_str(newline);
    }
    if !text.is_empty() && !lines::ends_with_blank_line(&text) {
        text.push_str(newline);
    }
    text.push_str(&render(spec, newline));
    Ok(text)
}

/// New text of `source` without tunnel `name`: its `[tunnels.NAME]` table and sub-tables, its
/// dotted keys, or its entry in an inline `tunnels` table. See the module docs for which
/// comments go with it.
pub fn drop_tunnel(source: &str, name: &str) -> Result<String, EditError> {
    let doc = parse_toml(source)?;
    let missing = || EditError::Missing(name.to_owned());
    let tunnels = doc.get("tunnels").ok_or_else(missing)?;
    let (key, item) = tunnels_table(tunnels)?
        .get_key_value(name)
        .ok_or_else(missing)?;
    if tunnels.is_inline_table() {
        return inline::remove(source, name);
    }
    Ok(lines::without(source, doc.as_table(), key, item))
}

/// The config file's text as edits see it: a missing file is empty ("no tunnels yet"); one
/// that cannot be read, or is not UTF-8, is an error naming it.
pub fn read_for_edit(path: &Path) -> Result<String, EditError> {
    file::read(path)
}

/// Reads `path` (missing = empty), applies `edit`, validates the result with [`parse`] and
/// replaces the file atomically, keeping its permission bits (new files are 0600, in a 0700
/// directory created if needed). Returns the new configuration. A refused edit writes
/// nothing; an edit that changes nothing writes nothing either. Edits of one file run one at a
/// time (a lock on its directory), so concurrent ones do not lose each other's changes.
pub fn edit_file(
    path: &Path,
    env: &Env,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<Config, EditError> {
    let _one_at_a_time = file::lock(path)?;
    let old = file::read(path)?;
    let new = match edit(&old) {
        // The loader's error names the file, line and column; prefer it when it has one.
        Err(EditError::Toml(message)) => {
            return Err(parse(&old, path, env)
                .map_or_else(EditError::Invalid, |_| EditError::Toml(message)));
        }
        other => other?,
    };
    let config = parse(&new, path, env).map_err(EditError::Invalid)?;
    if new != old {
        file::replace(path, &new)?;
    }
    Ok(config)
}

fn parse_toml(source: &str) -> Result<Document<&str>, EditError> {
    Document::parse(source).map_err(|e| toml_error(source, &e))
}

pub(super) fn toml_error(source: &str, err: &TomlError) -> EditError {
    let at = err.span().map_or(0, |span| span.start);
    let place = ConfigError::at(Path::new(""), source, at, String::new());
    EditError::Toml(format!(
        "the config file is not valid TOML: line {}, column {}: {}",
        place.line,
        place.column,
        err.message().trim_end()
    ))
}

fn tunnels_table(tunnels: &Item) -> Result<&dyn TableLike, EditError> {
    tunnels.as_table_like().ok_or_else(|| {
        EditError::Toml(format!(
            "`tunnels` in the config file must be a table of tunnels (found: {})",
            tunnels.type_name()
        ))
    })
}

/// `[tunnels.NAME]` and its keys. The implicit parent renders as nothing but that header, with
/// the name quoted as TOML needs (`[tunnels."a.b"]`).
fn render(spec: &TunnelSpec, newline: &str) -> String {
    let table = tunnel_table(spec);
    let line_count = table.len() + 1;
    let mut tunnels = Table::new();
    tunnels.set_implicit(true);
    tunnels.insert(&spec.name, Item::Table(table));
    let mut doc = DocumentMut::new();
    doc.insert("tunnels", Item::Table(tunnels));
    let text = doc.to_string();
    // A multi-line string's newlines are part of its value: convert only when every newline
    // ends a line.
    if newline != "\n" && text.matches('\n').count() == line_count {
        text.replace('\n', newline)
    } else {
        text
    }
}

/// The tunnel's keys in the order the SPEC's example writes them.
pub(super) fn tunnel_table(spec: &TunnelSpec) -> Table {
    let mut t = Table::new();
    t.insert("host", toml_edit::value(&spec.host));
    if let Some(port) = spec.port {
        t.insert("port", toml_edit::value(i64::from(port)));
    }
    // An empty user or jump means "not set", as an empty `jump` does in the file.
    if let Some(user) = spec.user.as_deref().filter(|s| !s.is_empty()) {
        t.insert("user", toml_edit::value(user));
    }
    for (key, list) in [
        ("identity_files", &spec.identity_files),
        ("local", &spec.local),
        ("remote", &spec.remote),
        ("dynamic", &spec.dynamic),
    ] {
        if !list.is_empty() {
            t.insert(key, toml_edit::value(Array::from_iter(list)));
        }
    }
    if let Some(jump) = spec.jump.as_deref().filter(|s| !s.is_empty()) {
        t.insert("jump", toml_edit::value(jump));
    }
    if !spec.autostart {
        t.insert("autostart", toml_edit::value(false));
    }
    if spec.probe_peer {
        t.insert("probe_peer", toml_edit::value(true));
    }
    t
}

//! Edits of `tunnels = { .. }`, the one form that cannot be spliced line by line: TOML forbids
//! extending an inline table with a `[tunnels.NAME]` header, and its entries share lines. These
//! go through `toml_edit::DocumentMut`, which renders everything else as it was parsed; only
//! the inline table's own layout is adjusted here.

use toml_edit::{Decor, DocumentMut, InlineTable, Item, Key, RawString, Value};

use super::{EditError, toml_error, tunnel_table};
use crate::protocol::TunnelSpec;

/// Adds the tunnel as the last entry, laid out like the entry before it: same indent, and
/// that entry's spacing before `}` moved to the new one.
pub(super) fn add(source: &str, spec: &TunnelSpec) -> Result<String, EditError> {
    let mut doc: DocumentMut = source.parse().map_err(|e| toml_error(source, &e))?;
    let tunnels = tunnels(&mut doc)?;
    let mut value = Value::InlineTable(tunnel_table(spec).into_inline_table());
    let mut key = Key::new(spec.name.as_str());
    if let Some((last_key, last)) = tunnels.iter_mut().last() {
        let decor = last_key.leaf_decor();
        let prefix = decor
            .prefix()
            .and_then(RawString::as_str)
            .map_or(" ", layout);
        let suffix = decor.suffix().and_then(RawString::as_str).unwrap_or(" ");
        key = key.with_leaf_decor(Decor::new(prefix, suffix));
        if let Some(spacing) = last.decor().suffix().cloned() {
            value.decor_mut().set_suffix(spacing);
            last.decor_mut().set_suffix("");
        }
    }
    tunnels.insert_formatted(&key, value);
    Ok(doc.to_string())
}

/// Removes the tunnel's entry with the end of its line (a comment there is its own).
pub(super) fn remove(source: &str, name: &str) -> Result<String, EditError> {
    let mut doc: DocumentMut = source.parse().map_err(|e| toml_error(source, &e))?;
    let tunnels = tunnels(&mut doc)?;
    let names: Vec<String> = tunnels.iter().map(|(k, _)| k.to_owned()).collect();
    let position = names.iter().position(|n| n == name);
    let removed = tunnels
        .remove(name)
        .ok_or_else(|| EditError::Missing(name.to_owned()))?;
    match position.and_then(|p| names.get(p + 1)) {
        // toml_edit keeps the rest of the removed entry's line in the next key's prefix.
        Some(next) => {
            if let Some(mut key) = tunnels.key_mut(next) {
                let decor = key.leaf_decor_mut();
                let prefix = decor.prefix().and_then(RawString::as_str).map(next_line);
                if let Some(prefix) = prefix.map(str::to_owned) {
                    decor.set_prefix(prefix);
                }
            }
        }
        // The last entry holds the spacing before `}`; the new last entry inherits it.
        None => {
            if let (Some(spacing), Some((_, last))) =
                (removed.decor().suffix(), tunnels.iter_mut().last())
            {
                last.decor_mut().set_suffix(spacing.clone());
            }
        }
    }
    Ok(doc.to_string())
}

fn tunnels(doc: &mut DocumentMut) -> Result<&mut InlineTable, EditError> {
    doc.get_mut("tunnels")
        .and_then(Item::as_inline_table_mut)
        .ok_or_else(|| EditError::Toml("`tunnels` is not an inline table".into()))
}

/// A key's prefix without any comment: the line break and indent, or the spaces.
fn layout(prefix: &str) -> &str {
    prefix.rfind('\n').map_or(prefix, |i| &prefix[i..])
}

/// A key's prefix from its own line on: what came before belonged to the previous line.
fn next_line(prefix: &str) -> &str {
    prefix.find('\n').map_or(prefix, |i| &prefix[i..])
}

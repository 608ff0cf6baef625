//! Config errors with a location: `FILE:LINE:COL: message`, whether the problem was found by
//! the TOML parser, by serde, or by validation. toml's own messages are reworded here so they
//! name the key involved and read like the rest of pairtun's messages.

use std::path::{Path, PathBuf};

/// A config problem at a place in a file (1-based line and column; column counted in chars).
/// Problems with the file as a whole (unreadable, …) are at 1:1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error at byte offset `at` of `text` (clamped into the text).
    pub(crate) fn at(path: &Path, text: &str, at: usize, message: String) -> ConfigError {
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &text[..at];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        ConfigError {
            path: path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message,
        }
    }

    /// An error about the whole file.
    pub(crate) fn whole_file(path: &Path, message: String) -> ConfigError {
        ConfigError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message,
        }
    }
}

/// A validation failure before it is placed in a file: byte offset + message. Validation works
/// on spans and stays independent of the path and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub at: usize,
    pub message: String,
}

impl Fault {
    pub(crate) fn new(at: usize, message: impl Into<String>) -> Fault {
        Fault {
            at,
            message: message.into(),
        }
    }

    pub(crate) fn locate(self, text: &str, path: &Path) -> ConfigError {
        ConfigError::at(path, text, self.at, self.message)
    }
}

/// Turns a toml/serde error into a located error with a readable message.
pub(crate) fn from_toml(err: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let span = err.span().unwrap_or(0..0);
    let snippet = text.get(span.clone()).unwrap_or("");
    // The line up to the end of the span: for a duplicate table, its header.
    let line_start = text
        .get(..span.start)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let upto = text.get(line_start..span.end).unwrap_or("");
    let message = reword(err.message(), key_path(err).as_deref(), snippet, upto);
    ConfigError::at(path, text, span.start, message)
}

/// The dotted key path toml attaches to serde errors. toml keeps it private and prints it only
/// when it has no input to quote, so render a copy without input and read the `in `…`` line.
fn key_path(err: &toml::de::Error) -> Option<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    let line = rendered
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `"))?;
    line.strip_suffix('`').map(str::to_owned)
}

fn reword(message: &str, key: Option<&str>, snippet: &str, upto: &str) -> String {
    if message == "duplicate key" {
        return duplicate(snippet, upto);
    }
    if snippet.starts_with("[[") {
        let name = snippet.trim_start_matches('[').trim_end_matches(']');
        return format!(
            "`{snippet}` declares an array of tables; pairtun expects a single table [{name}]"
        );
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (name, expected) = rest.split_once(", ").unwrap_or((rest, ""));
        let place = key.map_or("at the top level".to_owned(), |k| format!("in `{k}`"));
        return format!("unknown key {name} {place}; {expected}");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let key = key.map_or(String::new(), |k| format!(" for `{k}`"));
        if plain(expected) == "an integer" && found.starts_with("integer") {
            return format!("integer {snippet}{key} is too large");
        }
        // toml hands dates and times to serde as a map.
        let found = if found == "map" && snippet.starts_with(|c: char| c.is_ascii_digit()) {
            "a date/time"
        } else {
            found
        };
        return format!(
            "wrong type{key}: expected {}, found {}",
            plain(expected),
            plain(found)
        );
    }
    // serde's word for an enum's spelling; to the user it is just a value.
    let message = message.replacen("unknown variant", "unknown value", 1);
    match key {
        Some(k) => format!("invalid value for `{k}`: {message}"),
        None => message,
    }
}

fn duplicate(snippet: &str, upto: &str) -> String {
    let header = upto.trim_start();
    if header.starts_with('[') {
        // The span is the header's last key, so the header runs from `[` to the span's end.
        let close = if header.starts_with("[[") { "]]" } else { "]" };
        return format!(
            "table {header}{close} is defined more than once; put all its keys under one header"
        );
    }
    format!("duplicate key `{snippet}`: it is already set earlier in the same table")
}

/// serde's type names in the words a TOML user knows.
fn plain(what: &str) -> String {
    match what {
        "i64" | "u16" | "u32" | "u64" => "an integer".to_owned(),
        "f64" => "a number".to_owned(),
        "a sequence" | "sequence" => "an array".to_owned(),
        "a map" | "map" => "a table".to_owned(),
        other => other.strip_suffix(" as i128").unwrap_or(other).to_owned(),
    }
}

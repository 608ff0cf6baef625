//! Configuration: raw TOML → validated [`Config`] (SPEC §2).
//!
//! [`load`] / [`parse`] read the file into serde types mirroring the schema (`raw`), then
//! `validate` turns them into the model's types, which cannot be wrong at run time. Every
//! error is a [`ConfigError`] reading `FILE:LINE:COL: message`.

mod conflicts;
mod duration;
mod edit;
mod env;
mod error;
mod forward;
mod model;
mod raw;
mod settings;
pub mod ssh_config;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use duration::MAX_DURATION;
pub use edit::{EditError, add_tunnel, drop_tunnel, edit_file, read_for_edit};
pub use env::{Env, default_path};
pub use error::ConfigError;
pub use forward::{parse_forward_dynamic, parse_forward_local, parse_forward_remote};
pub use model::*;
pub use settings::MAX_CONNECTIONS;

/// Parses and validates config text; `path` is used in error locations and as the source.
pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let raw: raw::RawFile = toml::from_str(text).map_err(|e| error::from_toml(&e, text, path))?;
    validate::validate(&raw, env, Some(path.to_owned())).map_err(|f| f.locate(text, path))
}

/// The largest config or ssh config file read: far above any real one, and a bound for a path
/// that names something endless (`/dev/zero`).
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Reads a config file: a regular file (not a FIFO that blocks or a device that never ends) of
/// at most [`MAX_FILE_SIZE`] bytes.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking open: opening a FIFO for reading otherwise waits for a writer, before its
    // type can be checked. A regular file reads the same either way.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        let why = format!("larger than {} KiB", MAX_FILE_SIZE / 1024);
        return Err(Error::new(ErrorKind::InvalidData, why));
    }
    Ok(bytes)
}

/// Reads and validates the config file. A missing file is an empty config ("no tunnels yet",
/// SPEC §2), with `source` still set so a later `add` knows where to write.
pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
    match read_file(path) {
        Ok(bytes) => parse_bytes(&bytes, path, env),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config {
            source: Some(path.to_owned()),
            ssh_config: env.home_join(".ssh/config").ok(),
            ..Config::empty()
        }),
        Err(e) => Err(ConfigError::whole_file(
            path,
            format!("cannot read the config file: {e}"),
        )),
    }
}

/// [`parse`] for the file's bytes as read, which need not be UTF-8.
pub fn parse_bytes(bytes: &[u8], path: &Path, env: &Env) -> Result<Config, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, path, env),
        Err(e) => {
            // Point at the bad byte: the lossy text keeps every earlier line and column intact.
            let text = String::from_utf8_lossy(bytes);
            let message = "the config file is not valid UTF-8".to_owned();
            Err(ConfigError::at(path, &text, e.valid_up_to(), message))
        }
    }
}

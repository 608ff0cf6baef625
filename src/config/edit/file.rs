//! Reading the config file and replacing it atomically: a temporary file in the same
//! directory, written, given the original's permission bits, fsynced, then renamed over the
//! original. A crash at any point leaves either the old file or the new one, never a mix.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::EditError;
use crate::config::ConfigError;

/// Mode of a config file created by an edit: it names keys and hosts, so only its owner reads it.
const NEW_FILE_MODE: u32 = 0o600;
/// Mode of a config directory created by an edit, as XDG asks for per-user directories.
const NEW_DIR_MODE: u32 = 0o700;

/// The file's text; a missing file is empty ("no tunnels yet", SPEC §2).
pub(super) fn read(path: &Path) -> Result<String, EditError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes());
            let message = "the config file is not valid UTF-8".to_owned();
            EditError::Invalid(ConfigError::at(path, &text, at, message))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(io_error(path, source)),
    }
}

/// Held while an edit reads, checks and replaces the file, so that edits running at once (the
/// daemon serves requests concurrently; another process may edit too) apply one after the
/// other instead of each writing over what the other read. The lock is on the file's
/// directory: the file itself is replaced by each edit, so a lock on it would not cover the
/// next one, and a lock file beside it would be litter.
pub(super) struct Lock {
    _held: File,
}

/// Waits for the edit lock of the config file at `path`. Until the file's directory exists
/// (the first edit creates it), its nearest existing ancestor stands in for it.
pub(super) fn lock(path: &Path) -> Result<Lock, EditError> {
    let (_, dir) = target_and_dir(path);
    let mut tries = 0;
    loop {
        tries += 1;
        let existing = dir.ancestors().find(|d| d.is_dir()).unwrap_or(&dir);
        let file = File::open(existing).map_err(|e| io_error(path, e))?;
        file.lock().map_err(|e| io_error(path, e))?;
        // The directory may have been created while this waited on an ancestor: then lock it,
        // where the edit that created it and any later one lock.
        if existing == dir || !dir.is_dir() || tries == 3 {
            return Ok(Lock { _held: file });
        }
    }
}

/// The file an edit writes (through a symlink: dotfile managers link the config in) and its
/// directory.
fn target_and_dir(path: &Path) -> (PathBuf, PathBuf) {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
    } else {
        path.to_owned()
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    (target, dir)
}

/// Replaces the file at `path` with `text`, atomically.
pub(super) fn replace(path: &Path, text: &str) -> Result<(), EditError> {
    let (target, dir) = target_and_dir(path);
    let mode = match fs::metadata(&target) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => NEW_FILE_MODE,
        Err(source) => return Err(io_error(&target, source)),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(NEW_DIR_MODE)
        .create(&dir)
        .map_err(|e| io_error(&dir, e))?;
    let (temp, file) = create_temp(&dir, &target)?;
    if let Err(source) = write_and_rename(file, &temp, &target, text, mode) {
        // Best effort: after a failed rename the temporary file is the only thing to clean.
        let _ = fs::remove_file(&temp);
        return Err(io_error(&target, source));
    }
    // Makes the rename durable. The new file is in place already, so a failure here is not
    // reported as a failed edit.
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn write_and_rename(
    mut file: File,
    temp: &Path,
    target: &Path,
    text: &str,
    mode: u32,
) -> io::Result<()> {
    file.write_all(text.as_bytes())?;
    // Explicitly, because the mode given at creation was filtered through the umask.
    file.set_permissions(Permissions::from_mode(mode))?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, target)
}

/// A new file next to `target`, created exclusively so two edits never share one; a name
/// left behind by a crashed process with the same pid is skipped.
fn create_temp(dir: &Path, target: &Path) -> Result<(PathBuf, File), EditError> {
    let name = target
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy());
    let pid = std::process::id();
    for attempt in 0..100 {
        let temp = dir.join(format!(".{name}.{pid}.{attempt}.tmp"));
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(NEW_FILE_MODE)
            .open(&temp);
        match opened {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(io_error(&temp, source)),
        }
    }
    let source = io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many leftover temporary files; remove the .*.tmp files there",
    );
    Err(io_error(dir, source))
}

fn io_error(path: &Path, source: io::Error) -> EditError {
    EditError::Io {
        path: path.to_owned(),
        source,
    }
}

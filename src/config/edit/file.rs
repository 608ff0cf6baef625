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

/// Replaces the file at `path` with `text`, atomically.
pub(super) fn replace(path: &Path, text: &str) -> Result<(), EditError> {
    // Write through a symlink rather than replace it: dotfile managers link the config in.
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

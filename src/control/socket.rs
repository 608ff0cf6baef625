//! Where the control socket lives and how the daemon claims it: a private directory, a 0600
//! socket, a stale file from a crash replaced, a live daemon never displaced.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::tokio::prelude::*;
use interprocess::local_socket::{GenericFilePath, ListenerOptions};

use crate::config::Env;

/// Longest socket path the kernel takes (`sun_path` is 108 bytes on Linux, 104 on macOS,
/// one of them the terminating NUL).
#[cfg(target_os = "linux")]
const MAX_PATH: usize = 107;
#[cfg(not(target_os = "linux"))]
const MAX_PATH: usize = 103;

/// Why the daemon could not claim its socket.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live daemon answers on the socket; a second one must not take it over.
    #[error("pairtund is already running on {}", .0.display())]
    AlreadyRunning(PathBuf),
    /// The socket's directory could be reached by other users.
    #[error("refusing to use {}: {reason}", dir.display())]
    UnsafeDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it and how to fix it.
        reason: String,
    },
    /// Something other than a socket is in the way.
    #[error("{} exists and is not a socket; remove it or choose another --socket", .0.display())]
    NotASocket(PathBuf),
    /// The kernel cannot address a path this long.
    #[error(
        "socket path {} is {len} bytes, the limit is {MAX_PATH}; choose a shorter --socket",
        path.display()
    )]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// Creating the directory, probing, removing or binding failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`cannot bind`, …).
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BindError {
    let path = path.to_path_buf();
    move |source| BindError::Io { what, path, source }
}

/// The socket path: `$PAIRTUN_SOCKET`, else `$XDG_RUNTIME_DIR/pairtun/pairtund.sock`, else
/// `$TMPDIR/pairtun-<uid>/pairtund.sock` (`/tmp` without `$TMPDIR`).
pub fn default_socket_path(env: &Env) -> PathBuf {
    socket_path_for(env, nix::unistd::geteuid().as_raw())
}

fn socket_path_for(env: &Env, uid: u32) -> PathBuf {
    if let Some(path) = env.var("PAIRTUN_SOCKET") {
        return PathBuf::from(path);
    }
    // The XDG spec says a relative $XDG_RUNTIME_DIR is invalid and must be ignored.
    let absolute = |name| env.var(name).map(Path::new).filter(|p| p.is_absolute());
    let dir = match absolute("XDG_RUNTIME_DIR") {
        Some(runtime) => runtime.join("pairtun"),
        None => absolute("TMPDIR")
            .unwrap_or(Path::new("/tmp"))
            .join(format!("pairtun-{uid}")),
    };
    dir.join("pairtund.sock")
}

/// Creates the socket's parent directory (mode 0700) if missing, and refuses one that another
/// user owns or that group or others may enter: in a shared temp dir, someone else could have
/// made it first to intercept the socket. A symbolic link there must be the user's own too:
/// another user's link to one of the user's private directories passes the other checks, and
/// its owner could later point it at a directory of theirs.
pub fn prepare_dir(path: &Path) -> Result<(), BindError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error("cannot create", dir))?;
    let link = std::fs::symlink_metadata(dir).map_err(io_error("cannot inspect", dir))?;
    let link_owner = link.file_type().is_symlink().then_some(link.uid());
    let meta = std::fs::metadata(dir).map_err(io_error("cannot inspect", dir))?;
    let me = nix::unistd::geteuid().as_raw();
    let problem = link_problem(link_owner, me)
        .or_else(|| dir_problem(meta.is_dir(), meta.uid(), meta.mode(), me));
    match problem {
        None => Ok(()),
        Some(reason) => Err(BindError::UnsafeDir {
            dir: dir.to_path_buf(),
            reason,
        }),
    }
}

/// What makes a symbolic link in the directory's place unfit, if anything (`link_owner`: the
/// link's owner, `None` when it is not a link).
fn link_problem(link_owner: Option<u32>, me: u32) -> Option<String> {
    match link_owner {
        Some(owner) if owner != me => Some(format!(
            "it is a symbolic link that belongs to uid {owner}, not to you (uid {me}); remove it or choose another --socket"
        )),
        _ => None,
    }
}

/// What makes a directory unfit to hold the socket, if anything.
fn dir_problem(is_dir: bool, owner: u32, mode: u32, me: u32) -> Option<String> {
    if !is_dir {
        return Some("it is not a directory".to_owned());
    }
    if owner != me {
        return Some(format!(
            "it belongs to uid {owner}, not to you (uid {me}); remove it or choose another --socket"
        ));
    }
    let mode = mode & 0o7777;
    if mode & 0o077 != 0 {
        return Some(format!(
            "its mode is {mode:04o}, so other users can reach the socket; run `chmod 700` on it"
        ));
    }
    None
}

/// The daemon's bound control socket. Dropping it removes the socket file (interprocess
/// "reclaims" the name), so a clean exit leaves nothing behind.
#[derive(Debug)]
pub struct Listener {
    inner: interprocess::local_socket::tokio::Listener,
    path: PathBuf,
    /// Held while listening (see [`claim`]).
    _claim: std::fs::File,
}

impl Listener {
    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next client.
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        self.inner.accept().await
    }
}

/// Claims the socket at `path`: prepares its directory, replaces a stale socket left by a
/// crash, refuses when a live daemon answers, and binds with mode 0600.
///
/// On macOS the mode cannot be set on a listening socket (interprocess reports `Unsupported`),
/// so there the 0700 directory alone keeps other users out.
pub async fn bind(path: &Path) -> Result<Listener, BindError> {
    let len = path.as_os_str().len();
    if len > MAX_PATH {
        return Err(BindError::PathTooLong {
            path: path.to_path_buf(),
            len,
        });
    }
    prepare_dir(path)?;
    let claim = claim(path)?;
    remove_stale(path).await?;
    let name = path
        .to_fs_name::<GenericFilePath>()
        .map_err(io_error("invalid socket path", path))?;
    let options = ListenerOptions::new().name(name);
    #[cfg(target_os = "linux")]
    let options = {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        options.mode(0o600)
    };
    match options.create_tokio() {
        Ok(inner) => Ok(Listener {
            inner,
            path: path.to_path_buf(),
            _claim: claim,
        }),
        // Another daemon bound between our probe and our bind.
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            Err(BindError::AlreadyRunning(path.to_path_buf()))
        }
        Err(e) => Err(io_error("cannot bind", path)(e)),
    }
}

/// Locks `PATH.lock` (created beside the socket, mode 0600, left in place) for as long as the
/// returned file is held: of two daemons started at once after a crash, both could otherwise
/// find the old socket stale, and the second to bind would replace the first's socket file,
/// leaving a daemon nobody can reach running every tunnel a second time.
fn claim(path: &Path) -> Result<std::fs::File, BindError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error("cannot create", &lock_path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(BindError::AlreadyRunning(path.to_path_buf()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io_error("cannot lock", &lock_path)(e)),
    }
}

/// Removes a socket file nobody listens on; errors out if someone does.
async fn remove_stale(path: &Path) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("cannot inspect", path)(e)),
    };
    // Never delete a file the user pointed us at by mistake.
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket(path.to_path_buf()));
    }
    let name = path
        .to_fs_name::<GenericFilePath>()
        .map_err(io_error("invalid socket path", path))?;
    match Stream::connect(name).await {
        Ok(_) => Err(BindError::AlreadyRunning(path.to_path_buf())),
        Err(e) if is_not_listening(&e) => {
            tracing::info!(socket = %path.display(), "replacing a stale control socket");
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(io_error("cannot remove stale socket", path)(e))
                }
                _ => Ok(()),
            }
        }
        Err(e) => Err(io_error("cannot probe", path)(e)),
    }
}

/// Connect errors meaning "no daemon here": nobody listens, or the file just went away.
pub(crate) fn is_not_listening(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Env::default()
        }
    }

    #[test]
    fn default_path_precedence() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[
                    ("PAIRTUN_SOCKET", "/s.sock"),
                    ("XDG_RUNTIME_DIR", "/run/user/7"),
                ],
                "/s.sock",
            ),
            (
                &[("XDG_RUNTIME_DIR", "/run/user/7")],
                "/run/user/7/pairtun/pairtund.sock",
            ),
            (
                &[("XDG_RUNTIME_DIR", "rel")],
                "/tmp/pairtun-7/pairtund.sock",
            ),
            (&[("TMPDIR", "/var/t")], "/var/t/pairtun-7/pairtund.sock"),
            (&[("PAIRTUN_SOCKET", "")], "/tmp/pairtun-7/pairtund.sock"),
            (&[], "/tmp/pairtun-7/pairtund.sock"),
        ];
        for (vars, want) in cases {
            assert_eq!(
                socket_path_for(&env(vars), 7),
                PathBuf::from(want),
                "{vars:?}"
            );
        }
    }

    #[test]
    fn unsafe_dirs_are_named() {
        assert_eq!(dir_problem(true, 7, 0o40700, 7), None);
        let cases = [
            (dir_problem(false, 7, 0o700, 7), "not a directory"),
            (dir_problem(true, 8, 0o700, 7), "belongs to uid 8"),
            (dir_problem(true, 7, 0o750, 7), "mode is 0750"),
            (dir_problem(true, 7, 0o1777, 7), "mode is 1777"),
        ];
        for (problem, want) in cases {
            let problem = problem.unwrap_or_default();
            assert!(problem.contains(want), "{problem}");
        }
        assert_eq!(link_problem(None, 7), None);
        assert_eq!(link_problem(Some(7), 7), None, "the user's own link");
        let foreign = link_problem(Some(8), 7).unwrap_or_default();
        assert!(
            foreign.contains("symbolic link that belongs to uid 8"),
            "{foreign}"
        );
    }

    #[tokio::test]
    async fn a_daemon_starting_while_another_claims_the_socket_stays_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("pairtund.sock");
        prepare_dir(&path).unwrap();
        // The other daemon has found no live socket and is about to bind: nothing to connect
        // to yet, but the socket is claimed.
        let other = claim(&path).unwrap();
        let refused = bind(&path).await.expect_err("claimed by the other daemon");
        assert!(matches!(refused, BindError::AlreadyRunning(_)), "{refused}");
        drop(other);
        let listener = bind(&path).await.expect("free again");
        // The claim lives as long as the listener.
        assert!(matches!(claim(&path), Err(BindError::AlreadyRunning(_))));
        drop(listener);
        claim(&path).expect("released with the listener");
    }

    #[test]
    fn a_link_to_a_private_directory_is_judged_by_its_own_owner_too() {
        let tmp = tempfile::tempdir().unwrap();
        let private = tmp.path().join("private");
        std::fs::create_dir(&private).unwrap();
        let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
        std::fs::set_permissions(&private, mode).unwrap();
        let link = tmp.path().join("pairtun-link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        // The user's own link is followed (a link owned by someone else cannot be made here
        // without a second account: `link_problem` is checked above).
        prepare_dir(&link.join("pairtund.sock")).expect("own link to a private directory");
    }
}

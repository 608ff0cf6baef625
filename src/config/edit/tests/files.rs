//! `edit_file`: validation before writing, atomic replacement, permissions.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

/// A temporary home with `pairtun/config.toml` holding `text` at `mode` (absent for `None`).
fn setup(text: Option<&str>, mode: u32) -> (tempfile::TempDir, PathBuf, Env) {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("pairtun/config.toml");
    if let Some(text) = text {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    let env = env(home.path());
    (home, path, env)
}

/// The names in the config file's directory: temporary files must not be left behind.
fn listing(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn edits_replace_the_file_and_keep_its_mode() {
    let original = [HEADER, DEFAULTS, JANE].concat();
    for file_mode in [0o600, 0o644] {
        let (_home, path, env) = setup(Some(&original), file_mode);
        let config = edit_file(&path, &env, |t| add_tunnel(t, &full_spec())).unwrap();
        assert_eq!(config.tunnels.len(), 2);
        assert_eq!(config.source.as_deref(), Some(path.as_path()));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{original}\n{BOB}"));
        assert_eq!(mode(&path), file_mode);

        let config = edit_file(&path, &env, |t| drop_tunnel(t, "bob")).unwrap();
        assert_eq!(config.tunnels.len(), 1);
        assert_eq!(fs::read_to_string(&path).unwrap(), original);
        assert_eq!(mode(&path), file_mode);
        assert_eq!(listing(&path), ["config.toml"]);
    }
}

#[test]
fn a_missing_file_and_directory_are_created() {
    let (_home, path, env) = setup(None, 0);
    let config = edit_file(&path, &env, |t| add_tunnel(t, &full_spec())).unwrap();
    assert_eq!(config.tunnels.len(), 1);
    assert_eq!(fs::read_to_string(&path).unwrap(), BOB);
    assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
    assert_eq!(listing(&path), ["config.toml"]);
}

#[test]
fn an_invalid_result_is_refused_and_nothing_written() {
    let original = [HEADER, DEFAULTS, JANE].concat();
    let (_home, path, env) = setup(Some(&original), 0o600);
    let clash = spec("clash", "9999:localhost:22");
    let Err(EditError::Invalid(e)) = edit_file(&path, &env, |t| add_tunnel(t, &clash)) else {
        panic!("a duplicate local port was accepted");
    };
    assert!(
        e.message
            .contains("local port 9999 is already used by tunnel \"jane\""),
        "{e}"
    );
    // The location is in the text as edited: the new table's `local` line.
    assert_eq!(
        (e.path.as_path(), e.line, e.column),
        (path.as_path(), 14, 10)
    );
    let missing = edit_file(&path, &env, |t| drop_tunnel(t, "nobody")).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "no tunnel named `nobody` in the config file"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), original);
    assert_eq!(listing(&path), ["config.toml"]);
}

#[test]
fn errors_in_the_file_are_located() {
    let cases: [(&[u8], &str); 3] = [
        (b"[tunnels.jane\n", ":1:14: "),
        (b"tunnels = 3\n", ":1:11: wrong type for `tunnels`"),
        (b"# caf\xe9\n", ":1:6: the config file is not valid UTF-8"),
    ];
    for (bytes, want) in cases {
        let (_home, path, env) = setup(Some(""), 0o600);
        fs::write(&path, bytes).unwrap();
        let err = edit_file(&path, &env, |t| drop_tunnel(t, "jane")).unwrap_err();
        let message = err.to_string();
        let want = format!("{}{want}", path.display());
        assert!(
            matches!(err, EditError::Invalid(_)) && message.starts_with(&want),
            "{message}"
        );
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}

#[test]
fn a_symlinked_file_is_written_through() {
    let (home, path, env) = setup(Some(JANE), 0o640);
    let link = home.path().join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    edit_file(&link, &env, |t| add_tunnel(t, &full_spec())).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{JANE}\n{BOB}"));
    assert_eq!(
        (mode(&path), listing(&path)),
        (0o640, vec!["config.toml".to_owned()])
    );
}

#[test]
fn io_errors_name_the_path_and_leave_no_temporary_file() {
    let (home, path, env) = setup(Some(JANE), 0o600);
    // Both fail for root too, which CI runs as.
    let not_a_dir = home.path().join("file/config.toml");
    fs::write(home.path().join("file"), "").unwrap();
    for bad in [path.parent().unwrap(), &not_a_dir] {
        let err = edit_file(bad, &env, |t| add_tunnel(t, &full_spec())).unwrap_err();
        assert!(
            matches!(&err, EditError::Io { path, .. } if path == bad),
            "{err}"
        );
    }
    // A rename that fails (over a non-empty directory) removes the temporary file.
    let dir = path.parent().unwrap().join("dir");
    fs::create_dir_all(dir.join("inside")).unwrap();
    let err = file::replace(&dir, "x = 1\n").unwrap_err();
    assert!(
        matches!(&err, EditError::Io { path, .. } if *path == dir),
        "{err}"
    );
    assert_eq!(listing(&path), ["config.toml", "dir"]);
}

#[test]
fn edits_at_once_apply_one_after_the_other() {
    let (_home, path, env) = setup(Some("# mine\n"), 0o600);
    let (first_inside, second_may_start) = std::sync::mpsc::channel();
    let (second_inside, first_hears) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let (path, env) = (&path, &env);
        let first = s.spawn(move || {
            edit_file(path, env, |text| {
                first_inside.send(()).unwrap();
                // Unlocked, the second edit would read the file now, before this one writes it,
                // and write over this one's tunnel. Locked, it cannot start until this is done.
                let _ = first_hears.recv_timeout(std::time::Duration::from_millis(300));
                add_tunnel(text, &spec("a", "1001:h:22"))
            })
        });
        second_may_start.recv().unwrap();
        let second = edit_file(path, env, |text| {
            let _ = second_inside.send(());
            add_tunnel(text, &spec("b", "1002:h:22"))
        });
        first.join().unwrap().unwrap();
        second.unwrap();
    });
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[tunnels.a]") && text.contains("[tunnels.b]"),
        "both edits succeeded, so both tunnels must be in the file:\n{text}"
    );
    assert_eq!(listing(&path), ["config.toml"]);
}

#[test]
fn the_first_edit_of_a_missing_directory_is_locked_too() {
    let (home, path, env) = setup(None, 0o600);
    edit_file(&path, &env, |t| add_tunnel(t, &spec("a", "1001:h:22"))).unwrap();
    assert_eq!(listing(&path), ["config.toml"]);
    // The home directory stood in for the missing one and holds nothing new.
    assert_eq!(fs::read_dir(home.path()).unwrap().count(), 1);
}

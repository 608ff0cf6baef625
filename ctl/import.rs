//! `pairtunctl import HOST`: reads the ssh config here, on the client (it is the user's file),
//! turns the Host block's forwarding lines into the same `add` request `pairtunctl add` sends,
//! and prints what it had to say about individual lines on stderr.

use std::path::{Path, PathBuf};

use pairtun::config::ssh_config::{Imported, import_ssh_config};
use pairtun::config::{Env, TunnelName};
use pairtun::protocol::TunnelSpec;

use crate::cli::ImportArgs;
use crate::failure::Failure;

/// The `add` request for `args` (tunnel, temporary, what to print when done). The ssh config
/// read is `--ssh-config`, else the one pairtun's `config` resolves tunnels against, so the
/// imported alias means the same to both. Notes about lines go to stderr, each as
/// `FILE:LINE: message`.
pub fn tunnel_spec(args: ImportArgs, config: &Path) -> Result<(TunnelSpec, bool, String), Failure> {
    let file = match &args.ssh_config {
        Some(file) => file.clone(),
        None => configured_ssh_config(config)?,
    };
    // As the daemon reads it: a regular file of bounded size, bytes that are not UTF-8 shown
    // as replacement characters rather than refused.
    let bytes = pairtun::config::read_file(&file)
        .map_err(|e| Failure::Request(format!("cannot read {}: {e}", file.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let imported = import_ssh_config(&text, &file, &Env::from_process().home, &args.host);
    for note in notes(&imported, &file) {
        eprintln!("pairtunctl: {note}");
    }
    plan(args, imported, &file).map_err(Failure::Request)
}

fn configured_ssh_config(config: &Path) -> Result<PathBuf, Failure> {
    let loaded = pairtun::config::load(config, &Env::from_process())
        .map_err(|e| Failure::Request(e.to_string()))?;
    loaded.ssh_config.ok_or_else(|| {
        Failure::Request(format!(
            "{} sets ssh_config = \"\" (no ssh config); name one with --ssh-config",
            config.display()
        ))
    })
}

/// `FILE:LINE: message` for each note (`FILE` the included file when the line is in one).
fn notes(imported: &Imported, file: &Path) -> Vec<String> {
    imported
        .notes
        .iter()
        .map(|n| {
            let shown = n.file.as_deref().unwrap_or(file);
            format!("{}:{}: {}", shown.display(), n.line, n.message)
        })
        .collect()
}

/// The request for what was imported, or why there is none.
fn plan(
    args: ImportArgs,
    imported: Imported,
    file: &Path,
) -> Result<(TunnelSpec, bool, String), String> {
    if imported.is_empty() {
        return Err(format!(
            "{} has no LocalForward, RemoteForward or DynamicForward that pairtun can use \
             for {:?}",
            file.display(),
            args.host
        ));
    }
    let name = match args.name {
        Some(name) => name,
        None => TunnelName::new(&args.host)
            .map(|n| n.to_string())
            .map_err(|e| format!("{e}; choose a name with --name"))?,
    };
    let done = format!(
        "{name}: imported from {} ({} local, {} remote, {} dynamic) and added{}",
        file.display(),
        imported.local.len(),
        imported.remote.len(),
        imported.dynamic.len(),
        if args.temporary { " (temporary)" } else { "" }
    );
    let tunnel = TunnelSpec {
        name,
        host: args.host,
        port: None,
        user: None,
        identity_files: Vec::new(),
        local: imported.local,
        remote: imported.remote,
        dynamic: imported.dynamic,
        jump: None,
        autostart: !args.no_autostart,
        probe_peer: false,
    };
    Ok((tunnel, args.temporary, done))
}

#[cfg(test)]
mod tests {
    use pairtun::config::ssh_config::parse_ssh_config_import;

    use super::*;

    fn args(host: &str, name: Option<&str>) -> ImportArgs {
        ImportArgs {
            host: host.to_owned(),
            name: name.map(str::to_owned),
            ssh_config: None,
            no_autostart: false,
            temporary: false,
        }
    }

    #[test]
    fn the_ssh_config_is_read_as_the_daemon_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let not_utf8 = dir.path().join("config");
        std::fs::write(
            &not_utf8,
            b"# caf\xe9\nHost saturn\n  LocalForward 9999 localhost:22\n",
        )
        .unwrap();
        let with = |file: &Path| ImportArgs {
            ssh_config: Some(file.to_owned()),
            ..args("saturn", None)
        };
        let (spec, _, _) = tunnel_spec(with(&not_utf8), Path::new("/unused")).unwrap();
        assert_eq!(spec.local, ["9999:localhost:22"]);
        // Not a regular file (a device, a directory): refused, not read forever.
        for odd in [Path::new("/dev/zero"), dir.path()] {
            let Err(Failure::Request(e)) = tunnel_spec(with(odd), Path::new("/unused")) else {
                panic!("{} was read", odd.display());
            };
            assert!(e.contains(&format!("cannot read {}", odd.display())), "{e}");
        }
    }

    #[test]
    fn the_alias_becomes_name_and_host() {
        let text = "Host saturn\n  LocalForward 9999 localhost:1235\n  DynamicForward 1080\n";
        let file = Path::new("/home/me/.ssh/config");
        let (spec, temporary, done) = plan(
            args("saturn", None),
            parse_ssh_config_import(text, "saturn"),
            file,
        )
        .unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.host.as_str()),
            ("saturn", "saturn")
        );
        assert_eq!(spec.local, ["9999:localhost:1235"]);
        assert_eq!(spec.dynamic, ["1080"]);
        assert!(spec.autostart && !temporary);
        assert!(done.contains("(1 local, 0 remote, 1 dynamic)"), "{done}");
    }

    #[test]
    fn nothing_to_import_and_bad_names_say_what_to_do() {
        let file = Path::new("/c");
        let empty = plan(args("x", None), Imported::default(), file).unwrap_err();
        assert!(empty.contains("no LocalForward"), "{empty}");
        let text = "Host *.lab\n  LocalForward 1 h:2\n";
        let imported = parse_ssh_config_import(text, "a b.lab");
        let bad = plan(args("a b.lab", None), imported.clone(), file).unwrap_err();
        assert!(bad.contains("--name"), "{bad}");
        let (spec, ..) = plan(args("a b.lab", Some("lab")), imported, file).unwrap();
        assert_eq!(spec.name, "lab");
    }

    #[test]
    fn notes_name_file_and_line() {
        let text = "Host s\n  LocalForward 1:h:2\n";
        let lines = notes(&parse_ssh_config_import(text, "s"), Path::new("/c"));
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("/c:2: OpenSSH rejects this line"),
            "{}",
            lines[0]
        );
    }
}

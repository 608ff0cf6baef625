//! Commands that need no daemon: installing the user service, shell completions, man pages.
//! The service files are the repository's own (`systemd/`, `launchd/`), with real paths filled in.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::CommandFactory;

use crate::cli::{Binary, Cli, ServiceAction};
use crate::failure::Failure;
use crate::out::Out;

const UNIT: &str = include_str!("../systemd/pairtund.service");
const PLIST: &str = include_str!("../launchd/dev.pairtun.pairtund.plist");
const LABEL: &str = "dev.pairtun.pairtund";

/// The systemd unit with `ExecStart` running `pairtund` with `args`.
pub fn unit_text(pairtund: &Path, args: &[String]) -> String {
    let word = |text: &str| {
        // systemd expands `%` specifiers and `$` variables in ExecStart: doubled, they are text.
        let text = text.replace('%', "%%").replace('$', "$$");
        // It splits on spaces unless the word is quoted.
        if text.contains(char::is_whitespace) || text.contains(['"', '\\']) {
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        } else {
            text
        }
    };
    let exec = std::iter::once(pairtund.display().to_string())
        .chain(args.iter().cloned())
        .map(|w| word(&w))
        .collect::<Vec<_>>()
        .join(" ");
    UNIT.lines()
        .map(|line| {
            if line.starts_with("ExecStart=") {
                format!("ExecStart={exec}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The launchd plist with the real binary and home paths (launchd expands neither `~` nor
/// `$HOME`), running `pairtund` with `args`.
pub fn plist_text(pairtund: &Path, args: &[String], home: &Path) -> String {
    let program = std::iter::once(pairtund.display().to_string())
        .chain(args.iter().cloned())
        .map(|w| format!("<string>{}</string>", xml_escape(&w)))
        .collect::<String>();
    PLIST
        .replace("<string>/Users/USER/.cargo/bin/pairtund</string>", &program)
        .replace("/Users/USER", &xml_escape(&home.display().to_string()))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `pairtund` installed next to this `pairtunctl`, by the name `PATH` gives it when that leads
/// to the same file: a package manager's stable link (`/opt/homebrew/bin`, a Nix profile)
/// survives upgrades, the versioned directory it points into does not.
fn pairtund_path() -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Request(format!("cannot locate pairtunctl: {e}")))?;
    let daemon = exe.with_file_name("pairtund");
    if !daemon.is_file() {
        return Err(Failure::Request(format!(
            "pairtund not found at {} (next to pairtunctl); install both with `cargo install --path .`",
            daemon.display()
        )));
    }
    let real = std::fs::canonicalize(&daemon).unwrap_or(daemon);
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(on_path(&path, &real).unwrap_or(real))
}

/// The first `pairtund` on `path` (absolute entries only) that is the file `real`.
fn on_path(path: &std::ffi::OsStr, real: &Path) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("pairtund"))
        .find(|candidate| std::fs::canonicalize(candidate).is_ok_and(|c| c == real))
}

/// Moves a file about to be replaced aside when it differs from `text` (a hand-edited unit or
/// plist is not lost); returns where it went.
fn keep_aside(path: &Path, text: &str) -> Result<Option<PathBuf>, Failure> {
    match std::fs::read(path) {
        Ok(old) if old != text.as_bytes() => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{stamp}.bak"));
            let aside = PathBuf::from(name);
            std::fs::rename(path, &aside).map_err(|e| {
                Failure::Request(format!("cannot move {} aside: {e}", path.display()))
            })?;
            Ok(Some(aside))
        }
        _ => Ok(None),
    }
}

fn home() -> Result<PathBuf, Failure> {
    pairtun::config::Env::from_process()
        .home
        .canonicalize()
        .map_err(|e| Failure::Request(format!("cannot find your home directory: {e}")))
}

/// `pairtunctl service install|uninstall`; `args` are pairtund's (`--config`, `--socket` when
/// given to pairtunctl, so the service runs what was asked for).
pub fn service(action: ServiceAction, args: &[String], out: Out) -> Result<(), Failure> {
    let pairtund = pairtund_path()?;
    if cfg!(target_os = "macos") {
        launchd(action, &pairtund, args, out)
    } else {
        systemd(action, &pairtund, args, out)
    }
}

fn systemd(
    action: ServiceAction,
    pairtund: &Path,
    args: &[String],
    out: Out,
) -> Result<(), Failure> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .map_or_else(|| home().map(|h| h.join(".config")), Ok)?;
    let unit = config_home.join("systemd/user/pairtund.service");
    match action {
        ServiceAction::Install { dry_run } => {
            let text = unit_text(pairtund, args);
            if dry_run {
                out.line(&format!(
                    "# would write {}\n{text}# then: systemctl --user daemon-reload && systemctl --user enable --now pairtund.service",
                    unit.display()
                ))?;
                return Ok(());
            }
            write(&unit, &text, out)?;
            run("systemctl", &["--user", "daemon-reload"])?;
            run(
                "systemctl",
                &["--user", "enable", "--now", "pairtund.service"],
            )?;
            out.line(&format!(
                "installed {} and started pairtund (systemctl --user status pairtund)",
                unit.display()
            ))?;
        }
        ServiceAction::Uninstall { dry_run } => {
            if dry_run {
                out.line(&format!(
                    "# would run: systemctl --user disable --now pairtund.service\n# then remove {}",
                    unit.display()
                ))?;
                return Ok(());
            }
            // Disabling a unit that is already gone is not an error worth stopping for.
            let _ = run(
                "systemctl",
                &["--user", "disable", "--now", "pairtund.service"],
            );
            remove(&unit)?;
            run("systemctl", &["--user", "daemon-reload"])?;
            out.line(&format!("stopped pairtund and removed {}", unit.display()))?;
        }
    }
    Ok(())
}

fn launchd(
    action: ServiceAction,
    pairtund: &Path,
    args: &[String],
    out: Out,
) -> Result<(), Failure> {
    let home = home()?;
    let plist = home
        .join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"));
    let domain = format!("gui/{}", nix::unistd::getuid());
    match action {
        ServiceAction::Install { dry_run } => {
            let text = plist_text(pairtund, args, &home);
            if dry_run {
                out.line(&format!(
                    "# would write {}\n{text}# then: launchctl bootstrap {domain} {}",
                    plist.display(),
                    plist.display()
                ))?;
                return Ok(());
            }
            std::fs::create_dir_all(home.join("Library/Logs"))
                .map_err(io("create ~/Library/Logs"))?;
            write(&plist, &text, out)?;
            run(
                "launchctl",
                &["bootstrap", &domain, &plist.display().to_string()],
            )?;
            out.line(&format!(
                "installed {} and started pairtund",
                plist.display()
            ))?;
        }
        ServiceAction::Uninstall { dry_run } => {
            if dry_run {
                out.line(&format!(
                    "# would run: launchctl bootout {domain}/{LABEL}\n# then remove {}",
                    plist.display()
                ))?;
                return Ok(());
            }
            let _ = run("launchctl", &["bootout", &format!("{domain}/{LABEL}")]);
            remove(&plist)?;
            out.line(&format!("stopped pairtund and removed {}", plist.display()))?;
        }
    }
    Ok(())
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::Request(format!("cannot {what}: {e}"))
}

/// Writes `text` to `path`, a different file already there moved aside first (and said so).
fn write(path: &Path, text: &str, out: Out) -> Result<(), Failure> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Request(format!("cannot create {}: {e}", dir.display())))?;
    }
    if let Some(aside) = keep_aside(path, text)? {
        out.line(&format!(
            "{} differed from the one pairtunctl writes; kept it as {}",
            path.display(),
            aside.display()
        ))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Failure::Request(format!("cannot write {}: {e}", path.display())))
}

fn remove(path: &Path) -> Result<(), Failure> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Failure::Request(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), Failure> {
    let shown = format!("{program} {}", args.join(" "));
    let out = Process::new(program)
        .args(args)
        .output()
        .map_err(|e| Failure::Request(format!("cannot run `{shown}`: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let hint = if program == "systemctl" {
        " (is a user manager running? `loginctl enable-linger $USER` starts one without a login)"
    } else {
        ""
    };
    Err(Failure::Request(format!(
        "`{shown}` failed: {}{hint}",
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// `pairtunctl completions SHELL [--binary B]`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell, binary: Binary, out: Out) -> Result<(), Failure> {
    let (mut command, name) = match binary {
        Binary::Pairtunctl => (Cli::command(), "pairtunctl"),
        Binary::Pairtund => (pairtun::daemon::DaemonArgs::command(), "pairtund"),
    };
    // Rendered first: clap_complete panics when it cannot write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    Ok(out.bytes(&script)?)
}

/// `pairtunctl man DIR`: man pages for both binaries (and each pairtunctl subcommand).
pub fn man(dir: &Path, out: Out) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Request(format!("cannot create {}: {e}", dir.display())))?;
    for command in [Cli::command(), pairtun::daemon::DaemonArgs::command()] {
        clap_mangen::generate_to(command, dir).map_err(|e| {
            Failure::Request(format!("cannot write man pages to {}: {e}", dir.display()))
        })?;
    }
    out.line(&format!("man pages written to {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_points_at_the_real_binary() {
        let text = unit_text(Path::new("/opt/my tools/pairtund"), &[]);
        assert!(
            text.contains("\nExecStart=\"/opt/my tools/pairtund\"\n"),
            "{text}"
        );
        assert!(text.contains("Type=notify") && text.contains("ExecReload="));
        assert_eq!(text.matches("ExecStart=").count(), 1);
        let odd = unit_text(Path::new("/opt/100%/$HOME/pairtund"), &[]);
        assert!(
            odd.contains("\nExecStart=/opt/100%%/$$HOME/pairtund\n"),
            "{odd}"
        );
        let args = ["--config".to_owned(), "/home/j/my pairing.toml".to_owned()];
        let with = unit_text(Path::new("/usr/bin/pairtund"), &args);
        assert!(
            with.contains("\nExecStart=/usr/bin/pairtund --config \"/home/j/my pairing.toml\"\n"),
            "{with}"
        );
    }

    #[test]
    fn the_daemon_is_named_by_its_link_on_path_when_that_is_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let cellar = dir.path().join("cellar/1.2/bin");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&cellar).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(cellar.join("pairtund"), "").unwrap();
        std::os::unix::fs::symlink(cellar.join("pairtund"), bin.join("pairtund")).unwrap();
        let real = std::fs::canonicalize(cellar.join("pairtund")).unwrap();
        let path = std::env::join_paths([dir.path().join("empty"), bin.clone()]).unwrap();
        assert_eq!(on_path(&path, &real), Some(bin.join("pairtund")));
        // Another pairtund on PATH is not this one.
        let other = dir.path().join("other.real");
        std::fs::write(&other, "").unwrap();
        assert_eq!(
            on_path(&path, &std::fs::canonicalize(&other).unwrap()),
            None
        );
    }

    #[test]
    fn a_hand_edited_file_is_kept_aside_and_an_identical_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("pairtund.service");
        std::fs::write(&unit, "mine\n").unwrap();
        let aside = keep_aside(&unit, "ours\n").unwrap().expect("moved aside");
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), "mine\n");
        assert!(!unit.exists());
        std::fs::write(&unit, "ours\n").unwrap();
        assert_eq!(keep_aside(&unit, "ours\n").unwrap(), None);
        assert_eq!(
            keep_aside(&dir.path().join("missing"), "ours\n").unwrap(),
            None
        );
    }

    #[test]
    fn plist_has_absolute_paths_only() {
        let args = ["--socket".to_owned(), "/tmp/p&t.sock".to_owned()];
        let text = plist_text(
            Path::new("/Users/jane/.cargo/bin/pairtund"),
            &args,
            Path::new("/Users/jane"),
        );
        assert!(
            text.contains(
                "<string>/Users/jane/.cargo/bin/pairtund</string><string>--socket</string>\
                 <string>/tmp/p&amp;t.sock</string>"
            ),
            "{text}"
        );
        assert!(text.contains("/Users/jane/Library/Logs/pairtund.log"));
        assert!(!text.contains("USER/"), "{text}");
    }
}

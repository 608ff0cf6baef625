//! `pairtunctl`'s command line (clap derive): every command and flag of SPEC §3, and the value
//! parsers that turn a bad name, forward spec or `--wait` timeout into a usage error (exit 2)
//! before anything is sent to the daemon.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{ArgGroup, Args, Parser, Subcommand};

use pairtun::config::{
    TunnelName, parse_forward_dynamic, parse_forward_local, parse_forward_remote,
};

/// How long `up --wait` waits when no timeout is given.
pub const DEFAULT_WAIT: &str = "30s";

/// Control pairtund, the daemon that keeps SSH tunnels up.
#[derive(Debug, Parser)]
#[command(name = "pairtunctl", version, propagate_version = true)]
pub struct Cli {
    /// Control socket [default: $PAIRTUN_SOCKET, else $XDG_RUNTIME_DIR/pairtun/pairtund.sock]
    // The variables are read with the defaults (`Env`), where an empty one counts as unset.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Configuration file, for `doctor`, `invite` and `import` (the daemon reads its own)
    /// [default: $PAIRTUN_CONFIG, else $XDG_CONFIG_HOME/pairtun/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the daemon's replies as JSON (one object per line for streams)
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, PartialEq, Subcommand)]
pub enum Command {
    /// Show every tunnel, or one: state, forwards, traffic, round trip, retries, errors
    Status {
        /// Only this tunnel
        name: Option<String>,
        /// Keep redrawing on every change (JSON lines with --json)
        #[arg(long, short = 'w')]
        watch: bool,
    },
    /// Enable a tunnel and connect now, skipping any pending backoff
    Up {
        /// The tunnel
        name: String,
        /// Show progress until the tunnel is up or fails, for at most TIMEOUT
        #[arg(
            long,
            value_name = "TIMEOUT",
            num_args = 0..=1,
            // `--wait jane` must not read the tunnel name as a timeout.
            require_equals = true,
            default_missing_value = DEFAULT_WAIT,
            value_parser = parse_timeout,
        )]
        wait: Option<Duration>,
    },
    /// Close a tunnel and its listeners; it stays down until `up`
    Down {
        /// The tunnel
        name: String,
    },
    /// Drop a tunnel's session and reconnect now
    Restart {
        /// The tunnel
        name: String,
    },
    /// Add a tunnel and start it (saved to the config file unless --temporary)
    Add(AddArgs),
    /// Add a tunnel from a ~/.ssh/config Host block's LocalForward/RemoteForward/DynamicForward
    Import(ImportArgs),
    /// Stop a tunnel and remove it (from the config file too, unless --temporary)
    Drop {
        /// The tunnel
        name: String,
        /// Leave the config file alone
        #[arg(long)]
        temporary: bool,
    },
    /// Re-read the config file and apply only what changed
    Reload,
    /// Recent daemon events (state changes, errors)
    Logs {
        /// Only this tunnel's events
        name: Option<String>,
        /// Keep printing new events until Ctrl-C
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Print the partner's matching config for a pairing tunnel (-L mirrored as -R, and back)
    Invite {
        /// The tunnel
        name: String,
    },
    /// Check config, agent, keys, known_hosts and (when connected) what the relay allowed
    Doctor {
        /// Only this tunnel
        name: Option<String>,
    },
    /// Check that the daemon answers
    Ping,
    /// Versions of pairtunctl, pairtund and the control protocol
    Version,
    /// Install or remove pairtund as a user service (systemd user unit; launchd agent on macOS)
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Print a shell completion script
    Completions {
        /// The shell
        shell: clap_complete::Shell,
        /// Which binary to complete
        #[arg(long, value_enum, default_value = "pairtunctl")]
        binary: Binary,
    },
    /// Write man pages for pairtund and pairtunctl into DIR
    Man {
        /// Output directory (e.g. ~/.local/share/man/man1)
        dir: std::path::PathBuf,
    },
}

/// `service` actions.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum ServiceAction {
    /// Write the unit (or plist) with this machine's paths, enable and start it
    Install {
        /// Print what would be written and run, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop, disable and remove it
    Uninstall {
        /// Print what would be run, change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

/// The binaries completions can be generated for.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum Binary {
    /// The client.
    Pairtunctl,
    /// The daemon.
    Pairtund,
}

/// `add`'s arguments, named like `ssh`'s options where ssh has one.
#[derive(Debug, PartialEq, Args)]
#[command(group(
    // The daemon rejects a tunnel without forwards; saying so here makes it a usage error.
    ArgGroup::new("forwards").required(true).multiple(true).args(["local", "remote", "dynamic"])
))]
pub struct AddArgs {
    /// Tunnel name: letters, digits, '_', '.', '-'
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// Relay host name, or a Host alias in ~/.ssh/config
    #[arg(long, value_name = "HOST", value_parser = NonEmptyStringValueParser::new())]
    pub host: String,
    /// SSH port [default: ~/.ssh/config, else 22]
    #[arg(long, short = 'p', value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Login user [default: ~/.ssh/config, else the local user]
    #[arg(long, short = 'l', value_name = "USER", value_parser = NonEmptyStringValueParser::new())]
    pub user: Option<String>,
    /// Private key file to try (repeatable)
    #[arg(long = "identity", short = 'i', value_name = "FILE", value_parser = NonEmptyStringValueParser::new())]
    pub identity: Vec<String>,
    /// Local forward, as ssh -L: [bind:]port:host:hostport (repeatable)
    #[arg(long, short = 'L', value_name = "SPEC", value_parser = parse_local)]
    pub local: Vec<String>,
    /// Remote forward, as ssh -R: [bind:]port:host:hostport (repeatable)
    #[arg(long, short = 'R', value_name = "SPEC", value_parser = parse_remote)]
    pub remote: Vec<String>,
    /// SOCKS forward, as ssh -D: [bind:]port (repeatable)
    #[arg(long, short = 'D', value_name = "SPEC", value_parser = parse_dynamic)]
    pub dynamic: Vec<String>,
    /// ProxyJump, as OpenSSH: [user@]host[:port], or a chain "a,b"
    #[arg(long, short = 'J', value_name = "JUMP", value_parser = NonEmptyStringValueParser::new())]
    pub jump: Option<String>,
    /// Do not bring it up when the daemon starts
    #[arg(long)]
    pub no_autostart: bool,
    /// At each connect, check whether each -L target answers with an SSH banner (pairing:
    /// status shows "peer: up"); opens one extra connection to each target
    #[arg(long)]
    pub probe_peer: bool,
    /// Keep it out of the config file (it lives until the daemon exits)
    #[arg(long)]
    pub temporary: bool,
}

/// `import`'s arguments.
#[derive(Debug, PartialEq, Args)]
pub struct ImportArgs {
    /// The Host alias to import; also the tunnel's name and `host`
    pub host: String,
    /// Name the tunnel differently (when the alias is not a valid tunnel name)
    #[arg(long, value_parser = parse_name)]
    pub name: Option<String>,
    /// The ssh config to read [default: pairtun's `ssh_config`, else ~/.ssh/config]
    #[arg(long, value_name = "PATH")]
    pub ssh_config: Option<PathBuf>,
    /// Do not bring it up when the daemon starts
    #[arg(long)]
    pub no_autostart: bool,
    /// Keep it out of the config file (it lives until the daemon exits)
    #[arg(long)]
    pub temporary: bool,
}

/// `--wait`'s value: a duration such as `30s`, `2m` or `1m30s`; a bare number is seconds. At
/// most a day (a deadline is formed from it).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let timeout = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{e}; expected a duration like 30s, 2m or 1m30s"))?,
    };
    if timeout > pairtun::config::MAX_DURATION {
        return Err("too long; at most 24h".to_owned());
    }
    Ok(timeout)
}

fn parse_name(text: &str) -> Result<String, String> {
    TunnelName::new(text).map(|name| name.to_string())
}

/// Clap already quotes the value in its message; the library's own quote would repeat it.
fn unquoted(spec: &str, error: String) -> String {
    let quoted = format!("{spec:?}: ");
    error
        .strip_prefix(&quoted)
        .map(str::to_owned)
        .unwrap_or(error)
}

/// `-L`: the same parser as the config file's `local`, so both accept exactly the same text.
pub fn parse_local(spec: &str) -> Result<String, String> {
    match parse_forward_local(spec) {
        Ok(_) => Ok(spec.to_owned()),
        Err(e) => Err(unquoted(spec, e)),
    }
}

/// `-R`: the same parser as the config file's `remote`.
pub fn parse_remote(spec: &str) -> Result<String, String> {
    match parse_forward_remote(spec) {
        Ok(_) => Ok(spec.to_owned()),
        Err(e) => Err(unquoted(spec, e)),
    }
}

/// `-D`: the same parser as the config file's `dynamic`.
pub fn parse_dynamic(spec: &str) -> Result<String, String> {
    match parse_forward_dynamic(spec) {
        Ok(_) => Ok(spec.to_owned()),
        Err(e) => Err(unquoted(spec, e)),
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;

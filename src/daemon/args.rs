//! `pairtund`'s command line, in the library so `pairtunctl man` and `completions` can render
//! it from the same definition the binary parses.

use std::path::PathBuf;

/// Keep SSH port forwards for pair programming up all day.
///
/// Runs in the foreground (service managers expect that); SIGTERM/SIGINT stop it gracefully,
/// SIGHUP reloads the config file. Control it with pairtunctl.
#[derive(Debug, clap::Parser)]
#[command(name = "pairtund", version, about)]
pub struct DaemonArgs {
    /// Configuration file [default: $PAIRTUN_CONFIG, else $XDG_CONFIG_HOME/pairtun/config.toml]
    // The variables are read with the defaults (`Env`), where an empty one counts as unset.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Control socket [default: $PAIRTUN_SOCKET, else $XDG_RUNTIME_DIR/pairtun/pairtund.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Control connections held at once; at the limit the one idle longest is closed to make
    /// room, so silent clients cannot lock pairtunctl out
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::control::Limits::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096),
    )]
    pub control_connections: usize,
}

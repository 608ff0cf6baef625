//! `pairtund`: holds the configured SSH tunnels open, in the foreground (service managers
//! expect that). Thin by design: arguments, logging, signals; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use futures_util::StreamExt;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;

use pairtun::config::{self, Env};
use pairtun::daemon::Daemon;

/// Keep SSH port forwards for pair programming up all day.
#[derive(Debug, Parser)]
#[command(name = "pairtund", version, about)]
struct Args {
    /// Configuration file [default: $XDG_CONFIG_HOME/pairtun/config.toml]
    #[arg(long, env = "PAIRTUN_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    pairtun::logging::init();
    let env = Env::from_process();
    let path = args.config.unwrap_or_else(|| config::default_path(&env));
    let config = match config::load(&path, &env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pairtund: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), "pairtund starting");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pairtund: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: config::Config) -> ExitCode {
    let mut signals = match Signals::new([SIGHUP, SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pairtund: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let daemon = Daemon::start(&config);
    // Ready once the tunnels are started, not connected: a relay that is down must not fail
    // the unit. (No-op without NOTIFY_SOCKET.)
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    loop {
        match signals.next().await {
            Some(SIGHUP) => {
                tracing::warn!("SIGHUP: reloading arrives with the control plane; config unchanged")
            }
            Some(signal) => {
                tracing::info!(signal, "stopping; a second signal exits at once");
                break;
            }
            None => break,
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let shutdown = daemon.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return ExitCode::SUCCESS,
            signal = signals.next() => match signal {
                Some(SIGTERM | SIGINT) => {
                    tracing::warn!("second signal: exiting without waiting for connections");
                    return ExitCode::from(130);
                }
                Some(_) => {}
                None => return ExitCode::SUCCESS,
            },
        }
    }
}

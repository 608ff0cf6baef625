//! `pairtund`: holds the configured SSH tunnels open, in the foreground (service managers
//! expect that). Thin by design: arguments, logging, signals, the control socket; the work is
//! in the library.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt;
use sd_notify::NotifyState;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use pairtun::config::{self, Env};
use pairtun::control::{server, socket};
use pairtun::daemon::{ControlHandler, Daemon, DaemonArgs};
use pairtun::wakeup::{self, Sources};

fn main() -> ExitCode {
    let args = DaemonArgs::parse();
    pairtun::logging::init();
    pairtun::accept::raise_fd_limit();
    let env = Env::from_process();
    let path = args.config.unwrap_or_else(|| config::default_path(&env));
    let config = match config::load(&path, &env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pairtund: {e}");
            return ExitCode::FAILURE;
        }
    };
    let socket_path = args
        .socket
        .unwrap_or_else(|| socket::default_socket_path(&env));
    tracing::info!(config = %path.display(), socket = %socket_path.display(), version = env!("CARGO_PKG_VERSION"), "pairtund starting");
    // One thread: a forwarded byte then never hops between worker threads (cross-CPU wake-ups
    // dominated the profile), which measured lower latency and higher throughput (BENCHMARKS.md).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pairtund: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let limits = server::Limits {
        max_connections: args.control_connections,
        ..server::Limits::default()
    };
    runtime.block_on(run(config, env, socket_path, limits))
}

async fn run(
    config: config::Config,
    env: Env,
    socket_path: PathBuf,
    limits: server::Limits,
) -> ExitCode {
    let mut signals = match Signals::new([SIGHUP, SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pairtund: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The socket first: a second daemon must be refused before it touches any tunnel.
    let listener = match socket::bind(&socket_path).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pairtund: {e}");
            return ExitCode::FAILURE;
        }
    };
    let daemon = Arc::new(Daemon::start(&config, env));
    // Dropped with `run`: no wake-ups once the daemon is stopping.
    let wakeups = {
        let daemon = daemon.clone();
        AbortOnDropHandle::new(tokio::spawn(wakeup::watch(Sources::system(), move |why| {
            daemon.wakeup(why)
        })))
    };
    let stop_serving = CancellationToken::new();
    let serving = tokio::spawn(server::serve(
        listener,
        Arc::new(ControlHandler::new(daemon.clone())),
        stop_serving.clone(),
        limits,
    ));
    // Ready once the socket listens and the tunnels are started, not connected: a relay that
    // is down must not fail the unit. (Every notify is a no-op without NOTIFY_SOCKET.)
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&daemon.summary())]);
    // Watchdog pings go out from this loop, and only after every tunnel supervisor has
    // answered a probe: a wedged supervisor gets the daemon restarted, not just a dead runtime.
    let watchdog = sd_notify::watchdog_enabled();
    let mut ping = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |p| p / 2));
    let mut status = daemon.summary();
    // A probe runs beside this loop, so signals are still handled while it waits.
    let mut probing: Option<tokio::task::JoinHandle<bool>> = None;
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Some(SIGHUP) => reload(&daemon).await,
                Some(signal) => {
                    tracing::info!(signal, "stopping; a second signal exits at once");
                    break;
                }
                None => break,
            },
            _ = ping.tick(), if watchdog.is_some() && probing.is_none() => {
                let within = watchdog.map_or(Duration::from_secs(1), |p| p / 4);
                let daemon = daemon.clone();
                probing = Some(tokio::spawn(async move { daemon.probe(within).await }));
            }
            answered = async { probing.as_mut().expect("guarded").await }, if probing.is_some() => {
                probing = None;
                if answered.unwrap_or(false) {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                } else {
                    tracing::error!("a tunnel supervisor did not answer; withholding the watchdog ping");
                }
            }
            () = daemon.changed() => {
                let now = daemon.summary();
                if now != status {
                    status = now;
                    let _ = sd_notify::notify(&[NotifyState::Status(&status)]);
                }
            }
        }
    }
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    if let Some(probe) = probing {
        probe.abort();
    }
    drop(wakeups);
    // Stop accepting control connections; the socket file goes with the listener.
    stop_serving.cancel();
    let shutdown = async {
        daemon.shutdown().await;
        let _ = serving.await;
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return ExitCode::SUCCESS,
            signal = signals.next() => match signal {
                Some(SIGTERM | SIGINT) => {
                    tracing::warn!("second signal: exiting without waiting for connections");
                    // The socket went with the listener when stopping began; removing it by
                    // name now could take a newer daemon's.
                    return ExitCode::from(130);
                }
                Some(_) => {}
                None => return ExitCode::SUCCESS,
            },
        }
    }
}

async fn reload(daemon: &Daemon) {
    // systemd ≥ 253 (Type=notify-reload) wants the monotonic time with RELOADING=1.
    let mut reloading = vec![NotifyState::Reloading];
    reloading.extend(NotifyState::monotonic_usec_now().ok());
    let _ = sd_notify::notify(&reloading);
    match daemon.reload().await {
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "reload failed; the running configuration is unchanged")
        }
    }
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&daemon.summary())]);
}

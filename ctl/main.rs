//! `pairtunctl`: controls a running `pairtund` over its Unix socket (SPEC §3). Thin by design:
//! parse the arguments, find the socket, run the command, turn the outcome into the exit
//! status — 0 success, 1 failed request, 2 usage (clap's own), 3 daemon not running.

#![forbid(unsafe_code)]

mod checks;
mod cli;
mod commands;
mod failure;
#[cfg(test)]
mod fixtures;
mod human;
mod import;
mod local;
mod out;
mod render;
mod streams;
mod version;

use std::process::ExitCode;

use clap::Parser;

use pairtun::config::{Env, default_path};
use pairtun::control::default_socket_path;

use crate::cli::Cli;
use crate::commands::Ctx;
use crate::out::Out;

fn main() -> ExitCode {
    // Exits 2 on a usage error, 0 for --help/--version.
    let cli = Cli::parse();
    let env = Env::from_process();
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| default_socket_path(&env));
    let config = cli.config.clone().unwrap_or_else(|| default_path(&env));
    // Absolute: a service does not start in this directory.
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut daemon_args = Vec::new();
    for (flag, path) in [("--config", &cli.config), ("--socket", &cli.socket)] {
        if let Some(path) = path {
            daemon_args.extend([flag.to_owned(), cwd.join(path).display().to_string()]);
        }
    }
    let ctx = Ctx {
        socket,
        config,
        out: Out::detect(cli.json),
        daemon_args,
    };
    // One thread is plenty for one connection; it also keeps start-up cheap for scripts.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pairtunctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(&ctx, cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = failure.message() {
                // Line by line: several-line messages are ours; what they quote is escaped.
                let lines: Vec<_> = message.split('\n').map(human::printable).collect();
                eprintln!("pairtunctl: {}", lines.join("\n"));
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

//! One function per command: build the request, send it, print the reply. The streaming
//! commands (`status --watch`, `up --wait`, `logs`) are in [`crate::streams`].

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use pairtun::control::Client;
use pairtun::protocol::{Request, Response, TunnelSpec};

use crate::cli::{AddArgs, Command};
use crate::failure::Failure;
use crate::out::Out;
use crate::{checks, import, local, render, streams, version};

/// What every command needs: where the daemon is and how to print.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The control socket.
    pub socket: PathBuf,
    /// The config file (read by the client-side commands: `doctor`, `invite`).
    pub config: PathBuf,
    /// Output settings.
    pub out: Out,
    /// `--config` / `--socket` as given on the command line, as pairtund arguments: a service
    /// installed with them runs with them.
    pub daemon_args: Vec<String>,
}

impl Ctx {
    /// A connection to the daemon, greeting checked.
    pub async fn connect(&self) -> Result<Client, Failure> {
        Ok(Client::connect(&self.socket).await?)
    }

    /// Sends a request that has one reply; an `error` reply becomes the failure.
    pub async fn ask(&self, request: &Request) -> Result<Response, Failure> {
        let reply = self.connect().await?.request(request).await?;
        match reply {
            Response::Error { .. } => Err(self.out.error_reply(&reply)),
            reply => Ok(reply),
        }
    }
}

/// Runs one command.
pub async fn run(ctx: &Ctx, command: Command) -> Result<(), Failure> {
    match command {
        Command::Service { action } => local::service(action, &ctx.daemon_args, ctx.out),
        Command::Completions { shell, binary } => local::completions(shell, binary, ctx.out),
        Command::Man { dir } => local::man(&dir, ctx.out),
        Command::Status { name, watch: false } => status(ctx, name).await,
        Command::Status { name, watch: true } => streams::watch(ctx, name).await,
        Command::Up {
            name,
            wait: Some(timeout),
        } => streams::up_wait(ctx, name, timeout).await,
        Command::Up { name, wait: None } => {
            let done = format!("{name}: up requested, connecting");
            acted(ctx, Request::Up { name, wait: false }, done).await
        }
        Command::Down { name } => {
            let done = format!("{name}: down");
            acted(ctx, Request::Down { name }, done).await
        }
        Command::Restart { name } => {
            let done = format!("{name}: reconnecting");
            acted(ctx, Request::Restart { name }, done).await
        }
        Command::Add(args) => {
            let temporary = args.temporary;
            let done = format!(
                "{}: added{}",
                args.name,
                if temporary { " (temporary)" } else { "" }
            );
            let tunnel = tunnel_spec(args, std::env::current_dir().ok().as_deref());
            acted(ctx, Request::Add { tunnel, temporary }, done).await
        }
        Command::Import(args) => {
            let (tunnel, temporary, done) = import::tunnel_spec(args, &ctx.config)?;
            acted(ctx, Request::Add { tunnel, temporary }, done).await
        }
        Command::Drop { name, temporary } => {
            let done = format!(
                "{name}: dropped{}",
                if temporary {
                    " (config file untouched)"
                } else {
                    ""
                }
            );
            acted(ctx, Request::Drop { name, temporary }, done).await
        }
        Command::Reload => reload(ctx).await,
        Command::Logs { name, follow } => streams::logs(ctx, name, follow).await,
        Command::Doctor { name } => checks::doctor(ctx, name).await,
        Command::Invite { name } => checks::invite(ctx, &name),
        Command::Ping => ping(ctx).await,
        Command::Version => version::version(ctx).await,
    }
}

async fn status(ctx: &Ctx, name: Option<String>) -> Result<(), Failure> {
    match ctx.ask(&Request::Status { name }).await? {
        Response::Status { tunnels } if ctx.out.json => {
            Ok(ctx.out.bytes(&render::status_json(&tunnels))?)
        }
        Response::Status { tunnels } => {
            Ok(ctx
                .out
                .text(&render::table(&tunnels, SystemTime::now(), ctx.out.colour))?)
        }
        other => Err(Failure::unexpected(&other)),
    }
}

/// A request answered with `ok`: prints the daemon's message, else `done`.
async fn acted(ctx: &Ctx, request: Request, done: String) -> Result<(), Failure> {
    match ctx.ask(&request).await? {
        reply @ Response::Ok { .. } if ctx.out.json => Ok(ctx.out.json_line(&reply)?),
        Response::Ok { message } => Ok(ctx.out.line(message.as_deref().unwrap_or(&done))?),
        other => Err(Failure::unexpected(&other)),
    }
}

/// The tunnel `add` sends. Relative identity paths are made absolute here: the daemon's
/// working directory means nothing to the user (`~/` and `$VAR` are left for the daemon).
pub fn tunnel_spec(args: AddArgs, cwd: Option<&Path>) -> TunnelSpec {
    let absolute = |file: String| match cwd {
        Some(cwd) if !file.starts_with(['/', '~', '$']) => cwd.join(&file).display().to_string(),
        _ => file,
    };
    TunnelSpec {
        name: args.name,
        host: args.host,
        port: args.port,
        user: args.user,
        identity_files: args.identity.into_iter().map(absolute).collect(),
        local: args.local,
        remote: args.remote,
        dynamic: args.dynamic,
        jump: args.jump,
        autostart: !args.no_autostart,
        probe_peer: args.probe_peer,
    }
}

async fn reload(ctx: &Ctx) -> Result<(), Failure> {
    match ctx.ask(&Request::Reload {}).await? {
        reply @ Response::Reloaded { .. } if ctx.out.json => Ok(ctx.out.json_line(&reply)?),
        Response::Reloaded {
            added,
            removed,
            changed,
            unchanged,
        } => {
            let summary = render::reloaded(&added, &removed, &changed, unchanged.len());
            Ok(ctx.out.line(&summary)?)
        }
        other => Err(Failure::unexpected(&other)),
    }
}

async fn ping(ctx: &Ctx) -> Result<(), Failure> {
    match ctx.ask(&Request::Ping {}).await? {
        reply @ Response::Pong { .. } if ctx.out.json => Ok(ctx.out.json_line(&reply)?),
        Response::Pong { daemon, protocol } => Ok(ctx.out.line(&format!(
            "pong from pairtund {daemon} (control protocol {protocol})"
        ))?),
        other => Err(Failure::unexpected(&other)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn add(args: &[&str]) -> AddArgs {
        let argv = ["pairtunctl", "add"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(Command::Add(add)) => add,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_builds_the_spec_the_daemon_expects() {
        let args = add(&[
            "jane",
            "--host",
            "saturn",
            "-L",
            "9999:localhost:1235",
            "-i",
            "keys/id",
            "-i",
            "~/.ssh/id",
            "-i",
            "/k",
        ]);
        let spec = tunnel_spec(args, Some(Path::new("/home/me")));
        assert_eq!(spec.identity_files, ["/home/me/keys/id", "~/.ssh/id", "/k"]);
        assert_eq!(spec.local, ["9999:localhost:1235"]);
        assert!(spec.autostart && spec.remote.is_empty() && spec.port.is_none());
        assert!(!spec.probe_peer, "the peer probe is opt-in");
        let args = add(&[
            "jane",
            "--host",
            "saturn",
            "-R",
            "1235:localhost:22",
            "--no-autostart",
            "--probe-peer",
        ]);
        let spec = tunnel_spec(args, None);
        assert!(!spec.autostart && spec.probe_peer);
    }
}

//! The client-side commands that read the config file. `invite NAME` prints
//! [`pairtun::invite`]'s partner config. `doctor [NAME]` runs [`pairtun::doctor`]'s checks
//! here, on the client, against the config file, and asks the daemon only for what needs a
//! connection (each forward as the relay answered it); exit 1 when any check fails.

use pairtun::config::{self, Env, TunnelName};
use pairtun::doctor::{self, Check, Level};
use pairtun::protocol::{Request, Response};

use crate::commands::Ctx;
use crate::failure::Failure;
use crate::human;

/// Runs every check and prints one line each (one JSON object with `--json`).
pub async fn doctor(ctx: &Ctx, name: Option<String>) -> Result<(), Failure> {
    let checks = checks(ctx, name).await?;
    if ctx.out.json {
        ctx.out
            .json_line(&serde_json::json!({ "checks": checks }))?;
    } else {
        ctx.out.text(&render(&checks))?;
    }
    match checks.iter().filter(|c| c.level == Level::Fail).count() {
        0 => Ok(()),
        n => Err(Failure::Request(format!("doctor: {n} check(s) failed"))),
    }
}

/// Prints the partner's side of tunnel `name` (JSON with `--json`).
pub fn invite(ctx: &Ctx, name: &str) -> Result<(), Failure> {
    let config = config::load(&ctx.config, &Env::from_process())
        .map_err(|e| Failure::Request(e.to_string()))?;
    let tunnel = find(&config, name, &ctx.config)?;
    let invitation = pairtun::invite::invitation(tunnel);
    if ctx.out.json {
        Ok(ctx.out.json_line(&invitation)?)
    } else {
        Ok(ctx.out.text(&invitation.text())?)
    }
}

fn find<'c>(
    config: &'c config::Config,
    name: &str,
    file: &std::path::Path,
) -> Result<&'c config::TunnelConfig, Failure> {
    let key = TunnelName::new(name).map_err(Failure::Request)?;
    config
        .tunnels
        .get(&key)
        .ok_or_else(|| Failure::Request(format!("no tunnel named `{name}` in {}", file.display())))
}

async fn checks(ctx: &Ctx, name: Option<String>) -> Result<Vec<Check>, Failure> {
    let env = Env::from_process();
    let config = match config::load(&ctx.config, &env) {
        Ok(config) => config,
        Err(e) => {
            return Ok(vec![Check {
                tunnel: None,
                level: Level::Fail,
                message: e.to_string(),
                fix: Some("fix the config file; `pairtunctl reload` then applies it".to_owned()),
            }]);
        }
    };
    let tunnels: Vec<_> = match &name {
        Some(name) => {
            let key = TunnelName::new(name).map_err(Failure::Request)?;
            let tunnel = config.tunnels.get(&key).ok_or_else(|| {
                Failure::Request(format!(
                    "no tunnel named `{name}` in {}",
                    ctx.config.display()
                ))
            })?;
            vec![tunnel.clone()]
        }
        None => config.tunnels.values().cloned().collect(),
    };
    let mut checks = doctor::config_checks(&config);
    let agent = config::AgentSource::from_env(|name| env.var(name).map(Into::into));
    let statuses = daemon_statuses(ctx, &mut checks).await;
    for tunnel in &tunnels {
        checks.extend(doctor::tunnel_checks(tunnel, agent.as_deref()).await);
        let Some(statuses) = &statuses else { continue };
        match statuses.iter().find(|s| s.name == tunnel.name.as_str()) {
            Some(status) => checks.extend(doctor::status_checks(tunnel, status)),
            // The daemon answered without it (even with no tunnels at all: started with
            // another --config, say).
            None => checks.push(Check {
                tunnel: Some(tunnel.name.to_string()),
                level: Level::Warn,
                message: "not running in the daemon".to_owned(),
                fix: Some("pairtunctl reload".to_owned()),
            }),
        }
    }
    Ok(checks)
}

/// Every tunnel's status, or none (with a check saying why) when the daemon does not answer.
/// The daemon's tunnels; `None` when it did not answer.
async fn daemon_statuses(
    ctx: &Ctx,
    checks: &mut Vec<Check>,
) -> Option<Vec<pairtun::tunnel::TunnelStatus>> {
    let status = ctx.ask(&Request::Status { name: None }).await;
    let (level, message, fix) = match status {
        Ok(Response::Status { tunnels }) => {
            checks.push(Check {
                tunnel: None,
                level: Level::Ok,
                message: format!("pairtund answers on {}", ctx.socket.display()),
                fix: None,
            });
            return Some(tunnels);
        }
        Ok(other) => (Level::Fail, Failure::unexpected(&other).message(), None),
        Err(e) => (
            Level::Warn,
            e.message(),
            Some("start pairtund (or `pairtunctl service install`) for the connected checks"),
        ),
    };
    checks.push(Check {
        tunnel: None,
        level,
        message: message.unwrap_or_else(|| "pairtund did not answer".to_owned()),
        fix: fix.map(str::to_owned),
    });
    None
}

/// `ok   NAME  message` lines, fixes indented below.
fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let level = match check.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let tunnel = check.tunnel.as_deref().unwrap_or("-");
        // Messages quote the relay and the tunnel's errors: no terminal escapes from there.
        let message = human::printable(&check.message);
        out.push_str(&format!("{level}  {tunnel:<12} {message}\n"));
        if let Some(fix) = &check.fix {
            out.push_str(&format!(
                "      {:<12} fix: {}\n",
                "",
                human::printable(fix)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_level_tunnel_message_and_fix() {
        let checks = [
            Check {
                tunnel: None,
                level: Level::Ok,
                message: "config is valid".into(),
                fix: None,
            },
            Check {
                tunnel: Some("jane".into()),
                level: Level::Fail,
                message: "no entry".into(),
                fix: Some("ssh once".into()),
            },
        ];
        assert_eq!(
            render(&checks),
            "ok    -            config is valid\n\
             FAIL  jane         no entry\n                   fix: ssh once\n"
        );
    }

    #[test]
    fn render_escapes_what_the_relay_wrote() {
        let checks = [Check {
            tunnel: Some("jane".into()),
            level: Level::Fail,
            message: "relay said \u{1b}]0;PWNED\u{7}\u{1b}[2J".into(),
            fix: Some("\u{1b}[31mred".into()),
        }];
        let shown = render(&checks);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{shown:?}"
        );
        assert!(shown.contains("relay said"), "{shown:?}");
    }
}

//! Commands that read the config file themselves: `invite` (and `doctor`).

use pairtun::config::{self, Config, TunnelName};
use serde_json::json;

use crate::commands::Ctx;
use crate::failure::Failure;

/// Loads the config file `pairtunctl` was pointed at (the daemon's, by default).
fn load(ctx: &Ctx) -> Result<Config, Failure> {
    config::load(&ctx.config, &ctx.env).map_err(|e| Failure::Request(e.to_string()))
}

/// `invite NAME`: the partner's side of tunnel NAME.
pub fn invite(ctx: &Ctx, name: &str, partner_port: u16) -> Result<(), Failure> {
    let config = load(ctx)?;
    let tunnel = TunnelName::new(name)
        .ok()
        .and_then(|n| config.tunnels.get(&n))
        .ok_or_else(|| {
            Failure::Request(format!(
                "no tunnel named `{name}` in {}",
                ctx.config.display()
            ))
        })?;
    let invite = pairtun::pairing::invite(tunnel, partner_port);
    if invite.local.is_empty() && invite.remote.is_empty() {
        return Err(Failure::Request(format!(
            "tunnel `{name}` has nothing your partner can mirror: {}",
            invite.skipped.join("; ")
        )));
    }
    if ctx.out.json {
        let value = json!({
            "name": invite.name,
            "host": invite.host,
            "port": invite.port,
            "local": invite.local,
            "remote": invite.remote,
            "skipped": invite.skipped,
            "config": invite.render(),
        });
        println!("{value}");
    } else {
        print!("{}", invite.render());
    }
    Ok(())
}

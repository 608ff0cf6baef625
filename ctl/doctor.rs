//! `doctor [NAME]`: the library's checks, printed one per line with their fixes.

use pairtun::config::TunnelName;
use pairtun::doctor::{self, Check, Verdict};
use serde_json::json;

use crate::commands::Ctx;
use crate::failure::Failure;

/// Runs every check on tunnel `name` (or on all), connecting unless `offline`.
pub async fn doctor(ctx: &Ctx, name: Option<String>, offline: bool) -> Result<(), Failure> {
    let (config_check, config) = doctor::config(&ctx.config, &ctx.env);
    let mut checks = vec![config_check];
    if let Some(config) = &config {
        let tunnels: Vec<_> = match &name {
            None => config.tunnels.values().collect(),
            Some(n) => {
                let tunnel = TunnelName::new(n)
                    .ok()
                    .and_then(|n| config.tunnels.get(&n))
                    .ok_or_else(|| {
                        Failure::Request(format!(
                            "no tunnel named `{n}` in {}",
                            ctx.config.display()
                        ))
                    })?;
                vec![tunnel]
            }
        };
        for tunnel in tunnels {
            checks.extend(doctor::offline(tunnel).await);
            if !offline {
                checks.extend(doctor::connected(tunnel).await);
            }
        }
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    if ctx.out.json {
        println!("{}", json!({ "checks": checks, "failed": failed }));
    } else {
        print!("{}", render(&checks));
    }
    match failed {
        0 => Ok(()),
        n => Err(Failure::Request(format!("{n} check(s) failed"))),
    }
}

/// One line per check, grouped under its tunnel, a `fix:` line under each warning and failure.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.subject.len()).max().unwrap_or(0);
    let mut out = String::new();
    let mut tunnel = None;
    for check in checks {
        if check.tunnel != tunnel {
            tunnel = check.tunnel.clone();
            if let Some(t) = &tunnel {
                out += &format!("{t}:\n");
            }
        }
        let indent = if check.tunnel.is_some() { "  " } else { "" };
        out += &format!(
            "{indent}{:<4}  {:<width$}  {}\n",
            check.verdict.as_str(),
            check.subject,
            check.detail
        );
        if let Some(fix) = check.fix.as_ref().filter(|_| check.verdict != Verdict::Ok) {
            out += &format!("{indent}{:<4}  {:<width$}  fix: {fix}\n", "", "");
        }
    }
    out
}

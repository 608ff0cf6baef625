//! Raw file → validated [`Config`]: defaults first, then each tunnel in file order (so the
//! first error reported is the earliest one), then checks across tunnels.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::Spanned;

use super::conflicts;
use super::env::Env;
use super::error::Fault;
use super::forward::{parse_forward_local, parse_forward_remote};
use super::model::{Config, TunnelConfig, TunnelName};
use super::raw::{RawFile, RawTunnel, SpStr};
use super::settings::Settings;
use super::values::duration;

/// A validated tunnel plus where each of its forwards was written, for the cross-tunnel checks.
pub(crate) struct Built {
    pub config: TunnelConfig,
    pub local_at: Vec<usize>,
    pub remote_at: Vec<usize>,
}

/// Validates a parsed file. `source` is recorded in the result.
pub(crate) fn validate(raw: &RawFile, env: &Env, source: Option<PathBuf>) -> Result<Config, Fault> {
    let (defaults, shutdown_grace) = match &raw.defaults {
        Some(d) => (
            Settings::from_raw(d.shared(), env)?,
            d.shutdown_grace
                .as_ref()
                .map(|g| duration(g, "shutdown_grace"))
                .transpose()?,
        ),
        None => (Settings::default(), None),
    };
    // Also catch inconsistent defaults (e.g. initial above the built-in max) when no tunnel
    // uses them yet: the next `pairtunctl add` would otherwise fail for a reason far away.
    defaults.timing()?;

    let mut raw_tunnels: Vec<_> = raw.tunnels.iter().collect();
    raw_tunnels.sort_by_key(|(name, _)| name.span().start);
    let built = raw_tunnels
        .into_iter()
        .map(|(name, body)| tunnel(name, body, &defaults, env))
        .collect::<Result<Vec<_>, _>>()?;
    conflicts::check(&built)?;

    let tunnels: BTreeMap<TunnelName, TunnelConfig> = built
        .into_iter()
        .map(|b| (b.config.name.clone(), b.config))
        .collect();
    Ok(Config {
        source,
        shutdown_grace: shutdown_grace.unwrap_or(Config::DEFAULT_SHUTDOWN_GRACE),
        tunnels,
    })
}

fn tunnel(
    name: &SpStr,
    body: &Spanned<RawTunnel>,
    defaults: &Settings,
    env: &Env,
) -> Result<Built, Fault> {
    let header = body.span().start;
    let raw = body.get_ref();
    let name = TunnelName::new(name.get_ref()).map_err(|e| Fault::new(name.span().start, e))?;
    unsupported(raw)?;
    let host = host(raw.host.as_ref(), &name, header)?;
    let settings = Settings::from_raw(raw.shared(), env)?.or(defaults);
    let (local, local_at) = forwards(&raw.local, "local", parse_forward_local)?;
    let (remote, remote_at) = forwards(&raw.remote, "remote", parse_forward_remote)?;
    if local.is_empty() && remote.is_empty() {
        return Err(Fault::new(
            header,
            format!(
                "tunnel \"{name}\" has no forwards; add local = [\"9999:localhost:22\"] \
                 or remote = [\"1235:localhost:22\"]"
            ),
        ));
    }
    let resolved = settings.resolve(env, header)?;
    let config = TunnelConfig {
        name,
        host,
        port: resolved.port,
        user: resolved.user,
        identities: resolved.identities,
        agent: resolved.agent,
        local,
        remote,
        autostart: raw.autostart.unwrap_or(true),
        timing: resolved.timing,
        host_key_policy: resolved.host_key_policy,
        known_hosts: resolved.known_hosts,
        transport: resolved.transport,
    };
    Ok(Built {
        config,
        local_at,
        remote_at,
    })
}

/// Keys the SPEC has but this version does not implement: refusing them beats silently running
/// a tunnel without the SOCKS port or jump host the user asked for.
fn unsupported(raw: &RawTunnel) -> Result<(), Fault> {
    if let Some(first) = raw.dynamic.first() {
        return Err(Fault::new(
            first.span().start,
            "`dynamic` forwards are not supported by this version of pairtun yet",
        ));
    }
    match &raw.jump {
        Some(jump) if !jump.get_ref().is_empty() => Err(Fault::new(
            jump.span().start,
            "`jump` is not supported by this version of pairtun yet",
        )),
        _ => Ok(()),
    }
}

fn host(host: Option<&SpStr>, name: &TunnelName, header: usize) -> Result<String, Fault> {
    let Some(host) = host else {
        return Err(Fault::new(
            header,
            format!("tunnel \"{name}\" has no `host`; add host = \"relay.example.org\""),
        ));
    };
    let text = host.get_ref();
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err(Fault::new(
            host.span().start,
            format!("host {text:?} must be a non-empty host name or address without spaces"),
        ));
    }
    Ok(text.clone())
}

/// Parses each spec, pointing errors at the array element.
fn forwards<T>(
    specs: &[SpStr],
    kind: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<(Vec<T>, Vec<usize>), Fault> {
    specs
        .iter()
        .map(|spec| {
            let at = spec.span().start;
            parse(spec.get_ref())
                .map(|f| (f, at))
                .map_err(|e| Fault::new(at, format!("invalid {kind} forward {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|pairs| pairs.into_iter().unzip())
}

//! Raw file → validated [`Config`]: defaults first, then each tunnel in file order (so the
//! first error reported is the earliest one), then checks across tunnels.
//!
//! `~/.ssh/config` is read here, at load (daemon start, `reload`, `add`): a changed ssh config
//! applies at the next reload, and `reload` restarts exactly the tunnels whose resolved
//! settings it changed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::Spanned;

use super::conflicts;
use super::env::Env;
use super::error::Fault;
use super::forward::{parse_forward_dynamic, parse_forward_local, parse_forward_remote};
use super::model::{Config, Identities, JumpHost, TunnelConfig, TunnelName};
use super::raw::{RawDefaults, RawFile, RawTunnel, SpStr};
use super::settings::Settings;
use super::ssh_config::{SshConfig, Tokens, expand_identity};
use super::values::{duration, path};

/// OpenSSH's default port, for jump hosts that name none.
const SSH_PORT: u16 = 22;

/// What every tunnel is resolved against.
struct Context<'a> {
    defaults: &'a Settings,
    ssh: &'a SshConfig,
    env: &'a Env,
}

/// A validated tunnel plus where each of its forwards was written, for the cross-tunnel checks.
pub(crate) struct Built {
    pub config: TunnelConfig,
    pub local_at: Vec<usize>,
    pub remote_at: Vec<usize>,
    pub dynamic_at: Vec<usize>,
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

    let ssh_path = ssh_config_path(raw.defaults.as_ref(), env)?;
    // Read only when some tunnel may use it, so an empty file never trips over a broken one.
    let ssh = match &ssh_path {
        Some(file) if !raw.tunnels.is_empty() => SshConfig::load(file, &env.home),
        _ => SshConfig::none(),
    };
    let ctx = Context {
        defaults: &defaults,
        ssh: &ssh,
        env,
    };
    let mut raw_tunnels: Vec<_> = raw.tunnels.iter().collect();
    raw_tunnels.sort_by_key(|(name, _)| name.span().start);
    let built = raw_tunnels
        .into_iter()
        .map(|(name, body)| tunnel(name, body, &ctx))
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
        ssh_config: ssh_path,
        warnings: ssh.warnings,
    })
}

/// The ssh config named by `[defaults] ssh_config` (`""`: none), else `~/.ssh/config` when the
/// home directory is known.
fn ssh_config_path(defaults: Option<&RawDefaults>, env: &Env) -> Result<Option<PathBuf>, Fault> {
    match defaults.and_then(|d| d.ssh_config.as_ref()) {
        Some(p) if p.get_ref().is_empty() => Ok(None),
        Some(p) => path(p, "ssh_config", env).map(Some),
        None => Ok(env.home_join(".ssh/config").ok()),
    }
}

fn tunnel(name: &SpStr, body: &Spanned<RawTunnel>, ctx: &Context) -> Result<Built, Fault> {
    let header = body.span().start;
    let raw = body.get_ref();
    let name = TunnelName::new(name.get_ref()).map_err(|e| Fault::new(name.span().start, e))?;
    let alias = host(raw.host.as_ref(), &name, header)?;
    let entry = ctx.ssh.host(&alias);
    let settings =
        Settings::from_raw(raw.shared(), ctx.env)?.or(&Settings::from_ssh(&entry).or(ctx.defaults));
    let (local, local_at) = forwards(&raw.local, "local", parse_forward_local)?;
    let (remote, remote_at) = forwards(&raw.remote, "remote", parse_forward_remote)?;
    let (dynamic, dynamic_at) = forwards(&raw.dynamic, "dynamic", parse_forward_dynamic)?;
    if local.is_empty() && remote.is_empty() && dynamic.is_empty() {
        return Err(Fault::new(
            header,
            format!(
                "tunnel \"{name}\" has no forwards; add local = [\"9999:localhost:22\"], \
                 remote = [\"1235:localhost:22\"] or dynamic = [\"1080\"]"
            ),
        ));
    }
    let jump = match &raw.jump {
        Some(jump) => jump_hosts(jump.get_ref(), ctx)
            .map_err(|e| Fault::new(jump.span().start, format!("jump: {e}")))?,
        None => jump_hosts(&entry.proxy_jump.clone().unwrap_or_default().join(","), ctx).map_err(
            |e| {
                Fault::new(
                    header,
                    format!("ProxyJump for {alias:?} in the ssh config: {e}"),
                )
            },
        )?,
    };
    let resolved = settings.resolve(ctx.env, header)?;
    let host = entry.host_name.clone().unwrap_or_else(|| alias.clone());
    let identities = match resolved.identities {
        // The ssh config's `IdentityFile`s, expanded as ssh would for this connection.
        Identities::Configured(files)
            if raw.identity_files.is_none() && entry.identity_files.is_some() =>
        {
            let jump = match &raw.jump {
                Some(jump) => jump.get_ref().clone(),
                None => entry.proxy_jump.unwrap_or_default().join(","),
            };
            let tokens = Tokens {
                home: &ctx.env.home,
                local_user: &ctx.env.user,
                alias: &alias,
                host: &host,
                port: resolved.port,
                remote_user: &resolved.user,
                jump: &jump,
                vars: &ctx.env.vars,
            };
            let expand = |file: PathBuf| {
                expand_identity(&file, &tokens).map_err(|e| {
                    let file = file.display();
                    let why = format!("IdentityFile {file} in the ssh config for {alias:?}: {e}");
                    Fault::new(header, why)
                })
            };
            Identities::Configured(files.into_iter().map(expand).collect::<Result<_, _>>()?)
        }
        other => other,
    };
    let config = TunnelConfig {
        name,
        host,
        port: resolved.port,
        user: resolved.user,
        identities,
        agent: resolved.agent,
        local,
        remote,
        dynamic,
        jump,
        identities_only: entry.identities_only.unwrap_or(false),
        autostart: raw.autostart.unwrap_or(true),
        probe_peer: raw.probe_peer.unwrap_or(false),
        timing: resolved.timing,
        max_connections: resolved.max_connections,
        host_key_policy: resolved.host_key_policy,
        known_hosts: resolved.known_hosts,
        transport: resolved.transport,
    };
    Ok(Built {
        config,
        local_at,
        remote_at,
        dynamic_at,
    })
}

/// A ProxyJump chain, `[user@]host[:port]` hops separated by `,` (`""` or `none`: direct).
/// Each host may be an ssh config alias, resolved like the tunnel's own host; the user is the
/// one written, else the alias's `User`, else `[defaults] user`, else the local user (as
/// OpenSSH does: a jump host's login is not the target's).
fn jump_hosts(chain: &str, ctx: &Context) -> Result<Vec<JumpHost>, String> {
    let chain = chain.trim();
    if chain.is_empty() || chain.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    chain
        .split(',')
        .map(|hop| jump_host(hop.trim(), ctx))
        .collect()
}

fn jump_host(hop: &str, ctx: &Context) -> Result<JumpHost, String> {
    let form = "expected [user@]host[:port]";
    let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
    let (user, rest) = match hop.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user), rest),
        Some(_) => return Err(format!("empty user in {hop:?}; {form}")),
        None => (None, hop),
    };
    let (alias, port) = split_host_port(rest).ok_or_else(|| format!("{hop:?}: {form}"))?;
    if alias.is_empty() || alias.contains(char::is_whitespace) {
        return Err(format!("{hop:?}: {form}"));
    }
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("port {p:?} in {hop:?} is not 1-65535")),
        })
        .transpose()?;
    let entry = ctx.ssh.host(alias);
    let user = user
        .map(str::to_owned)
        .or(entry.user)
        .or_else(|| ctx.defaults.user().map(str::to_owned))
        .unwrap_or_else(|| ctx.env.user.clone());
    if user.is_empty() {
        return Err(format!(
            "no user for {hop:?} and the local user name is unknown"
        ));
    }
    Ok(JumpHost {
        host: entry.host_name.unwrap_or_else(|| alias.to_owned()),
        port: port.or(entry.port).unwrap_or(SSH_PORT),
        user,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when malformed.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((text, None)),
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

//! `version`: this client's version and protocol, and the daemon's when it can be asked.

use serde::Serialize;

use pairtun::control::{Client, ClientError};
use pairtun::protocol::{PROTOCOL_VERSION, Request, Response};

use crate::commands::Ctx;
use crate::failure::Failure;

/// `version --json`: both sides; the daemon's fields are null when it cannot be asked.
#[derive(Debug, Serialize)]
struct Versions {
    client: &'static str,
    client_protocol: u32,
    daemon: Option<String>,
    daemon_protocol: Option<u32>,
    /// Why the daemon's versions are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    daemon_error: Option<String>,
}

/// The daemon's versions, or why they are unknown. A daemon speaking another protocol still
/// told us its versions in the greeting, and those are exactly what the user wants to see.
async fn daemon_versions(ctx: &Ctx) -> Result<(String, u32), String> {
    let mut client = match Client::connect(&ctx.socket).await {
        Ok(client) => client,
        Err(ClientError::ProtocolMismatch { protocol, daemon }) => return Ok((daemon, protocol)),
        Err(e) => return Err(Failure::from(e).message().unwrap_or_default()),
    };
    match client.request(&Request::Version {}).await {
        Ok(Response::Version { daemon, protocol }) => Ok((daemon, protocol)),
        Ok(Response::Error { message, .. }) => Err(message),
        Ok(other) => Err(Failure::unexpected(&other).message().unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    }
}

/// Always succeeds: the client's version is worth printing even with no daemon around.
pub async fn version(ctx: &Ctx) -> Result<(), Failure> {
    let client = env!("CARGO_PKG_VERSION");
    let daemon = daemon_versions(ctx).await;
    let out = &ctx.out;
    if out.json {
        let (daemon, daemon_protocol, daemon_error) = match daemon {
            Ok((version, protocol)) => (Some(version), Some(protocol), None),
            Err(e) => (None, None, Some(e)),
        };
        let versions = Versions {
            client,
            client_protocol: PROTOCOL_VERSION,
            daemon,
            daemon_protocol,
            daemon_error,
        };
        return Ok(out.json_line(&versions)?);
    }
    out.line(&format!(
        "pairtunctl {client} (control protocol {PROTOCOL_VERSION})"
    ))?;
    match daemon {
        Ok((version, protocol)) => {
            out.line(&format!(
                "pairtund   {version} (control protocol {protocol})"
            ))?;
            if protocol != PROTOCOL_VERSION {
                out.line("the protocols differ: use matching versions (restart pairtund after an upgrade)")?;
            }
        }
        Err(e) => out.line(&format!("pairtund   unknown: {e}"))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_both_sides_and_nulls_an_unreachable_daemon() {
        let versions = Versions {
            client: "0.1.0",
            client_protocol: 1,
            daemon: None,
            daemon_protocol: None,
            daemon_error: Some("pairtund is not running".into()),
        };
        let json = serde_json::to_string(&versions).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"client":"0.1.0","client_protocol":1,"daemon":null,"daemon_protocol":null,"daemon_error":"pairtund is not running"}"#
        );
    }
}

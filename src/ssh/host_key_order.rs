//! Which host key algorithms to ask the relay for, in what order: those whose keys known_hosts
//! already records for it first, in russh's order, then the rest (OpenSSH's
//! `order_hostkeyalgs`). A relay with several host keys presents the one it can be verified
//! by, rather than russh's favourite type, which strict checking would refuse as unknown and
//! accept-new would pin as a second key.

use russh::keys::Algorithm;
use tokio::time::Instant;

use super::handler::HostKeyCheck;
use super::known_hosts;

/// `preferred` with the algorithms that verify with a key of a `recorded` type moved to the
/// front, each part keeping its order. No recorded types leave `preferred` as it is.
pub fn order(preferred: &[Algorithm], recorded: &[Algorithm]) -> Vec<Algorithm> {
    let (mut first, rest): (Vec<_>, Vec<_>) = preferred
        .iter()
        .cloned()
        .partition(|offered| recorded.iter().any(|r| signs_with(offered, r)));
    first.extend(rest);
    first
}

/// Whether pairtund can verify the relay with a key of type `recorded`: it asks for an
/// algorithm proven with such a key.
pub fn verifiable(recorded: &Algorithm) -> bool {
    russh::Preferred::default()
        .key
        .iter()
        .any(|offered| signs_with(offered, recorded))
}

/// Whether host key algorithm `offered` is proven with a key of type `recorded`. An RSA key
/// (recorded as `ssh-rsa`) serves rsa-sha2-512, rsa-sha2-256 and ssh-rsa alike; every other
/// type only itself (an ECDSA key only its own curve).
fn signs_with(offered: &Algorithm, recorded: &Algorithm) -> bool {
    let rsa = |a: &Algorithm| matches!(a, Algorithm::Rsa { .. });
    offered == recorded || (rsa(offered) && rsa(recorded))
}

/// The key types known_hosts records for the relay of `check`, read on a blocking thread
/// before `deadline`. Reading never fails the connect: on any error (or no time left) none
/// are returned, so the default order stands, and the host key check, which reads the file
/// again, reports what is wrong with it.
pub async fn recorded(check: &HostKeyCheck, deadline: Instant) -> Vec<Algorithm> {
    let HostKeyCheck {
        host,
        port,
        known_hosts: path,
        ..
    } = check.clone();
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || known_hosts::key_types_for(&path, &host, port));
    let types = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(read)) => read.map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect_timeout ran out".to_owned()),
    };
    types.unwrap_or_else(|error| {
        tracing::debug!(known_hosts = %shown, %error, "host key types not read; default order");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use russh::keys::{EcdsaCurve, HashAlg};

    use super::*;
    use crate::config::HostKeyPolicy;

    const ED25519: Algorithm = Algorithm::Ed25519;
    const P256: Algorithm = Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    };
    const P384: Algorithm = Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    };
    const P521: Algorithm = Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    };
    const RSA_SHA512: Algorithm = Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    };
    const RSA_SHA256: Algorithm = Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    };
    /// Also the type of every RSA key, as a known_hosts entry records it.
    const SSH_RSA: Algorithm = Algorithm::Rsa { hash: None };

    fn names(algorithms: &[Algorithm]) -> Vec<&str> {
        algorithms.iter().map(Algorithm::as_str).collect()
    }

    #[test]
    fn russh_default_order_is_what_the_table_assumes() {
        let default = russh::Preferred::default().key;
        let assumed = [ED25519, P256, P384, P521, RSA_SHA512, RSA_SHA256, SSH_RSA];
        assert_eq!(names(&default), names(&assumed));
    }

    #[test]
    fn recorded_types_go_first_in_preferred_order() {
        let default = russh::Preferred::default().key;
        #[rustfmt::skip]
        let cases: &[(&str, &[Algorithm], &[Algorithm])] = &[
            ("nothing recorded", &[],
             &[ED25519, P256, P384, P521, RSA_SHA512, RSA_SHA256, SSH_RSA]),
            ("ed25519 is first anyway", &[ED25519],
             &[ED25519, P256, P384, P521, RSA_SHA512, RSA_SHA256, SSH_RSA]),
            ("ecdsa, its curve only", &[P384],
             &[P384, ED25519, P256, P521, RSA_SHA512, RSA_SHA256, SSH_RSA]),
            ("ssh-rsa promotes every rsa variant", &[SSH_RSA],
             &[RSA_SHA512, RSA_SHA256, SSH_RSA, ED25519, P256, P384, P521]),
            ("several, in preferred order, not file order", &[SSH_RSA, P521, P256],
             &[P256, P521, RSA_SHA512, RSA_SHA256, SSH_RSA, ED25519, P384]),
            ("duplicates", &[P256, P256],
             &[P256, ED25519, P384, P521, RSA_SHA512, RSA_SHA256, SSH_RSA]),
            ("types pairtund cannot verify change nothing", &[Algorithm::SkEd25519, Algorithm::Dsa],
             &[ED25519, P256, P384, P521, RSA_SHA512, RSA_SHA256, SSH_RSA]),
        ];
        for (name, recorded, expected) in cases {
            assert_eq!(
                names(&order(&default, recorded)),
                names(expected),
                "case {name:?}"
            );
        }
    }

    #[test]
    fn only_types_russh_asks_for_are_verifiable() {
        for usable in [ED25519, P256, P384, P521, SSH_RSA] {
            assert!(verifiable(&usable), "{usable}");
        }
        for unusable in [Algorithm::Dsa, Algorithm::SkEd25519] {
            assert!(!verifiable(&unusable), "{unusable}");
        }
    }

    fn check(known_hosts: PathBuf) -> HostKeyCheck {
        HostKeyCheck {
            host: "relay.example.org".into(),
            port: 2222,
            known_hosts,
            policy: HostKeyPolicy::Strict,
        }
    }

    #[tokio::test]
    async fn recorded_reads_the_relays_entries_and_an_unreadable_file_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let ecdsa = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOt9XkQew7znuSOmr9z3i/krmW5El14cWyMFLkoAQtwmNCkubNaAzKnKpK9N/RYo5b4vBNJ87wI8vxQQIjsDRow=";
        let entry = format!("[relay.example.org]:2222 ecdsa-sha2-nistp256 {ecdsa}\n");
        std::fs::write(&path, entry).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(recorded(&check(path), deadline).await, [P256]);
        // A directory where the file should be: reading it fails (for root too).
        let unreadable = check(dir.path().to_owned());
        assert_eq!(recorded(&unreadable, deadline).await, []);
    }
}

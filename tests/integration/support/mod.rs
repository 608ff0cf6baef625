//! Fixtures for the integration tests: a private OpenSSH `sshd`, SSH keys, the OpenSSH
//! client, a fault-injecting TCP proxy, echo/sink/stall servers, and bounded waiting.
//!
//! Rules they all follow: ports come from the kernel (127.0.0.1:0), traffic stays on
//! loopback, every fixture cleans up on Drop (processes are killed by PID), every wait has a
//! deadline, and servers run on their own thread and runtime, so fixtures work the same from
//! `#[test]` and `#[tokio::test(flavor = "multi_thread")]`.

// Each test uses a few of these helpers; none uses them all.
#![allow(dead_code)]

pub mod background;
pub mod echo;
pub mod keys;
pub mod prng;
pub mod process;
pub mod procfs;
pub mod proxy;
pub mod pushy_relay;
pub mod ssh;
pub mod sshd;
pub mod stall_relay;
pub mod wait;

/// Set (to anything but `0`) by `.ci/run`: a missing sshd then fails the test instead of
/// skipping it, so CI cannot pass by skipping.
pub const REQUIRE_SSHD_VAR: &str = "PAIRTUN_REQUIRE_SSHD";

/// Whether a test that needs OpenSSH's sshd should be skipped: prints why and returns `true`
/// when `/usr/sbin/sshd` is missing; panics instead under [`REQUIRE_SSHD_VAR`].
pub fn skip_without_sshd() -> bool {
    if sshd::available() {
        return false;
    }
    let why = format!(
        "{} is not installed (apt-get install openssh-server)",
        sshd::SSHD
    );
    if std::env::var(REQUIRE_SSHD_VAR).is_ok_and(|v| v != "0") {
        panic!("{why}, but {REQUIRE_SSHD_VAR} is set");
    }
    eprintln!("skipped: {why}");
    true
}

/// Returns early from a test that needs OpenSSH's sshd when it is not installed
/// (see [`skip_without_sshd`]).
macro_rules! require_sshd {
    () => {
        if $crate::support::skip_without_sshd() {
            return;
        }
    };
}
pub(crate) use require_sshd;

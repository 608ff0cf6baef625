//! See fuzz/README.md and `pairtun::fuzzing::ControlSandbox`.

#![no_main]

use std::sync::LazyLock;

use pairtun::fuzzing::ControlSandbox;

/// One sandbox (runtime, closed port) for the whole run; each input gets a fresh daemon.
static SANDBOX: LazyLock<ControlSandbox> =
    LazyLock::new(|| ControlSandbox::new().expect("a control-request sandbox"));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    SANDBOX.run(data);
});

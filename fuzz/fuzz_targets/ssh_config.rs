//! See fuzz/README.md and `pairtun::fuzzing::ssh_config`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pairtun::fuzzing::ssh_config(data));

//! See fuzz/README.md and `pairtun::fuzzing::config`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pairtun::fuzzing::config(data));

//! See fuzz/README.md and `pairtun::fuzzing::forward_spec`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pairtun::fuzzing::forward_spec(data));

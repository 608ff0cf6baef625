//! See fuzz/README.md and `pairtun::fuzzing::control_frame`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pairtun::fuzzing::control_frame(data));

//! libFuzzer target `scope`: the body is `targets::scope` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::scope(data));

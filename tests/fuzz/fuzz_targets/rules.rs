//! libFuzzer target `rules`: the body is `targets::rules` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::rules(data));

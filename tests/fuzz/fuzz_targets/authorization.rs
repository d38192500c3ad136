//! libFuzzer target `authorization`: the body is `targets::authorization` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::authorization(data));

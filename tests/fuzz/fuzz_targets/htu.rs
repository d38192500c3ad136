//! libFuzzer target `htu`: the body is `targets::htu_uri` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::htu_uri(data));

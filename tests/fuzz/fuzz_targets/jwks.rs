//! libFuzzer target `jwks`: the body is `targets::jwks` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::jwks(data));

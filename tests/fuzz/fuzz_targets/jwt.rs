//! libFuzzer target `jwt`: the body is `targets::jwt` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::jwt(data));

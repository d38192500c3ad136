//! libFuzzer target `bundle`: the body is `targets::bundle` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::bundle(data));

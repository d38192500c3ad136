//! libFuzzer target `config`: the body is `targets::config` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::config(data));

//! libFuzzer target `strict_json`: the body is `targets::strict_json_differential` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::strict_json_differential(data));

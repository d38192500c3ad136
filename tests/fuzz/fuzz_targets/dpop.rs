//! libFuzzer target `dpop`: the body is `targets::dpop` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::dpop(data));

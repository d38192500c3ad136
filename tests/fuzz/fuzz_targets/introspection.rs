//! libFuzzer target `introspection`: the body is `targets::introspection_answer` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::introspection_answer(data));

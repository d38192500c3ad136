//! libFuzzer target `fhir_request`: the body is `targets::fhir_request` (tests/fuzz/targets.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhirgate_fuzz::targets::fhir_request(data));

//! Wasm tests: the crate's pure logic compiled for `wasm32-unknown-unknown` and run under Node by
//! `wasm-bindgen-test-runner` (`make wasm-test`). Placeholder until the decision-logic suite lands:
//! it proves the pipeline (target, runner, dependencies) works on wasm.
#![cfg(target_arch = "wasm32")]

use sha2::{Digest, Sha256};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn sha256_matches_the_fips_180_vector() {
    let digest = Sha256::digest(b"abc");
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[wasm_bindgen_test]
fn serde_json_round_trips_a_plugin_config() {
    let text = r#"{"fhir":{"basePath":"/fhir"},"providers":[]}"#;
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(value["fhir"]["basePath"], "/fhir");
    assert_eq!(serde_json::to_string(&value).unwrap(), text);
}

//! Wasm tests: the crate's pure logic compiled for `wasm32-unknown-unknown` and run under Node by
//! `wasm-bindgen-test-runner` (`make wasm-test`). A starting point: the configuration parser on
//! wasm; the decision-logic suite replaces or extends it.
#![cfg(target_arch = "wasm32")]

use fhirgate::config::Config;
use wasm_bindgen_test::wasm_bindgen_test;

const GOOD: &str = r#"{
  "fhir": { "basePath": "/fhir" },
  "providers": [{
    "name": "main",
    "issuer": "https://idp.example.org",
    "audiences": ["https://fhir.example.org/fhir"],
    "jwks": { "remote": { "cluster": "idp", "authority": "idp.example.org", "path": "/jwks",
                          "refresh": "60s", "timeout": "2s" } },
    "clockSkew": "30s"
  }]
}"#;

#[wasm_bindgen_test]
fn a_valid_configuration_parses_on_wasm() {
    let config = Config::from_json(GOOD.as_bytes()).unwrap();
    assert!(config
        .provider_by_issuer("https://idp.example.org")
        .is_some());
    assert!(config
        .provider_by_issuer("https://evil.example.org")
        .is_none());
}

#[wasm_bindgen_test]
fn an_unknown_key_is_rejected_and_named_on_wasm() {
    let bad = GOOD.replace("\"clockSkew\"", "\"clockSkw\"");
    let err = Config::from_json(bad.as_bytes()).unwrap_err();
    assert!(err.key.contains("providers"), "key: {}", err.key);
    assert!(format!("{} {}", err.key, err.reason).contains("clockSkw"));
}

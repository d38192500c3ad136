//! Unit tests of the request decision that `cargo mutants` showed the rest of the suite missed
//! (tests/mutants/REPORT.md): which requests buffer their body, and the status of each FHIR
//! request error.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::outcome::DenyKind;
use crate::token::TokenKind;

#[test]
fn only_forms_bundles_and_writes_buffer_their_body() {
    for (method, path, want) in [
        ("GET", "/fhir/Patient/1", false),
        ("GET", "/fhir/Observation?patient=1", false),
        ("DELETE", "/fhir/Patient/1", false),
        ("HEAD", "/fhir/metadata", false),
        ("POST", "/fhir/Observation/_search", true),
        ("POST", "/fhir", true),
        ("POST", "/fhir/Observation", true),
        ("PUT", "/fhir/Observation/1", true),
        ("PATCH", "/fhir/Observation/1", true),
    ] {
        assert_eq!(wants_body(method, path, "/fhir"), want, "{method} {path}");
    }
}

fn decide_path(method: &str, path: &str, body: Option<&[u8]>) -> Decision {
    let cfg = Config::from_json(
        json!({"providers": [{"name": "main", "issuer": "https://idp.example.org",
            "audiences": ["https://fhir.example.org/fhir"],
            "jwks": {"inline": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}}]})
        .to_string()
        .as_bytes(),
    );
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let Value::Object(claims) =
        json!({"iss": "https://idp.example.org", "sub": "u", "scope": "system/*.cruds"})
    else {
        unreachable!()
    };
    let token = VerifiedToken::for_policy_test(TokenKind::Jwt, claims, &cfg.claim_names);
    let req = RequestInfo {
        method: method.into(),
        path: path.into(),
        host: "fhir.example.org".into(),
        ..RequestInfo::default()
    };
    decide(&cfg, &token, &req, body)
}

#[test]
fn fhir_request_errors_keep_their_status() {
    let kind = |d: Decision| d.denial.map(|x| x.kind);
    assert_eq!(
        kind(decide_path("GET", "/admin", None)),
        Some(DenyKind::NotFound)
    );
    assert_eq!(
        kind(decide_path("GET", "/fhir/patient/1", None)),
        Some(DenyKind::BadRequest)
    );
    let entries: Vec<Value> = (0..1001)
        .map(|i| json!({"request": {"method": "GET", "url": format!("Patient/{i}")}}))
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": entries}).to_string();
    assert_eq!(
        kind(decide_path("POST", "/fhir", Some(bundle.as_bytes()))),
        Some(DenyKind::TooLarge)
    );
    assert_eq!(decide_path("GET", "/fhir/Patient/1", None).denial, None);
}

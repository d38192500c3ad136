//! Wasm tests: the pure decision logic compiled for `wasm32-unknown-unknown` and run under Node by
//! `wasm-bindgen-test-runner` (`make wasm-test`): configuration parsing, token verification
//! against fixed keys, the decision, and the response check. Keys are fixed test keys (see
//! `tests/fixtures/README.md`); the clock is passed in, as in the filter.
#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};
use wasm_bindgen_test::wasm_bindgen_test;

use fhirgate::config::{Config, KeySource};
use fhirgate::decision::{decide, RequestInfo};
use fhirgate::outcome::DenyKind;
use fhirgate::response::ResponseCheck;
use fhirgate::response::{check_response, ResponseVerdict};
use fhirgate::token::{verify_jwt, TokenError};

const NOW: u64 = 1_790_000_000;
const ISS: &str = "https://idp.example.org";
const AUD: &str = "https://fhir.example.org/fhir";
const RSA_PEM: &str = include_str!("fixtures/rsa-test-key.pem");

fn rsa() -> RS256KeyPair {
    RS256KeyPair::from_pem(RSA_PEM)
        .unwrap()
        .with_key_id("rsa-1")
}

fn ec() -> ES256KeyPair {
    ES256KeyPair::from_bytes(&[0x2a; 32])
        .unwrap()
        .with_key_id("ec-1")
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn config() -> Config {
    let c = rsa().public_key().to_components();
    let raw = ec().key_pair().public_key().to_bytes_uncompressed();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": b64(&c.n), "e": b64(&c.e)},
        {"kty": "EC", "kid": "ec-1", "alg": "ES256", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])},
    ]});
    let cfg = json!({
        "providers": [{"name": "main", "issuer": ISS, "audiences": [AUD], "jwks": {"inline": jwks}}],
        "rules": [{"name": "no-deletes-from-outside", "match": "request.method == 'DELETE'",
                   "expression": "inCidr(source.address, '10.0.0.0/8')", "message": "deletes only from the internal network"}]
    });
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}

fn claims(scope: &str, patient: Option<&str>, exp_offset: i64) -> JWTClaims<Map<String, Value>> {
    let mut custom = Map::new();
    custom.insert("aud".into(), json!(AUD));
    custom.insert("scope".into(), json!(scope));
    if let Some(p) = patient {
        custom.insert("patient".into(), json!(p));
    }
    JWTClaims {
        issued_at: Some(UnixTimeStamp::from_secs(NOW)),
        expires_at: Some(UnixTimeStamp::from_secs((NOW as i64 + exp_offset) as u64)),
        invalid_before: None,
        issuer: Some(ISS.into()),
        subject: Some("user-1".into()),
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom,
    }
}

fn opts() -> HeaderOptions {
    HeaderOptions {
        signature_type: Some("at+jwt".into()),
        ..Default::default()
    }
}

fn keys(cfg: &Config) -> std::rc::Rc<fhirgate::token::KeySet> {
    match &cfg.providers[0].keys {
        Some(KeySource::Inline(k)) => k.clone(),
        _ => panic!("inline keys expected"),
    }
}

fn verify(cfg: &Config, token: &str) -> Result<fhirgate::token::VerifiedToken, TokenError> {
    verify_jwt(
        token,
        &cfg.providers[0].policy,
        &keys(cfg),
        &cfg.claim_names,
        NOW + 10,
    )
}

fn get(path: &str) -> RequestInfo {
    RequestInfo {
        method: "GET".into(),
        path: path.into(),
        source_address: "192.0.2.1:4000".into(),
        ..Default::default()
    }
}

#[wasm_bindgen_test]
fn configuration_parses_and_names_bad_keys() {
    let cfg = config();
    assert_eq!(cfg.base_path, "/fhir");
    assert_eq!(cfg.providers[0].policy.clock_skew_secs, 30);
    let err = Config::from_json(br#"{"providers": [], "bogus": 1}"#).unwrap_err();
    assert_eq!(err.key, "bogus");
    let err = Config::from_json(
        br#"{"providers": [{"name": "m", "issuer": "i", "audiences": ["a"], "jwks": {"inline": {"keys": []}}, "clockSkew": "soon"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.key, "providers[0].clockSkew");
}

#[wasm_bindgen_test]
fn rs256_and_es256_verify_and_forgeries_fail() {
    let cfg = config();
    let rs = rsa()
        .sign_with_options(claims("user/*.rs", None, 300), &opts())
        .unwrap();
    let es = ec()
        .sign_with_options(claims("user/*.rs", None, 300), &opts())
        .unwrap();
    assert_eq!(verify(&cfg, &rs).unwrap().subject(), Some("user-1"));
    assert_eq!(
        verify(&cfg, &es).unwrap().scopes(),
        ["user/*.rs".to_string()]
    );

    let (head, sig) = rs.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[5] ^= 1;
    assert!(verify(&cfg, &format!("{head}.{}", b64(&bytes))).is_err());

    let expired = rsa()
        .sign_with_options(claims("user/*.rs", None, -60), &opts())
        .unwrap();
    assert!(verify(&cfg, &expired).unwrap_err().is_expired());

    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        rs.split('.').nth(1).unwrap()
    );
    assert!(verify(&cfg, &none).is_err());
}

#[wasm_bindgen_test]
fn the_decision_enforces_scopes_compartment_and_rules() {
    let cfg = config();
    let token = rsa()
        .sign_with_options(claims("patient/*.rs", Some("123"), 300), &opts())
        .unwrap();
    let t = verify(&cfg, &token).unwrap();

    assert!(decide(&cfg, &t, &get("/fhir/Patient/123"), None)
        .denial
        .is_none());
    let other = decide(&cfg, &t, &get("/fhir/Patient/999"), None)
        .denial
        .unwrap();
    assert_eq!(other.kind, DenyKind::Forbidden);
    let search = decide(
        &cfg,
        &t,
        &get("/fhir/Observation?patient=Patient/123"),
        None,
    );
    assert!(search.denial.is_none());
    assert!(
        decide(&cfg, &t, &get("/fhir/Observation?patient=123,456"), None)
            .denial
            .is_some()
    );
    let write = RequestInfo {
        method: "DELETE".into(),
        ..get("/fhir/Patient/123")
    };
    assert!(matches!(
        decide(&cfg, &t, &write, None).denial.unwrap().kind,
        DenyKind::InsufficientScope { .. }
    ));

    let admin = rsa()
        .sign_with_options(claims("user/*.cruds", None, 300), &opts())
        .unwrap();
    let admin = verify(&cfg, &admin).unwrap();
    let delete = RequestInfo {
        method: "DELETE".into(),
        ..get("/fhir/Observation/1")
    };
    let denied = decide(&cfg, &admin, &delete, None).denial.unwrap();
    assert_eq!(denied.rule.as_deref(), Some("no-deletes-from-outside"));
    let inside = RequestInfo {
        source_address: "10.1.2.3:5000".into(),
        ..delete
    };
    assert!(decide(&cfg, &admin, &inside, None).denial.is_none());
}

#[wasm_bindgen_test]
fn bundles_from_upstream_are_filtered_to_the_patient() {
    let bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": 2, "entry": [
        {"resource": {"resourceType": "Observation", "id": "a", "subject": {"reference": "Patient/123"}}},
        {"resource": {"resourceType": "Observation", "id": "b", "subject": {"reference": "Patient/999"}}},
    ]});
    let check = ResponseCheck::for_scopes("patient/*.rs", Some("123"));
    let ResponseVerdict::Rewrite { withheld, .. } =
        check_response(bundle.to_string().as_bytes(), &check)
    else {
        panic!("expected a rewrite");
    };
    assert_eq!(withheld, 1);
}

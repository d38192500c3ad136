//! `senderConstraint`, `fhir.publicBaseUrl` and `cache.replaySlots`: defaults, the contract
//! example, and every bad value named by its key.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};

use crate::config::{Config, ConfigError};
use crate::token::{Algorithm, ConstraintMode};

fn base() -> Value {
    let n = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [0xC3u8; 256],
    );
    json!({
        "providers": [{
            "name": "main",
            "issuer": "https://idp.example.org",
            "audiences": ["https://fhir.example.org/fhir"],
            "jwks": {"inline": {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "n": n, "e": "AQAB"}]}}
        }]
    })
}

fn load(v: &Value) -> Result<Config, ConfigError> {
    Config::from_json(v.to_string().as_bytes())
}

fn with_sender(sender: Value) -> Value {
    let mut v = base();
    v["providers"][0]["senderConstraint"] = sender;
    v
}

#[test]
fn defaults_follow_the_contract() {
    let c = load(&base()).unwrap();
    let s = &c.providers[0].sender;
    assert_eq!(s.dpop, ConstraintMode::Allowed);
    assert_eq!(s.mtls, ConstraintMode::Allowed);
    assert_eq!(s.dpop_max_age_ms, 60_000);
    assert_eq!(
        s.dpop_algorithms,
        vec![
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::EdDSA
        ]
    );
    assert_eq!(c.public_base_url, None);
    assert_eq!(c.replay_slots, 2048);
    // An empty block means the defaults too.
    let c = load(&with_sender(json!({}))).unwrap();
    assert_eq!(
        &c.providers[0].sender,
        &crate::token::SenderPolicy::default()
    );
}

#[test]
fn the_contract_example_loads() {
    let mut v = with_sender(json!({
        "dpop": "allowed",
        "dpopAlgorithms": ["ES256", "ES384", "RS256", "PS256", "EdDSA"],
        "dpopMaxAge": "60s",
        "mtls": "allowed"
    }));
    v["fhir"] = json!({"basePath": "/fhir", "publicBaseUrl": "https://fhir.example.org/fhir"});
    let c = load(&v).unwrap();
    assert_eq!(
        c.public_base_url.as_deref(),
        Some("https://fhir.example.org/fhir")
    );
}

#[test]
fn modes_algorithms_and_max_age_are_compiled() {
    let c = load(&with_sender(json!({
        "dpop": "required", "mtls": "off", "dpopAlgorithms": ["EdDSA", "ES256", "EdDSA"], "dpopMaxAge": "1.5s"
    })))
    .unwrap();
    let s = &c.providers[0].sender;
    assert_eq!(s.dpop, ConstraintMode::Required);
    assert_eq!(s.mtls, ConstraintMode::Off);
    assert_eq!(s.dpop_algorithms, vec![Algorithm::EdDSA, Algorithm::ES256]);
    assert_eq!(s.dpop_max_age_ms, 1_500);
    for (age, ms) in [("1s", 1_000), ("5m", 300_000), ("300s", 300_000)] {
        let c = load(&with_sender(json!({"dpopMaxAge": age}))).unwrap();
        assert_eq!(c.providers[0].sender.dpop_max_age_ms, ms);
    }
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    let sc = "providers[0].senderConstraint";
    let cases = [
        (json!({"dpop": "on"}), format!("{sc}.dpop")),
        (json!({"dpop": "Allowed"}), format!("{sc}.dpop")),
        (json!({"mtls": "yes"}), format!("{sc}.mtls")),
        (
            json!({"dpopAlgorithms": []}),
            format!("{sc}.dpopAlgorithms"),
        ),
        (
            json!({"dpopAlgorithms": ["ES256", "HS256"]}),
            format!("{sc}.dpopAlgorithms[1]"),
        ),
        (
            json!({"dpopAlgorithms": ["none"]}),
            format!("{sc}.dpopAlgorithms[0]"),
        ),
        (
            json!({"dpopAlgorithms": ["ES512"]}),
            format!("{sc}.dpopAlgorithms[0]"),
        ),
        (json!({"dpopMaxAge": "999ms"}), format!("{sc}.dpopMaxAge")),
        (json!({"dpopMaxAge": "301s"}), format!("{sc}.dpopMaxAge")),
        (json!({"dpopMaxAge": "60"}), format!("{sc}.dpopMaxAge")),
    ];
    for (sender, key) in cases {
        let e = load(&with_sender(sender.clone())).unwrap_err();
        assert_eq!(e.key, key, "{sender}: {e}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_refused_naming_the_key() {
    let e = load(&with_sender(json!({"dpop": "allowed", "dpopNonce": true}))).unwrap_err();
    assert!(e.key.starts_with("providers[0].senderConstraint"), "{e}");
    assert!(e.reason.contains("dpopNonce"), "{e}");
    let e = load(&with_sender(json!({"dpop": true}))).unwrap_err();
    assert_eq!(e.key, "providers[0].senderConstraint.dpop", "{e}");
    let e = load(&with_sender(json!("allowed"))).unwrap_err();
    assert_eq!(e.key, "providers[0].senderConstraint", "{e}");
}

#[test]
fn the_public_base_url_must_be_an_absolute_http_url() {
    for (url, normalized) in [
        (
            "https://fhir.example.org/fhir",
            "https://fhir.example.org/fhir",
        ),
        (
            "HTTPS://Fhir.Example.org:443/fhir/",
            "https://fhir.example.org/fhir",
        ),
        ("http://10.0.0.1:8080", "http://10.0.0.1:8080"),
    ] {
        let mut v = base();
        v["fhir"] = json!({"publicBaseUrl": url});
        assert_eq!(
            load(&v).unwrap().public_base_url.as_deref(),
            Some(normalized)
        );
    }
    for bad in [
        json!("fhir.example.org/fhir"),
        json!("/fhir"),
        json!("ftp://fhir.example.org/fhir"),
        json!("https://fhir.example.org/fhir?x=1"),
        json!("https://fhir.example.org/fhir#top"),
        json!("https://user@fhir.example.org/fhir"),
        json!("https://fhir.example.org:70000/fhir"),
        json!(""),
        json!(42),
    ] {
        let mut v = base();
        v["fhir"] = json!({"publicBaseUrl": bad});
        let e = load(&v).unwrap_err();
        assert_eq!(e.key, "fhir.publicBaseUrl", "{bad}: {e}");
    }
}

#[test]
fn replay_slots_are_bounded() {
    let mut v = base();
    v["cache"] = json!({"replaySlots": 16});
    assert_eq!(load(&v).unwrap().replay_slots, 16);
    for bad in [json!(0), json!(262_145), json!(-1), json!("many")] {
        let mut v = base();
        v["cache"] = json!({"replaySlots": bad});
        let e = load(&v).unwrap_err();
        assert_eq!(e.key, "cache.replaySlots", "{bad}: {e}");
    }
}

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};

use super::*;

fn jwks() -> Value {
    // A 2048-bit RSA modulus is needed for the key to load; build one from a fixed pattern.
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xC3u8; 256]);
    json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"}]})
}

fn base() -> Value {
    json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{
            "name": "main",
            "issuer": "https://idp.example.org",
            "audiences": ["https://fhir.example.org/fhir"],
            "jwks": {"inline": jwks()}
        }]
    })
}

fn err(v: Value) -> ConfigError {
    match Config::from_json(v.to_string().as_bytes()) {
        Ok(_) => panic!("configuration should be rejected: {v}"),
        Err(e) => e,
    }
}

#[test]
fn minimal_configuration_gets_documented_defaults() {
    let c = Config::from_json(base().to_string().as_bytes()).unwrap();
    assert_eq!(c.base_path, "/fhir");
    assert_eq!(c.realm, "fhirgate");
    assert!(c.smart_enforce);
    assert!(c.public_discovery);
    assert_eq!(c.max_body_bytes, 1 << 20);
    assert_eq!(c.retry_after_secs, 5);
    let p = &c.providers[0];
    assert_eq!(p.policy.clock_skew_secs, 30);
    assert_eq!(p.policy.max_lifetime_secs, Some(86_400));
    assert_eq!(p.policy.algorithms, Algorithm::ASYMMETRIC.to_vec());
    assert_eq!(
        p.policy.accepted_types,
        vec!["at+jwt", "application/at+jwt", "JWT"]
    );
    assert_eq!(c.claim_names.scope, vec!["scope", "scp"]);
    assert_eq!(c.claim_names.patient, "patient");
    assert_eq!(c.claim_names.fhir_user, "fhirUser");
}

#[test]
fn the_contract_example_loads() {
    let mut v = base();
    v["providers"][0]["algorithms"] = json!(["RS256", "PS256", "ES256", "EdDSA"]);
    v["providers"][0]["acceptedTypes"] = json!(["at+jwt", "application/at+jwt", "JWT"]);
    v["providers"][0]["clockSkew"] = json!("30s");
    v["providers"][0]["maxLifetime"] = json!("24h");
    v["providers"][0]["introspection"] = json!({
        "cluster": "idp", "authority": "idp.example.org", "path": "/token/introspection",
        "clientId": "fhirgate", "clientSecret": "s3cret", "mode": "opaque", "cacheTtl": "60s", "timeout": "1s"
    });
    v["claims"] = json!({"scope": ["scope", "scp"], "patient": "patient", "fhirUser": "fhirUser"});
    v["smart"] = json!({"enforce": true});
    v["forward"] = json!({"removeAuthorization": false});
    let c = Config::from_json(v.to_string().as_bytes()).unwrap();
    let i = c.providers[0].introspection.as_ref().unwrap();
    assert_eq!(i.mode, IntrospectionMode::Opaque);
    assert_eq!(i.cache_ttl_ms, 60_000);
}

#[test]
fn unknown_keys_are_named() {
    let mut v = base();
    v["providers"][0]["clockskew"] = json!("30s");
    let e = err(v);
    assert_eq!(e.key, "providers[0].clockskew");
    assert!(e.reason.contains("unknown field"), "{e}");

    let mut v = base();
    v["extra"] = json!(1);
    assert_eq!(err(v).key, "extra");

    let mut v = base();
    v["providers"][0]["jwks"] =
        json!({"remote": {"cluster": "idp", "authority": "a", "path": "/j", "refesh": "1s"}});
    assert_eq!(err(v).key, "providers[0].jwks.remote.refesh");
}

#[test]
fn invalid_values_are_named() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "providers[0].clockSkew",
            Box::new(|v| v["providers"][0]["clockSkew"] = json!("30")),
        ),
        (
            "providers[0].clockSkew",
            Box::new(|v| v["providers"][0]["clockSkew"] = json!("1h")),
        ),
        (
            "providers[0].maxLifetime",
            Box::new(|v| v["providers"][0]["maxLifetime"] = json!("-5s")),
        ),
        (
            "providers[0].algorithms[1]",
            Box::new(|v| v["providers"][0]["algorithms"] = json!(["RS256", "none"])),
        ),
        (
            "providers[0].algorithms[0]",
            Box::new(|v| v["providers"][0]["algorithms"] = json!(["HS256"])),
        ),
        (
            "providers[0].algorithms[0]",
            Box::new(|v| v["providers"][0]["algorithms"] = json!(["RS1"])),
        ),
        (
            "providers[0].algorithms",
            Box::new(|v| v["providers"][0]["algorithms"] = json!([])),
        ),
        (
            "providers[0].audiences",
            Box::new(|v| v["providers"][0]["audiences"] = json!([])),
        ),
        (
            "providers[0].issuer",
            Box::new(|v| v["providers"][0]["issuer"] = json!("")),
        ),
        (
            "providers[0].acceptedTypes",
            Box::new(|v| v["providers"][0]["acceptedTypes"] = json!([])),
        ),
        (
            "providers[0].jwks",
            Box::new(|v| v["providers"][0]["jwks"] = json!({})),
        ),
        (
            "providers[0].jwks.inline",
            Box::new(|v| v["providers"][0]["jwks"] = json!({"inline": {"keys": []}})),
        ),
        (
            "providers[0].jwks",
            Box::new(|v| {
                v["providers"][0].as_object_mut().unwrap().remove("jwks");
            }),
        ),
        ("providers", Box::new(|v| v["providers"] = json!([]))),
        (
            "fhir.basePath",
            Box::new(|v| v["fhir"]["basePath"] = json!("fhir")),
        ),
        (
            "fhir.basePath",
            Box::new(|v| v["fhir"]["basePath"] = json!("/fhir/../x")),
        ),
        (
            "fhir.maxBodyBytes",
            Box::new(|v| v["fhir"]["maxBodyBytes"] = json!(10)),
        ),
        ("realm", Box::new(|v| v["realm"] = json!("a\"b"))),
        (
            "forward.headers.Authorization",
            Box::new(|v| v["forward"] = json!({"headers": {"Authorization": "subject"}})),
        ),
        (
            "forward.headers.authorization",
            Box::new(|v| v["forward"] = json!({"headers": {"authorization": "subject"}})),
        ),
        (
            "forward.headers.x-sub",
            Box::new(|v| v["forward"] = json!({"headers": {"x-sub": "password"}})),
        ),
        (
            "forward.headers.x-sub",
            Box::new(|v| v["forward"] = json!({"headers": {"x-sub": "pseudonym"}})),
        ),
        (
            "forward.pseudonymSecret",
            Box::new(|v| v["forward"] = json!({"pseudonymSecret": "c2hvcnQ"})),
        ),
        (
            "claims.scope",
            Box::new(|v| v["claims"] = json!({"scope": []})),
        ),
        (
            "cache.maxEntries",
            Box::new(|v| v["cache"] = json!({"maxEntries": 0})),
        ),
        ("retryAfter", Box::new(|v| v["retryAfter"] = json!("soon"))),
    ];
    for (key, edit) in cases {
        let mut v = base();
        edit(&mut v);
        let e = err(v.clone());
        assert_eq!(e.key, key, "{v}: {e}");
        assert!(e.to_string().contains(key));
    }
}

#[test]
fn providers_are_unique_by_name_and_issuer() {
    let mut v = base();
    let p = v["providers"][0].clone();
    let mut q = p.clone();
    q["name"] = json!("second");
    v["providers"] = json!([p.clone(), q]);
    assert_eq!(err(v).key, "providers[1].issuer");
    let mut v = base();
    let mut q = p.clone();
    q["issuer"] = json!("https://other.example");
    v["providers"] = json!([p, q]);
    assert_eq!(err(v).key, "providers[1].name");
}

#[test]
fn remote_jwks_and_introspection_are_validated() {
    let mut v = base();
    v["providers"][0]["jwks"] =
        json!({"remote": {"cluster": "idp", "authority": "idp", "path": "jwks"}});
    assert_eq!(err(v).key, "providers[0].jwks.remote.path");
    let mut v = base();
    v["providers"][0]["jwks"] = json!({"remote": {"cluster": "idp", "authority": "idp", "path": "/jwks", "refresh": "10ms"}});
    assert_eq!(err(v).key, "providers[0].jwks.remote.refresh");
    let mut v = base();
    v["providers"][0]["introspection"] = json!({"cluster": "idp", "authority": "idp", "path": "/i",
        "clientId": "c", "clientSecret": "s", "mode": "sometimes"});
    assert_eq!(err(v).key, "providers[0].introspection.mode");
    let mut v = base();
    v["providers"][0]["introspection"] = json!({"cluster": "idp", "authority": "idp", "path": "/i",
        "clientId": "c", "clientSecret": ""});
    assert_eq!(err(v).key, "providers[0].introspection.clientSecret");
}

#[test]
fn bad_cel_names_the_rule() {
    let mut v = base();
    v["rules"] = json!([{"name": "broken", "expression": "token.scopes.exists(s, "}]);
    let e = err(v);
    assert!(e.key.starts_with("rules"), "{e}");
    assert!(e.to_string().contains("broken"), "{e}");
}

#[test]
fn not_json_is_rejected() {
    assert!(Config::from_json(b"").is_err());
    assert!(Config::from_json(b"{").is_err());
    assert!(Config::from_json(b"[]").is_err());
    assert!(Config::from_json(format!("{} x", base()).as_bytes()).is_err());
}

#[test]
fn consent_block_defaults_and_validation() {
    let c = Config::from_json(base().to_string().as_bytes()).unwrap();
    assert!(c.consent.active());
    assert_eq!(c.consent.claim, "consent");
    assert_eq!(c.consent.labels.len(), 14);
    let mut v = base();
    v["consent"] = json!({"enforce": false});
    assert!(!Config::from_json(v.to_string().as_bytes())
        .unwrap()
        .consent
        .active());
    let mut v = base();
    v["consent"] = json!({"claim": "sens_consent", "labels": ["http://example.org/labels|SECRET"]});
    let c = Config::from_json(v.to_string().as_bytes()).unwrap();
    assert_eq!(c.consent.claim, "sens_consent");
    assert_eq!(
        c.consent.labels,
        [crate::consent::Label::new(
            "http://example.org/labels",
            "SECRET"
        )]
    );
    for (consent, key) in [
        (json!({"labels": ["PSY"]}), "consent.labels[0]"),
        (
            json!({"labels": ["http://x|A", "http://x|A"]}),
            "consent.labels[1]",
        ),
        (json!({"labels": [" |A"]}), "consent.labels[0]"),
        (json!({"claim": " "}), "consent.claim"),
        (
            json!({"labels": (0..65).map(|i| format!("http://x|C{i}")).collect::<Vec<_>>()}),
            "consent.labels",
        ),
        (json!({"enforce": "yes"}), "consent.enforce"),
        (json!({"lables": []}), "consent.lables"),
    ] {
        let mut v = base();
        v["consent"] = consent.clone();
        assert_eq!(err(v).key, key, "{consent}");
    }
}

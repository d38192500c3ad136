//! Tests of the `VerifiedToken` proof type: accessors, CEL value, cache form, policy tooling.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use serde_json::{json, Map, Value};

fn verified(payload: Value) -> VerifiedToken {
    check(&ed_token("ed-1", payload), &ed_keys()).unwrap()
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn cel_value_has_the_contract_shape() {
    let t = verified(claims());
    assert_eq!(
        t.to_cel_value(),
        json!({
            "kind": "jwt",
            "issuer": ISS,
            "subject": "user-1",
            "clientId": "app",
            "scopes": ["patient/Observation.rs", "openid"],
            "patient": "123",
            "fhirUser": "Practitioner/9",
            "claims": claims(),
        })
    );
}

#[test]
fn cel_value_omits_absent_launch_context() {
    let t = verified(json!({"iss": ISS, "aud": AUD, "exp": NOW + 60}));
    let v = t.to_cel_value();
    let map = v.as_object().unwrap();
    assert!(!map.contains_key("patient"));
    assert!(!map.contains_key("fhirUser"));
    assert_eq!(map["subject"], json!(""));
    assert_eq!(map["clientId"], json!(""));
    assert_eq!(map["scopes"], json!([]));
    assert_eq!(t.subject(), None);
    assert_eq!(t.client_id(), None);
}

#[test]
fn client_id_falls_back_to_azp_then_cid() {
    let base = json!({"iss": ISS, "aud": AUD, "exp": NOW + 60});
    let mut p = base.clone();
    p["azp"] = json!("from-azp");
    p["cid"] = json!("from-cid");
    assert_eq!(verified(p.clone()).client_id(), Some("from-azp"));
    p["client_id"] = json!("from-client-id");
    assert_eq!(verified(p).client_id(), Some("from-client-id"));
    let mut p = base;
    p["cid"] = json!("from-cid");
    assert_eq!(verified(p).client_id(), Some("from-cid"));
}

#[test]
fn scope_string_splits_on_spaces_and_drops_empties() {
    let mut p = claims();
    p["scope"] = json!("  a  b c ");
    assert_eq!(verified(p).scopes(), ["a", "b", "c"]);
}

#[test]
fn first_present_scope_claim_wins() {
    let mut p = claims();
    p["scp"] = json!(["from-scp"]);
    assert_eq!(
        verified(p.clone()).scopes(),
        ["patient/Observation.rs", "openid"]
    );
    p.as_object_mut().unwrap().remove("scope");
    assert_eq!(verified(p).scopes(), ["from-scp"]);
}

#[test]
fn cache_form_round_trips() {
    let t = verified(claims());
    let bytes = t.to_cache_bytes();
    assert_eq!(VerifiedToken::from_cache_bytes(&bytes), Some(t.clone()));
    assert_eq!(VerifiedToken::from_cache_bytes(b""), None);
    assert_eq!(VerifiedToken::from_cache_bytes(b"{}"), None);
    assert_eq!(
        VerifiedToken::from_cache_bytes(&bytes[..bytes.len() - 1]),
        None
    );
    let unprefixed = &bytes[6..];
    assert_eq!(VerifiedToken::from_cache_bytes(unprefixed), None);
}

/// Regression (fuzzing, the `strict_json` and `introspection` targets): serde_json's default float
/// parser is not exact, so a float claim came back from the shared cache as a neighbouring value
/// (a token meaning something else to another worker). serde_json's `float_roundtrip` fixes it.
#[test]
fn cache_form_keeps_floats_exactly() {
    for x in [
        9.591759328250236e160,
        0.30000000000000004,
        2.2250738585072014e-308,
        1e300,
        -0.1,
    ] {
        let mut p = claims();
        p["ratio"] = json!(x);
        p["nested"] = json!({"list": [x, -x]});
        let t = verified(p);
        let back = VerifiedToken::from_cache_bytes(&t.to_cache_bytes()).unwrap();
        assert_eq!(back.claims()["ratio"].as_f64(), Some(x));
        assert_eq!(back, t);
    }
}

#[test]
fn policy_test_constructor_is_lenient() {
    let names = ClaimNames::default();
    let t = VerifiedToken::for_policy_test(
        TokenKind::Opaque,
        object(json!({"scope": 5, "patient": "p1", "sub": ["x"], "azp": "c"})),
        &names,
    );
    assert_eq!(t.kind(), TokenKind::Opaque);
    assert_eq!(t.issuer(), "");
    assert!(t.scopes().is_empty());
    assert_eq!(t.patient(), Some("p1"));
    assert_eq!(t.subject(), None);
    assert_eq!(t.client_id(), Some("c"));
    assert_eq!(t.expires_at(), u64::MAX);
    assert_eq!(t.to_cel_value()["kind"], json!("opaque"));
}

#[test]
fn debug_output_hides_claim_values() {
    let t = verified(claims());
    let text = format!("{t:?}");
    assert!(text.contains("Jwt"));
    for secret in [
        "user-1",
        "123",
        "Practitioner/9",
        "patient/Observation.rs",
        ISS,
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

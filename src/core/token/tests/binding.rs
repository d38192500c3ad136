//! Tests of the token binding model: `cnf` from JWTs and introspection answers, refused when
//! fhirgate cannot enforce it, and kept through the shared-cache form.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};

use super::super::introspection::parse_response;
use super::*;

const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
const X5T: &str = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0";

fn jwt_with(cnf: Value) -> Result<VerifiedToken, TokenError> {
    let mut payload = claims();
    payload["cnf"] = cnf;
    check(&ed_token("ed-1", payload), &ed_keys())
}

fn introspected_with(cnf: Value) -> Result<VerifiedToken, TokenError> {
    let body = json!({"active": true, "iss": ISS, "aud": AUD, "exp": NOW + 300, "cnf": cnf});
    let policy = IntrospectionPolicy {
        issuer: Some(ISS.to_owned()),
        audiences: vec![AUD.to_owned()],
        clock_skew_secs: 30,
    };
    parse_response(
        body.to_string().as_bytes(),
        &policy,
        &ClaimNames::default(),
        NOW,
    )
}

#[test]
fn an_unbound_token_has_no_binding() {
    let t = check(&ed_token("ed-1", claims()), &ed_keys()).unwrap();
    assert_eq!(t.binding_kind(), BindingKind::None);
    assert_eq!(t.confirmation().jkt(), None);
    assert_eq!(t.confirmation().x5t_s256(), None);
}

#[test]
fn jkt_and_x5t_are_read_from_jwts_and_introspection_answers() {
    for read in [jwt_with, introspected_with] {
        let t = read(json!({"jkt": JKT})).unwrap();
        assert_eq!(t.binding_kind(), BindingKind::Dpop);
        assert_eq!(t.confirmation().jkt(), Some(JKT));
        let t = read(json!({"x5t#S256": X5T})).unwrap();
        assert_eq!(t.binding_kind(), BindingKind::Mtls);
        let digest = t.confirmation().x5t_s256().unwrap();
        assert_eq!(b64(digest), X5T);
        let t = read(json!({"jkt": JKT, "x5t#S256": X5T})).unwrap();
        assert_eq!(t.binding_kind(), BindingKind::DpopMtls);
        assert_eq!(t.binding_kind().as_str(), "dpop+mtls");
    }
}

#[test]
fn a_confirmation_fhirgate_cannot_enforce_refuses_the_token() {
    for cnf in [
        json!({}),
        json!("jkt"),
        json!([JKT]),
        json!({"jwk": {"kty": "EC"}}),
        json!({"kid": "k1"}),
        json!({"jkt": JKT, "jku": "https://x"}),
        json!({"jkt": 5}),
        json!({"jkt": format!("{JKT}=")}),
        json!({"jkt": &JKT[..42]}),
        json!({"jkt": format!("{JKT}A")}),
        json!({"x5t#S256": "not base64!"}),
        json!({"x5t#S256": b64([1u8; 20])}),
        json!({"x5t": b64([1u8; 20])}),
    ] {
        assert_eq!(
            jwt_with(cnf.clone()).err(),
            Some(TokenError::BadConfirmation),
            "{cnf}"
        );
        assert_eq!(
            introspected_with(cnf.clone()).err(),
            Some(TokenError::BadConfirmation),
            "{cnf}"
        );
    }
    assert_eq!(TokenError::BadConfirmation.code(), "bad_cnf");
}

#[test]
fn the_shared_cache_form_keeps_the_binding() {
    let t = jwt_with(json!({"jkt": JKT, "x5t#S256": X5T})).unwrap();
    let back = VerifiedToken::from_cache_bytes(&t.to_cache_bytes()).unwrap();
    assert_eq!(back.confirmation(), t.confirmation());
    assert_eq!(back, t);
}

#[test]
fn the_policy_tool_reads_a_valid_cnf_and_ignores_a_bad_one() {
    let names = ClaimNames::default();
    let claims = |cnf: Value| json!({"cnf": cnf}).as_object().unwrap().clone();
    let t = VerifiedToken::for_policy_test(TokenKind::Jwt, claims(json!({"jkt": JKT})), &names);
    assert_eq!(t.binding_kind(), BindingKind::Dpop);
    let t = VerifiedToken::for_policy_test(TokenKind::Jwt, claims(json!({"jwk": {}})), &names);
    assert_eq!(t.binding_kind(), BindingKind::None);
}

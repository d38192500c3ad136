//! Tests of RFC 7662 introspection request pieces and response parsing.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::introspection::{basic_auth, form_urlencode, parse_response, request_body};
use super::{AUD, ISS, NOW, *};
use base64::engine::general_purpose::STANDARD;
use serde_json::{json, Value};

fn ipolicy() -> IntrospectionPolicy {
    IntrospectionPolicy {
        issuer: Some(ISS.to_owned()),
        audiences: vec![AUD.to_owned()],
        clock_skew_secs: 30,
    }
}

fn parse(body: Value) -> Result<VerifiedToken, TokenError> {
    parse_response(
        body.to_string().as_bytes(),
        &ipolicy(),
        &ClaimNames::default(),
        NOW,
    )
}

fn active() -> Value {
    json!({
        "active": true, "iss": ISS, "aud": AUD, "exp": NOW + 300, "sub": "u1",
        "client_id": "app", "scope": "patient/*.rs launch", "patient": "p7",
    })
}

#[test]
fn request_body_form_encodes_the_token() {
    assert_eq!(
        request_body("a+b/c=~ d.e-f_g*"),
        "token=a%2Bb%2Fc%3D%7E+d.e-f_g*&token_type_hint=access_token"
    );
    assert_eq!(form_urlencode("é&"), "%C3%A9%26");
}

#[test]
fn basic_auth_form_encodes_before_base64() {
    let header = basic_auth("my client", "s3cr:t&=");
    let encoded = header.strip_prefix("Basic ").unwrap();
    let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    assert_eq!(decoded, "my+client:s3cr%3At%26%3D");
    assert_eq!(
        basic_auth("fhirgate", "secret"),
        format!("Basic {}", STANDARD.encode("fhirgate:secret"))
    );
}

#[test]
fn active_response_gives_an_opaque_token() {
    let t = parse(active()).unwrap();
    assert_eq!(t.kind(), TokenKind::Opaque);
    assert_eq!(t.issuer(), ISS);
    assert_eq!(t.subject(), Some("u1"));
    assert_eq!(t.client_id(), Some("app"));
    assert_eq!(t.scopes(), ["patient/*.rs", "launch"]);
    assert_eq!(t.patient(), Some("p7"));
    assert_eq!(t.expires_at(), NOW + 300);
    assert_eq!(t.claims().get("active"), Some(&json!(true)));
    assert_eq!(t.to_cel_value()["kind"], json!("opaque"));
}

#[test]
fn active_must_be_literally_true() {
    for a in [
        json!(false),
        json!("true"),
        json!(1),
        json!(null),
        json!([true]),
    ] {
        let mut body = active();
        body["active"] = a.clone();
        assert_eq!(parse(body).unwrap_err(), TokenError::Inactive, "{a}");
    }
    assert_eq!(
        parse(json!({"active": false})).unwrap_err(),
        TokenError::Inactive
    );
    assert_eq!(parse(json!({})).unwrap_err(), TokenError::Inactive);
}

#[test]
fn unusable_bodies_are_bad_responses() {
    let names = ClaimNames::default();
    let big = format!(r#"{{"active":true,"pad":"{}"}}"#, "x".repeat(64 * 1024));
    for body in [
        &b"not json"[..],
        b"",
        b"[true]",
        b"\"active\"",
        br#"{"active":true,"active":false}"#,
        br#"{"active":true} trailing"#,
        big.as_bytes(),
    ] {
        assert_eq!(
            parse_response(body, &ipolicy(), &names, NOW).unwrap_err(),
            TokenError::IntrospectionBadResponse
        );
    }
    assert_eq!(
        TokenError::IntrospectionBadResponse.code(),
        "introspection_bad_response"
    );
}

#[test]
fn expiry_and_not_before() {
    let mut body = active();
    body["exp"] = json!(NOW - 31);
    assert_eq!(parse(body.clone()).unwrap_err(), TokenError::Expired);
    body["exp"] = json!(NOW - 29);
    assert!(parse(body.clone()).is_ok());
    body["exp"] = json!("soon");
    assert_eq!(
        parse(body).unwrap_err(),
        TokenError::Malformed(MalformedReason::ClaimType)
    );
    let mut body = active();
    body["nbf"] = json!(NOW + 31);
    assert_eq!(parse(body).unwrap_err(), TokenError::NotYetValid);
    let mut body = active();
    body.as_object_mut().unwrap().remove("exp");
    assert_eq!(parse(body).unwrap().expires_at(), u64::MAX);
}

#[test]
fn issuer_checks_and_fallback() {
    let mut body = active();
    body["iss"] = json!("https://evil");
    assert_eq!(parse(body.clone()).unwrap_err(), TokenError::WrongIssuer);
    body["iss"] = json!(5);
    assert_eq!(parse(body.clone()).unwrap_err(), TokenError::WrongIssuer);
    body.as_object_mut().unwrap().remove("iss");
    assert_eq!(parse(body.clone()).unwrap().issuer(), ISS);
    let open = IntrospectionPolicy {
        issuer: None,
        ..ipolicy()
    };
    let names = ClaimNames::default();
    let t = parse_response(body.to_string().as_bytes(), &open, &names, NOW).unwrap();
    assert_eq!(t.issuer(), "");
    let t = parse_response(active().to_string().as_bytes(), &open, &names, NOW).unwrap();
    assert_eq!(t.issuer(), ISS);
}

#[test]
fn audience_checks() {
    let mut body = active();
    body["aud"] = json!(["x", AUD]);
    assert!(parse(body.clone()).is_ok());
    body["aud"] = json!("other");
    assert_eq!(parse(body.clone()).unwrap_err(), TokenError::WrongAudience);
    body["aud"] = json!(7);
    assert_eq!(parse(body.clone()).unwrap_err(), TokenError::WrongAudience);
    let any = IntrospectionPolicy {
        audiences: vec![],
        ..ipolicy()
    };
    body["aud"] = json!("other");
    let names = ClaimNames::default();
    assert!(parse_response(body.to_string().as_bytes(), &any, &names, NOW).is_ok());
    body.as_object_mut().unwrap().remove("aud");
    assert!(parse(body).is_ok());
}

//! Tests of JWT verification: each algorithm, claim checks, `typ` handling, routing helpers.

use jwt_simple::prelude::{
    HS256Key, MACLike, PS256KeyPair, PS384KeyPair, PS512KeyPair, RS384KeyPair, RS512KeyPair,
    RSAKeyPairLike,
};
use serde_json::{json, Value};

use super::tests::*;
use super::*;

fn rsa_keys() -> KeySet {
    keyset(vec![rsa_jwk(rsa(), Some("rsa-1"), None)])
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn ed_check(payload: Value) -> Result<VerifiedToken, TokenError> {
    check(&ed_token("ed-1", payload), &ed_keys())
}

#[test]
fn rs256_happy_path_and_accessors() {
    let t = check(&rs256_token(claims()), &rsa_keys()).unwrap();
    assert_eq!(t.kind(), TokenKind::Jwt);
    assert_eq!(t.issuer(), ISS);
    assert_eq!(t.subject(), Some("user-1"));
    assert_eq!(t.client_id(), Some("app"));
    assert_eq!(t.scopes(), ["patient/Observation.rs", "openid"]);
    assert_eq!(t.patient(), Some("123"));
    assert_eq!(t.fhir_user(), Some("Practitioner/9"));
    assert_eq!(t.expires_at(), NOW + 300);
    assert_eq!(t.claims().get("sub"), Some(&json!("user-1")));
}

#[test]
fn every_rsa_algorithm_with_one_rsa_jwk() {
    let der = rsa().to_der().unwrap();
    let payload = || jwt_claims(claims());
    let opts = typ("at+jwt");
    let tokens = [
        RS384KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa-1")
            .sign_with_options(payload(), &opts),
        RS512KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa-1")
            .sign_with_options(payload(), &opts),
        PS256KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa-1")
            .sign_with_options(payload(), &opts),
        PS384KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa-1")
            .sign_with_options(payload(), &opts),
        PS512KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa-1")
            .sign_with_options(payload(), &opts),
    ];
    let keys = rsa_keys();
    for (token, alg) in tokens
        .into_iter()
        .zip(["RS384", "RS512", "PS256", "PS384", "PS512"])
    {
        let token = token.unwrap();
        assert_eq!(peek(&token).unwrap().alg.as_deref(), Some(alg));
        assert!(check(&token, &keys).is_ok(), "{alg}");
    }
}

#[test]
fn ecdsa_and_eddsa_happy_paths() {
    let keys = keyset(vec![
        ec256_jwk(Some("ec-256"), Some("ES256")),
        ec384_jwk(Some("ec-384"), None),
        ed_jwk(Some("ed-1"), None),
    ]);
    assert!(check(&es256_token("ec-256", claims()), &keys).is_ok());
    assert!(check(&es384_token("ec-384", claims()), &keys).is_ok());
    assert!(check(&ed_token("ed-1", claims()), &keys).is_ok());
}

#[test]
fn hmac_only_with_an_explicit_secret_and_policy() {
    let header = r#"{"alg":"HS256","typ":"at+jwt","kid":"any"}"#;
    let token = craft(header, &claims().to_string(), Sig::Hmac(SECRET, "HS256"));
    let keys = KeySet::empty()
        .with_hmac_secret(SECRET, &[Algorithm::HS256])
        .unwrap();
    let mut p = policy();
    p.algorithms.push(Algorithm::HS256);
    let names = ClaimNames::default();
    assert!(verify_jwt(&token, &p, &keys, &names, NOW).is_ok());
    // jwt-simple's own HMAC signer agrees (no kid).
    let signed = HS256Key::from_bytes(SECRET)
        .authenticate_with_options(jwt_claims(claims()), &typ("at+jwt"))
        .unwrap();
    assert!(verify_jwt(&signed, &p, &keys, &names, NOW).is_ok());
    // Not in the policy's algorithms: refused even with the secret.
    assert_eq!(check(&token, &keys).unwrap_err(), TokenError::AlgNotAllowed);
    // In the policy but no secret: refused.
    assert_eq!(
        verify_jwt(&token, &p, &rsa_keys(), &names, NOW).unwrap_err(),
        TokenError::AlgNotAllowed
    );
    // Wrong secret.
    let other = craft(
        header,
        &claims().to_string(),
        Sig::Hmac(&[7u8; 32], "HS256"),
    );
    assert_eq!(
        verify_jwt(&other, &p, &keys, &names, NOW).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn expiry_with_clock_skew() {
    assert!(ed_check(with(claims(), json!({"exp": NOW - 29}))).is_ok());
    for exp in [NOW - 30, NOW - 31, NOW - 10_000, 0] {
        let err = ed_check(with(claims(), json!({"exp": exp, "iat": null}))).unwrap_err();
        assert_eq!(err, TokenError::Expired, "exp={exp}");
        assert!(err.is_expired());
        assert_eq!(err.code(), "expired");
    }
}

#[test]
fn not_before_and_issued_at_in_the_future() {
    assert!(ed_check(with(claims(), json!({"nbf": NOW + 30}))).is_ok());
    assert_eq!(
        ed_check(with(claims(), json!({"nbf": NOW + 31}))).unwrap_err(),
        TokenError::NotYetValid
    );
    assert!(ed_check(with(claims(), json!({"iat": NOW + 30}))).is_ok());
    assert_eq!(
        ed_check(with(claims(), json!({"iat": NOW + 31}))).unwrap_err(),
        TokenError::IssuedInFuture
    );
}

#[test]
fn maximum_lifetime() {
    let day = 86_400;
    assert!(ed_check(with(claims(), json!({"iat": NOW, "exp": NOW + day}))).is_ok());
    assert_eq!(
        ed_check(with(claims(), json!({"iat": NOW, "exp": NOW + day + 1}))).unwrap_err(),
        TokenError::LifetimeTooLong
    );
    // Without iat, nbf is the start; without both, now.
    assert_eq!(
        ed_check(with(
            claims(),
            json!({"iat": null, "nbf": NOW - 10, "exp": NOW + day})
        ))
        .unwrap_err(),
        TokenError::LifetimeTooLong
    );
    assert_eq!(
        ed_check(with(claims(), json!({"iat": null, "exp": NOW + day + 1}))).unwrap_err(),
        TokenError::LifetimeTooLong
    );
    let mut p = policy();
    p.max_lifetime_secs = None;
    let long = ed_token("ed-1", with(claims(), json!({"exp": NOW + 10 * day})));
    assert!(verify_jwt(&long, &p, &ed_keys(), &ClaimNames::default(), NOW).is_ok());
}

#[test]
fn issuer_must_match_exactly() {
    for iss in [
        format!("{ISS}/"),
        "https://IDP.example.org".to_owned(),
        "https://evil".to_owned(),
    ] {
        assert_eq!(
            ed_check(with(claims(), json!({"iss": iss}))).unwrap_err(),
            TokenError::WrongIssuer
        );
    }
    assert_eq!(
        ed_check(with(claims(), json!({"iss": null}))).unwrap_err(),
        TokenError::MissingClaim("iss")
    );
}

#[test]
fn audience_string_or_array() {
    assert!(ed_check(with(claims(), json!({"aud": ["other", AUD]}))).is_ok());
    for aud in [
        json!("other"),
        json!(["a", "b"]),
        json!([]),
        json!(format!("{AUD}/")),
    ] {
        assert_eq!(
            ed_check(with(claims(), json!({"aud": aud}))).unwrap_err(),
            TokenError::WrongAudience
        );
    }
    assert_eq!(
        ed_check(with(claims(), json!({"aud": null}))).unwrap_err(),
        TokenError::MissingClaim("aud")
    );
    assert_eq!(
        ed_check(with(claims(), json!({"aud": 5}))).unwrap_err(),
        TokenError::Malformed(MalformedReason::ClaimType)
    );
}

#[test]
fn exp_is_required_and_numeric() {
    assert_eq!(
        ed_check(with(claims(), json!({"exp": null}))).unwrap_err(),
        TokenError::MissingClaim("exp")
    );
    let bad = TokenError::Malformed(MalformedReason::ClaimType);
    for v in [
        json!((NOW + 300).to_string()),
        json!(-1),
        json!(true),
        json!(null),
        json!([NOW]),
    ] {
        let payload = with(claims(), json!({}))
            .to_string()
            .replace(&format!("\"exp\":{}", NOW + 300), &format!("\"exp\":{v}"));
        let token = craft(&ed_header(""), &payload, Sig::Ed);
        assert_eq!(check(&token, &ed_keys()).unwrap_err(), bad, "exp={v}");
    }
    assert_eq!(
        ed_check(with(claims(), json!({"iat": "1"}))).unwrap_err(),
        bad
    );
    assert_eq!(
        ed_check(with(claims(), json!({"nbf": "1"}))).unwrap_err(),
        bad
    );
    assert_eq!(
        ed_check(with(claims(), json!({"iss": 1}))).unwrap_err(),
        bad
    );
    assert_eq!(
        ed_check(with(claims(), json!({"sub": {}}))).unwrap_err(),
        bad
    );
    // A fractional NumericDate is a number.
    let t = ed_check(with(claims(), json!({"exp": (NOW + 300) as f64 + 0.5}))).unwrap();
    assert_eq!(t.expires_at(), NOW + 300);
}

#[test]
fn launch_context_and_scope_types() {
    let bad = TokenError::Malformed(MalformedReason::ClaimType);
    assert_eq!(
        ed_check(with(claims(), json!({"scope": 3}))).unwrap_err(),
        bad
    );
    assert_eq!(
        ed_check(with(claims(), json!({"patient": 123}))).unwrap_err(),
        bad
    );
    assert_eq!(
        ed_check(with(claims(), json!({"client_id": ["x"]}))).unwrap_err(),
        bad
    );
    let t = ed_check(with(claims(), json!({"scope": null, "scp": ["a", "b"]}))).unwrap();
    assert_eq!(t.scopes(), ["a", "b"]);
    let t = ed_check(with(
        claims(),
        json!({"scope": null, "patient": null, "fhirUser": null}),
    ))
    .unwrap();
    assert!(t.scopes().is_empty());
    assert_eq!(t.patient(), None);
    assert_eq!(t.fhir_user(), None);
}

fn typ_result(header_typ: Option<&str>, accepted: &[&str]) -> Result<VerifiedToken, TokenError> {
    let extra = header_typ
        .map(|t| format!(r#","typ":"{t}""#))
        .unwrap_or_default();
    let header = format!(r#"{{"alg":"EdDSA","kid":"ed-1"{extra}}}"#);
    let token = craft(&header, &claims().to_string(), Sig::Ed);
    let mut p = policy();
    p.accepted_types = accepted.iter().map(|s| s.to_string()).collect();
    verify_jwt(&token, &p, &ed_keys(), &ClaimNames::default(), NOW)
}

#[test]
fn typ_handling() {
    assert_eq!(
        typ_result(None, &["at+jwt", "JWT"]).unwrap_err(),
        TokenError::BadType
    );
    assert_eq!(
        typ_result(Some("JWT"), &["at+jwt"]).unwrap_err(),
        TokenError::BadType
    );
    assert_eq!(
        typ_result(Some("at+jwt+x"), &["at+jwt"]).unwrap_err(),
        TokenError::BadType
    );
    assert_eq!(
        typ_result(Some("jose"), &["at+jwt"]).unwrap_err(),
        TokenError::BadType
    );
    assert_eq!(
        typ_result(Some("at+jwt"), &[]).unwrap_err(),
        TokenError::BadType
    );
    assert!(typ_result(Some("at+jwt"), &["at+jwt"]).is_ok());
    assert!(typ_result(Some("AT+JWT"), &["at+jwt"]).is_ok());
    assert!(typ_result(Some("application/at+jwt"), &["at+jwt"]).is_ok());
    assert!(typ_result(Some("at+jwt"), &["application/at+jwt"]).is_ok());
    assert!(typ_result(Some("Application/AT+JWT"), &["at+jwt"]).is_ok());
    assert!(typ_result(Some("JWT"), &["at+jwt", "JWT"]).is_ok());
    assert!(typ_result(Some("jwt"), &["JWT"]).is_ok());
    let token = craft(
        r#"{"alg":"EdDSA","kid":"ed-1","typ":7}"#,
        &claims().to_string(),
        Sig::Ed,
    );
    assert_eq!(
        check(&token, &ed_keys()).unwrap_err(),
        TokenError::Malformed(MalformedReason::HeaderField)
    );
}

#[test]
fn custom_claim_names() {
    let names = ClaimNames {
        scope: vec!["permissions".into()],
        patient: "ctx_patient".into(),
        fhir_user: "profile".into(),
    };
    let payload = with(
        claims(),
        json!({"permissions": "user/*.rs", "ctx_patient": "p9", "profile": "Patient/p9"}),
    );
    let token = ed_token("ed-1", payload);
    let t = verify_jwt(&token, &policy(), &ed_keys(), &names, NOW).unwrap();
    assert_eq!(t.scopes(), ["user/*.rs"]);
    assert_eq!(t.patient(), Some("p9"));
    assert_eq!(t.fhir_user(), Some("Patient/p9"));
}

#[test]
fn classify_and_peek() {
    let token = rs256_token(claims());
    assert_eq!(classify(&token), TokenShape::Jws);
    assert_eq!(classify("a.b.c.d.e"), TokenShape::Jwe);
    assert_eq!(classify("opaque-token_123"), TokenShape::Opaque);
    assert_eq!(classify("a.b."), TokenShape::Opaque);
    assert_eq!(classify("a.b+c.d"), TokenShape::Opaque);
    assert_eq!(classify("a.b"), TokenShape::Opaque);
    let p = peek(&token).unwrap();
    assert_eq!(p.issuer.as_deref(), Some(ISS));
    assert_eq!(p.kid.as_deref(), Some("rsa-1"));
    assert_eq!(p.alg.as_deref(), Some("RS256"));
    assert_eq!(p.typ.as_deref(), Some("at+jwt"));
    assert_eq!(peek("a.b.c.d.e").unwrap_err(), TokenError::JweUnsupported);
    assert!(matches!(peek("nope"), Err(TokenError::Malformed(_))));
}

#[test]
fn error_codes_and_descriptions_are_fixed_and_header_safe() {
    let all = [
        TokenError::TooLong,
        TokenError::Malformed(MalformedReason::Json),
        TokenError::JweUnsupported,
        TokenError::AlgNotAllowed,
        TokenError::AlgKeyMismatch,
        TokenError::CritUnsupported,
        TokenError::BadType,
        TokenError::UnknownKey,
        TokenError::BadSignature,
        TokenError::MissingClaim("exp"),
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
        TokenError::LifetimeTooLong,
        TokenError::Inactive,
        TokenError::IntrospectionBadResponse,
    ];
    let mut codes = std::collections::HashSet::new();
    for e in &all {
        assert!(codes.insert(e.code()), "duplicate code {}", e.code());
        let d = e.description();
        assert!(!d.is_empty());
        assert!(d.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{d}");
        assert!(!d.contains('"') && !d.contains('\\'), "{d}");
        assert_eq!(e.is_expired(), *e == TokenError::Expired);
    }
}

#[test]
fn small_clock_values_do_not_confuse_the_signature_library() {
    // jwt-simple alone would call every token expired while now < skew; our checks decide.
    let token = ed_token(
        "ed-1",
        json!({"iss": ISS, "aud": AUD, "exp": 100, "nbf": 0}),
    );
    let names = ClaimNames::default();
    let t = verify_jwt(&token, &policy(), &ed_keys(), &names, 10).unwrap();
    assert_eq!(t.expires_at(), 100);
    assert_eq!(
        verify_jwt(&token, &policy(), &ed_keys(), &names, 130).unwrap_err(),
        TokenError::Expired
    );
}

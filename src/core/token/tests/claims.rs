//! The claim checks of a verified signature: `exp`, `nbf`, `iat`, lifetime, `iss`, `aud`,
//! `typ`, the launch context, custom claim names, and the fixed error codes.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::*;
use super::*;

use serde_json::json;

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
    // only `application/` is optional: twelve other characters are not a prefix to drop
    for other in [
        "applicationXat+jwt",
        "xxxxxxxxxxxxat+jwt",
        "application;at+jwt",
    ] {
        assert_eq!(
            typ_result(Some(other), &["at+jwt"]).unwrap_err(),
            TokenError::BadType,
            "{other}"
        );
    }
    // and `application/` is not dropped from a type that has its own `/`
    assert_eq!(
        typ_result(Some("application/x/at+jwt"), &["x/at+jwt"]).unwrap_err(),
        TokenError::BadType
    );
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

//! Attack and malformed-input tests of JWT verification.

use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ES256KeyPair, Ed25519KeyPair, KeyMetadata, PS256KeyPair, RSAKeyPairLike,
};
use serde_json::json;

use super::tests::*;
use super::*;

fn rsa_keys() -> KeySet {
    keyset(vec![rsa_jwk(rsa(), Some("rsa-1"), Some("RS256"))])
}

fn payload() -> String {
    claims().to_string()
}

fn malformed(reason: MalformedReason) -> TokenError {
    TokenError::Malformed(reason)
}

#[test]
fn alg_none_is_refused() {
    for alg in ["none", "None", "NONE", ""] {
        let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt"}}"#);
        let token = craft(&header, &payload(), Sig::Empty);
        assert_eq!(
            check(&token, &rsa_keys()).unwrap_err(),
            TokenError::AlgNotAllowed,
            "{alg}"
        );
    }
    let no_alg = craft(r#"{"typ":"at+jwt"}"#, &payload(), Sig::Empty);
    assert_eq!(
        check(&no_alg, &rsa_keys()).unwrap_err(),
        malformed(MalformedReason::HeaderField)
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let public = rsa().public_key();
    let pem = public.to_pem().unwrap();
    let der = public.to_der().unwrap();
    let jwk = rsa_jwk(rsa(), Some("rsa-1"), None).to_string();
    let mut p = policy();
    p.algorithms.push(Algorithm::HS256);
    let names = ClaimNames::default();
    for secret in [pem.as_bytes(), &der[..], jwk.as_bytes()] {
        let token = craft(
            r#"{"alg":"HS256","kid":"rsa-1","typ":"at+jwt"}"#,
            &payload(),
            Sig::Hmac(secret, "HS256"),
        );
        assert_eq!(
            check(&token, &rsa_keys()).unwrap_err(),
            TokenError::AlgNotAllowed
        );
        assert_eq!(
            verify_jwt(&token, &p, &rsa_keys(), &names, NOW).unwrap_err(),
            TokenError::AlgNotAllowed
        );
        // Even next to an unrelated HMAC secret, the RSA key is never an HMAC key.
        let both = rsa_keys()
            .with_hmac_secret(SECRET, &[Algorithm::HS256])
            .unwrap();
        assert_eq!(
            verify_jwt(&token, &p, &both, &names, NOW).unwrap_err(),
            TokenError::BadSignature
        );
    }
}

#[test]
fn rs256_token_against_an_ec_key_is_refused() {
    let keys = keyset(vec![ec256_jwk(Some("k"), None)]);
    let token = rsa()
        .clone()
        .with_key_id("k")
        .sign_with_options(jwt_claims(claims()), &typ("at+jwt"))
        .unwrap();
    assert_eq!(
        check(&token, &keys).unwrap_err(),
        TokenError::AlgKeyMismatch
    );
}

#[test]
fn header_alg_differing_from_jwk_alg_is_refused() {
    let der = rsa().to_der().unwrap();
    let token = PS256KeyPair::from_der(&der)
        .unwrap()
        .with_key_id("rsa-1")
        .sign_with_options(jwt_claims(claims()), &typ("at+jwt"))
        .unwrap();
    // The JWK says RS256; the same RSA key signed PS256.
    assert_eq!(
        check(&token, &rsa_keys()).unwrap_err(),
        TokenError::AlgKeyMismatch
    );
}

#[test]
fn header_alg_outside_the_policy_is_refused() {
    let mut p = policy();
    p.algorithms = vec![Algorithm::ES256];
    let token = ed_token("ed-1", claims());
    assert_eq!(
        verify_jwt(&token, &p, &ed_keys(), &ClaimNames::default(), NOW).unwrap_err(),
        TokenError::AlgNotAllowed
    );
}

#[test]
fn kid_selection() {
    let keys = keyset(vec![
        rsa_jwk(rsa(), Some("rsa-1"), None),
        ed_jwk(Some("ed-1"), None),
    ]);
    // Unknown kid.
    assert_eq!(
        check(&ed_token("nope", claims()), &keys).unwrap_err(),
        TokenError::UnknownKey
    );
    // kid pointing to a key of another type.
    assert_eq!(
        check(&ed_token("rsa-1", claims()), &keys).unwrap_err(),
        TokenError::AlgKeyMismatch
    );
    // No kid, exactly one compatible key: accepted.
    let no_kid = craft(r#"{"alg":"EdDSA","typ":"at+jwt"}"#, &payload(), Sig::Ed);
    assert!(check(&no_kid, &keys).is_ok());
    // No kid, several compatible keys: refused.
    let two = keyset(vec![ed_jwk(Some("a"), None), ed_jwk(Some("b"), None)]);
    assert_eq!(check(&no_kid, &two).unwrap_err(), TokenError::UnknownKey);
    // No kid, no compatible key.
    assert_eq!(
        check(&no_kid, &rsa_keys()).unwrap_err(),
        TokenError::UnknownKey
    );
    // Empty key set.
    assert_eq!(
        check(&ed_token("ed-1", claims()), &KeySet::empty()).unwrap_err(),
        TokenError::UnknownKey
    );
}

#[test]
fn several_keys_with_the_same_kid_are_tried_up_to_four() {
    let others: Vec<Ed25519KeyPair> = (0..4).map(|_| Ed25519KeyPair::generate()).collect();
    let jwk_of = |kp: &Ed25519KeyPair| json!({"kty":"OKP","crv":"Ed25519","kid":"dup","x": b64(kp.public_key().to_bytes())});
    let token = craft(
        r#"{"alg":"EdDSA","kid":"dup","typ":"at+jwt"}"#,
        &payload(),
        Sig::Ed,
    );
    let mut jwks: Vec<_> = others.iter().take(3).map(jwk_of).collect();
    jwks.push(ed_jwk(Some("dup"), None));
    assert!(check(&token, &keyset(jwks)).is_ok(), "real key is the 4th");
    let mut jwks: Vec<_> = others.iter().map(jwk_of).collect();
    jwks.push(ed_jwk(Some("dup"), None));
    assert_eq!(
        check(&token, &keyset(jwks)).unwrap_err(),
        TokenError::BadSignature,
        "5th not tried"
    );
}

#[test]
fn attacker_signed_token_with_a_valid_kid_is_refused() {
    let forged = rsa_attacker()
        .clone()
        .with_key_id("rsa-1")
        .sign_with_options(jwt_claims(claims()), &typ("at+jwt"))
        .unwrap();
    assert_eq!(
        check(&forged, &rsa_keys()).unwrap_err(),
        TokenError::BadSignature
    );
    let ec_forged = ES256KeyPair::generate()
        .with_key_id("ec")
        .sign_with_options(jwt_claims(claims()), &typ("at+jwt"))
        .unwrap();
    let keys = keyset(vec![ec256_jwk(Some("ec"), None)]);
    assert_eq!(
        check(&ec_forged, &keys).unwrap_err(),
        TokenError::BadSignature
    );
    // A forged, expired token reports the signature, not the expiry.
    let expired = json!({"iss": ISS, "aud": AUD, "exp": NOW - 1000});
    let forged = rsa_attacker()
        .clone()
        .with_key_id("rsa-1")
        .sign_with_options(jwt_claims(expired), &typ("at+jwt"))
        .unwrap();
    assert_eq!(
        check(&forged, &rsa_keys()).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn embedded_keys_and_key_urls_are_never_used() {
    // jku / x5u / jwk (string form) set by the signer: the trusted key still decides.
    let meta = KeyMetadata::default()
        .with_key_set_url("https://evil.example/jwks")
        .with_certificate_url("https://evil.example/cert")
        .with_public_key("attacker-key");
    let mut good = rsa().clone().with_key_id("rsa-1");
    good.attach_metadata(meta.clone()).unwrap();
    let token = good
        .sign_with_options(jwt_claims(claims()), &typ("at+jwt"))
        .unwrap();
    assert!(peek(&token).is_ok());
    assert!(
        check(&token, &rsa_keys()).is_ok(),
        "URLs in the header are ignored"
    );
    let mut evil = rsa_attacker().clone().with_key_id("rsa-1");
    evil.attach_metadata(meta).unwrap();
    let forged = evil
        .sign_with_options(jwt_claims(claims()), &typ("at+jwt"))
        .unwrap();
    assert_eq!(
        check(&forged, &rsa_keys()).unwrap_err(),
        TokenError::BadSignature
    );

    // The RFC 7515 object form of `jwk` carrying the attacker's key, signed by the attacker.
    let attacker = Ed25519KeyPair::generate();
    let attacker_jwk =
        json!({"kty":"OKP","crv":"Ed25519","x": b64(attacker.public_key().to_bytes())});
    let header = ed_header(&format!(r#","jwk":{attacker_jwk}"#));
    let forged = craft(&header, &payload(), Sig::EdWith(&attacker));
    assert_eq!(
        check(&forged, &ed_keys()).unwrap_err(),
        malformed(MalformedReason::HeaderField)
    );
    // Fail-closed limitation: jwt-simple parses `jwk` only as a string, so the object form is
    // refused before any key is chosen, even when the trusted key signed the token.
    let real = craft(&header, &payload(), Sig::Ed);
    assert_eq!(
        check(&real, &ed_keys()).unwrap_err(),
        malformed(MalformedReason::HeaderField)
    );
    let forged_x5c = craft(
        &ed_header(r#","x5c":["MIIBIjAN"]"#),
        &payload(),
        Sig::EdWith(&attacker),
    );
    assert_eq!(
        check(&forged_x5c, &ed_keys()).unwrap_err(),
        TokenError::BadSignature
    );
    let real_x5c = craft(&ed_header(r#","x5c":["MIIBIjAN"]"#), &payload(), Sig::Ed);
    assert!(check(&real_x5c, &ed_keys()).is_ok());
}

#[test]
fn crit_is_refused() {
    for crit in [
        r#","crit":["exp"]"#,
        r#","crit":[]"#,
        r#","crit":["b64"],"b64":false"#,
    ] {
        let token = craft(&ed_header(crit), &payload(), Sig::Ed);
        assert_eq!(
            check(&token, &ed_keys()).unwrap_err(),
            TokenError::CritUnsupported,
            "{crit}"
        );
    }
}

#[test]
fn tampered_payload_or_signature_is_refused() {
    let token = ed_token("ed-1", claims());
    let parts: Vec<&str> = token.split('.').collect();
    let other =
        b64(json!({"iss": ISS, "aud": AUD, "exp": NOW + 300, "scope": "user/*.*"}).to_string());
    let swapped = format!("{}.{}.{}", parts[0], other, parts[2]);
    assert_eq!(
        check(&swapped, &ed_keys()).unwrap_err(),
        TokenError::BadSignature
    );
    let no_sig = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(
        check(&no_sig, &ed_keys()).unwrap_err(),
        TokenError::BadSignature
    );
    let short_sig = format!("{}.{}.{}", parts[0], parts[1], b64([1u8; 10]));
    assert_eq!(
        check(&short_sig, &ed_keys()).unwrap_err(),
        TokenError::BadSignature
    );
    let rs = rs256_token(claims());
    let p: Vec<&str> = rs.split('.').collect();
    let truncated = format!("{}.{}.{}", p[0], p[1], &p[2][..p[2].len() - 4]);
    assert_eq!(
        check(&truncated, &rsa_keys()).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn segment_count() {
    assert_eq!(
        check("a.b.c.d.e", &ed_keys()).unwrap_err(),
        TokenError::JweUnsupported
    );
    for t in ["abc", "a.b", "a.b.c.d", "a.b.c.d.e.f", "", ".."] {
        assert_eq!(
            check(t, &ed_keys()).unwrap_err(),
            malformed(MalformedReason::Segments),
            "{t}"
        );
    }
}

#[test]
fn base64_must_be_canonical_unpadded_base64url() {
    let h = b64(ed_header(""));
    let p = b64(payload());
    let cases = [
        // Padding.
        format!("{h}=.{p}"),
        format!("{h}.{p}=="),
        // Standard alphabet characters.
        format!("{}.{p}", h.replacen('e', "+", 1)),
        format!("{h}.{}/", &p[..p.len() - 1]),
    ];
    for input in cases {
        let token = format!("{input}.{}", sign_input(&input, Sig::Ed));
        assert_eq!(
            check(&token, &ed_keys()).unwrap_err(),
            malformed(MalformedReason::Base64),
            "{input}"
        );
    }
    // "e30" is `{}`; "e31" decodes to the same byte with non-zero trailing bits.
    let input = format!("{h}.e31");
    let token = format!("{input}.{}", sign_input(&input, Sig::Ed));
    assert_eq!(
        check(&token, &ed_keys()).unwrap_err(),
        malformed(MalformedReason::Base64)
    );
}

#[test]
fn json_shape() {
    let cases = [
        (
            r#"{"alg":"EdDSA""#.to_owned(),
            payload(),
            MalformedReason::Json,
        ),
        (ed_header(""), "{\"iss\":".to_owned(), MalformedReason::Json),
        (ed_header(""), "not json".to_owned(), MalformedReason::Json),
        (
            ed_header(""),
            format!("{} ", payload()) + "{}",
            MalformedReason::Json,
        ),
        (
            ed_header(""),
            "[1,2]".to_owned(),
            MalformedReason::NotObject,
        ),
        (
            ed_header(""),
            "\"a string\"".to_owned(),
            MalformedReason::NotObject,
        ),
        (ed_header(""), "42".to_owned(), MalformedReason::NotObject),
        (
            "[\"EdDSA\"]".to_owned(),
            payload(),
            MalformedReason::NotObject,
        ),
    ];
    for (header, body, reason) in cases {
        let token = craft(&header, &body, Sig::Ed);
        assert_eq!(
            check(&token, &ed_keys()).unwrap_err(),
            malformed(reason),
            "{header} {body}"
        );
    }
    let invalid_utf8 = format!("{}.{}.AAAA", b64(ed_header("")), b64([0xff, 0xfe, b'{']));
    assert_eq!(
        check(&invalid_utf8, &ed_keys()).unwrap_err(),
        malformed(MalformedReason::Json)
    );
}

#[test]
fn duplicate_members_are_refused() {
    let dup = MalformedReason::DuplicateMember;
    let evil_first = format!(
        r#"{{"iss":"https://evil","iss":"{ISS}","aud":"{AUD}","exp":{}}}"#,
        NOW + 300
    );
    let token = craft(&ed_header(""), &evil_first, Sig::Ed);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), malformed(dup));
    let dup_exp = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"exp":{}}}"#,
        NOW - 100,
        NOW + 300
    );
    let token = craft(&ed_header(""), &dup_exp, Sig::Ed);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), malformed(dup));
    let nested = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"ext":{{"a":1,"a":2}}}}"#,
        NOW + 300
    );
    let token = craft(&ed_header(""), &nested, Sig::Ed);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), malformed(dup));
    let header = r#"{"alg":"HS256","alg":"EdDSA","kid":"ed-1","typ":"at+jwt"}"#;
    let token = craft(header, &payload(), Sig::Ed);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), malformed(dup));
}

#[test]
fn oversized_token_is_refused() {
    let big = json!({"iss": ISS, "aud": AUD, "exp": NOW + 300, "pad": "x".repeat(MAX_TOKEN_LEN)});
    let token = ed_token("ed-1", big);
    assert!(token.len() > MAX_TOKEN_LEN);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), TokenError::TooLong);
    assert_eq!(peek(&token).unwrap_err(), TokenError::TooLong);
    let fits =
        json!({"iss": ISS, "aud": AUD, "exp": NOW + 300, "pad": "x".repeat(MAX_TOKEN_LEN / 2)});
    assert!(check(&ed_token("ed-1", fits), &ed_keys()).is_ok());
}

#[test]
fn header_member_types_are_checked() {
    for extra in [
        r#","kid":1"#,
        r#","jku":{}"#,
        r#","x5c":"abc""#,
        r#","x5c":[1]"#,
        r#","cty":[]"#,
    ] {
        let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt"{extra}}}"#);
        let token = craft(&header, &payload(), Sig::Ed);
        assert_eq!(
            check(&token, &ed_keys()).unwrap_err(),
            malformed(MalformedReason::HeaderField),
            "{extra}"
        );
    }
}

#[test]
fn jwe_shaped_token_is_reported_as_unsupported() {
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
        "a",
        "b",
        "c",
        "d"
    );
    assert_eq!(classify(&jwe), TokenShape::Jwe);
    assert_eq!(
        check(&jwe, &rsa_keys()).unwrap_err(),
        TokenError::JweUnsupported
    );
}

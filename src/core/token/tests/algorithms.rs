//! Which key and which algorithm may verify a token: the algorithm comes from the trusted
//! JWK, never from the header (alg `none`, HMAC keyed with a public key, RSA against EC, `kid`
//! tricks, embedded keys and key URLs, attacker-signed tokens).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::verifier::{SigOutcome, Verifier};
use super::super::*;
use super::*;

use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256KeyPair,
    Ed25519KeyPair, HS256Key, KeyMetadata, MACLike, PS256KeyPair, PS384KeyPair, PS512KeyPair,
    RS384KeyPair, RS512KeyPair, RSAKeyPairLike,
};
use serde_json::json;

#[test]
fn algorithm_names_round_trip() {
    for alg in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(alg.name()), Some(*alg));
    }
    assert_eq!(Algorithm::from_name("none"), None);
    assert_eq!(Algorithm::from_name("rs256"), None);
    assert_eq!(Algorithm::from_name("ES512"), None);
    assert!(Algorithm::ASYMMETRIC.iter().all(|a| a.is_asymmetric()));
    assert!(!Algorithm::ASYMMETRIC.contains(&Algorithm::HS256));
    assert!(!Algorithm::HS512.is_asymmetric());
    assert_eq!(Algorithm::ASYMMETRIC.len(), 9);
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
fn ecdsa_keys_and_tokens_of_the_other_curve_do_not_mix() {
    let p256_sec1 = ec256().public_key().public_key().to_bytes_uncompressed();
    let p384_sec1 = ec384().public_key().public_key().to_bytes_uncompressed();
    let es256 = Verifier::ecdsa(Algorithm::ES256, &p256_sec1).unwrap();
    let es384 = Verifier::ecdsa(Algorithm::ES384, &p384_sec1).unwrap();
    let t256 = es256_token("k", claims());
    let t384 = es384_token("k", claims());
    assert_eq!(es256.check(&t256), SigOutcome::Valid);
    assert_eq!(es384.check(&t384), SigOutcome::Valid);
    assert_eq!(es256.check(&t384), SigOutcome::Invalid);
    assert_eq!(es384.check(&t256), SigOutcome::Invalid);
    // A point of one curve is not a key of the other.
    assert!(Verifier::ecdsa(Algorithm::ES384, &p256_sec1).is_none());
    assert!(Verifier::ecdsa(Algorithm::ES256, &p384_sec1).is_none());
    // Only uncompressed points; never a non-EC algorithm.
    let mut compressed = vec![2 + (p256_sec1[64] & 1)];
    compressed.extend(&p256_sec1[1..33]);
    assert!(Verifier::ecdsa(Algorithm::ES256, &compressed).is_none());
    assert!(Verifier::ecdsa(Algorithm::EdDSA, &p256_sec1).is_none());

    // Through the key set: an ES256 key under the kid of an ES384 token, and the header lying.
    let keys = keyset(vec![ec256_jwk(Some("k"), None)]);
    assert_eq!(check(&t384, &keys).unwrap_err(), TokenError::AlgKeyMismatch);
    let (_, rest) = t384.split_once('.').unwrap();
    let lying = format!(
        "{}.{rest}",
        b64(r#"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#)
    );
    assert_eq!(check(&lying, &keys).unwrap_err(), TokenError::BadSignature);
}

#[test]
fn every_rsa_algorithm_needs_its_label_on_the_rsa_jwk() {
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
    // Unlabelled, the RSA key verifies RS256 only (one algorithm per key, RFC 8725 §3.1): the
    // same key's PS*/RS384/RS512 signatures are refused; labelled, each verifies its own.
    let unbound = rsa_keys_unbound();
    for (token, alg) in tokens
        .into_iter()
        .zip(["RS384", "RS512", "PS256", "PS384", "PS512"])
    {
        let token = token.unwrap();
        assert_eq!(peek(&token).unwrap().alg.as_deref(), Some(alg));
        assert_eq!(
            check(&token, &unbound).unwrap_err(),
            TokenError::AlgKeyMismatch,
            "{alg}"
        );
        let labelled = keyset(vec![rsa_jwk(rsa(), Some("rsa-1"), Some(alg))]);
        assert!(check(&token, &labelled).is_ok(), "{alg}");
    }
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
        verify_jwt(&token, &p, &rsa_keys_unbound(), &names, NOW).unwrap_err(),
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
fn algorithm_families_and_names() {
    use crate::token::Algorithm as A;
    for a in A::ALL {
        let rsa = matches!(
            a,
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
        );
        assert_eq!(a.is_rsa(), rsa, "{a}");
        assert_eq!(a.to_string(), a.name());
        assert_eq!(A::from_name(&a.to_string()), Some(*a));
    }
    assert_eq!(A::ES256.to_string(), "ES256");
    assert!(!A::ES256.is_rsa() && !A::EdDSA.is_rsa() && !A::HS256.is_rsa());
}

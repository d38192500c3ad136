//! The host signature path (Envoy's `verify_signature`) against the Wasm verifiers: on every
//! algorithm, valid tokens, tampered and truncated signatures, wrong keys, ECDSA scalars out of
//! range and DER where `r || s` belongs, both paths give the same verdict; RS*/ES* go to the host,
//! PS*, EdDSA and HS* never; a host verdict is final and a host that cannot answer falls back.
//! The host is a stand-in for BoringSSL: the `rsa`, `p256` and `p384` crates parsing the DER
//! this module sends, verifying with the key's default scheme as `EVP_DigestVerify` does.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::cell::{Cell, RefCell};

use super::super::verifier::Signatures;
use super::super::*;
use super::*;
use crate::crypto::host_sig::{self, Curve};
use crate::host::{HostSignature, SignatureCheck};

use jwt_simple::prelude::{
    PS256KeyPair, PS384KeyPair, PS512KeyPair, RS384KeyPair, RS512KeyPair, RSAKeyPairLike,
};
use rsa::pkcs8::DecodePublicKey as _;

#[path = "native_host.rs"]
mod native;

/// What Envoy's `verify_signature` does, with native crates (`native_host.rs`).
pub(super) fn native_host(check: &SignatureCheck<'_>) -> HostSignature {
    native::verify(check)
}

/// Verifies `token` in Wasm and through `host`; returns both results and the host's count.
fn both(
    token: &str,
    keys: &KeySet,
    host: &dyn Fn(&SignatureCheck<'_>) -> HostSignature,
) -> (
    Result<VerifiedToken, TokenError>,
    Result<VerifiedToken, TokenError>,
    u32,
    u32,
) {
    let wasm = verify_jwt(token, &all_algs(), keys, &ClaimNames::default(), NOW);
    let sigs = Signatures::with_host(host);
    let hosted = verify_jwt_with(token, &all_algs(), keys, &ClaimNames::default(), NOW, &sigs);
    (wasm, hosted, sigs.host_checks(), sigs.wasm_checks())
}

fn all_algs() -> JwtPolicy {
    JwtPolicy {
        algorithms: Algorithm::ALL.to_vec(),
        ..policy()
    }
}

fn rsa_der() -> Vec<u8> {
    rsa().to_der().unwrap()
}

fn rsa_token(alg: Algorithm, kp_der: &[u8], kid: &str) -> String {
    let claims = jwt_claims(claims());
    let opts = typ("at+jwt");
    match alg {
        Algorithm::RS256 => RS256KeyPair::from_der(kp_der)
            .unwrap()
            .with_key_id(kid)
            .sign_with_options(claims, &opts),
        Algorithm::RS384 => RS384KeyPair::from_der(kp_der)
            .unwrap()
            .with_key_id(kid)
            .sign_with_options(claims, &opts),
        Algorithm::RS512 => RS512KeyPair::from_der(kp_der)
            .unwrap()
            .with_key_id(kid)
            .sign_with_options(claims, &opts),
        Algorithm::PS256 => PS256KeyPair::from_der(kp_der)
            .unwrap()
            .with_key_id(kid)
            .sign_with_options(claims, &opts),
        Algorithm::PS384 => PS384KeyPair::from_der(kp_der)
            .unwrap()
            .with_key_id(kid)
            .sign_with_options(claims, &opts),
        _ => PS512KeyPair::from_der(kp_der)
            .unwrap()
            .with_key_id(kid)
            .sign_with_options(claims, &opts),
    }
    .unwrap()
}

/// A token whose signature segment is replaced by `sig`.
fn with_signature(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(sig))
}

fn signature_of(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(token.rsplit_once('.').unwrap().1)
        .unwrap()
}

/// Variants of a valid token that must all be refused: one bit of the signature flipped, the
/// signature truncated, extended, empty, and the payload swapped.
fn tampered(token: &str) -> Vec<String> {
    let sig = signature_of(token);
    let mut flipped = sig.clone();
    flipped[sig.len() / 2] ^= 0x01;
    let mut last = sig.clone();
    *last.last_mut().unwrap() ^= 0x80;
    let parts: Vec<&str> = token.split('.').collect();
    let other =
        b64(json!({"iss": ISS, "aud": AUD, "exp": NOW + 300, "scope": "user/*.*"}).to_string());
    vec![
        with_signature(token, &flipped),
        with_signature(token, &last),
        with_signature(token, &sig[..sig.len() - 1]),
        with_signature(token, &[sig.as_slice(), &[0]].concat()),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}.{}", parts[0], other, parts[2]),
    ]
}

/// Asserts both paths agree on `token`, and that the host answered `host_expected` times.
#[track_caller]
fn agree(token: &str, keys: &KeySet, valid: bool, host_expected: bool) {
    let (wasm, hosted, host_n, _) = both(token, keys, &native_host);
    assert_eq!(wasm.is_ok(), valid, "wasm verdict: {wasm:?}");
    assert_eq!(
        wasm.as_ref().map(|t| t.subject().map(str::to_owned)).ok(),
        hosted.as_ref().map(|t| t.subject().map(str::to_owned)).ok()
    );
    assert_eq!(wasm.err(), hosted.err());
    if host_expected {
        assert!(host_n > 0, "the host was not asked");
    } else {
        assert_eq!(host_n, 0, "the host was asked");
    }
}

#[test]
fn rsa_algorithms_agree_and_only_pkcs1_goes_to_the_host() {
    let der = rsa_der();
    let attacker = rsa_attacker().to_der().unwrap();
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let keys = keyset(vec![rsa_jwk(rsa(), Some("rsa-1"), Some(alg.name()))]);
        let to_host = !matches!(alg, Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512);
        let token = rsa_token(alg, &der, "rsa-1");
        agree(&token, &keys, true, to_host);
        for bad in tampered(&token) {
            let (wasm, hosted, _, _) = both(&bad, &keys, &native_host);
            assert_eq!(wasm.unwrap_err(), TokenError::BadSignature, "{alg}");
            assert_eq!(hosted.unwrap_err(), TokenError::BadSignature, "{alg}");
        }
        // Signed by another key under the trusted kid.
        agree(&rsa_token(alg, &attacker, "rsa-1"), &keys, false, to_host);
    }
}

#[test]
fn the_hash_comes_from_the_key_not_the_header() {
    // A key bound to RS256 never verifies an RS512 token, on either path (and the host is
    // never asked with another hash).
    let keys = keyset(vec![rsa_jwk(rsa(), Some("rsa-1"), Some("RS256"))]);
    let token = rsa_token(Algorithm::RS512, &rsa_der(), "rsa-1");
    let (wasm, hosted, host_n, _) = both(&token, &keys, &native_host);
    assert_eq!(wasm.unwrap_err(), TokenError::AlgKeyMismatch);
    assert_eq!(hosted.unwrap_err(), TokenError::AlgKeyMismatch);
    assert_eq!(host_n, 0);
    // A PS256 signature presented as RS256 (same key): refused by both.
    let ps = rsa_token(Algorithm::PS256, &rsa_der(), "rsa-1");
    let rs = rsa_token(Algorithm::RS256, &rsa_der(), "rsa-1");
    let mixed = with_signature(&rs, &signature_of(&ps));
    agree(&mixed, &keys, false, true);
    // The hash the host was given is the key's.
    let seen = RefCell::new(Vec::new());
    let spy = |c: &SignatureCheck<'_>| {
        seen.borrow_mut().push(c.hash);
        native_host(c)
    };
    let (_, hosted, _, _) = both(&rs, &keys, &spy);
    assert!(hosted.is_ok());
    assert_eq!(*seen.borrow(), vec!["sha256"]);
}

#[test]
fn ecdsa_algorithms_agree_including_scalars_out_of_range_and_der() {
    let k256 = keyset(vec![ec256_jwk(Some("k"), None)]);
    let k384 = keyset(vec![ec384_jwk(Some("k"), None)]);
    for (token, keys, curve) in [
        (es256_token("k", claims()), &k256, Curve::P256),
        (es384_token("k", claims()), &k384, Curve::P384),
    ] {
        agree(&token, keys, true, true);
        for bad in tampered(&token) {
            let (wasm, hosted, _, _) = both(&bad, keys, &native_host);
            assert_eq!(wasm.unwrap_err(), TokenError::BadSignature);
            assert_eq!(hosted.unwrap_err(), TokenError::BadSignature);
        }
        let sig = signature_of(&token);
        let len = curve.scalar_len();
        let order: &[u8] = match curve {
            Curve::P256 => &hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"),
            Curve::P384 => &hex("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973"),
        };
        let zero = vec![0u8; len];
        let ones = vec![0xffu8; len];
        let (r, s) = sig.split_at(len);
        // r or s zero, equal to the order, above it; r||s in DER instead of raw.
        for forged in [
            [zero.as_slice(), s].concat(),
            [r, zero.as_slice()].concat(),
            [order, s].concat(),
            [r, order].concat(),
            [ones.as_slice(), s].concat(),
            host_sig::ecdsa_sig_der(curve, &sig).unwrap(),
        ] {
            let (wasm, hosted, host_n, _) =
                both(&with_signature(&token, &forged), keys, &native_host);
            assert_eq!(wasm.unwrap_err(), TokenError::BadSignature);
            assert_eq!(hosted.unwrap_err(), TokenError::BadSignature);
            assert_eq!(host_n, 0, "refused before the host");
        }
        // High S (n - s) is accepted by both, as RFC 7518 and common signers allow.
        let high_s = negate_mod(s, order);
        let high = with_signature(&token, &[r, high_s.as_slice()].concat());
        agree(&high, keys, true, true);
    }
    // Another key under the same kid.
    let other = ES256KeyPair::generate().with_key_id("k");
    let forged = other
        .sign_with_options(jwt_claims(claims()), &typ("at+jwt"))
        .unwrap();
    agree(&forged, &k256, false, true);
}

#[test]
fn eddsa_and_hmac_never_go_to_the_host() {
    let token = ed_token("ed-1", claims());
    agree(&token, &ed_keys(), true, false);
    let hmac_keys = KeySet::empty()
        .with_hmac_secret(SECRET, &[Algorithm::HS256])
        .unwrap();
    let hs = craft(
        r#"{"alg":"HS256","typ":"at+jwt"}"#,
        &payload(),
        Sig::Hmac(SECRET, "HS256"),
    );
    agree(&hs, &hmac_keys, true, false);
    let asked = Cell::new(0);
    let spy = |c: &SignatureCheck<'_>| {
        asked.set(asked.get() + 1);
        native_host(c)
    };
    let _ = both(&hs, &hmac_keys, &spy);
    let _ = both(&token, &ed_keys(), &spy);
    assert_eq!(
        asked.get(),
        0,
        "no secret or EdDSA signature leaves the module"
    );
    // `none` and an HMAC token against a public key stay refused before any signature check.
    let none = craft(r#"{"alg":"none","typ":"at+jwt"}"#, &payload(), Sig::Empty);
    let (wasm, hosted, _, _) = both(&none, &rsa_keys(), &native_host);
    assert_eq!(wasm.unwrap_err(), TokenError::AlgNotAllowed);
    assert_eq!(hosted.unwrap_err(), TokenError::AlgNotAllowed);
    let confused = craft(
        r#"{"alg":"HS256","kid":"rsa-1","typ":"at+jwt"}"#,
        &payload(),
        Sig::Hmac(b"public key bytes as an hmac secret", "HS256"),
    );
    let (wasm, hosted, host_n, _) = both(&confused, &rsa_keys(), &native_host);
    assert_eq!(wasm.unwrap_err(), TokenError::AlgNotAllowed);
    assert_eq!(hosted.unwrap_err(), TokenError::AlgNotAllowed);
    assert_eq!(host_n, 0);
}

#[test]
fn a_host_verdict_is_final_and_a_host_that_cannot_answer_falls_back() {
    let token = rs256_token(claims());
    let keys = rsa_keys();
    // A host that refuses every signature: the token is refused, never retried in Wasm.
    let refuse = |_: &SignatureCheck<'_>| HostSignature::Invalid;
    let (_, hosted, host_n, wasm_n) = both(&token, &keys, &refuse);
    assert_eq!(hosted.unwrap_err(), TokenError::BadSignature);
    assert_eq!((host_n, wasm_n), (1, 0));
    // A host without the function: Wasm decides, for valid and invalid tokens alike.
    let absent = |_: &SignatureCheck<'_>| HostSignature::Unavailable;
    let (_, hosted, host_n, wasm_n) = both(&token, &keys, &absent);
    assert!(hosted.is_ok());
    assert_eq!((host_n, wasm_n), (0, 1));
    let bad = tampered(&token).remove(0);
    let (_, hosted, _, _) = both(&bad, &keys, &absent);
    assert_eq!(hosted.unwrap_err(), TokenError::BadSignature);
    // A host that cannot parse the DER it is given (as Envoy's BadArgument): the same verdicts
    // from the Wasm path.
    let mangled = |c: &SignatureCheck<'_>| {
        let mut der = c.public_key_der.to_vec();
        der[1] ^= 0x40;
        native_host(&SignatureCheck {
            public_key_der: &der,
            ..*c
        })
    };
    for t in [token.clone(), bad, es256_token("k", claims())] {
        let keys = if t.starts_with(&token[..10]) {
            rsa_keys()
        } else {
            keyset(vec![ec256_jwk(Some("k"), None)])
        };
        let (wasm, hosted, host_n, _) = both(&t, &keys, &mangled);
        assert_eq!(wasm.is_ok(), hosted.is_ok());
        assert_eq!(host_n, 0);
    }
}

#[test]
fn der_encodings_parse_as_the_keys_and_signatures_they_encode() {
    let c = rsa().public_key().to_components();
    let der = host_sig::rsa_spki(&c.n, &c.e);
    let parsed = rsa::RsaPublicKey::from_public_key_der(&der).unwrap();
    use rsa::traits::PublicKeyParts as _;
    assert_eq!(parsed.n().to_bytes_be(), c.n);
    assert_eq!(parsed.e().to_bytes_be(), c.e);
    // Leading zeros in the JWK's n are not part of the integer.
    assert_eq!(host_sig::rsa_spki(&[&[0, 0][..], &c.n].concat(), &c.e), der);

    let sec1 = ec256().public_key().public_key().to_bytes_uncompressed();
    let der = host_sig::ec_spki(Curve::P256, &sec1);
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
    assert_eq!(key.to_encoded_point(false).as_bytes(), sec1.as_slice());
    let sec1 = ec384().public_key().public_key().to_bytes_uncompressed();
    let der = host_sig::ec_spki(Curve::P384, &sec1);
    let key = p384::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
    assert_eq!(key.to_encoded_point(false).as_bytes(), sec1.as_slice());

    // r || s with a high bit, leading zeros, and both: DER the p256 crate reads back to them.
    let mut cases = vec![signature_of(&es256_token("k", claims()))];
    let mut lead = cases[0].clone();
    lead[0] = 0;
    lead[1] = 0x05;
    lead[32] = 0x80;
    cases.push(lead);
    for raw in cases {
        let der = host_sig::ecdsa_sig_der(Curve::P256, &raw).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        assert_eq!(sig.to_bytes().as_slice(), raw.as_slice());
    }
    assert!(host_sig::ecdsa_sig_der(Curve::P256, &[1u8; 63]).is_none());
    assert!(host_sig::ecdsa_sig_der(Curve::P384, &[1u8; 64]).is_none());
    // Long DER lengths (an RSA key above 127 bytes of contents) use the long form.
    let der = host_sig::rsa_spki(&[0x80; 300], &[1, 0, 1]);
    // 15 (algorithm) + 4 + 1 + (4 + (4 + 1 + 300) + 5): 334 bytes of contents.
    assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x4e]);
    assert_eq!(der.len(), 4 + 334);
}

#[test]
fn the_foreign_function_messages_are_envoys_protobufs() {
    // VerifySignatureArguments { hash_function = 1, public_key = 2, signature = 3, text = 4 }
    let msg = host_sig::verify_arguments("sha256", &[0x30, 0x00], &[0xaa; 200], b"a.b");
    let mut want = vec![0x0a, 6];
    want.extend(b"sha256");
    want.extend([0x12, 2, 0x30, 0x00]);
    want.extend([0x1a, 0xc8, 0x01]);
    want.extend([0xaa; 200]);
    want.extend([0x22, 3]);
    want.extend(b"a.b");
    assert_eq!(msg, want);
    // VerifySignatureResult { bool result = 1; string error = 2; }
    assert_eq!(host_sig::verify_result(&[0x08, 0x01]), Some(true));
    assert_eq!(
        host_sig::verify_result(&[0x08, 0x01, 0x12, 0x00]),
        Some(true)
    );
    let mut failed = vec![0x12, 5];
    failed.extend(b"error");
    assert_eq!(host_sig::verify_result(&failed), Some(false));
    assert_eq!(host_sig::verify_result(&[]), Some(false));
    assert_eq!(host_sig::verify_result(&[0x08, 0x00]), Some(false));
    // Not such a message: the caller falls back to Wasm.
    assert_eq!(host_sig::verify_result(&[0x08]), None);
    assert_eq!(host_sig::verify_result(&[0x12, 9, b'x']), None);
    assert_eq!(host_sig::verify_result(&[0x0b]), None);
    assert_eq!(host_sig::verify_result(&[0xff; 11]), None);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `n - s` for big-endian `s < n` of the same length.
fn negate_mod(s: &[u8], n: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; n.len()];
    let mut borrow = 0i16;
    for i in (0..n.len()).rev() {
        let mut d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

/// Only RS* keys whose exponent fits the host's 32 bits are given to the host: a key with a
/// larger exponent (or a PS* key) is verified in Wasm even when the host would say yes.
#[test]
fn a_key_the_host_cannot_take_never_reaches_it() {
    use super::super::verifier::{SigOutcome, Verifier};
    use crate::crypto::rsa::RsaPublicKey;
    let mut n = vec![0xc5u8; 256];
    n[255] |= 1;
    let says_yes = |_: &SignatureCheck<'_>| HostSignature::Valid;
    let token = format!("e30.e30.{}", b64([7u8; 256]));
    for (alg, e, to_host) in [
        (Algorithm::RS256, vec![1u8, 0, 1], true),
        (Algorithm::RS256, vec![1u8, 0, 0, 0, 15], false),
        (Algorithm::PS256, vec![1u8, 0, 1], false),
    ] {
        let key = RsaPublicKey::new(&n, &e).unwrap();
        let spki: std::sync::Arc<[u8]> = host_sig::rsa_spki(&n, &e).into();
        let v = Verifier::rsa(alg, key, &spki).unwrap();
        let sigs = Signatures::with_host(&says_yes);
        let outcome = v.check_with(&token, &sigs);
        assert_eq!(sigs.host_checks(), u32::from(to_host), "{alg} e={e:?}");
        let expected = if to_host {
            SigOutcome::Valid
        } else {
            SigOutcome::Invalid
        };
        assert_eq!(outcome, expected, "{alg} e={e:?}");
    }
}

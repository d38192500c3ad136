//! Tests of the signature primitives behind `verifier.rs` (ES256, ES384, EdDSA, HS*): tokens
//! signed by jwt-simple verify (differentially: both agree on valid and tampered tokens),
//! encodings other than the JWS ones are refused, unusable EC/OKP keys are refused at load.

use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, EdDSAPublicKeyLike, HS256Key, HS384Key,
    HS512Key, MACLike, NoCustomClaims, VerificationOptions,
};
use serde_json::{json, Value};

use super::tests::*;
use super::verifier::{SigOutcome, Verifier};
use super::*;

/// A 64-byte secret: long enough for HS512.
const LONG_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn ec_keys() -> KeySet {
    keyset(vec![
        ec256_jwk(Some("ec-256"), None),
        ec384_jwk(Some("ec-384"), None),
    ])
}

fn hmac_setup() -> (KeySet, JwtPolicy) {
    let algs = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    let keys = KeySet::empty()
        .with_hmac_secret(LONG_SECRET, &algs)
        .unwrap();
    let mut p = policy();
    p.algorithms.extend(algs);
    (keys, p)
}

fn verify_with(token: &str, keys: &KeySet, p: &JwtPolicy) -> Result<VerifiedToken, TokenError> {
    verify_jwt(token, p, keys, &ClaimNames::default(), NOW)
}

/// Replaces the signature segment by `sig` (raw bytes).
fn with_signature(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(sig))
}

fn signature_of(token: &str) -> Vec<u8> {
    base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        token.rsplit_once('.').unwrap().1,
    )
    .unwrap()
}

/// Flips one bit of the signature (`at` modulo its length).
fn tamper_signature(token: &str, at: usize) -> String {
    let mut sig = signature_of(token);
    let i = at % sig.len();
    sig[i] ^= 0x04;
    with_signature(token, &sig)
}

/// Replaces the payload, keeping header and signature.
fn swap_payload(token: &str, payload: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(payload.to_string()), parts[2])
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw `r || s` signature.
fn der(raw: &[u8]) -> Vec<u8> {
    fn int(bytes: &[u8]) -> Vec<u8> {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let mut v = bytes[start..].to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

/// Whether jwt-simple itself accepts `token` with the provider's key for `alg` at [`NOW`].
fn jwt_simple_accepts(token: &str, alg: Algorithm) -> bool {
    let options = Some(VerificationOptions {
        artificial_time: Some(jwt_simple::prelude::UnixTimeStamp::from_secs(NOW)),
        ..VerificationOptions::default()
    });
    match alg {
        Algorithm::ES256 => ec256()
            .public_key()
            .verify_token::<NoCustomClaims>(token, options)
            .is_ok(),
        Algorithm::ES384 => ec384()
            .public_key()
            .verify_token::<NoCustomClaims>(token, options)
            .is_ok(),
        _ => ed()
            .public_key()
            .verify_token::<NoCustomClaims>(token, options)
            .is_ok(),
    }
}

#[test]
fn tokens_signed_by_jwt_simple_verify_and_agree_when_tampered() {
    let ec_set = ec_keys();
    let ed_set = ed_keys();
    let (hkeys, hpolicy) = hmac_setup();
    for i in 0..6u64 {
        let payload = json!({"iss": ISS, "aud": AUD, "exp": NOW + 300 + i, "sub": format!("u{i}")});
        let es256 = es256_token("ec-256", payload.clone());
        let es384 = es384_token("ec-384", payload.clone());
        let eddsa = ed_token("ed-1", payload.clone());
        let hs = [
            HS256Key::from_bytes(LONG_SECRET)
                .authenticate_with_options(jwt_claims(payload.clone()), &typ("at+jwt"))
                .unwrap(),
            HS384Key::from_bytes(LONG_SECRET)
                .authenticate_with_options(jwt_claims(payload.clone()), &typ("at+jwt"))
                .unwrap(),
            HS512Key::from_bytes(LONG_SECRET)
                .authenticate_with_options(jwt_claims(payload.clone()), &typ("at+jwt"))
                .unwrap(),
        ];
        assert_eq!(signature_of(&es256).len(), 64);
        assert_eq!(signature_of(&es384).len(), 96);
        let at = (i as usize) * 13;
        for (token, keys, alg) in [
            (&es256, &ec_set, Algorithm::ES256),
            (&es384, &ec_set, Algorithm::ES384),
            (&eddsa, &ed_set, Algorithm::EdDSA),
        ] {
            assert!(check(token, keys).is_ok(), "{alg}");
            assert!(jwt_simple_accepts(token, alg), "{alg}");
            // A flipped signature bit: refused by us and by jwt-simple alike.
            let bad = tamper_signature(token, at);
            assert_eq!(check(&bad, keys).unwrap_err(), TokenError::BadSignature);
            assert!(!jwt_simple_accepts(&bad, alg), "{alg}");
        }
        for t in &hs {
            assert!(verify_with(t, &hkeys, &hpolicy).is_ok(), "{t}");
            let bad = tamper_signature(t, at);
            assert_eq!(
                verify_with(&bad, &hkeys, &hpolicy).unwrap_err(),
                TokenError::BadSignature
            );
        }

        // Another payload under the original signature.
        let other = json!({"iss": ISS, "aud": AUD, "exp": NOW + 300, "sub": "admin"});
        for (t, k) in [(&es256, &ec_set), (&es384, &ec_set), (&eddsa, &ed_set)] {
            assert_eq!(
                check(&swap_payload(t, &other), k).unwrap_err(),
                TokenError::BadSignature
            );
        }
        for t in &hs {
            assert_eq!(
                verify_with(&swap_payload(t, &other), &hkeys, &hpolicy).unwrap_err(),
                TokenError::BadSignature
            );
        }
    }
}

#[test]
fn ecdsa_signatures_must_be_raw_r_s_of_the_curve_size() {
    let keys = ec_keys();
    for (token, size) in [
        (es256_token("ec-256", claims()), 64usize),
        (es384_token("ec-384", claims()), 96),
    ] {
        let raw = signature_of(&token);
        assert_eq!(raw.len(), size);
        let mut long = raw.clone();
        long.push(0);
        let mut leading_zero = vec![0u8];
        leading_zero.extend(&raw);
        let other_size = if size == 64 { 96 } else { 64 };
        let bad = [
            der(&raw),
            raw[..size - 1].to_vec(),
            raw[1..].to_vec(),
            long,
            leading_zero,
            vec![0u8; other_size],
            Vec::new(),
        ];
        for sig in bad {
            assert_eq!(
                check(&with_signature(&token, &sig), &keys).unwrap_err(),
                TokenError::BadSignature,
                "{} bytes",
                sig.len()
            );
        }
        // r = 0 or s = 0 is never valid.
        let mut zero_s = raw.clone();
        zero_s[size / 2..].fill(0);
        let mut zero_r = raw.clone();
        zero_r[..size / 2].fill(0);
        for sig in [zero_r, zero_s] {
            assert_eq!(
                check(&with_signature(&token, &sig), &keys).unwrap_err(),
                TokenError::BadSignature
            );
        }
        // r or s at or above the group order (all ones) is refused, not reduced.
        let mut big_s = raw.clone();
        big_s[size / 2..].fill(0xff);
        assert_eq!(
            check(&with_signature(&token, &big_s), &keys).unwrap_err(),
            TokenError::BadSignature
        );
        // The untouched signature still verifies.
        assert!(check(&with_signature(&token, &raw), &keys).is_ok());
    }
}

#[test]
fn ecdsa_high_s_signatures_are_accepted() {
    // RFC 7518 does not require low-S and common signers (Node, Go, OpenSSL) produce high-S
    // half the time, so both (r, s) and (r, n - s) verify. A bearer token's signature is not
    // an identifier here (the token cache keys on the whole token), so malleability only
    // yields a second spelling of a token the holder already has.
    use p256::elliptic_curve::ff::PrimeField;
    let keys = ec_keys();
    let token = es256_token("ec-256", claims());
    let sig = p256::ecdsa::Signature::from_slice(&signature_of(&token)).unwrap();
    let (r, s) = sig.split_scalars();
    let flipped = p256::ecdsa::Signature::from_scalars(r.to_repr(), (-*s).to_repr()).unwrap();
    let (low, high) = match sig.normalize_s() {
        Some(low) => (low, sig),
        None => (sig, flipped),
    };
    assert!(low.normalize_s().is_none(), "low-S form");
    assert!(high.normalize_s().is_some(), "high-S form");
    for form in [low, high] {
        assert!(check(&with_signature(&token, &form.to_bytes()), &keys).is_ok());
    }

    let token = es384_token("ec-384", claims());
    let sig = p384::ecdsa::Signature::from_slice(&signature_of(&token)).unwrap();
    let (r, s) = sig.split_scalars();
    let flipped = p384::ecdsa::Signature::from_scalars(r.to_repr(), (-*s).to_repr()).unwrap();
    assert!(check(&with_signature(&token, &flipped.to_bytes()), &keys).is_ok());
    assert!(check(&token, &keys).is_ok());
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

fn assert_ec_refused(crv: &str, x: &[u8], y: &[u8], why: &str) {
    let jwk = json!({"kty": "EC", "crv": crv, "kid": "bad", "x": b64(x), "y": b64(y)});
    let doc = json!({ "keys": [jwk] }).to_string();
    let (set, warnings) = KeySet::from_jwks(doc.as_bytes(), Algorithm::ASYMMETRIC).unwrap();
    assert!(set.is_empty(), "{why}");
    assert_eq!(warnings.len(), 1, "{why}");
    assert!(
        warnings[0].contains("not on the curve"),
        "{why}: {warnings:?}"
    );
}

#[test]
fn ec_points_off_the_curve_are_refused_at_load() {
    for (crv, sec1) in [
        (
            "P-256",
            ec256().public_key().public_key().to_bytes_uncompressed(),
        ),
        (
            "P-384",
            ec384().public_key().public_key().to_bytes_uncompressed(),
        ),
    ] {
        let len = (sec1.len() - 1) / 2;
        let (x, y) = sec1[1..].split_at(len);
        let mut y_off = y.to_vec();
        y_off[len - 1] ^= 1;
        assert_ec_refused(crv, x, &y_off, "y changed");
        assert_ec_refused(
            crv,
            &vec![0; len],
            &vec![0; len],
            "(0, 0): identity encoding",
        );
        assert_ec_refused(crv, &vec![0xff; len], y, "x above the field prime");
        // The genuine point loads.
        let jwk = json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)});
        let doc = json!({ "keys": [jwk] }).to_string();
        let (set, warnings) = KeySet::from_jwks(doc.as_bytes(), Algorithm::ASYMMETRIC).unwrap();
        assert_eq!((set.len(), warnings.len()), (1, 0));
    }
}

#[test]
fn ed25519_weak_or_non_canonical_keys_are_refused_at_load() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    // y = p - 1 with x = 0: the point of order 2.
    let mut order2 = [0xffu8; 32];
    order2[0] = 0xec;
    order2[31] = 0x7f;
    // y = p: a non-canonical encoding of y = 0 (a point of order 4).
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xed;
    non_canonical[31] = 0x7f;
    let cases: [(&str, &[u8]); 5] = [
        ("identity", &identity),
        ("y = 0, order 4", &[0u8; 32]),
        ("order 2", &order2),
        ("non-canonical y", &non_canonical),
        ("31 bytes", &[9u8; 31]),
    ];
    for (why, x) in cases {
        assert!(Verifier::ed25519(x).is_none(), "{why}");
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "bad", "x": b64(x)});
        let doc = json!({ "keys": [jwk] }).to_string();
        let (set, warnings) = KeySet::from_jwks(doc.as_bytes(), Algorithm::ASYMMETRIC).unwrap();
        assert!(set.is_empty(), "{why}");
        assert_eq!(warnings.len(), 1, "{why}: {warnings:?}");
    }
    // ed25519-compact refuses such keys at verification too (defence in depth, not relied on).
    let sig = ed25519_compact::Signature::from_slice(&[0u8; 64]).unwrap();
    let pk = ed25519_compact::PublicKey::from_slice(&identity).unwrap();
    assert!(pk.verify(b"x", &sig).is_err());
    assert!(Verifier::ed25519(&ed().public_key().to_bytes()).is_some());
}

#[test]
fn eddsa_signature_length_and_canonical_s() {
    let token = ed_token("ed-1", claims());
    let raw = signature_of(&token);
    assert_eq!(raw.len(), 64);
    let mut long = raw.clone();
    long.push(0);
    for sig in [raw[..63].to_vec(), long, Vec::new()] {
        assert_eq!(
            check(&with_signature(&token, &sig), &ed_keys()).unwrap_err(),
            TokenError::BadSignature
        );
    }
    // s + L (the group order) is the same scalar mod L: refused as non-canonical (malleability).
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut malleated = raw.clone();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(malleated[32 + i]) + u16::from(L[i]) + carry;
        malleated[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "s + L fits 256 bits");
    assert_eq!(
        check(&with_signature(&token, &malleated), &ed_keys()).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn hmac_tags_must_be_complete_and_match() {
    let (keys, p) = hmac_setup();
    for (alg, len) in [("HS256", 32usize), ("HS384", 48), ("HS512", 64)] {
        let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt"}}"#);
        let token = craft(&header, &claims().to_string(), Sig::Hmac(LONG_SECRET, alg));
        let tag = signature_of(&token);
        assert_eq!(tag.len(), len);
        assert!(verify_with(&token, &keys, &p).is_ok(), "{alg}");
        let mut long = tag.clone();
        long.push(0);
        for bad in [
            tag[..16].to_vec(),
            tag[..len - 1].to_vec(),
            long,
            Vec::new(),
        ] {
            assert_eq!(
                verify_with(&with_signature(&token, &bad), &keys, &p).unwrap_err(),
                TokenError::BadSignature,
                "{alg} with {} bytes",
                bad.len()
            );
        }
        // Another secret.
        let other = craft(&header, &claims().to_string(), Sig::Hmac(&[7u8; 64], alg));
        assert_eq!(
            verify_with(&other, &keys, &p).unwrap_err(),
            TokenError::BadSignature
        );
    }
}

#[test]
fn signature_segment_must_be_canonical_unpadded_base64url() {
    let keys = ec_keys();
    let token = es256_token("ec-256", claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    // 64 bytes are 86 characters whose last one carries 4 unused bits.
    assert_eq!(sig.len(), 86);
    let last = sig.as_bytes()[85];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let pos = alphabet.iter().position(|c| *c == last).unwrap();
    let non_canonical = alphabet[(pos & !3) | ((pos & 3) ^ 1)] as char;
    let cases = [
        format!("{input}.{sig}=="),
        format!("{input}.{}{non_canonical}", &sig[..85]),
        format!("{input}.{}", sig.replace('-', "+").replace('_', "/")),
        format!("{input}.{sig} "),
    ];
    for bad in &cases {
        if bad != &token {
            assert_eq!(
                check(bad, &keys).unwrap_err(),
                TokenError::BadSignature,
                "{bad}"
            );
        }
    }
    assert!(check(&token, &keys).is_ok());
}

//! The signature primitives (RS*, PS*, ES256, ES384, EdDSA, HS*): tokens signed by jwt-simple
//! verify (differentially: both agree on valid and tampered tokens), and encodings other than
//! the JWS ones are refused.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::*;
use super::*;

use jwt_simple::prelude::{HS256Key, HS384Key, HS512Key, MACLike};
use serde_json::json;

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
fn rs256_happy_path_and_accessors() {
    let t = check(&rs256_token(claims()), &rsa_keys_unbound()).unwrap();
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

//! Loading key sets (JWKS documents, inline or fetched) and HMAC secrets: what is usable, what
//! is skipped with a warning, and what is refused at load.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::verifier::Verifier;
use super::*;

use jwt_simple::prelude::{ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike};
use serde_json::{json, Value};

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
fn loads_every_supported_key_type() {
    let set = keyset(vec![
        rsa_jwk(rsa(), Some("rsa-1"), Some("RS256")),
        ec256_jwk(Some("ec-256"), Some("ES256")),
        ec384_jwk(Some("ec-384"), None),
        ed_jwk(Some("ed-1"), Some("EdDSA")),
    ]);
    assert_eq!(set.len(), 4);
    assert_eq!(set.kids(), vec!["rsa-1", "ec-256", "ec-384", "ed-1"]);
    assert!(!set.has_hmac());
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        assert!(set.supports(alg), "{alg}");
    }
    assert!(
        !set.supports(Algorithm::PS256),
        "JWK alg RS256 pins the algorithm"
    );
    assert!(!set.supports(Algorithm::HS256));
}

#[test]
fn rsa_key_without_alg_is_bound_to_rs256() {
    // RFC 8725 §3.1: one algorithm per key. Unlabelled, an RSA key verifies RS256 only.
    let (set, warnings) = load_one(rsa_jwk(rsa(), Some("r"), None));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(set.supports(Algorithm::RS256));
    for alg in Algorithm::ASYMMETRIC
        .iter()
        .filter(|a| a.is_rsa() && **a != Algorithm::RS256)
    {
        assert!(!set.supports(*alg), "{alg}");
    }
    assert!(!set.supports(Algorithm::ES256));
    // RS256 not allowed: the unlabelled key is skipped with a warning, never widened to PS256.
    let (set, warnings) = load(
        vec![rsa_jwk(rsa(), Some("r"), None)],
        &[Algorithm::PS256, Algorithm::ES256],
    );
    assert!(set.is_empty());
    assert!(warnings[0].contains("RS256"), "{warnings:?}");
    // Labelled, the key serves its label.
    let (set, _) = load(
        vec![rsa_jwk(rsa(), Some("r"), Some("PS256"))],
        &[Algorithm::PS256, Algorithm::ES256],
    );
    assert!(set.supports(Algorithm::PS256));
    assert!(!set.supports(Algorithm::RS256));
}

#[test]
fn small_rsa_modulus_is_dropped_with_a_warning_without_key_material() {
    // A 1024-bit modulus (the loader refuses it on size before any arithmetic).
    let mut n = vec![0xC3u8; 128];
    n[127] |= 1;
    let n_b64 = b64(&n);
    let jwk = json!({"kty":"RSA","kid":"weak","n": n_b64,"e":"AQAB"});
    let (set, warnings) = load_one(jwk);
    assert!(set.is_empty());
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("weak"));
    assert!(warnings[0].contains("1024"));
    assert!(!warnings[0].contains(&n_b64[..20]));
}

#[test]
fn leading_zero_bytes_do_not_count_toward_modulus_size() {
    let mut n = vec![0u8; 8];
    n.extend_from_slice(&[0xC3u8; 200]); // 1600 bits after stripping
    assert_skipped(
        json!({"kty":"RSA","n": b64(&n),"e":"AQAB"}),
        "padded small modulus",
    );
}

#[test]
fn non_signature_keys_are_skipped() {
    let mut enc = ec256_jwk(Some("enc"), None);
    enc["use"] = json!("enc");
    assert_skipped(enc, "use=enc");
    let mut ops = ec256_jwk(Some("ops"), None);
    ops["key_ops"] = json!(["encrypt", "wrapKey"]);
    assert_skipped(ops, "key_ops without verify");
    let mut ok = ec256_jwk(Some("ok"), None);
    ok["use"] = json!("sig");
    ok["key_ops"] = json!(["verify"]);
    assert_eq!(load_one(ok).0.len(), 1);
}

#[test]
fn unsupported_types_and_curves_are_skipped() {
    assert_skipped(json!({"kty":"oct","kid":"h","k": b64(SECRET)}), "oct");
    assert_skipped(json!({"kty":"EC","crv":"P-521","x":"AA","y":"AA"}), "P-521");
    assert_skipped(
        json!({"kty":"EC","crv":"secp256k1","x":b64([1u8;32]),"y":b64([1u8;32])}),
        "k1",
    );
    assert_skipped(
        json!({"kty":"OKP","crv":"X25519","x": b64([9u8; 32])}),
        "X25519",
    );
    assert_skipped(
        json!({"kty":"OKP","crv":"Ed448","x": b64([9u8; 57])}),
        "Ed448",
    );
    assert_skipped(json!({"kid":"nokty","n":"AQAB","e":"AQAB"}), "missing kty");
}

#[test]
fn malformed_members_are_skipped() {
    let mut bad_n = rsa_jwk(rsa(), Some("a"), None);
    bad_n["n"] = json!("not base64 !!");
    assert_skipped(bad_n, "n not base64");
    let mut no_e = rsa_jwk(rsa(), Some("b"), None);
    no_e.as_object_mut().unwrap().remove("e");
    assert_skipped(no_e, "missing e");
    let mut short_x = ec256_jwk(Some("c"), None);
    short_x["x"] = json!(b64([1u8; 31]));
    assert_skipped(short_x, "short x");
    let mut off_curve = ec256_jwk(Some("d"), None);
    off_curve["y"] = json!(b64([7u8; 32]));
    assert_skipped(off_curve, "point not on the curve");
    let mut kid_num = ed_jwk(None, None);
    kid_num["kid"] = json!(7);
    assert_skipped(kid_num, "kid not a string");
    let mut ops_str = ed_jwk(None, None);
    ops_str["key_ops"] = json!("verify");
    assert_skipped(ops_str, "key_ops not an array");
    let (set, warnings) = load(vec![json!("a string"), json!(3)], Algorithm::ASYMMETRIC);
    assert!(set.is_empty());
    assert_eq!(warnings.len(), 2);
}

#[test]
fn jwk_alg_must_be_known_allowed_and_consistent() {
    assert_skipped(ec256_jwk(Some("x"), Some("RS256")), "EC with RSA alg");
    assert_skipped(ec256_jwk(Some("x"), Some("ES384")), "P-256 with ES384");
    assert_skipped(ed_jwk(Some("x"), Some("ES256")), "OKP with ES256");
    assert_skipped(rsa_jwk(rsa(), Some("x"), Some("ES256")), "RSA with ES256");
    assert_skipped(rsa_jwk(rsa(), Some("x"), Some("RS1")), "unknown alg");
    assert_skipped(rsa_jwk(rsa(), Some("x"), Some("none")), "alg none");
    assert_skipped(
        rsa_jwk(rsa(), Some("x"), Some("HS256")),
        "HMAC alg on an RSA key",
    );
    let (set, warnings) = load(
        vec![rsa_jwk(rsa(), Some("x"), Some("RS256"))],
        &[Algorithm::ES256],
    );
    assert!(set.is_empty());
    assert!(warnings[0].contains("not allowed"));
    let (set, _) = load(vec![ec256_jwk(Some("x"), None)], &[Algorithm::RS256]);
    assert!(set.is_empty(), "curve algorithm not allowed");
}

#[test]
fn private_members_are_ignored_with_a_warning() {
    let mut jwk = ed_jwk(Some("priv"), None);
    jwk["d"] = json!(b64([5u8; 32]));
    let (set, warnings) = load_one(jwk);
    assert_eq!(set.len(), 1);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("private"));
    assert!(!warnings[0].contains(&b64([5u8; 32])));
}

#[test]
fn document_limits_and_shape() {
    let many: Vec<Value> = (0..65)
        .map(|i| ed_jwk(Some(&format!("k{i}")), None))
        .collect();
    let doc = json!({ "keys": many }).to_string();
    assert_eq!(
        KeySet::from_jwks(doc.as_bytes(), Algorithm::ASYMMETRIC).unwrap_err(),
        JwksError::TooManyKeys
    );
    let sixty_four: Vec<Value> = (0..64)
        .map(|i| ed_jwk(Some(&format!("k{i}")), None))
        .collect();
    assert_eq!(load(sixty_four, Algorithm::ASYMMETRIC).0.len(), 64);

    let huge = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(256 * 1024));
    assert_eq!(
        KeySet::from_jwks(huge.as_bytes(), Algorithm::ASYMMETRIC).unwrap_err(),
        JwksError::TooLarge
    );
    for (doc, err) in [
        (&b"not json"[..], JwksError::NotJson),
        (b"[]", JwksError::NotJson),
        (br#"{"keys":[],"keys":[]}"#, JwksError::NotJson),
        (br#"{"kty":"RSA"}"#, JwksError::MissingKeys),
        (br#"{"keys":{}}"#, JwksError::MissingKeys),
    ] {
        assert_eq!(
            KeySet::from_jwks(doc, Algorithm::ASYMMETRIC).unwrap_err(),
            err
        );
    }
    let (set, warnings) = KeySet::from_jwks(br#"{"keys":[]}"#, Algorithm::ASYMMETRIC).unwrap();
    assert!(set.is_empty() && warnings.is_empty());
    assert_eq!(JwksError::TooManyKeys.code(), "jwks_too_many_keys");
}

#[test]
fn hmac_secret_only_when_configured_and_long_enough() {
    let set = KeySet::empty()
        .with_hmac_secret(SECRET, &[Algorithm::HS256, Algorithm::RS256])
        .unwrap();
    assert!(set.has_hmac());
    assert!(set.supports(Algorithm::HS256));
    assert!(!set.supports(Algorithm::HS512));
    assert!(!set.supports(Algorithm::RS256));
    assert_eq!(
        KeySet::empty()
            .with_hmac_secret(&SECRET[..31], &[Algorithm::HS256])
            .unwrap_err(),
        JwksError::WeakHmacSecret
    );
    assert_eq!(
        KeySet::empty()
            .with_hmac_secret(SECRET, &[Algorithm::HS512])
            .unwrap_err(),
        JwksError::WeakHmacSecret
    );
    assert_eq!(
        KeySet::empty()
            .with_hmac_secret(SECRET, &[Algorithm::RS256])
            .unwrap_err(),
        JwksError::NoHmacAlgorithm
    );
}

#[test]
fn debug_output_shows_kids_not_key_material() {
    let set = keyset(vec![ed_jwk(Some("ed-1"), None)])
        .with_hmac_secret(SECRET, &[Algorithm::HS256])
        .unwrap();
    let text = format!("{set:?}");
    assert!(text.contains("ed-1"));
    assert!(text.contains("HS256"));
    assert!(!text.contains(&b64(ed().public_key().to_bytes())[..16]));
    assert!(!text.contains("0123456789abcdef"));
}

#[test]
fn rsa_keys_outside_the_supported_range_are_refused_at_load() {
    fn rsa_jwk_raw(n: &[u8], e: &[u8]) -> Value {
        json!({"kty": "RSA", "kid": "big", "n": b64(n), "e": b64(e)})
    }
    fn refused(jwk: Value, needle: &str) {
        let doc = json!({ "keys": [jwk] }).to_string();
        let (set, warnings) = KeySet::from_jwks(doc.as_bytes(), Algorithm::ASYMMETRIC).unwrap();
        assert!(set.is_empty(), "{needle}");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains(needle), "{warnings:?}");
        assert!(warnings[0].contains("big"), "{warnings:?}");
    }
    let odd = |bytes: usize| {
        let mut n = vec![0xC5u8; bytes];
        n[bytes - 1] |= 1;
        n
    };
    // 4097 and 8192 bits (jwt-simple used to take these; nothing else is linked now).
    let mut n4097 = odd(513);
    n4097[0] = 1;
    refused(rsa_jwk_raw(&n4097, &[1, 0, 1]), "4097 bits is above 4096");
    refused(
        rsa_jwk_raw(&odd(1024), &[1, 0, 1]),
        "8192 bits is above 4096",
    );
    // Exponents: 2^64 + 1, even, 1, empty.
    let n2048 = odd(256);
    for e in [&[1u8, 0, 0, 0, 0, 0, 0, 0, 1][..], &[1, 0, 0], &[1], &[]] {
        refused(rsa_jwk_raw(&n2048, e), "exponent is not supported");
    }
    // An even modulus.
    let mut even = odd(256);
    even[255] &= 0xfe;
    refused(rsa_jwk_raw(&even, &[1, 0, 1]), "modulus is invalid");
    // 4096 bits and e = 2^64 - 1 are within range.
    let jwk = rsa_jwk_raw(&odd(512), &[0xff; 8]);
    let doc = json!({ "keys": [jwk] }).to_string();
    let (set, warnings) = KeySet::from_jwks(doc.as_bytes(), Algorithm::ASYMMETRIC).unwrap();
    assert_eq!((set.len(), warnings.len()), (1, 0), "{warnings:?}");
}

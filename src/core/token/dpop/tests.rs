//! The full check of one DPoP proof: every algorithm, every claim, every key attack.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};

use super::fixtures::*;
use super::*;

const MAX_AGE_MS: u64 = 60_000;
const ALL_ALGS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

fn check_for<'a>(jkt: &'a str, hash: &'a [u8; 32]) -> ProofCheck<'a> {
    ProofCheck {
        algorithms: &ALL_ALGS,
        max_age_ms: MAX_AGE_MS,
        method: "GET",
        htu: Some(HTU),
        token_hash: hash,
        jkt,
        now_ms: NOW_S * 1000,
    }
}

/// Verifies `proof` as if the token were bound to `key`.
fn verify_bound(key: &TestKey, proof: &str) -> Result<VerifiedProof, ProofError> {
    let jkt = key.thumbprint();
    let hash = token_hash();
    verify_proof(proof, &check_for(&jkt, &hash))
}

fn es() -> TestKey {
    TestKey::es256(1)
}

#[test]
fn valid_proofs_of_every_algorithm_pass() {
    for key in [
        TestKey::es256(1),
        TestKey::es384(2),
        TestKey::eddsa(3),
        TestKey::Rs256,
        TestKey::Ps256,
    ] {
        let proof = key.proof("GET", HTU, NOW_S, "jti-1");
        let v = verify_bound(&key, &proof).unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(
            v.remember_until_ms,
            NOW_S * 1000 + MAX_AGE_MS + REPLAY_MARGIN_MS
        );
    }
}

#[test]
fn the_thumbprint_follows_rfc_7638() {
    // RFC 7638 §3.1.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        public_jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    for key in [
        TestKey::es256(1),
        TestKey::es384(2),
        TestKey::eddsa(3),
        TestKey::Rs256,
    ] {
        let jwk = key.jwk();
        assert_eq!(
            public_jwk_thumbprint(jwk.as_object().unwrap()),
            Some(key.thumbprint()),
            "{}",
            key.alg()
        );
    }
    // Members outside the required set do not change it.
    let mut jwk = es().jwk();
    jwk["kid"] = json!("k1");
    jwk["use"] = json!("sig");
    assert_eq!(
        public_jwk_thumbprint(jwk.as_object().unwrap()),
        Some(es().thumbprint())
    );
}

#[test]
fn the_replay_key_names_the_key_and_the_jti() {
    let a = es();
    let b = TestKey::es256(9);
    let ka = verify_bound(&a, &a.proof("GET", HTU, NOW_S, "j1")).unwrap();
    let ka_again = verify_bound(&a, &a.proof("GET", HTU, NOW_S + 5, "j1")).unwrap();
    let ka2 = verify_bound(&a, &a.proof("GET", HTU, NOW_S, "j2")).unwrap();
    let kb = verify_bound(&b, &b.proof("GET", HTU, NOW_S, "j1")).unwrap();
    assert_eq!(
        ka.replay_key, ka_again.replay_key,
        "same key and jti: a replay"
    );
    assert_ne!(ka.replay_key, ka2.replay_key);
    assert_ne!(
        ka.replay_key, kb.replay_key,
        "another client's jti is not ours"
    );
}

#[test]
fn malformed_proofs() {
    let key = es();
    let good = key.proof("GET", HTU, NOW_S, "j");
    let (head, rest) = good.split_once('.').unwrap();
    let long = format!("{good}{}", "A".repeat(MAX_PROOF_LEN));
    let dup_header = format!(
        "{}.{rest}",
        b64(br#"{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256"}"#)
    );
    for bad in [
        "".to_string(),
        "abc".to_string(),
        format!("{head}.{rest}.x.y"),
        format!("{head}=.{rest}"),
        format!("!{head}.{rest}"),
        long,
        dup_header,
        format!("{}.{rest}", b64(b"[1]")),
    ] {
        assert_eq!(
            verify_bound(&key, &bad),
            Err(ProofError::Malformed),
            "{bad:.40}"
        );
    }
    let mut crit = key.header();
    crit["crit"] = json!(["exp"]);
    let p = key.proof_with(&crit, &claims("GET", HTU, NOW_S, "j"));
    assert_eq!(verify_bound(&key, &p), Err(ProofError::Malformed));
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = es();
    let c = claims("GET", HTU, NOW_S, "j");
    for typ in [
        json!(null),
        json!("JWT"),
        json!("at+jwt"),
        json!("dpop"),
        json!(1),
    ] {
        let mut h = key.header();
        if typ.is_null() {
            h.as_object_mut().unwrap().remove("typ");
        } else {
            h["typ"] = typ.clone();
        }
        assert_eq!(
            verify_bound(&key, &key.proof_with(&h, &c)),
            Err(ProofError::Typ),
            "{typ}"
        );
    }
    for typ in ["application/dpop+jwt", "DPoP+JWT"] {
        let mut h = key.header();
        h["typ"] = json!(typ);
        assert!(verify_bound(&key, &key.proof_with(&h, &c)).is_ok(), "{typ}");
    }
}

#[test]
fn none_hmac_and_unlisted_algorithms_are_refused() {
    let key = es();
    let c = claims("GET", HTU, NOW_S, "j");
    let mut none = key.header();
    none["alg"] = json!("none");
    let unsigned = format!(
        "{}.{}.",
        b64(none.to_string().as_bytes()),
        b64(c.to_string().as_bytes())
    );
    assert_eq!(verify_bound(&key, &unsigned), Err(ProofError::Alg));
    // An HMAC proof keyed with the public key's bytes (alg confusion).
    let mut hs = key.header();
    hs["alg"] = json!("HS256");
    let input = format!(
        "{}.{}",
        b64(hs.to_string().as_bytes()),
        b64(c.to_string().as_bytes())
    );
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(
        key.jwk()["x"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    hmac::Mac::update(&mut mac, input.as_bytes());
    let tag = hmac::Mac::finalize(mac).into_bytes();
    assert_eq!(
        verify_bound(&key, &format!("{input}.{}", b64(&tag))),
        Err(ProofError::Alg)
    );
    for alg in [json!("ES512"), json!("es256"), json!(7), json!(null)] {
        let mut h = key.header();
        h["alg"] = alg.clone();
        assert_eq!(
            verify_bound(&key, &key.proof_with(&h, &c)),
            Err(ProofError::Alg),
            "{alg}"
        );
    }
    // Not in dpopAlgorithms.
    let jkt = key.thumbprint();
    let hash = token_hash();
    let only_eddsa = [Algorithm::EdDSA];
    let check = ProofCheck {
        algorithms: &only_eddsa,
        ..check_for(&jkt, &hash)
    };
    assert_eq!(
        verify_proof(&key.proof("GET", HTU, NOW_S, "j"), &check),
        Err(ProofError::Alg)
    );
}

#[test]
fn the_jwk_must_be_a_public_key_that_fits_the_algorithm() {
    let key = es();
    let c = claims("GET", HTU, NOW_S, "j");
    let with_jwk = |jwk: Value| {
        let mut h = key.header();
        h["jwk"] = jwk;
        key.proof_with(&h, &c)
    };
    let mut no_jwk = key.header();
    no_jwk.as_object_mut().unwrap().remove("jwk");
    assert_eq!(
        verify_bound(&key, &key.proof_with(&no_jwk, &c)),
        Err(ProofError::Jwk)
    );
    assert_eq!(
        verify_bound(&key, &with_jwk(json!(key.jwk().to_string()))),
        Err(ProofError::Jwk),
        "jwk as a string"
    );
    let mut padded = key.jwk();
    padded["x"] = json!(format!("{}=", padded["x"].as_str().unwrap()));
    assert_eq!(verify_bound(&key, &with_jwk(padded)), Err(ProofError::Jwk));
    let oct = json!({"kty": "oct", "k": b64(b"0123456789abcdef0123456789abcdef")});
    assert_eq!(verify_bound(&key, &with_jwk(oct)), Err(ProofError::Jwk));
    let unknown = json!({"kty": "XYZ", "x": "AAAA"});
    assert_eq!(verify_bound(&key, &with_jwk(unknown)), Err(ProofError::Jwk));
}

#[test]
fn private_key_material_in_the_jwk_is_refused() {
    for key in [TestKey::es256(1), TestKey::eddsa(3), TestKey::Rs256] {
        let mut h = key.header();
        h["jwk"] = key.private_jwk();
        let p = key.proof_with(&h, &claims("GET", HTU, NOW_S, "j"));
        assert_eq!(
            verify_bound(&key, &p),
            Err(ProofError::Jwk),
            "{}",
            key.alg()
        );
    }
    for member in ["p", "q", "dp", "dq", "qi", "oth", "k"] {
        let key = TestKey::Rs256;
        let mut h = key.header();
        h["jwk"][member] = json!("AAAA");
        let p = key.proof_with(&h, &claims("GET", HTU, NOW_S, "j"));
        assert_eq!(verify_bound(&key, &p), Err(ProofError::Jwk), "{member}");
    }
}

#[test]
fn a_key_that_matches_the_thumbprint_but_not_the_curve_or_algorithm_is_refused() {
    // The thumbprint is of the jwk as sent, so the check reaches key parsing.
    let ed = TestKey::eddsa(3);
    let es = es();
    let mut h = ed.header();
    h["alg"] = json!("ES256");
    let p = es.proof_with(&h, &claims("GET", HTU, NOW_S, "j"));
    assert_eq!(verify_bound(&ed, &p), Err(ProofError::Jwk));
    // A point that is not on the curve.
    let bogus = json!({"kty": "EC", "crv": "P-256", "x": b64(&[1u8; 32]), "y": b64(&[2u8; 32])});
    let mut h = es.header();
    h["jwk"] = bogus.clone();
    let p = es.proof_with(&h, &claims("GET", HTU, NOW_S, "j"));
    let jkt = public_jwk_thumbprint(bogus.as_object().unwrap()).unwrap();
    let hash = token_hash();
    assert_eq!(
        verify_proof(&p, &check_for(&jkt, &hash)),
        Err(ProofError::Jwk)
    );
}

#[test]
fn a_proof_by_another_key_does_not_match_the_token() {
    let bound = es();
    let attacker = TestKey::es256(7);
    let p = attacker.proof("GET", HTU, NOW_S, "j");
    assert_eq!(verify_bound(&bound, &p), Err(ProofError::Jkt));
    // The bound key's jwk with the attacker's signature: the signature fails.
    let p = attacker.proof_with(&bound.header(), &claims("GET", HTU, NOW_S, "j"));
    assert_eq!(verify_bound(&bound, &p), Err(ProofError::Signature));
}

#[test]
fn a_tampered_proof_fails_its_signature() {
    let key = es();
    let p = key.proof("GET", HTU, NOW_S, "j");
    let (head, sig) = p.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[5] ^= 1;
    assert_eq!(
        verify_bound(&key, &format!("{head}.{}", b64(&bytes))),
        Err(ProofError::Signature)
    );
    // Claims changed after signing (a replay for another URI).
    let (h, rest) = p.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other = claims("GET", HTU, NOW_S, "other-jti");
    let forged = format!("{h}.{}.{sig}", b64(other.to_string().as_bytes()));
    assert_eq!(verify_bound(&key, &forged), Err(ProofError::Signature));
}

#[test]
fn htm_must_be_the_request_method() {
    let key = es();
    for m in ["POST", "get", ""] {
        let p = key.proof(m, HTU, NOW_S, "j");
        assert_eq!(verify_bound(&key, &p), Err(ProofError::Htm), "{m}");
    }
    let c = with_claim(claims("GET", HTU, NOW_S, "j"), "htm", Value::Null);
    assert_eq!(
        verify_bound(&key, &key.proof_with(&key.header(), &c)),
        Err(ProofError::Htm)
    );
}

#[test]
fn htu_must_name_the_request_uri_after_normalisation() {
    let key = es();
    for ok in [
        "https://fhir.example.org/fhir/Patient/123?_pretty=true",
        "HTTPS://FHIR.EXAMPLE.ORG:443/fhir/Patient/123",
        "https://fhir.example.org/fhir/Patient/123#x",
    ] {
        assert!(
            verify_bound(&key, &key.proof("GET", ok, NOW_S, "j")).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "https://fhir.example.org/fhir/Patient/124",
        "https://fhir.example.org/fhir/Patient/123/",
        "http://fhir.example.org/fhir/Patient/123",
        "https://evil.example.org/fhir/Patient/123",
        "https://fhir.example.org:8443/fhir/Patient/123",
        "/fhir/Patient/123",
        "not a uri",
    ] {
        assert_eq!(
            verify_bound(&key, &key.proof("GET", bad, NOW_S, "j")),
            Err(ProofError::Htu),
            "{bad}"
        );
    }
    let c = with_claim(claims("GET", HTU, NOW_S, "j"), "htu", json!(5));
    assert_eq!(
        verify_bound(&key, &key.proof_with(&key.header(), &c)),
        Err(ProofError::Htu)
    );
    // A request without a nameable URI: no proof can match.
    let jkt = key.thumbprint();
    let hash = token_hash();
    let check = ProofCheck {
        htu: None,
        ..check_for(&jkt, &hash)
    };
    assert_eq!(
        verify_proof(&key.proof("GET", HTU, NOW_S, "j"), &check),
        Err(ProofError::Htu)
    );
}

#[test]
fn iat_must_be_within_max_age_either_way() {
    let key = es();
    let max = MAX_AGE_MS / 1000;
    for iat in [NOW_S - max, NOW_S + max, NOW_S] {
        assert!(
            verify_bound(&key, &key.proof("GET", HTU, iat, "j")).is_ok(),
            "{iat}"
        );
    }
    for iat in [NOW_S - max - 1, NOW_S + max + 1, 0] {
        assert_eq!(
            verify_bound(&key, &key.proof("GET", HTU, iat, "j")),
            Err(ProofError::Iat),
            "{iat}"
        );
    }
    for iat in [json!("1700000000"), json!(-1), json!(null), json!(1.0e300)] {
        let c = with_claim(claims("GET", HTU, NOW_S, "j"), "iat", iat.clone());
        let c = if iat.is_null() {
            with_claim(c, "iat", Value::Null)
        } else {
            c
        };
        assert_eq!(
            verify_bound(&key, &key.proof_with(&key.header(), &c)),
            Err(ProofError::Iat),
            "{iat}"
        );
    }
    // Fractional seconds count to the millisecond.
    let c = with_claim(
        claims("GET", HTU, NOW_S, "j"),
        "iat",
        json!((NOW_S - max) as f64 - 0.5),
    );
    assert_eq!(
        verify_bound(&key, &key.proof_with(&key.header(), &c)),
        Err(ProofError::Iat)
    );
}

#[test]
fn jti_must_be_a_bounded_non_empty_string() {
    let key = es();
    let ok = "x".repeat(MAX_JTI_LEN);
    assert!(verify_bound(&key, &key.proof("GET", HTU, NOW_S, &ok)).is_ok());
    for bad in [
        json!(""),
        json!("x".repeat(MAX_JTI_LEN + 1)),
        json!(12),
        json!(null),
    ] {
        let c = with_claim(claims("GET", HTU, NOW_S, "j"), "jti", bad.clone());
        let c = if bad.is_null() {
            with_claim(c, "jti", Value::Null)
        } else {
            c
        };
        assert_eq!(
            verify_bound(&key, &key.proof_with(&key.header(), &c)),
            Err(ProofError::Jti),
            "{bad:.20}"
        );
    }
}

#[test]
fn ath_must_be_the_hash_of_this_access_token() {
    let key = es();
    let other = b64(&sha2::Sha256::digest(b"another token"));
    let padded = format!("{}=", b64(&token_hash()));
    for bad in [json!(other), json!(padded), json!(null), json!(1)] {
        let c = with_claim(claims("GET", HTU, NOW_S, "j"), "ath", bad.clone());
        let c = if bad.is_null() {
            with_claim(c, "ath", Value::Null)
        } else {
            c
        };
        assert_eq!(
            verify_bound(&key, &key.proof_with(&key.header(), &c)),
            Err(ProofError::Ath),
            "{bad}"
        );
    }
}

#[test]
fn cheap_checks_come_before_the_signature() {
    // A proof with a wrong URI and a broken signature reports the URI: no public-key operation
    // was needed to refuse it.
    let key = es();
    let p = key.proof("GET", "https://elsewhere/x", NOW_S, "j");
    let (head, _) = p.rsplit_once('.').unwrap();
    let broken = format!("{head}.{}", b64(&[0u8; 64]));
    assert_eq!(verify_bound(&key, &broken), Err(ProofError::Htu));
}

#[test]
fn every_error_has_a_stable_code_and_a_safe_description() {
    let all = [
        ProofError::Malformed,
        ProofError::Typ,
        ProofError::Alg,
        ProofError::Jwk,
        ProofError::Jkt,
        ProofError::Htm,
        ProofError::Htu,
        ProofError::Iat,
        ProofError::Jti,
        ProofError::Ath,
        ProofError::Signature,
    ];
    let mut codes: Vec<&str> = all.iter().map(ProofError::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
    let mut descriptions: Vec<&str> = all.iter().map(ProofError::description).collect();
    descriptions.sort_unstable();
    descriptions.dedup();
    assert_eq!(descriptions.len(), all.len(), "each error says what it is");
    for e in all {
        let d = e.description();
        assert!(d.starts_with("The DPoP proof"), "{d}");
        assert!(
            d.chars()
                .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'),
            "{d}"
        );
    }
}

/// A proof of exactly `MAX_PROOF_LEN` bytes is read; the bound refuses only longer ones.
#[test]
fn a_proof_of_exactly_the_length_bound_is_verified() {
    let key = es();
    let make = |pad: usize, kid: usize| {
        let mut header = key.header();
        if kid > 0 {
            header["kid"] = json!("k".repeat(kid));
        }
        let c = with_claim(
            claims("GET", HTU, NOW_S, "j"),
            "pad",
            json!("p".repeat(pad)),
        );
        key.proof_with(&header, &c)
    };
    let exact = crate::token::tests::of_exact_length(MAX_PROOF_LEN, make);
    assert!(verify_bound(&key, &exact).is_ok());
    let over = format!("{exact}A");
    assert_eq!(verify_bound(&key, &over), Err(ProofError::Malformed));
}

#[test]
fn numeric_dates_keep_fractions_and_refuse_what_is_not_a_time() {
    assert_eq!(millis(&json!(1_790_000_000)), Some(1_790_000_000_000));
    assert_eq!(millis(&json!(1_790_000_000.25)), Some(1_790_000_000_250));
    assert_eq!(millis(&json!(0.5)), Some(500));
    for bad in [
        json!(-1),
        json!(-0.5),
        json!(1.0e12),
        json!(1.0e300),
        json!("1"),
        json!(null),
    ] {
        assert_eq!(millis(&bad), None, "{bad}");
    }
    // a fractional iat inside the window passes
    let key = es();
    let c = with_claim(
        claims("GET", HTU, NOW_S, "j"),
        "iat",
        json!(NOW_S as f64 + 0.25),
    );
    assert!(verify_bound(&key, &key.proof_with(&key.header(), &c)).is_ok());
}

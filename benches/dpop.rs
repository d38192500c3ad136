#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(not(target_arch = "wasm32"))]
//! Criterion microbenchmark of the added cost of a DPoP request with a cached token: checking
//! one ES256 proof (the full RFC 9449 §4.3 check, then the whole sender decision).
//!
//! `cargo bench --bench dpop -- --warm-up-time 1 --measurement-time 3`

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fhirgate::token::dpop::{htu, public_jwk_thumbprint, verify_proof, ProofCheck};
use fhirgate::token::{
    check_sender, token_hash, AuthScheme, ClaimNames, ConnectionFacts, SenderPolicy, SenderRequest,
    TokenKind, UriPolicy, VerifiedToken,
};
use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Map};

const NOW_S: u64 = 1_800_000_000;
const HTU: &str = "https://fhir.example.org/fhir/Observation";
const TOKEN: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLm9yZyJ9.c2lnbmF0dXJl";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn dpop(c: &mut Criterion) {
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42u8; 32]).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
    let jkt = public_jwk_thumbprint(jwk.as_object().unwrap()).unwrap();
    let hash = token_hash(TOKEN);
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let claims = json!({
        "htm": "GET", "htu": HTU, "iat": NOW_S, "jti": "e1d5c7d6-0c1f-4b8e-9b1b-3f0e6c2d9a77",
        "ath": b64(&hash),
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    let proof = format!("{input}.{}", b64(&sig.to_bytes()));

    let policy = SenderPolicy::default();
    let check = ProofCheck {
        algorithms: &policy.dpop_algorithms,
        max_age_ms: policy.dpop_max_age_ms,
        method: "GET",
        htu: Some(HTU),
        token_hash: &hash,
        jkt: &jkt,
        now_ms: NOW_S * 1000,
    };
    assert!(verify_proof(&proof, &check).is_ok());
    c.bench_function("dpop::verify_proof (ES256)", |b| {
        b.iter(|| verify_proof(black_box(&proof), black_box(&check)))
    });

    let mut token_claims = Map::new();
    token_claims.insert("iss".into(), json!("https://idp.example.org"));
    token_claims.insert("cnf".into(), json!({"jkt": jkt}));
    let token =
        VerifiedToken::for_policy_test(TokenKind::Jwt, token_claims, &ClaimNames::default());
    let proofs = [proof.as_str()];
    let req = SenderRequest {
        scheme: AuthScheme::Dpop,
        token_hash: &hash,
        proofs: &proofs,
        method: "GET",
        authority: "fhir.example.org",
        path: "/fhir/Observation?patient=123&category=laboratory",
        connection: ConnectionFacts {
            tls: true,
            peer_certificate_sha256: None,
        },
        now_ms: NOW_S * 1000,
    };
    let uris = UriPolicy {
        public_base_url: None,
        base_path: "/fhir",
    };
    assert!(check_sender(&token, &policy, &uris, &req).is_ok());
    c.bench_function(
        "token::check_sender (DPoP, ES256, htu from the request)",
        |b| b.iter(|| check_sender(black_box(&token), &policy, &uris, black_box(&req))),
    );
    c.bench_function("dpop::htu::expected + normalize", |b| {
        b.iter(|| {
            htu::expected(
                None,
                "/fhir",
                true,
                black_box("fhir.example.org"),
                black_box(req.path),
            )
        })
    });
    c.bench_function("token_hash (ath input)", |b| {
        b.iter(|| token_hash(black_box(TOKEN)))
    });
}

criterion_group!(benches, dpop);
criterion_main!(benches);

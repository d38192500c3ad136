//! Signatures by the host's crypto (Envoy's `verify_signature`) through the whole filter: with a
//! host that offers it, RS256 and ES256 tokens are verified there (signatures_host_total) and
//! served; tampered, foreign-key, `none` and HMAC-confusion tokens get the same 401 and reason
//! as without it; a host without it verifies everything in Wasm (signatures_wasm_total).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use harness::tokens::{self, keys, Spec, AUDIENCE, ISSUER};
use harness::{Harness, Req};
use serde_json::{json, Value};

fn config() -> String {
    json!({
        "providers": [{"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}}],
    })
    .to_string()
}

fn harness(host_signatures: bool) -> Harness {
    let h = Harness::new(&config(), 1);
    h.sim.host_signatures.set(host_signatures);
    h
}

/// Status and `WWW-Authenticate` of each token, and the two signature counters.
fn run(host_signatures: bool, tokens: &[String]) -> (Vec<(u16, Option<String>)>, i64, i64) {
    let mut h = harness(host_signatures);
    let answers = tokens
        .iter()
        .map(|t| {
            let out = h.run(Req::get("/fhir/Patient/123").bearer(t));
            (out.status(), out.header("www-authenticate"))
        })
        .collect();
    let host = h.metric("signatures_host_total");
    let wasm = h.metric("signatures_wasm_total");
    (answers, host, wasm)
}

#[test]
fn host_and_wasm_give_the_same_answers_and_the_host_does_the_work() {
    let spec = Spec::new().scope("user/*.rs");
    let h = harness(true);
    let now = h.now_s();
    let k = keys();
    let rs = tokens::token(&spec, now);
    let es = tokens::es256(&k.ec, &spec, now);
    let tokens = vec![
        rs.clone(),
        es.clone(),
        tokens::tamper_signature(&rs),
        tokens::tamper_signature(&es),
        tokens::rs256(&k.attacker, &spec, now),
        tokens::alg_none(&spec, now),
        tokens::hs256_with_public_key(&spec, now),
    ];
    let (with_host, host_n, wasm_n) = run(true, &tokens);
    let (without, host_0, wasm_all) = run(false, &tokens);
    assert_eq!(with_host, without);
    assert_eq!(with_host[0].0, 200);
    assert_eq!(with_host[1].0, 200);
    for (status, challenge) in &with_host[2..] {
        assert_eq!(*status, 401);
        assert!(challenge.as_deref().unwrap().contains("invalid_token"));
    }
    // rs, es, both tampered, the attacker's: five signatures, all by the host; none and HS256
    // are refused before any signature is checked.
    assert_eq!((host_n, wasm_n), (5, 0));
    assert_eq!((host_0, wasm_all), (0, 5));
}

#[test]
fn a_verified_token_is_cached_and_not_verified_again() {
    let mut h = harness(true);
    let t = tokens::token(&Spec::new().scope("user/*.rs"), h.now_s());
    for _ in 0..3 {
        assert_eq!(
            h.run(Req::get("/fhir/Patient/123").bearer(&t)).status(),
            200
        );
    }
    assert_eq!(h.metric("signatures_host_total"), 1);
}

//! DPoP-bound tokens (RFC 9449, contract §5) through the real engine on the simulated host:
//! every attack on a proof, the replay cache shared by the workers, bound tokens never accepted
//! as bearer tokens, token cache hits, and the audit record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use harness::dpop::{
    assert_bearer_invalid_token, assert_dpop_challenge, b64, bound_to, claims, config, htu, reason,
    signing_input, DpopKey,
};
use harness::tokens::{self, Spec};
use harness::{Harness, Outcome, Req};
use serde_json::json;

const READ: &str = "/fhir/Patient/123";

fn harness() -> Harness {
    Harness::new(&config(json!({}), json!({})), 2)
}

fn forwarded(out: &Outcome) -> bool {
    matches!(out, Outcome::Forwarded(_))
}

/// A token bound to `key`.
fn bound(h: &Harness, key: &DpopKey) -> String {
    tokens::token(&bound_to(Spec::new(), key), h.now_s())
}

#[test]
fn a_bound_token_with_a_valid_proof_is_forwarded_and_audited_as_dpop() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let proof = key.proof(&token, "GET", &htu(READ), h.now_s(), "jti-1");
    let id = h.send(0, Req::get(READ).dpop(&token, &proof));
    let out = h.outcome(id);
    assert!(forwarded(&out), "{}", out.text());
    assert_eq!(h.metric("dpop_proofs_accepted_total"), 1);
    let audit = h.audit_records();
    assert_eq!(audit.last().unwrap()["binding"], "dpop");
    assert_eq!(audit.last().unwrap()["outcome"], "allow");
    // Neither the proof nor the token appear in any log line.
    let logs = h.all_logs();
    assert!(!logs.contains(&proof) && !logs.contains(proof.rsplit('.').next().unwrap()));
    assert!(!logs.contains(&token));
}

#[test]
fn a_replayed_proof_is_refused_on_the_same_and_on_another_worker() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let proof = key.proof(&token, "GET", &htu(READ), h.now_s(), "jti-replay");
    let first = h.send(0, Req::get(READ).dpop(&token, &proof));
    assert!(forwarded(&h.outcome(first)));
    h.advance(1_000);
    for worker in [0, 1, 1, 0] {
        let id = h.send(worker, Req::get(READ).dpop(&token, &proof));
        assert_dpop_challenge(&h.outcome(id), "invalid_dpop_proof", "dpop.replay");
    }
    assert_eq!(h.metric("decisions.deny.dpop_replay"), 4);
    // A new proof (new jti) from the same client goes on, on either worker.
    for (worker, jti) in [(1, "jti-2"), (0, "jti-3")] {
        let p = key.proof(&token, "GET", &htu(READ), h.now_s(), jti);
        let id = h.send(worker, Req::get(READ).dpop(&token, &p));
        assert!(forwarded(&h.outcome(id)), "{}", h.outcome(id).text());
    }
}

#[test]
fn the_replay_cache_remembers_a_proof_as_long_as_it_could_pass() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    // iat 59 s in the future: valid for 2 minutes from now, remembered that long.
    let iat = h.now_s() + 59;
    let proof = key.proof(&token, "GET", &htu(READ), iat, "j-future");
    assert!(forwarded(&h.run(Req::get(READ).dpop(&token, &proof))));
    h.advance(118_000);
    let out = h.run(Req::get(READ).dpop(&token, &proof));
    assert_dpop_challenge(&out, "invalid_dpop_proof", "dpop.replay");
    // After iat + dpopMaxAge it fails on its age, whatever the cache holds.
    h.advance(4_000);
    let out = h.run(Req::get(READ).dpop(&token, &proof));
    assert_dpop_challenge(&out, "invalid_dpop_proof", "dpop.iat");
}

#[test]
fn a_proof_for_another_uri_or_method_is_refused() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let now = h.now_s();
    let cases = [
        (
            key.proof(&token, "GET", &htu("/fhir/Patient/999"), now, "a"),
            "dpop.htu",
        ),
        (
            key.proof(
                &token,
                "GET",
                "https://fhir.example.org/fhir/Patient/123",
                now,
                "b",
            ),
            "dpop.htu",
        ),
        (
            key.proof(
                &token,
                "GET",
                "http://evil.example.org/fhir/Patient/123",
                now,
                "c",
            ),
            "dpop.htu",
        ),
        (
            key.proof(&token, "DELETE", &htu(READ), now, "d"),
            "dpop.htm",
        ),
    ];
    for (proof, why) in cases {
        let out = h.run(Req::get(READ).dpop(&token, &proof));
        assert_dpop_challenge(&out, "invalid_dpop_proof", why);
    }
    // The query is not part of htu.
    let p = key.proof(&token, "GET", &htu(READ), now, "e");
    assert!(forwarded(&h.run(
        Req::get("/fhir/Patient/123?_format=json").dpop(&token, &p)
    )));
}

#[test]
fn a_client_header_cannot_change_the_scheme_of_the_uri() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let https = "https://fhir.example.org/fhir/Patient/123";
    let p = key.proof(&token, "GET", https, h.now_s(), "a");
    let out = h.run(
        Req::get(READ)
            .dpop(&token, &p)
            .header("x-forwarded-proto", "https"),
    );
    assert_dpop_challenge(&out, "invalid_dpop_proof", "dpop.htu");
    // On a real TLS connection the same URI is right.
    let p = key.proof(&token, "GET", https, h.now_s(), "b");
    assert!(forwarded(&h.run(Req::get(READ).tls().dpop(&token, &p))));
}

#[test]
fn with_a_public_base_url_the_proof_names_the_public_uri() {
    let cfg = config(
        json!({}),
        json!({"fhir": {"basePath": "/fhir", "publicBaseUrl": "https://api.example.org/r4"}}),
    );
    let mut h = Harness::new(&cfg, 1);
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let p = key.proof(
        &token,
        "GET",
        "https://api.example.org/r4/Patient/123",
        h.now_s(),
        "a",
    );
    assert!(forwarded(&h.run(Req::get(READ).dpop(&token, &p))));
    let p = key.proof(&token, "GET", &htu(READ), h.now_s(), "b");
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &p)),
        "invalid_dpop_proof",
        "dpop.htu",
    );
}

#[test]
fn a_stale_or_future_iat_is_refused() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let now = h.now_s();
    for (iat, jti) in [
        (now - 61, "old"),
        (now + 61, "future"),
        (now - 3600, "older"),
    ] {
        let p = key.proof(&token, "GET", &htu(READ), iat, jti);
        assert_dpop_challenge(
            &h.run(Req::get(READ).dpop(&token, &p)),
            "invalid_dpop_proof",
            "dpop.iat",
        );
    }
    // dpopMaxAge is the bound: a shorter one refuses what 60 s accepts.
    let mut h = Harness::new(&config(json!({"dpopMaxAge": "5s"}), json!({})), 1);
    let token = bound(&h, &key);
    let p = key.proof(&token, "GET", &htu(READ), h.now_s() - 6, "six");
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &p)),
        "invalid_dpop_proof",
        "dpop.iat",
    );
}

#[test]
fn a_stolen_token_with_the_thiefs_own_key_is_refused() {
    let mut h = harness();
    let owner = DpopKey::new(1);
    let thief = DpopKey::new(2);
    let token = bound(&h, &owner);
    let p = thief.proof(&token, "GET", &htu(READ), h.now_s(), "t1");
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &p)),
        "invalid_token",
        "dpop.jkt",
    );
    // The owner's public key in the header, signed by the thief.
    let p = thief.proof_with(
        &owner.header(),
        &claims(&token, "GET", &htu(READ), h.now_s(), "t2"),
    );
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &p)),
        "invalid_dpop_proof",
        "dpop.signature",
    );
    // A proof made for another token.
    let other = bound(&h, &owner);
    let other = format!("{other}x");
    let p = owner.proof(&other, "GET", &htu(READ), h.now_s(), "t3");
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &p)),
        "invalid_dpop_proof",
        "dpop.ath",
    );
}

#[test]
fn unsigned_and_hmac_proofs_are_refused() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let c = claims(&token, "GET", &htu(READ), h.now_s(), "n1");
    let mut none = key.header();
    none["alg"] = json!("none");
    let unsigned = format!("{}.", signing_input(&none, &c));
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &unsigned)),
        "invalid_dpop_proof",
        "dpop.alg",
    );
    let mut hs = key.header();
    hs["alg"] = json!("HS256");
    let input = signing_input(&hs, &c);
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.thumbprint().as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let hmac_proof = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &hmac_proof)),
        "invalid_dpop_proof",
        "dpop.alg",
    );
}

#[test]
fn private_key_material_in_the_jwk_is_refused() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let mut header = key.header();
    header["jwk"] = key.private_jwk();
    let p = key.proof_with(&header, &claims(&token, "GET", &htu(READ), h.now_s(), "k1"));
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &p)),
        "invalid_dpop_proof",
        "dpop.jwk",
    );
    let mut header = key.header();
    header["jwk"] = json!({"kty": "oct", "k": b64(b"a shared secret of thirty-two by")});
    let p = key.proof_with(&header, &claims(&token, "GET", &htu(READ), h.now_s(), "k2"));
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &p)),
        "invalid_dpop_proof",
        "dpop.jwk",
    );
}

#[test]
fn exactly_one_proof() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let a = key.proof(&token, "GET", &htu(READ), h.now_s(), "a");
    let b = key.proof(&token, "GET", &htu(READ), h.now_s(), "b");
    let two = Req::get(READ).dpop(&token, &a).header("dpop", &b);
    assert_dpop_challenge(&h.run(two), "invalid_dpop_proof", "dpop.multiple");
    let none = Req::get(READ).header("authorization", &format!("DPoP {token}"));
    assert_dpop_challenge(&h.run(none), "invalid_dpop_proof", "dpop.missing");
    let junk = Req::get(READ).dpop(&token, "not-a-jws");
    assert_dpop_challenge(&h.run(junk), "invalid_dpop_proof", "dpop.malformed");
    // Neither refused proof was consumed.
    assert!(forwarded(&h.run(Req::get(READ).dpop(&token, &a))));
}

#[test]
fn a_bound_token_is_never_accepted_as_a_bearer_token() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let p = key.proof(&token, "GET", &htu(READ), h.now_s(), "x");
    for req in [
        Req::get(READ).bearer(&token),
        Req::get(READ).bearer(&token).header("dpop", &p),
    ] {
        let out = h.run(req);
        assert_dpop_challenge(&out, "invalid_token", "dpop.bound_as_bearer");
    }
    let audit = h.audit_records();
    assert_eq!(audit.last().unwrap()["binding"], "dpop");
    assert_eq!(audit.last().unwrap()["reason"], "dpop.bound_as_bearer");
    // Also once the token is in the caches (verified by the DPoP request below, then as Bearer).
    assert!(forwarded(&h.run(Req::get(READ).dpop(&token, &p))));
    assert!(h.metric("token_cache_hits_total") >= 1);
    assert_dpop_challenge(
        &h.run(Req::get(READ).bearer(&token)),
        "invalid_token",
        "dpop.bound_as_bearer",
    );
    let id = h.send(1, Req::get(READ).bearer(&token));
    assert!(h.metric("token_shared_cache_hits_total") >= 1);
    assert_dpop_challenge(&h.outcome(id), "invalid_token", "dpop.bound_as_bearer");
}

#[test]
fn every_request_checks_its_own_proof_on_cache_hits() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    for (i, worker) in [0usize, 0, 1, 1].iter().enumerate() {
        let p = key.proof(&token, "GET", &htu(READ), h.now_s(), &format!("c{i}"));
        let id = h.send(*worker, Req::get(READ).dpop(&token, &p));
        assert!(forwarded(&h.outcome(id)));
    }
    assert_eq!(h.metric("dpop_proofs_accepted_total"), 4);
    // A cached token with a bad proof is still refused.
    let bad = key.proof(&token, "GET", &htu("/fhir/Patient/1"), h.now_s(), "bad");
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &bad)),
        "invalid_dpop_proof",
        "dpop.htu",
    );
}

#[test]
fn an_unbound_token_with_the_dpop_scheme_is_refused() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = tokens::token(&Spec::new(), h.now_s());
    let p = key.proof(&token, "GET", &htu(READ), h.now_s(), "u");
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(&token, &p)),
        "invalid_token",
        "dpop.unbound",
    );
    // As a bearer token it is fine (dpop: allowed).
    assert!(forwarded(&h.run(Req::get(READ).bearer(&token))));
}

#[test]
fn bearer_and_dpop_credentials_together_are_a_bad_request() {
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let p = key.proof(&token, "GET", &htu(READ), h.now_s(), "x");
    let out = h.run(Req::get(READ).dpop(&token, &p).bearer(&token));
    assert_eq!(out.status(), 400, "{}", out.text());
    let out = h.run(
        Req::get(READ)
            .dpop(&token, &p)
            .header("authorization", &format!("DPoP {token}")),
    );
    assert_eq!(out.status(), 400, "{}", out.text());
    assert_eq!(reason(&out), "request.duplicate_authorization");
}

#[test]
fn off_refuses_dpop_and_required_refuses_bearer_tokens() {
    let key = DpopKey::new(1);
    let mut off = Harness::new(&config(json!({"dpop": "off"}), json!({})), 1);
    let token = bound(&off, &key);
    let p = key.proof(&token, "GET", &htu(READ), off.now_s(), "o1");
    assert_bearer_invalid_token(&off.run(Req::get(READ).dpop(&token, &p)), "dpop.disabled");
    assert_bearer_invalid_token(&off.run(Req::get(READ).bearer(&token)), "dpop.disabled");
    let plain = tokens::token(&Spec::new(), off.now_s());
    assert!(forwarded(&off.run(Req::get(READ).bearer(&plain))));

    let mut req = Harness::new(&config(json!({"dpop": "required"}), json!({})), 1);
    let plain = tokens::token(&Spec::new(), req.now_s());
    assert_dpop_challenge(
        &req.run(Req::get(READ).bearer(&plain)),
        "invalid_token",
        "dpop.required",
    );
    let token = bound(&req, &key);
    let p = key.proof(&token, "GET", &htu(READ), req.now_s(), "r1");
    assert!(forwarded(&req.run(Req::get(READ).dpop(&token, &p))));
}

#[test]
fn a_full_replay_slot_answers_503_and_never_forgets_a_live_proof() {
    // One slot: 32 proofs fit; the 33rd within the minute is refused with 503.
    let mut h = Harness::new(&config(json!({}), json!({"cache": {"replaySlots": 1}})), 2);
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let mut proofs = Vec::new();
    for i in 0..32 {
        let p = key.proof(&token, "GET", &htu(READ), h.now_s(), &format!("f{i}"));
        assert!(forwarded(&h.run(Req::get(READ).dpop(&token, &p))), "{i}");
        proofs.push(p);
    }
    let p = key.proof(&token, "GET", &htu(READ), h.now_s(), "f32");
    let out = h.run(Req::get(READ).dpop(&token, &p));
    assert_eq!(out.status(), 503, "{}", out.text());
    assert_eq!(out.header("retry-after").as_deref(), Some("3"));
    assert_eq!(out.issue_code(), "transient");
    assert_eq!(reason(&out), "dpop.replay_cache_full");
    for p in &proofs {
        let id = h.send(1, Req::get(READ).dpop(&token, p));
        assert_dpop_challenge(&h.outcome(id), "invalid_dpop_proof", "dpop.replay");
    }
    // Once the remembered proofs can no longer pass, there is room again.
    h.advance(62_000);
    let p = key.proof(&token, "GET", &htu(READ), h.now_s(), "f33");
    assert!(forwarded(&h.run(Req::get(READ).dpop(&token, &p))));
}

#[test]
fn a_write_with_a_proof_checked_after_the_body() {
    // A search by POST waits for its body; the proof is checked once the token is known.
    let mut h = harness();
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let path = "/fhir/Observation/_search";
    let p = key.proof(&token, "POST", &htu(path), h.now_s(), "post-1");
    let req = Req::get(path)
        .method("POST")
        .header("content-type", "application/x-www-form-urlencoded")
        .dpop(&token, &p)
        .body(b"patient=123");
    assert!(forwarded(&h.run(req)));
    let p = key.proof(&token, "GET", &htu(path), h.now_s(), "post-2");
    let req = Req::get(path)
        .method("POST")
        .header("content-type", "application/x-www-form-urlencoded")
        .dpop(&token, &p)
        .body(b"patient=123");
    assert_dpop_challenge(&h.run(req), "invalid_dpop_proof", "dpop.htm");
}

#[test]
fn the_proof_header_is_not_a_rule_input_and_is_dropped_with_the_authorization() {
    let cfg = config(json!({}), json!({"forward": {"removeAuthorization": true}}));
    let mut h = Harness::new(&cfg, 1);
    let key = DpopKey::new(1);
    let token = bound(&h, &key);
    let p = key.proof(&token, "GET", &htu(READ), h.now_s(), "fw");
    let out = h.run(Req::get(READ).dpop(&token, &p));
    assert!(forwarded(&out));
    assert_eq!(out.header("dpop"), None);
    assert_eq!(out.header("authorization"), None);
}

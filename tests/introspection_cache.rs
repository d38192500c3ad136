//! Introspection caching: hits, expiry by moving the clock (cacheTtl and the token's exp),
//! negative caching, single flight, and the cache shared by several workers. Also the
//! measurement for the closing note (IdP calls for 1,000 requests over 10 opaque tokens).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use harness::tokens::{AUDIENCE, ISSUER};
use harness::{Harness, Outcome, Req};
use serde_json::json;

const READ: &str = "/fhir/Patient/123";
const OPAQUE: &str = "2YotnFZFEjr1zCsicMWpAA";
const INACTIVE: &str = "revoked-or-made-up-token";

fn config(workers: usize) -> Harness {
    config_with(workers, json!({}))
}

fn config_with(workers: usize, cache: serde_json::Value) -> Harness {
    let cfg = json!({
        "providers": [{
            "name": "main",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "introspection": {
                "cluster": "idp", "authority": "idp.example.org", "path": "/introspect",
                "clientId": "fhirgate", "clientSecret": "s3cret",
                "cacheTtl": "60s", "negativeCacheTtl": "10s", "timeout": "1s"
            }
        }],
        "retryAfter": "7s",
        "cache": cache
    })
    .to_string();
    Harness::new(&cfg, workers)
}

fn active(h: &Harness, exp_in: u64) -> String {
    json!({
        "active": true, "scope": "user/*.cruds", "exp": h.now_s() + exp_in,
        "iss": ISSUER, "aud": AUDIENCE, "client_id": "app-1", "sub": "user-7"
    })
    .to_string()
}

fn forwarded(out: &Outcome) -> bool {
    matches!(out, Outcome::Forwarded(_))
}

/// Sends `token` on `worker`; answers with an active body if a callout was made.
fn allow(h: &mut Harness, worker: usize, token: &str, exp_in: u64) -> Outcome {
    let id = h.send(worker, Req::get(READ).bearer(token));
    let body = active(h, exp_in);
    h.answer_all("idp", 200, &body);
    h.outcome(id)
}

#[test]
fn a_second_request_is_served_from_the_cache() {
    let mut h = config(1);
    assert!(forwarded(&allow(&mut h, 0, OPAQUE, 300)));
    let out = h.run(Req::get(READ).bearer(OPAQUE));
    assert!(forwarded(&out), "{}", out.text());
    assert!(h.callouts().is_empty(), "no second callout");
    assert_eq!(h.metric("introspection_calls_total"), 1);
    assert_eq!(h.metric("introspection_cache_hits_total"), 1);
}

#[test]
fn the_cache_expires_after_cache_ttl() {
    let mut h = config(1);
    allow(&mut h, 0, OPAQUE, 3_600);
    h.advance(59_000);
    assert!(forwarded(&h.run(Req::get(READ).bearer(OPAQUE))));
    assert!(h.callouts().is_empty());
    h.advance(1_000);
    let id = h.send(0, Req::get(READ).bearer(OPAQUE));
    assert_eq!(
        h.outcome(id),
        Outcome::Pending,
        "cacheTtl passed: asks again"
    );
    assert_eq!(h.callouts().len(), 1);
}

#[test]
fn the_cache_never_outlives_the_token_exp() {
    let mut h = config(1);
    allow(&mut h, 0, OPAQUE, 20);
    h.advance(19_000);
    assert!(forwarded(&h.run(Req::get(READ).bearer(OPAQUE))));
    assert!(h.callouts().is_empty());
    h.advance(1_000);
    let id = h.send(0, Req::get(READ).bearer(OPAQUE));
    assert_eq!(
        h.outcome(id),
        Outcome::Pending,
        "exp passed before cacheTtl: not served from the cache"
    );
    // An IdP that still says active for a token long past its exp: refused as expired.
    let stale = json!({"active": true, "exp": h.now_s() - 100, "iss": ISSUER}).to_string();
    h.answer_all("idp", 200, &stale);
    assert_eq!(h.outcome(id).issue_code(), "expired");
}

#[test]
fn a_flood_of_one_inactive_token_costs_one_call() {
    let mut h = config(1);
    let first = h.send(0, Req::get(READ).bearer(INACTIVE));
    h.answer_all("idp", 200, r#"{"active":false}"#);
    assert_eq!(h.outcome(first).status(), 401);
    for _ in 0..49 {
        let out = h.run(Req::get(READ).bearer(INACTIVE));
        assert_eq!(out.status(), 401, "{}", out.text());
        let challenge = out.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    assert_eq!(h.metric("introspection_calls_total"), 1);
    assert_eq!(h.metric("introspection_cache_hits_total"), 49);
    assert_eq!(h.logs_containing("token.inactive").len(), 50, "all audited");
    // After negativeCacheTtl the IdP is asked again (the token may have become known).
    h.advance(10_000);
    let id = h.send(0, Req::get(READ).bearer(INACTIVE));
    assert_eq!(h.outcome(id), Outcome::Pending);
    assert_eq!(h.metric("introspection_calls_total"), 2);
}

#[test]
fn concurrent_requests_with_one_token_wait_on_one_callout() {
    let mut h = config(1);
    let ids: Vec<_> = (0..5)
        .map(|_| h.send(0, Req::get(READ).bearer(OPAQUE)))
        .collect();
    assert_eq!(h.callouts().len(), 1, "single flight");
    for id in &ids {
        assert_eq!(h.outcome(*id), Outcome::Pending);
    }
    let body = active(&h, 300);
    h.answer_all("idp", 200, &body);
    for id in &ids {
        assert!(forwarded(&h.outcome(*id)), "{}", h.outcome(*id).text());
    }
    assert_eq!(h.workers[0].streams_in_flight(), 0);
}

#[test]
fn concurrent_waiters_all_get_the_refusal_or_the_503() {
    let mut h = config(1);
    let ids: Vec<_> = (0..3)
        .map(|_| h.send(0, Req::get(READ).bearer(INACTIVE)))
        .collect();
    h.answer_all("idp", 200, r#"{"active":false}"#);
    for id in &ids {
        assert_eq!(h.outcome(*id).status(), 401);
    }
    let ids: Vec<_> = (0..3)
        .map(|_| h.send(0, Req::get(READ).bearer(OPAQUE)))
        .collect();
    assert_eq!(h.callouts().len(), 1);
    h.advance(1_000);
    for id in &ids {
        assert_eq!(h.outcome(*id).status(), 503);
    }
    assert_eq!(h.metric("introspection_failures_total"), 1);
}

#[test]
fn distinct_tokens_get_their_own_callouts() {
    let mut h = config(1);
    h.send(0, Req::get(READ).bearer("token-a"));
    h.send(0, Req::get(READ).bearer("token-b"));
    assert_eq!(h.callouts().len(), 2);
}

#[test]
fn workers_share_introspection_answers() {
    let mut h = config(2);
    assert!(forwarded(&allow(&mut h, 0, OPAQUE, 300)));
    let id = h.send(1, Req::get(READ).bearer(OPAQUE));
    assert!(forwarded(&h.outcome(id)), "{}", h.outcome(id).text());
    assert!(h.callouts().is_empty(), "worker 1 reuses worker 0's answer");
    // Refusals are shared as well.
    let id = h.send(0, Req::get(READ).bearer(INACTIVE));
    h.answer_all("idp", 200, r#"{"active":false}"#);
    assert_eq!(h.outcome(id).status(), 401);
    let out = {
        let id = h.send(1, Req::get(READ).bearer(INACTIVE));
        h.outcome(id)
    };
    assert_eq!(out.status(), 401);
    assert!(h.callouts().is_empty());
    assert_eq!(h.metric("introspection_calls_total"), 2);
    // The shared entry expires with cacheTtl too.
    h.advance(60_000);
    let id = h.send(1, Req::get(READ).bearer(OPAQUE));
    assert_eq!(h.outcome(id), Outcome::Pending);
}

#[test]
fn a_shared_slot_collision_is_a_miss_never_another_identity() {
    // One shared slot: every token lands in it.
    let mut h = config_with(2, json!({"sharedSlots": 1}));
    assert!(forwarded(&allow(&mut h, 0, "token-a", 300)));
    let id = h.send(0, Req::get(READ).bearer("token-b"));
    let other = json!({"active": true, "scope": "user/*.cruds", "sub": "someone-else",
        "exp": h.now_s() + 300})
    .to_string();
    h.answer_all("idp", 200, &other);
    assert!(forwarded(&h.outcome(id)));
    // Worker 1 looks token-a up: the slot holds token-b's answer, so it must ask the IdP.
    let id = h.send(1, Req::get(READ).bearer("token-a"));
    assert_eq!(h.outcome(id), Outcome::Pending);
    assert_eq!(h.callouts().len(), 1);
}

#[test]
fn a_full_cache_evicts_and_asks_again() {
    let mut h = config_with(1, json!({"maxEntries": 1, "sharedSlots": 0}));
    for token in ["token-a", "token-b", "token-a"] {
        assert!(forwarded(&allow(&mut h, 0, token, 300)));
    }
    assert_eq!(
        h.metric("introspection_calls_total"),
        3,
        "one entry: a evicted by b"
    );
}

#[test]
fn the_tick_abandons_a_callout_that_never_answers() {
    let mut h = config(1);
    let id = h.send(0, Req::get(READ).bearer(OPAQUE));
    // The proxy loses the callout: it never reports a timeout.
    h.lose_callouts();
    h.tick();
    assert_eq!(h.outcome(id), Outcome::Pending, "still within the timeout");
    h.advance(7_000);
    h.tick();
    assert_eq!(h.outcome(id).status(), 503);
    // A new request starts a fresh callout instead of joining the dead one.
    let id = h.send(0, Req::get(READ).bearer(OPAQUE));
    assert_eq!(h.callouts().len(), 1);
    let body = active(&h, 300);
    h.answer_all("idp", 200, &body);
    assert!(forwarded(&h.outcome(id)));
}

/// Measurement for the closing note: 1,000 requests over 10 distinct opaque tokens, the clock
/// moving 10 ms per request, cacheTtl 60 s: one IdP call per token.
#[test]
fn idp_calls_for_1000_requests_over_10_tokens() {
    let mut h = config(1);
    let tokens: Vec<String> = (0..10).map(|i| format!("opaque-token-{i:02}")).collect();
    let mut allowed = 0;
    for n in 0..1_000 {
        let out = allow(&mut h, 0, &tokens[n % 10], 3_600);
        if forwarded(&out) {
            allowed += 1;
        }
        h.advance(10);
    }
    let calls = h.metric("introspection_calls_total");
    eprintln!("introspection: {calls} IdP calls for 1000 requests over 10 opaque tokens (cacheTtl 60s, 10 s of traffic)");
    assert_eq!(allowed, 1_000);
    assert_eq!(calls, 10);
    assert_eq!(h.metric("introspection_cache_hits_total"), 990);
}

/// Cache-hit latency, natively (optimized build):
/// `cargo test --release --test introspection_cache -- --ignored --nocapture`.
/// Prints whole-request times (harness, decision and audit record included) for a hit in the
/// worker's cache and for a hit in shared data (the worker cache holds one entry and two
/// tokens alternate), next to a JWT served from the worker cache as the baseline.
#[test]
#[ignore = "timing only, prints numbers"]
fn cache_hit_latency() {
    fn per_request(h: &mut Harness, tokens: &[&str]) -> std::time::Duration {
        let n = 20_000u32;
        let start = std::time::Instant::now();
        for i in 0..n {
            let t = tokens[i as usize % tokens.len()];
            let id = h.send(0, Req::get(READ).bearer(t));
            h.done(0, id);
        }
        start.elapsed() / n
    }
    let mut h = config(1);
    allow(&mut h, 0, OPAQUE, 3_600);
    let local = per_request(&mut h, &[OPAQUE]);
    assert_eq!(h.metric("introspection_calls_total"), 1);

    let mut h = config_with(1, json!({"maxEntries": 1}));
    allow(&mut h, 0, "token-a", 3_600);
    allow(&mut h, 0, "token-b", 3_600);
    let shared = per_request(&mut h, &["token-a", "token-b"]);
    assert_eq!(h.metric("introspection_calls_total"), 2);

    let jwks: serde_json::Value = serde_json::from_str(&harness::tokens::jwks()).unwrap();
    let cfg = json!({"providers": [{"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
        "jwks": {"inline": jwks}}]})
    .to_string();
    let mut h = Harness::new(&cfg, 1);
    let spec = harness::tokens::Spec::new().scope("user/*.cruds");
    let jwt = harness::tokens::token(&spec, h.now_s());
    let baseline = per_request(&mut h, &[jwt.as_str()]);
    eprintln!(
        "per request through the whole filter (native): introspection hit in the worker cache {local:?}, \
         in shared data {shared:?}; JWT hit in the worker cache {baseline:?}"
    );
}

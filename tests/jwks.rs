//! Remote JWKS: fetch through a cluster, sharing across workers, rotation, outages, staleness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use fhirgate::host::CalloutResult;
use harness::tokens::{self, keys, Spec, AUDIENCE, ISSUER};
use harness::{Harness, Outcome, Req};
use serde_json::json;

const READ: &str = "/fhir/Patient/123";

fn remote_config() -> String {
    json!({
        "providers": [{
            "name": "main",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "jwks": {"remote": {
                "cluster": "idp", "authority": "idp.example.org", "path": "/jwks",
                "refresh": "300s", "timeout": "2s", "maxStaleness": "1h", "minRefetchInterval": "30s"
            }}
        }],
        "retryAfter": "7s"
    })
    .to_string()
}

fn spec() -> Spec {
    Spec::new().scope("user/*.cruds")
}

fn forwarded(out: &Outcome) -> bool {
    matches!(out, Outcome::Forwarded(_))
}

/// A harness whose worker 0 already loaded the current JWKS.
fn loaded(workers: usize) -> Harness {
    let mut h = Harness::new(&remote_config(), workers);
    h.tick();
    assert_eq!(
        h.answer_all("idp", 200, &tokens::jwks()),
        1,
        "exactly one worker fetches"
    );
    h
}

#[test]
fn first_request_waits_for_the_initial_fetch() {
    let mut h = Harness::new(&remote_config(), 1);
    let t = tokens::token(&spec(), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&t));
    assert_eq!(h.outcome(id), Outcome::Pending);
    let callouts = h.callouts();
    assert_eq!(callouts.len(), 1);
    assert_eq!(callouts[0].cluster, "idp");
    assert_eq!(callouts[0].header(":path"), Some("/jwks"));
    assert_eq!(callouts[0].header(":authority"), Some("idp.example.org"));
    h.answer_all("idp", 200, &tokens::jwks());
    assert!(forwarded(&h.outcome(id)), "{}", h.outcome(id).text());
}

#[test]
fn idp_down_before_any_key_set_gives_503_with_retry_after() {
    for failure in [
        CalloutResult::Failed,
        CalloutResult::Response {
            status: 500,
            body: b"oops".to_vec(),
        },
        CalloutResult::Response {
            status: 200,
            body: b"<html>".to_vec(),
        },
    ] {
        let mut h = Harness::new(&remote_config(), 1);
        let t = tokens::token(&spec(), h.now_s());
        let id = h.send(0, Req::get(READ).bearer(&t));
        let token = h.callouts()[0].token;
        h.answer(token, failure.clone());
        let out = h.outcome(id);
        assert_eq!(out.status(), 503, "{failure:?}: {}", out.text());
        assert_eq!(out.header("retry-after").as_deref(), Some("7"));
        assert_eq!(out.issue_code(), "transient");
        assert!(out.header("www-authenticate").is_none());
    }
    // A JWKS answer without keys is no outage but the IdP's statement: its tokens are refused
    // (401; tests/attacks_request.rs has the withdrawal of keys in use).
    let mut h = Harness::new(&remote_config(), 1);
    let t = tokens::token(&spec(), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&t));
    h.answer_all("idp", 200, r#"{"keys":[]}"#);
    // The token's kid is unknown to the (empty) set: one refetch for it, which says the same.
    assert_eq!(h.answer_all("idp", 200, r#"{"keys":[]}"#), 1);
    assert_eq!(h.outcome(id).status(), 401, "{}", h.outcome(id).text());
}

#[test]
fn a_callout_that_times_out_gives_503() {
    let mut h = Harness::new(&remote_config(), 1);
    let t = tokens::token(&spec(), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&t));
    h.advance(2_000);
    assert_eq!(h.outcome(id).status(), 503);
}

#[test]
fn recovery_after_the_idp_comes_back() {
    let mut h = Harness::new(&remote_config(), 1);
    let t = tokens::token(&spec(), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&t));
    h.answer(h.callouts()[0].token, CalloutResult::Failed);
    assert_eq!(h.outcome(id).status(), 503);
    // Within a second, no new fetch: another 503 straight away.
    let id = h.send(0, Req::get(READ).bearer(&t));
    assert_eq!(h.outcome(id).status(), 503);
    assert!(h.callouts().is_empty());
    h.advance(1_500);
    let id = h.send(0, Req::get(READ).bearer(&t));
    assert_eq!(h.outcome(id), Outcome::Pending);
    h.answer_all("idp", 200, &tokens::jwks());
    assert!(forwarded(&h.outcome(id)));
}

#[test]
fn workers_share_one_fetch() {
    let mut h = loaded(3);
    // The other workers pick the key set up from shared data, with no callout of their own.
    let now = h.now_s();
    for w in 0..3 {
        let t = tokens::token(&spec().claim("n", json!(w)), now);
        let id = h.send(w, Req::get(READ).bearer(&t));
        assert!(forwarded(&h.outcome(id)), "worker {w}");
    }
    assert!(h.callouts().is_empty());
    assert_eq!(h.metric("jwks_fetches_total"), 1);
}

#[test]
fn scheduled_refresh_happens_once_across_workers() {
    let mut h = loaded(2);
    h.advance(299_000);
    h.tick();
    assert!(h.callouts().is_empty());
    h.advance(2_000);
    h.tick();
    assert_eq!(h.callouts().len(), 1);
    h.tick();
    assert_eq!(
        h.callouts().len(),
        1,
        "the lock keeps the second worker out"
    );
}

#[test]
fn rotation_is_picked_up_on_an_unknown_kid() {
    let mut h = loaded(1);
    let t = tokens::rs256(&keys().rsa2, &spec(), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&t));
    assert_eq!(
        h.outcome(id),
        Outcome::Pending,
        "the unknown kid triggers a refetch"
    );
    assert_eq!(h.answer_all("idp", 200, &tokens::rotated_jwks()), 1);
    assert!(forwarded(&h.outcome(id)));
}

#[test]
fn unknown_kid_refetches_are_rate_limited() {
    let mut h = loaded(1);
    let t = tokens::rs256(&keys().attacker, &Spec { ..spec() }, h.now_s());
    let forged = tokens::with_header(
        &t,
        json!({"alg": "RS256", "typ": "at+jwt", "kid": "nope-1"}),
    );
    let id = h.send(0, Req::get(READ).bearer(&forged));
    assert_eq!(h.answer_all("idp", 200, &tokens::jwks()), 1);
    assert_eq!(h.outcome(id).status(), 401);
    // A flood of unknown kids within minRefetchInterval costs the IdP nothing.
    for i in 0..20 {
        let forged = tokens::with_header(
            &t,
            json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("nope-{i}")}),
        );
        assert_eq!(h.run(Req::get(READ).bearer(&forged)).status(), 401);
    }
    assert!(h.callouts().is_empty());
    h.advance(31_000);
    let forged = tokens::with_header(&t, json!({"alg": "RS256", "typ": "at+jwt", "kid": "later"}));
    let _ = h.send(0, Req::get(READ).bearer(&forged));
    assert_eq!(h.callouts().len(), 1);
}

#[test]
fn concurrent_requests_wait_on_one_fetch() {
    let mut h = Harness::new(&remote_config(), 2);
    let now = h.now_s();
    let ids: Vec<_> = (0..6)
        .map(|i| {
            h.send(
                i % 2,
                Req::get(READ).bearer(&tokens::token(&spec().claim("i", json!(i)), now)),
            )
        })
        .collect();
    assert_eq!(h.callouts().len(), 1, "one fetch for everybody");
    h.answer_all("idp", 200, &tokens::jwks());
    // Worker 1's streams are finished on its next tick.
    h.tick();
    for id in ids {
        assert!(forwarded(&h.outcome(id)), "{}", h.outcome(id).text());
    }
}

#[test]
fn stale_keys_serve_during_an_outage_then_expire() {
    let mut h = loaded(1);
    let t = tokens::token(
        &Spec {
            exp_offset: Some(7200),
            ..spec()
        },
        h.now_s(),
    );
    h.advance(301_000);
    h.tick();
    h.answer(h.callouts()[0].token, CalloutResult::Failed);
    assert!(forwarded(&h.run(Req::get(READ).bearer(&t))));
    assert!(!h
        .logs_containing("last good key set keeps serving")
        .is_empty());
    // Past maxStaleness (1h since the last good fetch) the keys no longer count.
    h.advance(3_400_000);
    let fresh = tokens::token(&spec(), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&fresh));
    for c in h.callouts() {
        h.answer(c.token, CalloutResult::Failed);
    }
    assert_eq!(h.outcome(id).status(), 503);
}

#[test]
fn small_rsa_keys_and_bad_entries_are_dropped_with_a_log_line() {
    let mut h = Harness::new(&remote_config(), 1);
    use base64::Engine as _;
    let n1024 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xC5u8; 128]);
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "small", "alg": "RS256", "n": n1024, "e": "AQAB"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        tokens::rsa_jwk(&keys().rsa, "rsa-1"),
    ]});
    h.tick();
    h.answer_all("idp", 200, &jwks.to_string());
    assert!(!h.logs_containing("small").is_empty(), "{}", h.all_logs());
    let t = tokens::token(&spec(), h.now_s());
    assert!(forwarded(&h.run(Req::get(READ).bearer(&t))));
}

/// Fails every JWKS callout in flight with HTTP 500; returns how many there were.
fn fail_all(h: &mut Harness) -> usize {
    let calls = h.callouts();
    for c in &calls {
        h.answer(
            c.token,
            CalloutResult::Response {
                status: 500,
                body: b"down".to_vec(),
            },
        );
    }
    calls.len()
}

#[test]
fn a_new_kid_while_the_jwks_endpoint_fails_is_503_then_accepted_after_one_refresh() {
    // The IdP rotated to rsa-2 but its JWKS endpoint fails: the token with the new kid cannot be
    // checked. That is an IdP outage (503 + Retry-After), not a bad token (401).
    let mut h = loaded(2);
    let old = tokens::token(&spec(), h.now_s());
    let new = tokens::rs256(&keys().rsa2, &spec(), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&new));
    assert_eq!(h.outcome(id), Outcome::Pending, "the unknown kid refetches");
    assert_eq!(fail_all(&mut h), 1);
    let out = h.outcome(id);
    assert_eq!(out.status(), 503, "{}", out.text());
    assert_eq!(out.header("retry-after").as_deref(), Some("7"));
    assert_eq!(out.issue_code(), "transient");
    // Within the failure backoff: 503 at once on both workers, no callout; old keys still serve.
    for w in 0..2 {
        let id = h.send(w, Req::get(READ).bearer(&new));
        assert_eq!(h.outcome(id).status(), 503, "worker {w}");
        assert!(forwarded(&h.run(Req::get(READ).bearer(&old))));
    }
    assert!(h.callouts().is_empty());
    // The retry after the backoff (2 s) fails too: still 503, never 401.
    h.advance(2_100);
    h.tick();
    assert_eq!(fail_all(&mut h), 1, "one scheduled retry across workers");
    let id = h.send(1, Req::get(READ).bearer(&new));
    for c in h.callouts() {
        h.answer(
            c.token,
            CalloutResult::Response {
                status: 500,
                body: Vec::new(),
            },
        );
    }
    assert_eq!(h.outcome(id).status(), 503);
    // The IdP is back with the rotated set, well within minRefetchInterval (30 s) of the failed
    // kid refetch: the next attempt after the backoff (a request's or the tick's) loads it, and the
    // new kid is accepted on every worker after that one refresh.
    h.advance(4_100);
    let id = h.send(1, Req::get(READ).bearer(&new));
    assert_eq!(
        h.outcome(id),
        Outcome::Pending,
        "the backoff passed: refetch"
    );
    assert_eq!(h.answer_all("idp", 200, &tokens::rotated_jwks()), 1);
    h.tick();
    assert!(forwarded(&h.outcome(id)), "{}", h.outcome(id).text());
    for w in 0..2 {
        let id = h.send(w, Req::get(READ).bearer(&new));
        assert!(
            forwarded(&h.outcome(id)),
            "worker {w}: {}",
            h.outcome(id).text()
        );
    }
    assert!(h.callouts().is_empty());
    assert_eq!(h.metric("jwks_fetches_total"), 4);
}

#[test]
fn a_forged_kid_while_the_idp_is_healthy_stays_401() {
    // The 503 above is only for a failing endpoint: a healthy IdP that does not know the kid
    // makes it a bad token.
    let mut h = loaded(1);
    let t = tokens::rs256(&keys().attacker, &spec(), h.now_s());
    let forged = tokens::with_header(&t, json!({"alg": "RS256", "typ": "at+jwt", "kid": "nope"}));
    let id = h.send(0, Req::get(READ).bearer(&forged));
    assert_eq!(h.answer_all("idp", 200, &tokens::jwks()), 1);
    assert_eq!(h.outcome(id).status(), 401);
    assert_eq!(h.run(Req::get(READ).bearer(&forged)).status(), 401);
}

//! RFC 7662 introspection through the real filter logic on the simulated host: opaque tokens,
//! the callout's format, refusals, IdP failures (503, never 401), and `mode: always`.
//! Caching, single flight and sharing across workers are in `introspection_cache.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fhirgate::host::CalloutResult;
use harness::tokens::{self, Spec, AUDIENCE, ISSUER};
use harness::{Harness, Outcome, Req};
use serde_json::{json, Value};

const READ: &str = "/fhir/Patient/123";
const OPAQUE: &str = "2YotnFZFEjr1zCsicMWpAA";
const SECRET: &str = "s3cret:&+";

fn config(mode: &str, auth: &str) -> String {
    let mut provider = json!({
        "name": "main",
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "introspection": {
            "cluster": "idp", "authority": "idp.example.org", "path": "/token/introspection",
            "clientId": "fhirgate", "clientSecret": SECRET, "authMethod": auth,
            "mode": mode, "cacheTtl": "60s", "negativeCacheTtl": "10s", "timeout": "1s"
        }
    });
    if mode == "always" {
        provider["jwks"] =
            json!({"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()});
    }
    json!({
        "providers": [provider],
        "retryAfter": "7s",
        "forward": {"headers": {"x-fhirgate-subject": "subject", "x-fhirgate-client": "clientId"}}
    })
    .to_string()
}

fn harness() -> Harness {
    Harness::new(&config("opaque", "client_secret_basic"), 1)
}

/// An active introspection answer valid for `exp_in` seconds.
fn active(h: &Harness, exp_in: u64) -> String {
    json!({
        "active": true, "scope": "user/*.cruds openid", "patient": "123",
        "exp": h.now_s() + exp_in, "iat": h.now_s(), "iss": ISSUER, "aud": AUDIENCE,
        "client_id": "app-1", "sub": "user-7", "token_type": "Bearer"
    })
    .to_string()
}

fn forwarded(out: &Outcome) -> bool {
    matches!(out, Outcome::Forwarded(_))
}

fn assert_invalid_token(out: &Outcome, code: &str) {
    assert_eq!(out.status(), 401, "{}", out.text());
    let challenge = out.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(out.issue_code(), code, "{}", out.text());
}

fn assert_unavailable(out: &Outcome) {
    assert_eq!(out.status(), 503, "{}", out.text());
    assert_eq!(out.header("retry-after").as_deref(), Some("7"));
    assert_eq!(out.issue_code(), "transient");
    assert!(out.header("www-authenticate").is_none());
}

/// Sends `token` on worker 0, answers its (single) callout with `status`/`body`, returns the outcome.
fn introspected(h: &mut Harness, token: &str, status: u16, body: &str) -> Outcome {
    let id = h.send(0, Req::get(READ).bearer(token));
    assert_eq!(h.outcome(id), Outcome::Pending, "the request waits");
    assert_eq!(h.answer_all("idp", status, body), 1, "one callout");
    h.outcome(id)
}

#[test]
fn an_active_opaque_token_is_forwarded_with_its_identity() {
    let mut h = harness();
    let body = active(&h, 300);
    let id = h.send(0, Req::get(READ).bearer(OPAQUE));
    assert_eq!(h.answer_all("idp", 200, &body), 1, "one callout");
    let out = h.outcome(id);
    assert!(forwarded(&out), "{}", out.text());
    assert_eq!(out.header("x-fhirgate-subject").as_deref(), Some("user-7"));
    assert_eq!(out.header("x-fhirgate-client").as_deref(), Some("app-1"));
    assert_eq!(h.metric("introspection_calls_total"), 1);
    // a read is audited once its response passed the consent-label check
    h.respond(0, id, 200, r#"{"resourceType":"Patient","id":"123"}"#);
    let audit = h.logs_containing("fhirgate.audit ");
    assert_eq!(audit.len(), 1);
    assert!(audit[0].contains("\"opaque\""), "{}", audit[0]);
}

#[test]
fn the_callout_is_a_form_post_with_basic_client_auth() {
    let mut h = harness();
    // Characters that need form encoding.
    h.send(0, Req::get(READ).bearer("a+b/c~d=="));
    let c = &h.callouts()[0];
    assert_eq!(c.cluster, "idp");
    assert_eq!(c.header(":method"), Some("POST"));
    assert_eq!(c.header(":path"), Some("/token/introspection"));
    assert_eq!(c.header(":authority"), Some("idp.example.org"));
    assert_eq!(
        c.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(c.header("accept"), Some("application/json"));
    assert_eq!(c.timeout_ms, 1_000);
    let basic = c.header("authorization").unwrap();
    let decoded = STANDARD
        .decode(basic.strip_prefix("Basic ").unwrap())
        .unwrap();
    // RFC 6749 §2.3.1: id and secret are form-encoded before base64.
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "fhirgate:s3cret%3A%26%2B"
    );
    let body = String::from_utf8(c.body.clone().unwrap()).unwrap();
    assert_eq!(
        body,
        "token=a%2Bb%2Fc%7Ed%3D%3D&token_type_hint=access_token"
    );
    assert!(!body.contains("client_secret"));
}

#[test]
fn client_secret_post_puts_the_credentials_in_the_body() {
    let mut h = Harness::new(&config("opaque", "client_secret_post"), 1);
    h.send(0, Req::get(READ).bearer(OPAQUE));
    let c = &h.callouts()[0];
    assert!(c.header("authorization").is_none());
    let body = String::from_utf8(c.body.clone().unwrap()).unwrap();
    assert!(body.starts_with(&format!("token={OPAQUE}&token_type_hint=access_token")));
    assert!(body.contains("&client_id=fhirgate"), "{body}");
    assert!(body.contains("&client_secret=s3cret%3A%26%2B"), "{body}");
}

#[test]
fn an_inactive_token_is_401_invalid_token() {
    let mut h = harness();
    let out = introspected(&mut h, OPAQUE, 200, r#"{"active":false}"#);
    assert_invalid_token(&out, "login");
    // `active` must be literally true.
    let mut h = harness();
    let out = introspected(&mut h, OPAQUE, 200, r#"{"active":"true","sub":"x"}"#);
    assert_invalid_token(&out, "login");
}

#[test]
fn an_active_but_expired_answer_is_401_expired() {
    let mut h = harness();
    let body = json!({"active": true, "exp": h.now_s() - 120, "scope": "user/*.cruds"}).to_string();
    let out = introspected(&mut h, OPAQUE, 200, &body);
    assert_invalid_token(&out, "expired");
}

#[test]
fn wrong_issuer_or_audience_is_401() {
    for (field, value) in [
        ("iss", json!("https://evil.example.org")),
        ("aud", json!("https://other.example.org")),
        ("aud", json!(["https://other.example.org"])),
    ] {
        let mut h = harness();
        let mut body: Value = serde_json::from_str(&active(&h, 300)).unwrap();
        body[field] = value;
        let out = introspected(&mut h, OPAQUE, 200, &body.to_string());
        assert_invalid_token(&out, "login");
    }
}

#[test]
fn idp_failures_are_503_transient_never_401() {
    let oversized = format!("{{\"active\":true,\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let cases: Vec<(&str, Option<CalloutResult>)> = vec![
        ("timeout", None),
        ("connection failure", Some(CalloutResult::Failed)),
        (
            "500",
            Some(CalloutResult::Response {
                status: 500,
                body: br#"{"active":true}"#.to_vec(),
            }),
        ),
        (
            "401 to our client",
            Some(CalloutResult::Response {
                status: 401,
                body: br#"{"error":"invalid_client"}"#.to_vec(),
            }),
        ),
        (
            "non-JSON",
            Some(CalloutResult::Response {
                status: 200,
                body: b"<html>bad gateway</html>".to_vec(),
            }),
        ),
        (
            "not an object",
            Some(CalloutResult::Response {
                status: 200,
                body: b"[true]".to_vec(),
            }),
        ),
        (
            "oversized",
            Some(CalloutResult::Response {
                status: 200,
                body: oversized.into_bytes(),
            }),
        ),
    ];
    for (name, result) in cases {
        let mut h = harness();
        let id = h.send(0, Req::get(READ).bearer(OPAQUE));
        match result {
            None => h.advance(1_000),
            Some(r) => h.answer(h.callouts()[0].token, r),
        }
        let out = h.outcome(id);
        assert_eq!(out.status(), 503, "{name}: {}", out.text());
        assert_unavailable(&out);
        assert_eq!(h.metric("introspection_failures_total"), 1, "{name}");
        let audit = h.logs_containing("introspection.unavailable");
        assert_eq!(audit.len(), 1, "{name}: one audit record");
        assert!(audit[0].starts_with("fhirgate.audit "), "{name}");
        // A failure is not cached: the next request asks again and the IdP, back, allows it.
        let body = active(&h, 300);
        let out = introspected(&mut h, OPAQUE, 200, &body);
        assert!(forwarded(&out), "{name}: {}", out.text());
    }
}

#[test]
fn a_proxy_that_refuses_the_callout_gives_503() {
    let mut h = harness();
    h.sim.refuse_callouts.set(true);
    let out = h.run(Req::get(READ).bearer(OPAQUE));
    assert_unavailable(&out);
    assert_eq!(h.metric("introspection_failures_total"), 1);
}

#[test]
fn without_introspection_opaque_tokens_stay_refused() {
    let cfg = json!({"providers": [{
        "name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
        "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}
    }]})
    .to_string();
    let mut h = Harness::new(&cfg, 1);
    let out = h.run(Req::get(READ).bearer(OPAQUE));
    assert_invalid_token(&out, "login");
    assert!(h.callouts().is_empty());
}

#[test]
fn a_request_with_a_body_waits_for_the_answer_too() {
    let mut h = harness();
    let body = br#"{"resourceType":"Patient","id":"123"}"#;
    let id = h.send(
        0,
        Req::get(READ)
            .method("PUT")
            .header("content-type", "application/fhir+json")
            .bearer(OPAQUE)
            .body(body),
    );
    assert_eq!(h.outcome(id), Outcome::Pending);
    let answer = active(&h, 300);
    h.answer_all("idp", 200, &answer);
    assert!(forwarded(&h.outcome(id)), "{}", h.outcome(id).text());
}

#[test]
fn mode_always_introspects_jwts_and_revocation_lands_within_cache_ttl() {
    let mut h = Harness::new(&config("always", "client_secret_basic"), 1);
    let jwt = tokens::token(&Spec::new().scope("user/*.cruds"), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&jwt));
    assert_eq!(h.outcome(id), Outcome::Pending, "the JWT is introspected");
    let c = &h.callouts()[0];
    let body = String::from_utf8(c.body.clone().unwrap()).unwrap();
    assert!(
        body.starts_with("token=ey"),
        "the JWT itself is introspected"
    );
    // A minimal RFC 7662 answer: the JWT's own claims are used.
    h.answer_all("idp", 200, r#"{"active":true}"#);
    let out = h.outcome(id);
    assert!(forwarded(&out), "{}", out.text());
    assert_eq!(out.header("x-fhirgate-subject").as_deref(), Some("user-1"));
    // Within cacheTtl: no callout, and the signature is not even re-checked.
    h.advance(30_000);
    assert!(forwarded(&h.run(Req::get(READ).bearer(&jwt))));
    assert!(h.callouts().is_empty());
    // The token is revoked at the IdP; once cacheTtl passed, it is refused.
    h.advance(31_000);
    let out = introspected(&mut h, &jwt, 200, r#"{"active":false}"#);
    assert_invalid_token(&out, "login");
    assert_eq!(h.metric("introspection_calls_total"), 2);
}

#[test]
fn mode_always_fails_closed_when_the_idp_is_down() {
    let mut h = Harness::new(&config("always", "client_secret_basic"), 1);
    let jwt = tokens::token(&Spec::new().scope("user/*.cruds"), h.now_s());
    let id = h.send(0, Req::get(READ).bearer(&jwt));
    h.answer(h.callouts()[0].token, CalloutResult::Failed);
    assert_unavailable(&h.outcome(id));
    // The valid JWT was not cached on its own: the next request asks the IdP again.
    let id = h.send(0, Req::get(READ).bearer(&jwt));
    assert_eq!(h.outcome(id), Outcome::Pending);
    assert_eq!(h.callouts().len(), 1);
}

#[test]
fn mode_always_still_checks_the_signature_first() {
    let mut h = Harness::new(&config("always", "client_secret_basic"), 1);
    let jwt = tokens::token(&Spec::new().scope("user/*.cruds"), h.now_s());
    let forged = tokens::tamper_signature(&jwt);
    let out = h.run(Req::get(READ).bearer(&forged));
    assert_invalid_token(&out, "login");
    assert!(
        h.callouts().is_empty(),
        "a forged JWT never reaches the IdP"
    );
}

#[test]
fn mode_opaque_does_not_introspect_jwts() {
    let cfg = {
        let mut c: Value = serde_json::from_str(&config("opaque", "client_secret_basic")).unwrap();
        c["providers"][0]["jwks"] =
            json!({"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()});
        c.to_string()
    };
    let mut h = Harness::new(&cfg, 1);
    let jwt = tokens::token(&Spec::new().scope("user/*.cruds"), h.now_s());
    assert!(forwarded(&h.run(Req::get(READ).bearer(&jwt))));
    assert!(h.callouts().is_empty());
}

#[test]
fn the_token_and_secret_never_appear_in_logs_or_replies() {
    let mut h = harness();
    let ok = active(&h, 300);
    introspected(&mut h, OPAQUE, 200, &ok);
    let t2 = "second-opaque-token-value";
    let out = introspected(&mut h, t2, 200, r#"{"active":false}"#);
    assert!(!out.text().contains(t2));
    let t3 = "third-opaque-token-value";
    let id = h.send(0, Req::get(READ).bearer(t3));
    h.answer(h.callouts()[0].token, CalloutResult::Failed);
    assert!(!h.outcome(id).text().contains(t3));
    let logs = h.all_logs();
    assert!(!logs.is_empty());
    for secret in [OPAQUE, t2, t3, SECRET, "s3cret"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

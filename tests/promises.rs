//! README promises that had no test of their own (issue 17, item 2), on the simulated host:
//! `hmacSecret`, several providers (by `iss`; opaque tokens to the first provider with
//! introspection), the forward sources and the stripping of configured forward headers, what
//! rules never see, the JWKS retry backoff, `smart.enforce: false` and `If-None-Exist`.
//! tests/PROMISES.md maps every promise to its test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use fhirgate::host::CalloutResult;
use harness::tokens::{self, Spec, AUDIENCE, ISSUER};
use harness::{Harness, Outcome, Req};
use jwt_simple::prelude::*;
use serde_json::{json, Value};

const READ: &str = "/fhir/Patient/123";
/// 32 bytes, base64url.
const HMAC_SECRET: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY";

fn inline_jwks() -> Value {
    serde_json::from_str(&tokens::jwks()).unwrap()
}

fn provider() -> Value {
    json!({"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": {"inline": inline_jwks()}})
}

fn config_with(top: Value) -> String {
    let mut cfg = json!({"providers": [provider()]});
    for (k, v) in top.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    cfg.to_string()
}

fn headers(out: &Outcome) -> &[(String, String)] {
    match out {
        Outcome::Forwarded(h) => h,
        other => panic!("not forwarded: {}", other.text()),
    }
}

fn header<'a>(out: &'a Outcome, name: &str) -> Option<&'a str> {
    let all: Vec<&str> = headers(out)
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(all.len() <= 1, "{name} twice: {all:?}");
    all.first().copied()
}

/// An HS256 token over the harness's usual claims, signed with `secret` (raw bytes).
fn hs256(secret: &[u8], spec: &Spec, now_s: u64) -> String {
    let mut claims = Claims::with_custom_claims(spec.claims.clone(), Duration::from_secs(300))
        .with_issuer(&spec.iss)
        .with_subject(&spec.sub)
        .with_audience(AUDIENCE);
    claims.issued_at = Some(UnixTimeStamp::from_secs(now_s));
    claims.expires_at = Some(UnixTimeStamp::from_secs(now_s + 300));
    claims.invalid_before = None;
    let opts = HeaderOptions {
        signature_type: Some("at+jwt".into()),
        ..Default::default()
    };
    HS256Key::from_bytes(secret)
        .authenticate_with_options(claims, &opts)
        .unwrap()
}

#[test]
fn hmac_tokens_pass_only_with_the_configured_secret_and_an_hs_algorithm() {
    let secret = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef";
    let hmac_provider = |algorithms: Value| {
        json!({"providers": [{"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "hmacSecret": HMAC_SECRET, "algorithms": algorithms}]})
        .to_string()
    };
    let spec = Spec::new().scope("user/*.rs");
    let mut h = Harness::new(&hmac_provider(json!(["HS256"])), 1);
    let good = hs256(secret, &spec, h.now_s());
    assert!(matches!(
        h.run(Req::get(READ).bearer(&good)),
        Outcome::Forwarded(_)
    ));
    let wrong = hs256(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdeX", &spec, h.now_s());
    let out = h.run(Req::get(READ).bearer(&wrong));
    assert_eq!(out.status(), 401, "{}", out.text());
    assert_eq!(out.issue_code(), "login");
    // The secret alone does not enable HMAC: without HS* in `algorithms` it is refused at load.
    let err = Harness::try_new(&hmac_provider(json!(["RS256"])), 1)
        .err()
        .expect("hmacSecret without an HS algorithm must be refused");
    assert_eq!(err.key, "providers[0].hmacSecret");
    // Without a secret, HS* in `algorithms` is refused at load, naming the key.
    let err = Harness::try_new(
        &json!({"providers": [{"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": inline_jwks()}, "algorithms": ["HS256"]}]})
        .to_string(),
        1,
    )
    .err()
    .expect("HS256 without hmacSecret must be refused");
    assert!(err.key.starts_with("providers[0]"), "{}", err.key);
}

#[test]
fn the_provider_of_a_jwt_is_chosen_by_its_iss() {
    let other = "https://other-idp.example.org";
    let b_key = ES256KeyPair::generate().with_key_id("b-1");
    let b_jwk = tokens::ec_jwk(&b_key, "b-1");
    let cfg = json!({"providers": [
        provider(),
        {"name": "b", "issuer": other, "audiences": [AUDIENCE], "jwks": {"inline": {"keys": [b_jwk]}}},
    ]})
    .to_string();
    let mut h = Harness::new(&cfg, 1);
    let spec_b = Spec {
        iss: other.into(),
        ..Spec::new().scope("user/*.rs")
    };
    let from_b = tokens::es256(&b_key, &spec_b, h.now_s());
    let out = h.run(Req::get(READ).bearer(&from_b));
    assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
    // B's key under A's issuer: A's keys decide, so the signature is refused.
    let forged = tokens::es256(&b_key, &Spec::new().scope("user/*.rs"), h.now_s());
    assert_eq!(h.run(Req::get(READ).bearer(&forged)).status(), 401);
    // A's token still verifies with A's keys.
    let from_a = tokens::token(&Spec::new().scope("user/*.rs"), h.now_s());
    assert!(matches!(
        h.run(Req::get(READ).bearer(&from_a)),
        Outcome::Forwarded(_)
    ));
    // An issuer no provider has: 401.
    let spec_x = Spec {
        iss: "https://nobody.example.org".into(),
        ..Spec::new().scope("user/*.rs")
    };
    let stranger = tokens::token(&spec_x, h.now_s());
    assert_eq!(h.run(Req::get(READ).bearer(&stranger)).status(), 401);
}

#[test]
fn opaque_tokens_go_to_the_first_provider_with_introspection() {
    let intro = |cluster: &str| {
        json!({"cluster": cluster, "authority": format!("{cluster}.example.org"),
               "path": "/introspect", "clientId": "fhirgate", "clientSecret": "s",
               "mode": "opaque", "cacheTtl": "60s", "timeout": "1s"})
    };
    let cfg = json!({"providers": [
        provider(),
        {"name": "second", "issuer": "https://second.example.org", "audiences": [AUDIENCE], "introspection": intro("idp2")},
        {"name": "third", "issuer": "https://third.example.org", "audiences": [AUDIENCE], "introspection": intro("idp3")},
    ]})
    .to_string();
    let mut h = Harness::new(&cfg, 1);
    let id = h.send(0, Req::get(READ).bearer("2YotnFZFEjr1zCsicMWpAA"));
    assert_eq!(h.outcome(id), Outcome::Pending);
    let callouts = h.callouts();
    assert_eq!(callouts.len(), 1, "one introspection call");
    assert_eq!(
        callouts[0].cluster, "idp2",
        "the first provider with introspection"
    );
    let active = json!({"active": true, "iss": "https://second.example.org", "sub": "svc",
        "scope": "system/*.rs", "exp": h.now_s() + 60, "aud": AUDIENCE, "client_id": "c"});
    h.answer(
        callouts[0].token,
        CalloutResult::Response {
            status: 200,
            body: active.to_string().into_bytes(),
        },
    );
    assert!(
        matches!(h.outcome(id), Outcome::Forwarded(_)),
        "{}",
        h.outcome(id).text()
    );
}

#[test]
fn forward_sources_come_from_the_verified_token_and_configured_headers_are_stripped() {
    let cfg = config_with(json!({"forward": {"headers": {
        "x-id-issuer": "issuer", "x-id-user": "fhirUser", "x-id-scopes": "scopes",
        "x-id-tenant": "claims.tenant", "x-fhirgate-patient": "patient"
    }}}));
    let mut h = Harness::new(&cfg, 1);
    let t = tokens::token(
        &Spec::new()
            .scope("user/*.rs openid")
            .claim("fhirUser", json!("Practitioner/dr-1"))
            .claim("tenant", json!("north")),
        h.now_s(),
    );
    let spoofed = Req::get(READ)
        .bearer(&t)
        .header("x-id-issuer", "https://evil.example")
        .header("x-id-tenant", "south")
        .header("x-fhirgate-patient", "999");
    let out = h.run(spoofed);
    assert_eq!(header(&out, "x-id-issuer"), Some(ISSUER));
    assert_eq!(header(&out, "x-id-user"), Some("Practitioner/dr-1"));
    assert_eq!(header(&out, "x-id-scopes"), Some("user/*.rs openid"));
    assert_eq!(header(&out, "x-id-tenant"), Some("north"));
    // No patient in the token: the client's value is removed, nothing is set.
    assert_eq!(header(&out, "x-fhirgate-patient"), None);
    // A configured header outside x-fhirgate- whose source is absent: the client's value is
    // stripped, not passed through.
    let bare = tokens::token(&Spec::new().scope("user/*.rs"), h.now_s());
    let out = h.run(
        Req::get(READ)
            .bearer(&bare)
            .header("x-id-user", "Practitioner/forged")
            .header("x-id-tenant", "south")
            .header("x-unrelated", "kept"),
    );
    assert_eq!(header(&out, "x-id-user"), None);
    assert_eq!(header(&out, "x-id-tenant"), None);
    assert_eq!(
        header(&out, "x-unrelated"),
        Some("kept"),
        "other headers pass"
    );
}

#[test]
fn rules_never_see_authorization_cookie_or_fhirgate_headers() {
    let rule = |expr: &str| {
        config_with(json!({"rules": [{"name": "r", "expression": expr, "message": "seen"}]}))
    };
    let req = |h: &Harness| {
        let t = tokens::token(&Spec::new().scope("user/*.rs"), h.now_s());
        Req::get(READ)
            .bearer(&t)
            .header("cookie", "session=abc")
            .header("x-fhirgate-patient", "999")
            .header("x-visible", "yes")
    };
    // The rule sees request headers at all (else the hidden ones would prove nothing)...
    let mut h = Harness::new(&rule("request.headers['x-visible'] == 'yes'"), 1);
    let out = h.run(req(&h));
    assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
    // ...but never these three.
    for hidden in ["authorization", "cookie", "x-fhirgate-patient"] {
        let mut h = Harness::new(&rule(&format!("!('{hidden}' in request.headers)")), 1);
        let out = h.run(req(&h));
        assert!(
            matches!(out, Outcome::Forwarded(_)),
            "{hidden} visible to rules: {}",
            out.text()
        );
    }
}

#[test]
fn jwks_fetch_failures_back_off_2_4_8_seconds() {
    let cfg = json!({"providers": [{"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
        "jwks": {"remote": {"cluster": "idp", "authority": "idp.example.org", "path": "/jwks",
                            "refresh": "300s", "timeout": "2s"}}}]})
    .to_string();
    let mut h = Harness::new(&cfg, 1);
    h.tick();
    let fail = |h: &mut Harness| {
        let c = h.callouts();
        assert_eq!(c.len(), 1, "one fetch");
        h.answer(c[0].token, CalloutResult::Failed);
    };
    fail(&mut h);
    // README: after a failed fetch, retries back off 2s, 4s … 30s.
    for wait_ms in [2_000u64, 4_000, 8_000] {
        h.advance(wait_ms - 200);
        h.tick();
        assert!(
            h.callouts().is_empty(),
            "retried before {wait_ms} ms had passed"
        );
        h.advance(400);
        h.tick();
        fail(&mut h);
    }
    assert_eq!(h.metric("jwks_fetch_failures_total"), 4);
}

#[test]
fn smart_enforce_false_leaves_only_authentication_and_rules() {
    let other_patient = "/fhir/Observation?patient=456";
    let t = |h: &Harness| {
        tokens::token(
            &Spec::new().scope("patient/Patient.rs").patient("123"),
            h.now_s(),
        )
    };
    let mut h = Harness::new(&config_with(json!({"smart": {"enforce": true}})), 1);
    assert_eq!(h.run(Req::get(other_patient).bearer(&t(&h))).status(), 403);
    let mut h = Harness::new(&config_with(json!({"smart": {"enforce": false}})), 1);
    let out = h.run(Req::get(other_patient).bearer(&t(&h)));
    assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
    // Authentication still applies...
    assert_eq!(h.run(Req::get(other_patient)).status(), 401);
    // ...and so do rules.
    let cfg = config_with(json!({"smart": {"enforce": false}, "rules": [
        {"name": "no-observations", "match": "fhir.resourceType == 'Observation'", "expression": "false"}]}));
    let mut h = Harness::new(&cfg, 1);
    let out = h.run(Req::get(other_patient).bearer(&t(&h)));
    assert_eq!(out.status(), 403);
    assert_eq!(
        out.body_json()["issue"][0]["details"]["text"],
        "rule.denied"
    );
}

#[test]
fn a_conditional_create_needs_the_search_permission_too() {
    let body = br#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#;
    let post = |tok: &str, conditional: bool| {
        let mut r = Req::get("/fhir/Observation")
            .method("POST")
            .bearer(tok)
            .header("content-type", "application/fhir+json")
            .body(body);
        if conditional {
            r = r.header("if-none-exist", "identifier=http://x|1");
        }
        r
    };
    let mut h = Harness::new(&config_with(json!({})), 1);
    let c_only = tokens::token(&Spec::new().scope("user/Observation.c"), h.now_s());
    let cs = tokens::token(&Spec::new().scope("user/Observation.cs"), h.now_s());
    assert!(matches!(h.run(post(&c_only, false)), Outcome::Forwarded(_)));
    let out = h.run(post(&c_only, true));
    assert_eq!(out.status(), 403, "{}", out.text());
    assert_eq!(
        out.body_json()["issue"][0]["details"]["text"],
        "smart.insufficient_scope"
    );
    assert!(matches!(h.run(post(&cs, true)), Outcome::Forwarded(_)));
}

//! Token extraction and JWT validation through the real filter logic on the simulated host.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use harness::tokens::{self, keys, Spec, AUDIENCE, ISSUER};
use harness::{Harness, Outcome, Req};
use serde_json::json;

const READ: &str = "/fhir/Patient/123";

fn inline_config() -> String {
    json!({
        "providers": [{
            "name": "main",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<serde_json::Value>(&tokens::jwks()).unwrap()},
            "clockSkew": "30s"
        }],
        "forward": {"headers": {"x-fhirgate-subject": "subject", "x-fhirgate-client": "clientId"}}
    })
    .to_string()
}

fn user_spec() -> Spec {
    Spec::new().scope("user/*.cruds")
}

fn harness() -> Harness {
    Harness::new(&inline_config(), 1)
}

fn assert_invalid_token(out: &Outcome, code: &str) {
    assert_eq!(out.status(), 401, "{}", out.text());
    let challenge = out.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("error_description=\""), "{challenge}");
    assert_eq!(out.issue_code(), code, "{}", out.text());
    assert_eq!(
        out.header("content-type").as_deref(),
        Some("application/fhir+json")
    );
}

#[test]
fn valid_rs256_and_es256_tokens_are_forwarded() {
    let mut h = harness();
    let now = h.now_s();
    let rs = tokens::token(&user_spec(), now);
    let es = tokens::es256(&keys().ec, &user_spec(), now);
    for t in [rs, es] {
        let out = h.run(Req::get(READ).bearer(&t));
        assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
    }
}

#[test]
fn no_credentials_is_401_without_error_attribute() {
    let mut h = harness();
    for req in [
        Req::get(READ),
        Req::get(READ).header("authorization", "Basic dXNlcjpwYXNz"),
        Req::get(READ).header("authorization", "Digest username=x"),
    ] {
        let out = h.run(req);
        assert_eq!(out.status(), 401, "{}", out.text());
        assert_eq!(
            out.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"fhirgate\"")
        );
        assert_eq!(out.issue_code(), "login");
    }
    // A token in the query is not "no credentials" but a second method (RFC 6750 §3.1): 400
    // invalid_request (tests/attacks_request.rs has every spelling).
    let out = h.run(Req::get("/fhir/Patient/123?access_token=abc.def.ghi"));
    assert_eq!(out.status(), 400, "{}", out.text());
}

#[test]
fn malformed_authorization_is_400_invalid_request() {
    let mut h = harness();
    let good = tokens::token(&user_spec(), h.now_s());
    let cases = [
        Req::get(READ).header("authorization", "Bearer "),
        Req::get(READ).header("authorization", "Bearer"),
        Req::get(READ).header("authorization", &format!("Bearer {good} junk")),
        Req::get(READ).header("authorization", &format!("Bearer {good},{good}")),
        Req::get(READ).header("authorization", "Bearer a\"b"),
        Req::get(READ).bearer(&good).bearer(&good),
        Req::get(READ)
            .bearer(&good)
            .header("authorization", "Basic eDp5"),
        Req::get(READ).bearer(&"a".repeat(20_000)),
    ];
    for req in cases {
        let out = h.run(req);
        assert_eq!(out.status(), 400, "{}", out.text());
        assert!(out
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_request\""));
        assert_eq!(out.issue_code(), "invalid");
    }
}

#[test]
fn scheme_is_case_insensitive() {
    let mut h = harness();
    let t = tokens::token(&user_spec(), h.now_s());
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let out = h.run(Req::get(READ).header("authorization", &format!("{scheme} {t}")));
        assert!(
            matches!(out, Outcome::Forwarded(_)),
            "{scheme}: {}",
            out.text()
        );
    }
}

#[test]
fn forged_and_confused_tokens_are_rejected() {
    let mut h = harness();
    let now = h.now_s();
    let spec = user_spec();
    let good = tokens::token(&spec, now);
    let cases = [
        ("tampered signature", tokens::tamper_signature(&good)),
        (
            "attacker key with a trusted kid",
            tokens::rs256(&keys().attacker, &spec, now),
        ),
        ("alg none", tokens::alg_none(&spec, now)),
        (
            "HS256 keyed with the RSA public key",
            tokens::hs256_with_public_key(&spec, now),
        ),
        (
            "header says ES256 for the RSA kid",
            tokens::with_header(
                &good,
                json!({"alg": "ES256", "typ": "at+jwt", "kid": "rsa-1"}),
            ),
        ),
        (
            "embedded jwk header",
            tokens::with_header(
                &tokens::rs256(&keys().attacker, &spec, now),
                json!({"alg": "RS256", "typ": "at+jwt", "kid": "attacker",
                       "jwk": tokens::rsa_jwk(&keys().attacker, "attacker")}),
            ),
        ),
        (
            "jku header",
            tokens::with_header(
                &tokens::rs256(&keys().attacker, &spec, now),
                json!({"alg": "RS256", "typ": "at+jwt", "jku": "https://evil.example/jwks"}),
            ),
        ),
        (
            "payload swapped",
            tokens::with_payload(
                &good,
                json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "admin",
                "exp": now + 300, "scope": "system/*.cruds"}),
            ),
        ),
        (
            "unknown kid (inline keys: no refetch)",
            tokens::rs256(&keys().rsa2, &spec, now),
        ),
    ];
    for (name, t) in cases {
        let out = h.run(Req::get(READ).bearer(&t));
        assert_eq!(out.status(), 401, "{name}: {}", out.text());
        assert_invalid_token(&out, "login");
        assert!(
            h.callouts().is_empty(),
            "{name}: inline keys never trigger a fetch"
        );
    }
}

#[test]
fn time_claims_are_enforced_with_skew() {
    let mut h = harness();
    let now = h.now_s();
    let expired = Spec {
        exp_offset: Some(-31),
        iat_offset: -600,
        ..user_spec()
    };
    let out = h.run(Req::get(READ).bearer(&tokens::token(&expired, now)));
    assert_invalid_token(&out, "expired");

    let within_skew = Spec {
        exp_offset: Some(-20),
        iat_offset: -600,
        ..user_spec()
    };
    let out = h.run(Req::get(READ).bearer(&tokens::token(&within_skew, now)));
    assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());

    let future_nbf = Spec {
        nbf_offset: Some(120),
        ..user_spec()
    };
    assert_invalid_token(
        &h.run(Req::get(READ).bearer(&tokens::token(&future_nbf, now))),
        "login",
    );

    let future_iat = Spec {
        iat_offset: 120,
        exp_offset: Some(600),
        ..user_spec()
    };
    assert_invalid_token(
        &h.run(Req::get(READ).bearer(&tokens::token(&future_iat, now))),
        "login",
    );

    let no_exp = Spec {
        exp_offset: None,
        ..user_spec()
    };
    assert_invalid_token(
        &h.run(Req::get(READ).bearer(&tokens::token(&no_exp, now))),
        "login",
    );

    let too_long = Spec {
        exp_offset: Some(3 * 86_400),
        ..user_spec()
    };
    assert_invalid_token(
        &h.run(Req::get(READ).bearer(&tokens::token(&too_long, now))),
        "login",
    );
}

#[test]
fn a_cached_token_still_expires() {
    let mut h = harness();
    let t = tokens::token(
        &Spec {
            exp_offset: Some(60),
            ..user_spec()
        },
        h.now_s(),
    );
    assert!(matches!(
        h.run(Req::get(READ).bearer(&t)),
        Outcome::Forwarded(_)
    ));
    h.advance(95_000);
    assert_invalid_token(&h.run(Req::get(READ).bearer(&t)), "expired");
}

#[test]
fn wrong_issuer_audience_and_type_are_rejected() {
    let mut h = harness();
    let now = h.now_s();
    let cases = [
        Spec {
            iss: "https://evil.example".into(),
            ..user_spec()
        },
        Spec {
            aud: json!("https://other.example/fhir"),
            ..user_spec()
        },
        Spec {
            aud: json!(["https://a.example", "https://b.example"]),
            ..user_spec()
        },
        Spec {
            typ: "id+jwt".into(),
            ..user_spec()
        },
        Spec {
            typ: "dpop+jwt".into(),
            ..user_spec()
        },
    ];
    for spec in cases {
        assert_invalid_token(
            &h.run(Req::get(READ).bearer(&tokens::token(&spec, now))),
            "login",
        );
    }
    let multi = Spec {
        aud: json!(["https://a.example", AUDIENCE]),
        ..user_spec()
    };
    assert!(matches!(
        h.run(Req::get(READ).bearer(&tokens::token(&multi, now))),
        Outcome::Forwarded(_)
    ));
}

#[test]
fn malformed_tokens_are_rejected_not_passed() {
    let mut h = harness();
    let cases = [
        "abc.def.ghi".to_string(),
        "eyJhbGciOiJSUzI1NiJ9.e30x.abc".to_string(),
        "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30.c2ln==".to_string(),
        "e30.e30.e30".to_string(),
        "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d".to_string(),
        "opaque-token-value".to_string(),
    ];
    for t in cases {
        let out = h.run(Req::get(READ).bearer(&t));
        assert_eq!(out.status(), 401, "{t}: {}", out.text());
        assert!(out
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"));
    }
}

#[test]
fn tokens_never_appear_in_replies_or_logs() {
    let mut h = harness();
    let now = h.now_s();
    let good = tokens::token(&user_spec(), now);
    let bad = tokens::tamper_signature(&good);
    let expired = tokens::token(
        &Spec {
            exp_offset: Some(-100),
            iat_offset: -200,
            ..user_spec()
        },
        now,
    );
    let id = h.send(0, Req::get(READ).bearer(&good));
    assert!(matches!(h.outcome(id), Outcome::Forwarded(_)));
    // reads are audited once the response passed the consent-label check
    let (status, _, _) = h.respond(0, id, 200, r#"{"resourceType":"Patient","id":"123"}"#);
    assert_eq!(status, 200);
    for t in [&bad, &expired] {
        let Outcome::Replied(reply) = h.run(Req::get(READ).bearer(t)) else {
            panic!("not denied")
        };
        let text = format!(
            "{:?} {}",
            reply.headers,
            String::from_utf8_lossy(&reply.body)
        );
        for part in t.split('.') {
            assert!(!text.contains(part), "a token part leaked into a reply");
        }
    }
    let logs = h.all_logs();
    for t in [&good, &bad, &expired] {
        for part in t.split('.') {
            assert!(!logs.contains(part), "a token part leaked into the logs");
        }
    }
    assert_eq!(h.logs_containing("fhirgate.audit ").len(), 3);
}

#[test]
fn spoofed_identity_headers_are_replaced_by_verified_claims() {
    let mut h = harness();
    let t = tokens::token(&user_spec(), h.now_s());
    let out = h.run(
        Req::get(READ)
            .bearer(&t)
            .header("x-fhirgate-subject", "admin")
            .header("x-fhirgate-patient", "999")
            .header("X-Fhirgate-Other", "x"),
    );
    let Outcome::Forwarded(headers) = out else {
        panic!("{}", out.text())
    };
    let subject: Vec<_> = headers
        .iter()
        .filter(|(n, _)| n == "x-fhirgate-subject")
        .collect();
    assert_eq!(
        subject,
        vec![&("x-fhirgate-subject".to_string(), "user-1".to_string())]
    );
    assert!(!headers
        .iter()
        .any(|(n, _)| n == "x-fhirgate-patient" || n == "x-fhirgate-other"));
    assert!(headers
        .iter()
        .any(|(n, v)| n == "x-fhirgate-client" && v == "test-app"));

    // Denied requests never reach upstream, spoofed headers or not.
    let out = h.run(Req::get(READ).header("x-fhirgate-subject", "admin"));
    assert_eq!(out.status(), 401);
}

#[test]
fn a_token_is_verified_once_then_served_from_cache() {
    let mut h = harness();
    let t = tokens::token(&user_spec(), h.now_s());
    for _ in 0..5 {
        assert!(matches!(
            h.run(Req::get(READ).bearer(&t)),
            Outcome::Forwarded(_)
        ));
    }
    assert_eq!(h.metric("token_cache_misses_total"), 1);
    assert_eq!(h.metric("token_cache_hits_total"), 4);
}

#[test]
fn workers_share_verified_tokens() {
    let mut h = Harness::new(&inline_config(), 2);
    let t = tokens::token(&user_spec(), h.now_s());
    let a = h.send(0, Req::get(READ).bearer(&t));
    assert!(matches!(h.outcome(a), Outcome::Forwarded(_)));
    let b = h.send(1, Req::get(READ).bearer(&t));
    assert!(matches!(h.outcome(b), Outcome::Forwarded(_)));
    assert_eq!(h.metric("token_shared_cache_hits_total"), 1);
    assert_eq!(h.metric("token_cache_misses_total"), 1);
}

#[test]
fn removing_authorization_is_optional() {
    let mut cfg: serde_json::Value = serde_json::from_str(&inline_config()).unwrap();
    cfg["forward"]["removeAuthorization"] = json!(true);
    let mut h = Harness::new(&cfg.to_string(), 1);
    let t = tokens::token(&user_spec(), h.now_s());
    let Outcome::Forwarded(headers) = h.run(Req::get(READ).bearer(&t)) else {
        panic!()
    };
    assert!(!headers.iter().any(|(n, _)| n == "authorization"));

    let mut h = harness();
    let Outcome::Forwarded(headers) = h.run(Req::get(READ).bearer(&t)) else {
        panic!()
    };
    assert!(headers.iter().any(|(n, _)| n == "authorization"));
}

#[test]
fn discovery_is_public_but_nothing_else() {
    let mut h = harness();
    assert!(matches!(
        h.run(Req::get("/fhir/metadata")),
        Outcome::Forwarded(_)
    ));
    assert!(matches!(
        h.run(Req::get("/fhir/.well-known/smart-configuration")),
        Outcome::Forwarded(_)
    ));
    for path in [
        "/fhir/metadata/../Patient/1",
        "/fhir/Metadata",
        "/fhir//metadata",
        "/fhir/metadata%2F..%2FPatient",
    ] {
        assert_ne!(h.run(Req::get(path)).status(), 200, "{path}");
    }
    assert_eq!(
        h.run(Req::get("/fhir/metadata").method("POST")).status(),
        401
    );
}

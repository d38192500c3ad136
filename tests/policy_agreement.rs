//! What `fhirgate test` decides is what Envoy decides: every case of every policy in
//! `policies/` runs through the policy tool and through the real engine on the simulated host
//! (a signed token with the case's claims, the request as Envoy delivers it, the case's response
//! from the upstream), and both must agree on the decision, the status, the reason code and the
//! withheld count.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use std::path::Path;

use fhirgate::authoring::cases::{parse_cases, Case, Decider};
use fhirgate::authoring::full::{CASE_ISSUER, DEFAULT_SOURCE};
use fhirgate::authoring::{default_decider, Policy};
use harness::tokens::{self, AUDIENCE};
use harness::{Harness, Outcome, Req};
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

/// What a decision came to, as both sides report it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    allowed: bool,
    status: u16,
    reason: String,
    withheld: u32,
    /// The `:path` the upstream got instead of the request's (a narrowed search).
    narrowed: Option<String>,
}

/// The case's claims as a verified token carries them: the IdP's issuer and audience, and a
/// lifetime, added to the claims the case gives.
fn full_claims(case: &Case, now_s: u64) -> Map<String, Value> {
    let mut claims = case.token.clone();
    claims.insert("iss".into(), json!(CASE_ISSUER));
    claims.insert("aud".into(), json!(AUDIENCE));
    claims.insert("iat".into(), json!(now_s));
    claims.insert("exp".into(), json!(now_s + 300));
    claims
}

/// Signs exactly `claims` (standard members in their own fields, so none is duplicated).
fn sign(claims: &Map<String, Value>) -> String {
    let mut custom = claims.clone();
    let take_u64 = |c: &mut Map<String, Value>, k: &str| c.remove(k).and_then(|v| v.as_u64());
    let take_str = |c: &mut Map<String, Value>, k: &str| {
        c.remove(k).and_then(|v| v.as_str().map(str::to_string))
    };
    let iat = take_u64(&mut custom, "iat").unwrap();
    let exp = take_u64(&mut custom, "exp").unwrap();
    let jwt = JWTClaims {
        issued_at: Some(UnixTimeStamp::from_secs(iat)),
        expires_at: Some(UnixTimeStamp::from_secs(exp)),
        invalid_before: None,
        issuer: take_str(&mut custom, "iss"),
        subject: take_str(&mut custom, "sub"),
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom,
    };
    let options = HeaderOptions {
        signature_type: Some("at+jwt".into()),
        ..Default::default()
    };
    tokens::keys().rsa.sign_with_options(jwt, &options).unwrap()
}

fn harness_config(policy: &Policy) -> String {
    json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{
            "name": "policy-test", "issuer": CASE_ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}
        }],
        "smart": {"enforce": true},
        "rules": serde_json::to_value(&policy.rules).unwrap()
    })
    .to_string()
}

fn body_of(case: &Case) -> Option<Vec<u8>> {
    match &case.request.body {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        Some(v) => Some(serde_json::to_vec(v).unwrap()),
    }
}

/// The case through the real engine.
fn through_envoy(h: &mut Harness, case: &Case) -> Seen {
    let token = sign(&full_claims(case, h.now_s()));
    let mut req = Req::get(&case.request.path)
        .method(&case.request.method.to_ascii_uppercase())
        .source(case.request.source.as_deref().unwrap_or(DEFAULT_SOURCE));
    for (name, value) in &case.request.headers {
        req = req.header(name, value);
    }
    if !case
        .request
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("authorization"))
    {
        req = req.bearer(&token);
    }
    if let Some(body) = body_of(case) {
        if !case
            .request
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            let ct = match &case.request.body {
                Some(Value::String(_)) => "application/x-www-form-urlencoded",
                _ => "application/fhir+json",
            };
            req = req.header("content-type", ct);
        }
        req = req.body(&body);
    }
    let before = h.audit_records().len();
    let id = h.send(0, req);
    let mut seen = match h.outcome(id) {
        Outcome::Replied(r) => Seen {
            allowed: false,
            status: r.status,
            reason: String::new(),
            withheld: 0,
            narrowed: None,
        },
        Outcome::Forwarded(headers) => Seen {
            allowed: true,
            status: 200,
            reason: String::new(),
            withheld: 0,
            narrowed: headers
                .iter()
                .find(|(n, v)| n == ":path" && *v != case.request.path)
                .map(|(_, v)| v.clone()),
        },
        Outcome::Pending => panic!("{}: left pending", case.name),
    };
    if seen.allowed {
        match &case.response {
            Some(resource) => {
                let (status, _, _) = h.respond(0, id, 200, &resource.to_string());
                seen.allowed = (200..300).contains(&status);
                seen.status = status;
            }
            None => h.done(0, id),
        }
    }
    let records = h.audit_records();
    assert_eq!(records.len(), before + 1, "{}: one record", case.name);
    let record = records.last().unwrap();
    seen.reason = record["reason"].as_str().unwrap().to_string();
    seen.withheld = u32::try_from(record["withheld"].as_u64().unwrap()).unwrap();
    seen
}

/// The case through the policy tool, with the claims the verified token has.
fn through_the_tool(decider: &dyn Decider, case: &Case, now_s: u64) -> Seen {
    let mut case = case.clone();
    case.token = full_claims(&case, now_s);
    let o = decider.decide(&case).unwrap();
    Seen {
        allowed: o.allowed,
        status: o.status,
        reason: o.reason,
        withheld: o.withheld,
        narrowed: o.narrowed,
    }
}

#[test]
fn the_policy_tool_decides_every_case_as_envoy_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut compared = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = name.strip_suffix(".cases.json") else {
            continue;
        };
        let policy_text = std::fs::read_to_string(dir.join(format!("{stem}.json"))).unwrap();
        let (policy, rules) = Policy::parse(&policy_text).unwrap();
        let cases = parse_cases(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let decider = default_decider(&policy, &rules).unwrap();
        let mut h = Harness::new(&harness_config(&policy), 1);
        for case in &cases {
            let envoy = through_envoy(&mut h, case);
            let tool = through_the_tool(decider.as_ref(), case, h.now_s());
            assert_eq!(tool, envoy, "{stem}: {}", case.name);
            compared += 1;
        }
    }
    assert!(compared >= 80, "{compared} cases");
}

//! Issue 12: the IdP's answers are input too, written as attacks. A JWKS answer that withdraws
//! keys replaces the key set (a key compromise takes effect on the next refresh; an outage keeps
//! the last keys up to `maxStaleness`), an introspection answer for anything but an access token
//! is refused, and a key published without `alg` verifies one algorithm only.
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
use jwt_simple::prelude::*;
use serde_json::{json, Value};

const READ: &str = "/fhir/Patient/123";

fn remote_config() -> String {
    json!({
        "providers": [{
            "name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"remote": {
                "cluster": "idp", "authority": "idp.example.org", "path": "/jwks",
                "refresh": "300s", "timeout": "2s", "maxStaleness": "1h", "minRefetchInterval": "30s"
            }}
        }]
    })
    .to_string()
}

/// Tokens outliving the refresh below.
fn spec() -> Spec {
    let mut s = Spec::new().scope("user/*.cruds");
    s.exp_offset = Some(3600);
    s
}

fn forwarded(out: &Outcome) -> bool {
    matches!(out, Outcome::Forwarded(_))
}

/// Loads the current keys, checks a token works, then lets the refresh come due and answers it.
fn refreshed_with(result: CalloutResult) -> (Harness, String) {
    let mut h = Harness::new(&remote_config(), 2);
    h.tick();
    assert_eq!(h.answer_all("idp", 200, &tokens::jwks()), 1);
    let t = tokens::token(&spec(), h.now_s());
    assert!(forwarded(&h.run(Req::get(READ).bearer(&t))));
    h.advance(301_000);
    h.tick();
    let callouts = h.callouts();
    assert_eq!(callouts.len(), 1, "the scheduled refresh");
    h.answer(callouts[0].token, result);
    (h, t)
}

/// Sends `t` on `worker`, answering any refetch for its (now unknown) kid with `body`.
fn send_answering(h: &mut Harness, worker: usize, t: &str, body: &str) -> Outcome {
    let id = h.send(worker, Req::get(READ).bearer(t));
    h.answer_all("idp", 200, body);
    h.outcome(id)
}

#[test]
fn a_jwks_that_withdraws_every_key_refuses_their_tokens_at_once() {
    let withdrawn = [
        // Empty.
        json!({"keys": []}),
        // Only keys this gateway cannot use: encryption keys, an unsupported type, a small RSA key.
        json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "rsa-1", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": "wQ", "e": "AQAB"}
        ]}),
    ];
    for jwks in withdrawn {
        let body = jwks.to_string();
        let (mut h, t) = refreshed_with(CalloutResult::Response {
            status: 200,
            body: body.clone().into_bytes(),
        });
        for worker in [0, 1] {
            let out = send_answering(&mut h, worker, &t, &body);
            assert_eq!(out.status(), 401, "{jwks} worker {worker}: {}", out.text());
            assert!(out
                .header("www-authenticate")
                .unwrap()
                .contains("invalid_token"));
        }
        assert!(!h.logs_containing("no usable key").is_empty());
    }
}

#[test]
fn a_jwks_that_withdraws_one_key_refuses_only_its_tokens() {
    let only_ec = json!({"keys": [tokens::ec_jwk(&keys().ec, "ec-1")]}).to_string();
    let (mut h, rsa_token) = refreshed_with(CalloutResult::Response {
        status: 200,
        body: only_ec.clone().into_bytes(),
    });
    let out = send_answering(&mut h, 1, &rsa_token, &only_ec);
    assert_eq!(out.status(), 401, "{}", out.text());
    let ec_token = tokens::es256(&keys().ec, &spec(), h.now_s());
    assert!(forwarded(&h.run(Req::get(READ).bearer(&ec_token))));
}

#[test]
fn an_outage_keeps_the_last_keys_until_max_staleness() {
    for outage in [
        CalloutResult::Failed,
        CalloutResult::Response {
            status: 503,
            body: b"down".to_vec(),
        },
        // Not a key set at all (an error page served with 200): no statement about keys.
        CalloutResult::Response {
            status: 200,
            body: b"<html>maintenance</html>".to_vec(),
        },
    ] {
        let (mut h, t) = refreshed_with(outage.clone());
        let out = h.run(Req::get(READ).bearer(&t));
        assert!(forwarded(&out), "{outage:?}: {}", out.text());
    }
}

// ---------------------------------------------------------------------------------------------

fn introspection_config() -> String {
    json!({
        "providers": [{
            "name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "introspection": {
                "cluster": "idp", "authority": "idp.example.org", "path": "/introspect",
                "clientId": "fhirgate", "clientSecret": "s3cret", "mode": "opaque",
                "cacheTtl": "60s", "negativeCacheTtl": "10s", "timeout": "1s"
            }
        }]
    })
    .to_string()
}

fn introspected(token_type: Option<Value>) -> (Outcome, Harness) {
    let mut h = Harness::new(&introspection_config(), 1);
    let mut answer = json!({
        "active": true, "scope": "user/*.cruds", "exp": h.now_s() + 300, "iat": h.now_s(),
        "iss": ISSUER, "aud": AUDIENCE, "client_id": "app-1", "sub": "user-7"
    });
    if let Some(tt) = token_type {
        answer["token_type"] = tt;
    }
    let id = h.send(0, Req::get(READ).bearer("2YotnFZFEjr1zCsicMWpAA"));
    assert_eq!(h.answer_all("idp", 200, &answer.to_string()), 1);
    (h.outcome(id), h)
}

#[test]
fn an_introspected_refresh_token_is_not_an_access_token() {
    for tt in [
        json!("refresh_token"),
        json!("urn:ietf:params:oauth:token-type:refresh_token"),
        json!("id_token"),
        json!("N_A"),
        json!(["Bearer"]),
    ] {
        let (out, h) = introspected(Some(tt.clone()));
        assert_eq!(out.status(), 401, "{tt}: {}", out.text());
        assert!(out
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"));
        assert_eq!(
            h.audit_records().last().unwrap()["reason"],
            "token.not_access_token"
        );
    }
    for tt in [
        Some(json!("Bearer")),
        Some(json!("DPoP")),
        Some(json!("bearer")),
        None,
    ] {
        let (out, _) = introspected(tt.clone());
        assert!(forwarded(&out), "{tt:?}: {}", out.text());
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn an_rsa_key_without_alg_verifies_rs256_only() {
    let c = keys().rsa.public_key().to_components();
    let b64 =
        |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let unlabelled = json!({"kty": "RSA", "kid": "rsa-1", "n": b64(&c.n), "e": b64(&c.e)});
    let config = json!({
        "providers": [{
            "name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "algorithms": ["RS256", "PS256", "ES256"],
            "jwks": {"inline": {"keys": [unlabelled]}}
        }]
    })
    .to_string();
    let mut h = Harness::new(&config, 1);
    // The same RSA key signs PS256: a kid cannot be used with another algorithm.
    let der = keys().rsa.to_der().unwrap();
    let ps = PS256KeyPair::from_der(&der).unwrap().with_key_id("rsa-1");
    let ps_token = ps
        .sign_with_options(
            tokens::claims_at(&spec(), h.now_s()),
            &tokens::options(&spec()),
        )
        .unwrap();
    let out = h.run(Req::get(READ).bearer(&ps_token));
    assert_eq!(out.status(), 401, "{}", out.text());
    assert_eq!(
        h.audit_records().last().unwrap()["reason"],
        "token.alg_key_mismatch"
    );
    let rs_token = tokens::token(&spec(), h.now_s());
    assert!(forwarded(&h.run(Req::get(READ).bearer(&rs_token))));
}

//! Certificate-bound tokens (RFC 8705, contract §5) and opaque tokens whose binding comes from
//! introspection, through the real engine on the simulated host (its connections carry the
//! TLS properties Envoy offers: `connection.tls_version`,
//! `connection.sha256_peer_certificate_digest`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use harness::dpop::{
    assert_bearer_invalid_token, assert_dpop_challenge, b64, bound_to_cert, config, htu, DpopKey,
    OPAQUE_ISSUER,
};
use harness::tokens::{self, Spec, AUDIENCE};
use harness::{Harness, Outcome, Req};
use serde_json::json;
use sha2::{Digest, Sha256};

const READ: &str = "/fhir/Patient/123";
/// The DER bytes of two client certificates from the same CA (their content does not matter
/// here: the proxy validated the chain, the filter compares SHA-256 thumbprints).
const ALICE_CERT: &[u8] = b"0\x82\x01\x0a alice's certificate, issued by the test CA";
const MALLORY_CERT: &[u8] = b"0\x82\x01\x0a mallory's certificate, issued by the same CA";

fn forwarded(out: &Outcome) -> bool {
    matches!(out, Outcome::Forwarded(_))
}

fn cert_token(h: &Harness) -> String {
    tokens::token(&bound_to_cert(Spec::new(), ALICE_CERT), h.now_s())
}

#[test]
fn a_certificate_bound_token_passes_with_its_certificate() {
    let mut h = Harness::new(&config(json!({}), json!({})), 1);
    let token = cert_token(&h);
    let id = h.send(0, Req::get(READ).client_cert(ALICE_CERT).bearer(&token));
    assert!(forwarded(&h.outcome(id)), "{}", h.outcome(id).text());
    assert_eq!(h.metric("mtls_bindings_accepted_total"), 1);
    let audit = h.audit_records();
    assert_eq!(audit.last().unwrap()["binding"], "mtls");
    assert!(
        !h.all_logs().contains(&b64(&Sha256::digest(ALICE_CERT))),
        "no thumbprint logged"
    );
}

#[test]
fn another_clients_certificate_from_the_same_ca_is_refused() {
    let mut h = Harness::new(&config(json!({}), json!({})), 1);
    let token = cert_token(&h);
    let out = h.run(Req::get(READ).client_cert(MALLORY_CERT).bearer(&token));
    assert_bearer_invalid_token(&out, "mtls.mismatch");
    assert_eq!(h.audit_records().last().unwrap()["binding"], "mtls");
}

#[test]
fn no_client_certificate_is_refused_and_forwarded_certificates_are_never_trusted() {
    let mut h = Harness::new(&config(json!({}), json!({})), 1);
    let token = cert_token(&h);
    let hex: String = Sha256::digest(ALICE_CERT)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for req in [
        Req::get(READ).bearer(&token),
        Req::get(READ).tls().bearer(&token),
        Req::get(READ)
            .bearer(&token)
            .header(
                "x-forwarded-client-cert",
                &format!("Hash={hex};Subject=\"CN=alice\""),
            )
            .header("x-ssl-client-sha256", &hex),
    ] {
        assert_bearer_invalid_token(&h.run(req), "mtls.missing");
    }
}

#[test]
fn off_refuses_certificate_bound_tokens_and_required_refuses_unbound_ones() {
    let mut off = Harness::new(&config(json!({"mtls": "off"}), json!({})), 1);
    let token = cert_token(&off);
    let out = off.run(Req::get(READ).client_cert(ALICE_CERT).bearer(&token));
    assert_bearer_invalid_token(&out, "mtls.disabled");

    let mut req = Harness::new(&config(json!({"mtls": "required"}), json!({})), 1);
    let plain = tokens::token(&Spec::new(), req.now_s());
    let out = req.run(Req::get(READ).client_cert(ALICE_CERT).bearer(&plain));
    assert_bearer_invalid_token(&out, "mtls.required");
    let token = cert_token(&req);
    assert!(forwarded(
        &req.run(Req::get(READ).client_cert(ALICE_CERT).bearer(&token))
    ));
}

#[test]
fn a_token_bound_to_a_key_and_a_certificate_needs_both() {
    let mut h = Harness::new(&config(json!({}), json!({})), 1);
    let key = DpopKey::new(3);
    let spec = Spec::new().claim(
        "cnf",
        json!({"jkt": key.thumbprint(), "x5t#S256": b64(&Sha256::digest(ALICE_CERT))}),
    );
    let token = tokens::token(&spec, h.now_s());
    let https = "https://fhir.example.org/fhir/Patient/123";
    let p = key.proof(&token, "GET", https, h.now_s(), "b1");
    let out = h.run(Req::get(READ).client_cert(ALICE_CERT).dpop(&token, &p));
    assert!(forwarded(&out), "{}", out.text());
    let p = key.proof(&token, "GET", https, h.now_s(), "b2");
    let out = h.run(Req::get(READ).client_cert(MALLORY_CERT).dpop(&token, &p));
    assert_bearer_invalid_token(&out, "mtls.mismatch");
    let out = h.run(Req::get(READ).client_cert(ALICE_CERT).bearer(&token));
    assert_dpop_challenge(&out, "invalid_token", "dpop.bound_as_bearer");
}

/// Sends `req` (an opaque token) on worker 0 and answers its introspection with `answer`.
fn introspected(h: &mut Harness, req: Req, answer: &serde_json::Value) -> Outcome {
    let id = h.send(0, req);
    assert_eq!(h.outcome(id), Outcome::Pending, "waits for introspection");
    assert_eq!(h.answer_all("idp", 200, &answer.to_string()), 1);
    h.outcome(id)
}

fn active(h: &Harness, cnf: serde_json::Value) -> serde_json::Value {
    json!({
        "active": true, "iss": OPAQUE_ISSUER, "aud": AUDIENCE, "exp": h.now_s() + 300,
        "sub": "device-9", "client_id": "pump", "token_type": "DPoP", "cnf": cnf
    })
}

#[test]
fn an_opaque_token_takes_its_dpop_binding_from_introspection() {
    let mut h = Harness::new(&config(json!({}), json!({})), 2);
    let key = DpopKey::new(4);
    let opaque = "2YotnFZFEjr1zCsicMWpAA";
    let answer = active(&h, json!({"jkt": key.thumbprint()}));
    // As a bearer token: refused once introspection says it is bound.
    let out = introspected(&mut h, Req::get(READ).bearer(opaque), &answer);
    assert_dpop_challenge(&out, "invalid_token", "dpop.bound_as_bearer");
    assert_eq!(h.audit_records().last().unwrap()["tokenKind"], "opaque");
    // With its proof (the answer is cached now, on this worker and across workers).
    for (worker, jti) in [(0, "o1"), (1, "o2")] {
        let p = key.proof(opaque, "GET", &htu(READ), h.now_s(), jti);
        let id = h.send(worker, Req::get(READ).dpop(opaque, &p));
        assert!(forwarded(&h.outcome(id)), "{}", h.outcome(id).text());
    }
    assert_eq!(h.metric("introspection_calls_total"), 1);
    let thief = DpopKey::new(5);
    let p = thief.proof(opaque, "GET", &htu(READ), h.now_s(), "o3");
    assert_dpop_challenge(
        &h.run(Req::get(READ).dpop(opaque, &p)),
        "invalid_token",
        "dpop.jkt",
    );
}

#[test]
fn an_opaque_token_takes_its_certificate_binding_from_introspection() {
    let mut h = Harness::new(&config(json!({}), json!({})), 1);
    let opaque = "8xLOxBtZp8";
    let answer = active(&h, json!({"x5t#S256": b64(&Sha256::digest(ALICE_CERT))}));
    let out = introspected(
        &mut h,
        Req::get(READ).client_cert(MALLORY_CERT).bearer(opaque),
        &answer,
    );
    assert_bearer_invalid_token(&out, "mtls.mismatch");
    let out = h.run(Req::get(READ).client_cert(ALICE_CERT).bearer(opaque));
    assert!(forwarded(&out), "{}", out.text());
}

#[test]
fn an_introspection_answer_with_an_unenforceable_cnf_refuses_the_token() {
    let mut h = Harness::new(&config(json!({}), json!({})), 1);
    let answer = active(
        &h,
        json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}),
    );
    let out = introspected(
        &mut h,
        Req::get(READ).bearer("opaque-with-jwk-cnf"),
        &answer,
    );
    assert_eq!(out.status(), 401, "{}", out.text());
    assert_eq!(harness::dpop::reason(&out), "token.bad_cnf");
    // And a JWT with one.
    let jwt = tokens::token(&Spec::new().claim("cnf", json!({"kid": "k"})), h.now_s());
    let out = h.run(Req::get(READ).bearer(&jwt));
    assert_eq!(harness::dpop::reason(&out), "token.bad_cnf");
}

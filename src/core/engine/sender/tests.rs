//! The sender check on the request path: connection facts read only when needed, the
//! certificate digest parsed strictly, the replay cache consulted for accepted proofs, and the
//! answers built per contract §5.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Map, Value};

use super::*;
use crate::config::Config;
use crate::engine::test_host::TestHost;
use crate::exchange::SenderFacts;
use crate::token::dpop::fixtures::{b64, TestKey, NOW_S, TOKEN};
use crate::token::{ClaimNames, TokenKind};

fn worker(sender: Value) -> Worker {
    let n = b64(&[0xC3u8; 256]);
    let config = json!({
        "providers": [{
            "name": "main",
            "issuer": "https://idp.example.org",
            "audiences": ["https://fhir.example.org/fhir"],
            "jwks": {"inline": {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "n": n, "e": "AQAB"}]}},
            "senderConstraint": sender
        }]
    });
    Worker::new(
        Config::from_json(config.to_string().as_bytes()).unwrap(),
        "t",
    )
}

fn token(cnf: Option<Value>) -> VerifiedToken {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!("https://idp.example.org"));
    if let Some(cnf) = cnf {
        claims.insert("cnf".into(), cnf);
    }
    VerifiedToken::for_policy_test(TokenKind::Jwt, claims, &ClaimNames::default())
}

/// The check of `GET https?://fhir.example.org/fhir/Patient/123` presented with `facts`.
fn check_of(facts: &SenderFacts) -> SenderCheck {
    SenderCheck {
        facts: facts.clone(),
        method: "GET".into(),
        authority: "fhir.example.org".into(),
        path: "/fhir/Patient/123".into(),
    }
}

fn facts(scheme: AuthScheme, proofs: &[String]) -> SenderFacts {
    let credential = crate::token::Credential {
        scheme,
        token: TOKEN,
    };
    let headers: Vec<(String, String)> = proofs
        .iter()
        .map(|p| ("dpop".to_string(), p.clone()))
        .chain([("dpoq".to_string(), "ignored".to_string())])
        .collect();
    SenderFacts::capture(&credential, &headers)
}

fn host_at_now() -> TestHost {
    let host = TestHost::default();
    host.now_ms.set(NOW_S * 1000);
    host
}

#[test]
fn an_unbound_bearer_token_costs_no_hostcall() {
    let mut w = worker(json!({}));
    let host = host_at_now();
    let ok = w.check_sender(
        &host,
        1,
        &token(None),
        &check_of(&facts(AuthScheme::Bearer, &[])),
    );
    assert_eq!(ok, Ok(BindingKind::None));
    assert_eq!(host.property_reads.get(), 0);
    assert!(host.shared.borrow().is_empty());
}

#[test]
fn a_dpop_proof_is_accepted_once_on_a_tls_connection() {
    let mut w = worker(json!({}));
    let host = host_at_now();
    host.properties
        .borrow_mut()
        .insert("connection.tls_version".into(), b"TLSv1.3".to_vec());
    let key = TestKey::es256(1);
    let t = token(Some(json!({"jkt": key.thumbprint()})));
    let proof = key.proof(
        "GET",
        "https://fhir.example.org/fhir/Patient/123",
        NOW_S,
        "j1",
    );
    let f = facts(AuthScheme::Dpop, &[proof]);
    assert_eq!(
        w.check_sender(&host, 1, &t, &check_of(&f)),
        Ok(BindingKind::Dpop)
    );
    w.flush_metrics(&host);
    assert_eq!(
        host.metrics.borrow().get("dpop_proofs_accepted_total"),
        Some(&1)
    );
    let again = w.check_sender(&host, 2, &t, &check_of(&f)).unwrap_err();
    assert_eq!(again.reason, "dpop.replay");
    let reply = again.to_reply("fhirgate", 5);
    assert_eq!(reply.status, 401);
    let challenge = reply
        .headers
        .iter()
        .find(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        challenge.starts_with("DPoP realm=\"fhirgate\", error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    assert!(
        challenge.ends_with("algs=\"ES256 ES384 RS256 PS256 EdDSA\""),
        "{challenge}"
    );
    // Without TLS the proof names the wrong scheme.
    host.properties.borrow_mut().clear();
    let proof = key.proof(
        "GET",
        "https://fhir.example.org/fhir/Patient/123",
        NOW_S,
        "j2",
    );
    let err = w
        .check_sender(&host, 3, &t, &check_of(&facts(AuthScheme::Dpop, &[proof])))
        .unwrap_err();
    assert_eq!(err.reason, "dpop.htu");
}

#[test]
fn a_full_replay_slot_is_a_503() {
    let mut w = worker(json!({}));
    let host = host_at_now();
    host.refuse_writes.set(true);
    host.properties
        .borrow_mut()
        .insert("connection.tls_version".into(), b"TLSv1.2".to_vec());
    let key = TestKey::es256(1);
    let t = token(Some(json!({"jkt": key.thumbprint()})));
    let proof = key.proof(
        "GET",
        "https://fhir.example.org/fhir/Patient/123",
        NOW_S,
        "j1",
    );
    let err = w
        .check_sender(&host, 1, &t, &check_of(&facts(AuthScheme::Dpop, &[proof])))
        .unwrap_err();
    assert_eq!(err.reason, "dpop.replay_cache_busy");
    assert_eq!(err.status(), 503);
    assert_eq!(err.kind, DenyKind::Unavailable);
}

#[test]
fn a_certificate_bound_token_reads_the_validated_certificate() {
    let mut w = worker(json!({}));
    let host = host_at_now();
    let digest = [0xABu8; 32];
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let t = token(Some(json!({"x5t#S256": b64(&digest)})));
    let bearer = facts(AuthScheme::Bearer, &[]);
    let err = w
        .check_sender(&host, 1, &t, &check_of(&bearer))
        .unwrap_err();
    assert_eq!(err.reason, "mtls.missing");
    assert_eq!(err.kind, DenyKind::InvalidToken { expired: false });
    host.properties.borrow_mut().insert(
        "connection.sha256_peer_certificate_digest".into(),
        hex.into_bytes(),
    );
    assert_eq!(
        w.check_sender(&host, 1, &t, &check_of(&bearer)),
        Ok(BindingKind::Mtls)
    );
    host.properties.borrow_mut().insert(
        "connection.sha256_peer_certificate_digest".into(),
        "cd".repeat(32).into_bytes(),
    );
    let err = w
        .check_sender(&host, 1, &t, &check_of(&bearer))
        .unwrap_err();
    assert_eq!(err.reason, "mtls.mismatch");
}

#[test]
fn the_digest_property_is_parsed_strictly() {
    assert_eq!(
        parse_hex_digest(&"ab".repeat(32).into_bytes()),
        Some([0xAB; 32])
    );
    assert_eq!(
        parse_hex_digest(&"AB".repeat(32).into_bytes()),
        Some([0xAB; 32])
    );
    for bad in [
        "",
        "ab",
        &"ab".repeat(33),
        &"zz".repeat(32),
        &format!("{} ", "a".repeat(63)),
    ] {
        assert_eq!(parse_hex_digest(bad.as_bytes()), None, "{bad}");
    }
}

#[test]
fn the_proofs_are_captured_only_for_the_dpop_scheme_and_never_printed() {
    let f = facts(AuthScheme::Dpop, &["p1".into(), "p2".into()]);
    assert_eq!(f.proofs, vec!["p1", "p2"]);
    assert!(f.token_hash.is_some());
    let printed = format!("{f:?}");
    assert!(
        !printed.contains("p1") && printed.contains("proofs: 2"),
        "{printed}"
    );
    let f = facts(AuthScheme::Bearer, &["p1".into()]);
    assert!(f.proofs.is_empty() && f.token_hash.is_none());
}

#[test]
fn denials_map_to_the_contract_answers() {
    let policy = SenderPolicy::default();
    let d = sender_denial(&SenderError::DpopBoundAsBearer, &policy);
    assert_eq!(d.reason, "dpop.bound_as_bearer");
    assert!(matches!(d.kind, DenyKind::DpopInvalidToken { .. }));
    let d = sender_denial(&SenderError::MtlsMismatch, &policy);
    assert_eq!(d.kind, DenyKind::InvalidToken { expired: false });
    let d = sender_denial(&SenderError::DpopReplayCacheFull, &policy);
    assert_eq!(d.kind, DenyKind::Unavailable);
}

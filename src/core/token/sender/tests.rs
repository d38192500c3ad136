//! The binding decision: every mode, every scheme, both bindings.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Map, Value};

use super::*;
use crate::token::dpop::fixtures::*;
use crate::token::{ClaimNames, TokenKind};

const CERT: [u8; 32] = [7u8; 32];
const OTHER_CERT: [u8; 32] = [8u8; 32];

fn token(cnf: Option<Value>) -> VerifiedToken {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!("https://idp.example.org"));
    if let Some(cnf) = cnf {
        claims.insert("cnf".into(), cnf);
    }
    VerifiedToken::for_policy_test(TokenKind::Jwt, claims, &ClaimNames::default())
}

fn dpop_token(key: &TestKey) -> VerifiedToken {
    token(Some(json!({"jkt": key.thumbprint()})))
}

fn mtls_token() -> VerifiedToken {
    token(Some(json!({"x5t#S256": b64(&CERT)})))
}

fn policy(dpop: ConstraintMode, mtls: ConstraintMode) -> SenderPolicy {
    SenderPolicy {
        dpop,
        mtls,
        ..SenderPolicy::default()
    }
}

const URIS: UriPolicy<'static> = UriPolicy {
    public_base_url: None,
    base_path: "/fhir",
};

/// A request for `GET https://fhir.example.org/fhir/Patient/123` on a TLS connection.
fn request<'a>(
    scheme: AuthScheme,
    hash: &'a [u8; 32],
    proofs: &'a [&'a str],
    cert: Option<[u8; 32]>,
) -> SenderRequest<'a> {
    SenderRequest {
        scheme,
        token_hash: hash,
        proofs,
        method: "GET",
        authority: "fhir.example.org",
        path: "/fhir/Patient/123?_summary=true",
        connection: ConnectionFacts {
            tls: true,
            peer_certificate_sha256: cert,
        },
        now_ms: NOW_S * 1000,
    }
}

use ConstraintMode::{Allowed, Off, Required};

#[test]
fn unbound_bearer_tokens_pass_unless_a_binding_is_required() {
    let hash = token_hash();
    let req = request(AuthScheme::Bearer, &hash, &[], None);
    let t = token(None);
    let ok = check_sender(&t, &policy(Allowed, Allowed), &URIS, &req).unwrap();
    assert_eq!(
        ok,
        SenderOk {
            binding: BindingKind::None,
            proof: None
        }
    );
    assert!(check_sender(&t, &policy(Off, Off), &URIS, &req).is_ok());
    assert_eq!(
        check_sender(&t, &policy(Required, Allowed), &URIS, &req),
        Err(SenderError::DpopRequired)
    );
    assert_eq!(
        check_sender(&t, &policy(Allowed, Required), &URIS, &req),
        Err(SenderError::MtlsRequired)
    );
}

#[test]
fn a_dpop_bound_token_with_its_proof_passes_and_names_the_proof() {
    let key = TestKey::es256(1);
    let hash = token_hash();
    let proof = key.proof("GET", HTU, NOW_S, "j1");
    let proofs = [proof.as_str()];
    let req = request(AuthScheme::Dpop, &hash, &proofs, None);
    for p in [policy(Allowed, Allowed), policy(Required, Off)] {
        let ok = check_sender(&dpop_token(&key), &p, &URIS, &req).unwrap();
        assert_eq!(ok.binding, BindingKind::Dpop);
        let proof = ok.proof.unwrap();
        assert_eq!(proof.remember_until_ms, NOW_S * 1000 + 60_000 + 1000);
    }
}

#[test]
fn a_dpop_bound_token_is_never_a_bearer_token() {
    let key = TestKey::es256(1);
    let hash = token_hash();
    let proof = key.proof("GET", HTU, NOW_S, "j1");
    let proofs = [proof.as_str()];
    // Even with a valid proof alongside.
    for proofs in [&proofs[..], &[]] {
        let req = request(AuthScheme::Bearer, &hash, proofs, None);
        for p in [policy(Allowed, Allowed), policy(Required, Allowed)] {
            assert_eq!(
                check_sender(&dpop_token(&key), &p, &URIS, &req),
                Err(SenderError::DpopBoundAsBearer)
            );
        }
        // `off` refuses it too, as not accepted at all.
        assert_eq!(
            check_sender(&dpop_token(&key), &policy(Off, Allowed), &URIS, &req),
            Err(SenderError::DpopDisabled)
        );
    }
}

#[test]
fn off_refuses_the_dpop_scheme_and_dpop_bound_tokens() {
    let key = TestKey::es256(1);
    let hash = token_hash();
    let proof = key.proof("GET", HTU, NOW_S, "j1");
    let proofs = [proof.as_str()];
    let req = request(AuthScheme::Dpop, &hash, &proofs, None);
    for t in [dpop_token(&key), token(None)] {
        assert_eq!(
            check_sender(&t, &policy(Off, Allowed), &URIS, &req),
            Err(SenderError::DpopDisabled)
        );
    }
}

#[test]
fn an_unbound_token_with_the_dpop_scheme_is_refused() {
    let key = TestKey::es256(1);
    let hash = token_hash();
    let proof = key.proof("GET", HTU, NOW_S, "j1");
    let proofs = [proof.as_str()];
    let req = request(AuthScheme::Dpop, &hash, &proofs, None);
    for p in [policy(Allowed, Allowed), policy(Required, Allowed)] {
        assert_eq!(
            check_sender(&token(None), &p, &URIS, &req),
            Err(SenderError::DpopUnbound)
        );
    }
}

#[test]
fn exactly_one_proof_header() {
    let key = TestKey::es256(1);
    let hash = token_hash();
    let a = key.proof("GET", HTU, NOW_S, "j1");
    let b = key.proof("GET", HTU, NOW_S, "j2");
    let joined = format!("{a}, {b}");
    let t = dpop_token(&key);
    let p = policy(Allowed, Allowed);
    let cases: [(&[&str], SenderError); 3] = [
        (&[], SenderError::DpopMissing),
        (&[a.as_str(), b.as_str()], SenderError::DpopMultiple),
        (&[joined.as_str()], SenderError::DpopMultiple),
    ];
    for (proofs, err) in cases {
        let req = request(AuthScheme::Dpop, &hash, proofs, None);
        assert_eq!(check_sender(&t, &p, &URIS, &req), Err(err));
    }
}

#[test]
fn proof_errors_are_reported_with_their_code() {
    let key = TestKey::es256(1);
    let hash = token_hash();
    let t = dpop_token(&key);
    let p = policy(Allowed, Allowed);
    let cases = [
        (key.proof("POST", HTU, NOW_S, "j"), "dpop.htm"),
        (
            key.proof("GET", "https://fhir.example.org/fhir/Patient/9", NOW_S, "j"),
            "dpop.htu",
        ),
        (key.proof("GET", HTU, NOW_S - 61, "j"), "dpop.iat"),
        (TestKey::es256(2).proof("GET", HTU, NOW_S, "j"), "dpop.jkt"),
    ];
    for (proof, code) in cases {
        let proofs = [proof.as_str()];
        let req = request(AuthScheme::Dpop, &hash, &proofs, None);
        let err = check_sender(&t, &p, &URIS, &req).unwrap_err();
        assert_eq!(err.code(), code);
    }
    // The scheme the proof names comes from the connection: `http` on a plaintext one.
    let proof = key.proof("GET", HTU, NOW_S, "j");
    let proofs = [proof.as_str()];
    let mut req = request(AuthScheme::Dpop, &hash, &proofs, None);
    req.connection.tls = false;
    assert_eq!(
        check_sender(&t, &p, &URIS, &req),
        Err(SenderError::Proof(ProofError::Htu))
    );
}

#[test]
fn with_a_public_base_url_the_proof_names_the_public_uri() {
    let key = TestKey::es256(1);
    let hash = token_hash();
    let t = dpop_token(&key);
    let p = policy(Allowed, Allowed);
    let uris = UriPolicy {
        public_base_url: Some("https://api.example.org/r4"),
        base_path: "/fhir",
    };
    let public = key.proof("GET", "https://api.example.org/r4/Patient/123", NOW_S, "j");
    let proofs = [public.as_str()];
    let mut req = request(AuthScheme::Dpop, &hash, &proofs, None);
    req.connection.tls = false;
    req.authority = "10.0.0.1:8080";
    assert!(check_sender(&t, &p, &uris, &req).is_ok());
    // The URL the proxy was addressed with no longer counts.
    let internal = key.proof("GET", "http://10.0.0.1:8080/fhir/Patient/123", NOW_S, "j");
    let proofs = [internal.as_str()];
    let req = SenderRequest {
        proofs: &proofs,
        ..req
    };
    assert_eq!(
        check_sender(&t, &p, &uris, &req),
        Err(SenderError::Proof(ProofError::Htu))
    );
}

#[test]
fn a_certificate_bound_token_needs_that_certificate() {
    let hash = token_hash();
    let t = mtls_token();
    let p = policy(Allowed, Allowed);
    let ok = check_sender(
        &t,
        &p,
        &URIS,
        &request(AuthScheme::Bearer, &hash, &[], Some(CERT)),
    );
    assert_eq!(ok.unwrap().binding, BindingKind::Mtls);
    assert!(check_sender(
        &t,
        &policy(Allowed, Required),
        &URIS,
        &request(AuthScheme::Bearer, &hash, &[], Some(CERT))
    )
    .is_ok());
    assert_eq!(
        check_sender(
            &t,
            &p,
            &URIS,
            &request(AuthScheme::Bearer, &hash, &[], None)
        ),
        Err(SenderError::MtlsMissing)
    );
    assert_eq!(
        check_sender(
            &t,
            &p,
            &URIS,
            &request(AuthScheme::Bearer, &hash, &[], Some(OTHER_CERT))
        ),
        Err(SenderError::MtlsMismatch)
    );
    assert_eq!(
        check_sender(
            &t,
            &policy(Allowed, Off),
            &URIS,
            &request(AuthScheme::Bearer, &hash, &[], Some(CERT))
        ),
        Err(SenderError::MtlsDisabled)
    );
}

#[test]
fn a_token_bound_to_both_proves_both() {
    let key = TestKey::es256(1);
    let hash = token_hash();
    let t = token(Some(
        json!({"jkt": key.thumbprint(), "x5t#S256": b64(&CERT)}),
    ));
    let p = policy(Allowed, Allowed);
    let proof = key.proof("GET", HTU, NOW_S, "j");
    let proofs = [proof.as_str()];
    let ok = check_sender(
        &t,
        &p,
        &URIS,
        &request(AuthScheme::Dpop, &hash, &proofs, Some(CERT)),
    );
    assert_eq!(ok.unwrap().binding, BindingKind::DpopMtls);
    assert_eq!(
        check_sender(
            &t,
            &p,
            &URIS,
            &request(AuthScheme::Dpop, &hash, &proofs, Some(OTHER_CERT))
        ),
        Err(SenderError::MtlsMismatch)
    );
    assert_eq!(
        check_sender(
            &t,
            &p,
            &URIS,
            &request(AuthScheme::Bearer, &hash, &[], Some(CERT))
        ),
        Err(SenderError::DpopBoundAsBearer)
    );
}

#[test]
fn answers_follow_the_contract() {
    use SenderAnswer::*;
    let cases = [
        (SenderError::Proof(ProofError::Signature), InvalidDpopProof),
        (SenderError::Proof(ProofError::Iat), InvalidDpopProof),
        (SenderError::DpopMissing, InvalidDpopProof),
        (SenderError::DpopMultiple, InvalidDpopProof),
        (SenderError::DpopReplay, InvalidDpopProof),
        (SenderError::Proof(ProofError::Jkt), DpopInvalidToken),
        (SenderError::DpopBoundAsBearer, DpopInvalidToken),
        (SenderError::DpopUnbound, DpopInvalidToken),
        (SenderError::DpopRequired, DpopInvalidToken),
        (SenderError::DpopDisabled, BearerInvalidToken),
        (SenderError::MtlsMissing, BearerInvalidToken),
        (SenderError::MtlsMismatch, BearerInvalidToken),
        (SenderError::MtlsRequired, BearerInvalidToken),
        (SenderError::MtlsDisabled, BearerInvalidToken),
        (SenderError::DpopReplayCacheFull, Unavailable),
        (SenderError::DpopReplayCacheBusy, Unavailable),
    ];
    let mut codes = Vec::new();
    for (err, answer) in cases {
        assert_eq!(err.answer(), answer, "{err:?}");
        let d = err.description();
        assert!(
            d.chars()
                .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'),
            "{d}"
        );
        assert!(err.code().starts_with("dpop.") || err.code().starts_with("mtls."));
        codes.push(err.code());
    }
    let n = codes.len();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), n, "codes are distinct");
    // and so are the descriptions, but for the two replay-cache answers (both "retry")
    let mut descriptions: Vec<&str> = cases.iter().map(|(e, _)| e.description()).collect();
    descriptions.sort_unstable();
    descriptions.dedup();
    assert_eq!(descriptions.len(), n - 1);
    assert!(descriptions
        .iter()
        .all(|d| d.contains("DPoP") || d.contains("certificate") || d.contains("access token")));
    assert_eq!(
        SenderPolicy::default().algs_attribute(),
        "ES256 ES384 RS256 PS256 EdDSA"
    );
}

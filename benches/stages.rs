#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(not(target_arch = "wasm32"))]
//! Criterion microbenchmarks of each stage of a request, with the real code.
//!
//! `cargo bench --bench stages -- --warm-up-time 1 --measurement-time 2`

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fhirgate::audit::AuditRecord;
use fhirgate::config::Config;
use fhirgate::consent::ConsentPolicy;
use fhirgate::decision::{decide, request_value, RequestInfo};
use fhirgate::fhir::parse_request;
use fhirgate::response::ResponseCheck;
use fhirgate::response::{check_response, filter_response, LabelMode, ResponsePolicy};
use fhirgate::rules::RuleInput;
use fhirgate::smart::{authorize, ScopeSet};
use fhirgate::token::{extract_bearer, token_hash, verify_jwt, ClaimNames, KeySet, TokenCache};
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://idp.example.org";
const AUDIENCE: &str = "https://fhir.example.org/fhir";
const NOW: u64 = 1_800_000_000;
const SCOPE: &str = "launch/patient patient/Observation.rs patient/Patient.rs";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Fixture {
    config: Config,
    rs256: String,
    ps256: String,
    es256: String,
}

fn claims() -> JWTClaims<Map<String, Value>> {
    let mut custom = Map::new();
    custom.insert("aud".into(), json!(AUDIENCE));
    custom.insert("client_id".into(), json!("bench-app"));
    custom.insert("scope".into(), json!(SCOPE));
    custom.insert("patient".into(), json!("123"));
    custom.insert("consent".into(), json!("research"));
    JWTClaims {
        issued_at: Some(UnixTimeStamp::from_secs(NOW)),
        expires_at: Some(UnixTimeStamp::from_secs(NOW + 300)),
        invalid_before: None,
        issuer: Some(ISSUER.into()),
        subject: Some("user-1".into()),
        audiences: None,
        jwt_id: None,
        nonce: None,
        custom,
    }
}

fn fixture() -> Fixture {
    let rs = RS256KeyPair::generate(2048).unwrap().with_key_id("rs");
    let ps = PS256KeyPair::generate(2048).unwrap().with_key_id("ps");
    let es = ES256KeyPair::generate().with_key_id("es");
    let rc = rs.public_key().to_components();
    let pc = ps.public_key().to_components();
    let raw = es.key_pair().public_key().to_bytes_uncompressed();
    let (x, y) = raw[1..].split_at(32);
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rs", "alg": "RS256", "n": b64(&rc.n), "e": b64(&rc.e)},
        {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": b64(&pc.n), "e": b64(&pc.e)},
        {"kty": "EC", "kid": "es", "alg": "ES256", "crv": "P-256", "x": b64(x), "y": b64(y)},
    ]});
    let rules: Value = serde_json::from_str(include_str!("../bench/rules.json")).unwrap();
    let config = json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{
            "name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": jwks},
            "algorithms": ["RS256", "PS256", "ES256"],
            "clockSkew": "30s"
        }],
        "rules": rules
    });
    let config = Config::from_json(config.to_string().as_bytes()).unwrap();
    let opts = HeaderOptions {
        signature_type: Some("at+jwt".into()),
        ..Default::default()
    };
    Fixture {
        config,
        rs256: rs.sign_with_options(claims(), &opts).unwrap(),
        ps256: ps.sign_with_options(claims(), &opts).unwrap(),
        es256: es.sign_with_options(claims(), &opts).unwrap(),
    }
}

fn keys(config: &Config) -> Rc<KeySet> {
    match config.providers[0].keys.as_ref().unwrap() {
        fhirgate::config::KeySource::Inline(k) => k.clone(),
        fhirgate::config::KeySource::Remote(_) => panic!("inline keys expected"),
    }
}

fn request() -> RequestInfo {
    let mut headers = BTreeMap::new();
    headers.insert("accept".into(), "application/fhir+json".into());
    headers.insert("user-agent".into(), "bench".into());
    RequestInfo {
        method: "GET".into(),
        path: "/fhir/Observation?patient=123&category=vital-signs&_count=50".into(),
        host: "fhir.example.org".into(),
        headers,
        source_address: "127.0.0.1:40000".into(),
        request_id: Some("0f1e2d3c".into()),
    }
}

fn bundle(entries: usize) -> Vec<u8> {
    let entry: Vec<Value> = (0..entries)
        .map(|i| {
            let patient = if i % 10 == 0 { "999" } else { "123" };
            json!({"fullUrl": format!("https://fhir/Observation/{i}"), "search": {"mode": "match"},
                   "resource": {"resourceType": "Observation", "id": format!("{i}"), "status": "final",
                                "subject": {"reference": format!("Patient/{patient}")},
                                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                                "valueQuantity": {"value": 70 + i, "unit": "/min"}}})
        })
        .collect();
    serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "searchset",
                               "total": entries, "entry": entry}))
    .unwrap()
}

fn stages(c: &mut Criterion) {
    let f = fixture();
    let provider = &f.config.providers[0];
    let keyset = keys(&f.config);
    let names = ClaimNames::default();
    let header = format!("Bearer {}", f.rs256);

    c.bench_function("extract_bearer", |b| {
        b.iter(|| extract_bearer(black_box(&[header.as_str()])))
    });
    for (name, token) in [
        ("verify_jwt RS256 (cold)", &f.rs256),
        ("verify_jwt PS256 (cold)", &f.ps256),
        ("verify_jwt ES256 (cold)", &f.es256),
    ] {
        assert!(verify_jwt(token, &provider.policy, &keyset, &names, NOW).is_ok());
        c.bench_function(name, |b| {
            b.iter(|| verify_jwt(black_box(token), &provider.policy, &keyset, &names, NOW))
        });
    }

    let verified = Rc::new(verify_jwt(&f.rs256, &provider.policy, &keyset, &names, NOW).unwrap());
    let mut cache = TokenCache::new(10_000);
    let key = token_hash(&f.rs256);
    cache.insert(key, verified.clone(), verified.expires_at(), NOW);
    c.bench_function("token cache hit (hash + get)", |b| {
        b.iter(|| cache.get(&token_hash(black_box(&f.rs256)), NOW).is_some())
    });

    let req = request();
    c.bench_function("fhir::parse_request", |b| {
        b.iter(|| parse_request("GET", black_box(&req.path), "/fhir", None, None))
    });
    let fhir = parse_request("GET", &req.path, "/fhir", None, None).unwrap();
    let scopes = ScopeSet::parse(verified.scopes());
    assert!(authorize(&scopes, &fhir, verified.patient()).is_ok());
    c.bench_function("smart::authorize", |b| {
        b.iter(|| authorize(&scopes, black_box(&fhir), verified.patient()))
    });

    let input = RuleInput {
        request: request_value(&req),
        source: json!({"address": req.source_address}),
        token: verified.to_cel_value(),
        token_cel: None,
        fhir: fhir.to_cel_value(),
    };
    assert_eq!(f.config.rules.len(), 3);
    assert!(f.config.rules.evaluate(&input).is_allow());
    c.bench_function("RuleSet::evaluate (3 rules)", |b| {
        b.iter(|| f.config.rules.evaluate(black_box(&input)))
    });

    let decision = decide(&f.config, &verified, &req, None);
    assert!(decision.denial.is_none(), "{:?}", decision.denial);
    c.bench_function("decision::decide (full)", |b| {
        b.iter(|| decide(&f.config, &verified, black_box(&req), None))
    });

    c.bench_function("audit record to_log_line", |b| {
        b.iter(|| AuditRecord::new(1, black_box(&req), Some(&verified), &decision, 0).to_log_line())
    });

    let body = bundle(100);
    let check = ResponseCheck::for_scopes("patient/*.rs", Some("123"));
    c.bench_function("tape::parse (100-entry Bundle)", |b| {
        b.iter(|| fhirgate::tape::Tape::parse(black_box(&body)).map(|t| t.root().kind()))
    });
    c.bench_function(
        "serde_json::from_slice (100-entry Bundle, for comparison)",
        |b| b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).map(|v| v.is_object())),
    );
    c.bench_function("response::check_response (100-entry Bundle)", |b| {
        b.iter(|| check_response(black_box(&body), &check))
    });
    // what a patient-context search pays by default: compartment and consent labels
    let consent = ConsentPolicy::default();
    let policy = ResponsePolicy {
        check: &check,
        consent: Some((&consent, 0)),
        rules: None,
        mode: LabelMode::Read,
    };
    c.bench_function(
        "response::filter_response (100-entry Bundle, compartment + labels)",
        |b| b.iter(|| filter_response(black_box(&body), &policy)),
    );
}

criterion_group!(benches, stages);
criterion_main!(benches);

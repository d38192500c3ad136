//! Unit tests of the request decision that `cargo mutants` showed the rest of the suite missed
//! (tests/mutants/REPORT.md): which requests buffer their body, and the status of each FHIR
//! request error.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::outcome::DenyKind;
use crate::token::TokenKind;

#[test]
fn only_forms_bundles_and_writes_buffer_their_body() {
    for (method, path, want) in [
        ("GET", "/fhir/Patient/1", false),
        ("GET", "/fhir/Observation?patient=1", false),
        ("DELETE", "/fhir/Patient/1", false),
        ("HEAD", "/fhir/metadata", false),
        ("POST", "/fhir/Observation/_search", true),
        ("POST", "/fhir", true),
        ("POST", "/fhir/Observation", true),
        ("PUT", "/fhir/Observation/1", true),
        ("PATCH", "/fhir/Observation/1", true),
    ] {
        assert_eq!(wants_body(method, path, "/fhir"), want, "{method} {path}");
    }
}

fn decide_path(method: &str, path: &str, body: Option<&[u8]>) -> Decision {
    let cfg = Config::from_json(
        json!({"providers": [{"name": "main", "issuer": "https://idp.example.org",
            "audiences": ["https://fhir.example.org/fhir"],
            "jwks": {"inline": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}}]})
        .to_string()
        .as_bytes(),
    );
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let Value::Object(claims) =
        json!({"iss": "https://idp.example.org", "sub": "u", "scope": "system/*.cruds"})
    else {
        unreachable!()
    };
    let token = VerifiedToken::for_policy_test(TokenKind::Jwt, claims, &cfg.claim_names);
    let req = RequestInfo {
        method: method.into(),
        path: path.into(),
        host: "fhir.example.org".into(),
        ..RequestInfo::default()
    };
    decide(&cfg, &token, &req, body)
}

#[test]
fn fhir_request_errors_keep_their_status() {
    let kind = |d: Decision| d.denial.map(|x| x.kind);
    assert_eq!(
        kind(decide_path("GET", "/admin", None)),
        Some(DenyKind::NotFound)
    );
    assert_eq!(
        kind(decide_path("GET", "/fhir/patient/1", None)),
        Some(DenyKind::BadRequest)
    );
    let entries: Vec<Value> = (0..1001)
        .map(|i| json!({"request": {"method": "GET", "url": format!("Patient/{i}")}}))
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": entries}).to_string();
    assert_eq!(
        kind(decide_path("POST", "/fhir", Some(bundle.as_bytes()))),
        Some(DenyKind::TooLarge)
    );
    assert_eq!(decide_path("GET", "/fhir/Patient/1", None).denial, None);
}

// ---- the decision through `decide` and `decide_on_headers` (the harness drives the same through
// the whole filter; these pin it in the core, where `cargo mutants` runs)

/// A configuration: the test provider plus `extra`'s top-level keys.
fn config_with(extra: Value) -> Config {
    let mut cfg = json!({"providers": [{"name": "main", "issuer": "https://idp.example.org",
        "audiences": ["https://fhir.example.org/fhir"],
        "jwks": {"inline": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}}]});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    match Config::from_json(cfg.to_string().as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn token_of(cfg: &Config, claims: Value) -> VerifiedToken {
    let mut all = json!({"iss": "https://idp.example.org", "sub": "u"});
    if let (Some(a), Some(c)) = (all.as_object_mut(), claims.as_object()) {
        a.extend(c.clone());
    }
    let Value::Object(claims) = all else {
        unreachable!()
    };
    VerifiedToken::for_policy_test(TokenKind::Jwt, claims, &cfg.claim_names)
}

fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestInfo {
    RequestInfo {
        method: method.into(),
        path: path.into(),
        host: "fhir.example.org".into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        ..RequestInfo::default()
    }
}

fn reason(d: &Decision) -> Option<&str> {
    d.denial.as_ref().map(|x| x.reason.as_str())
}

#[test]
fn a_write_the_headers_refuse_is_decided_before_its_body_and_nothing_else_is() {
    let cfg = config_with(json!({}));
    let reader = token_of(
        &cfg,
        json!({"scope": "patient/Observation.rs", "patient": "123"}),
    );
    let writer = token_of(
        &cfg,
        json!({"scope": "patient/Observation.cu", "patient": "123"}),
    );
    let create = req("POST", "/fhir/Observation", &[]);
    let d = decide_on_headers(&cfg, &reader, &create, false).expect("refused on its headers");
    assert_eq!(reason(&d), Some("smart.insufficient_scope"));
    // a write the headers allow still waits for its body (its compartment is in the body)
    assert!(decide_on_headers(&cfg, &writer, &create, false).is_none());
    // a batch and a search form are their body: never decided on the headers
    for (method, path) in [("POST", "/fhir"), ("POST", "/fhir/Observation/_search")] {
        let r = req(method, path, &[]);
        assert!(
            decide_on_headers(&cfg, &reader, &r, false).is_none(),
            "{path}"
        );
    }
    // and the body decides the write the headers let through
    let foreign = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"reference": "Patient/456"}})
    .to_string();
    let d = decide(&cfg, &writer, &create, Some(foreign.as_bytes()));
    assert_eq!(reason(&d), Some("smart.write_outside_compartment"));
}

#[test]
fn request_rules_are_evaluated_when_there_are_any() {
    let cfg = config_with(json!({"rules": [
        {"name": "no-deletes", "expression": "request.method != 'DELETE'", "message": "no"},
        {"name": "broken", "match": "request.method == 'PUT'",
         "expression": "int('not a number') == 1", "message": "broken"}]}));
    let t = token_of(&cfg, json!({"scope": "system/*.cruds"}));
    let d = decide(&cfg, &t, &req("DELETE", "/fhir/Observation/1", &[]), None);
    assert_eq!(reason(&d), Some("rule.denied"));
    assert_eq!(d.denial.unwrap().rule.as_deref(), Some("no-deletes"));
    assert_eq!(
        decide(&cfg, &t, &req("GET", "/fhir/Observation/1", &[]), None).denial,
        None
    );
    // a rule that cannot be evaluated denies, and says so
    let body = json!({"resourceType": "Observation", "id": "1", "status": "final",
        "code": {"text": "x"}})
    .to_string();
    let d = decide(
        &cfg,
        &t,
        &req(
            "PUT",
            "/fhir/Observation/1",
            &[("content-type", "application/fhir+json")],
        ),
        Some(body.as_bytes()),
    );
    assert_eq!(reason(&d), Some("rule.error"));
}

#[test]
fn searches_naming_no_patient_are_narrowed_only_when_configured_enforced_and_read() {
    let on = json!({"smart": {"narrowSearches": true}});
    let patient = json!({"scope": "patient/Observation.rs", "patient": "123"});
    let narrowed = |cfg: Value, claims: Value, method: &str, path: &str, body: Option<&str>| {
        let cfg = config_with(cfg);
        let t = token_of(&cfg, claims);
        let r = req(
            method,
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
        );
        decide(&cfg, &t, &r, body.map(str::as_bytes))
    };
    let d = narrowed(
        on.clone(),
        patient.clone(),
        "GET",
        "/fhir/Observation?code=x",
        None,
    );
    assert_eq!(d.denial, None);
    let n = d.narrowed.expect("narrowed");
    assert_eq!(n.path, "/fhir/Observation?code=x&patient=Patient/123");
    assert_eq!(n.prefer, "handling=strict");
    let d = narrowed(
        on.clone(),
        patient.clone(),
        "HEAD",
        "/fhir/Observation",
        None,
    );
    assert!(d.narrowed.is_some(), "HEAD too");
    // on by default; when turned off, refused instead
    let d = narrowed(
        json!({}),
        patient.clone(),
        "GET",
        "/fhir/Observation?code=x",
        None,
    );
    assert!(d.narrowed.is_some(), "the default");
    let d = narrowed(
        json!({"smart": {"narrowSearches": false}}),
        patient.clone(),
        "GET",
        "/fhir/Observation?code=x",
        None,
    );
    assert!(d.narrowed.is_none());
    assert_eq!(reason(&d), Some("smart.patient_compartment"));
    // not without SMART enforcement (nothing to narrow for)
    let d = narrowed(
        json!({"smart": {"narrowSearches": true, "enforce": false}}),
        patient.clone(),
        "GET",
        "/fhir/Observation?code=x",
        None,
    );
    assert!(d.narrowed.is_none());
    assert_eq!(d.denial, None);
    // not a form search (its body is the query: the path cannot carry the narrowing)
    let d = narrowed(
        on.clone(),
        patient.clone(),
        "POST",
        "/fhir/Observation/_search",
        Some("code=x"),
    );
    assert!(d.narrowed.is_none());
    assert_eq!(reason(&d), Some("smart.patient_compartment"));
    // not a search that names its patient, nor a denial of another kind
    let d = narrowed(
        on.clone(),
        patient.clone(),
        "GET",
        "/fhir/Observation?patient=123",
        None,
    );
    assert!(d.narrowed.is_none());
    assert_eq!(d.denial, None);
    let d = narrowed(on.clone(), patient, "GET", "/fhir/Condition?code=x", None);
    assert!(d.narrowed.is_none());
    assert_eq!(reason(&d), Some("smart.insufficient_scope"));
    // not without a patient in the token
    let d = narrowed(
        on,
        json!({"scope": "patient/Observation.rs"}),
        "GET",
        "/fhir/Observation",
        None,
    );
    assert!(d.narrowed.is_none());
    assert!(d.denial.is_some());
}

#[test]
fn the_response_is_checked_exactly_when_something_in_it_could_be_withheld() {
    let no_consent = json!({"consent": {"enforce": false}});
    let system = json!({"scope": "system/*.rs"});
    let check = |cfg: Value, claims: Value, path: &str| {
        let cfg = config_with(cfg);
        let t = token_of(&cfg, claims);
        let d = decide(&cfg, &t, &req("GET", path, &[]), None);
        assert_eq!(d.denial, None, "{path}");
        d.response_check
    };
    // every type readable, no response rule, consent off: nothing to check
    assert!(check(no_consent.clone(), system.clone(), "/fhir/Observation/1").is_none());
    // a patient scope bounds what may come back
    let c = check(
        no_consent.clone(),
        json!({"scope": "patient/Observation.rs", "patient": "123"}),
        "/fhir/Observation/1",
    )
    .expect("checked");
    assert_eq!(c.patient.as_deref(), Some("123"));
    let target = c.target.expect("a read names its target");
    assert_eq!(
        (
            target.resource_type.as_str(),
            target.id.as_str(),
            target.read
        ),
        ("Observation", "1", true)
    );
    // an instance operation names its target too, but its answer need not be it
    let c = check(
        no_consent.clone(),
        json!({"scope": "patient/*.rs", "patient": "123"}),
        "/fhir/Patient/123/$everything",
    )
    .expect("checked");
    let target = c.target.expect("the operation's instance");
    assert_eq!((target.id.as_str(), target.read), ("123", false));
    // a search has no target
    let c = check(
        no_consent.clone(),
        json!({"scope": "patient/Observation.rs", "patient": "123"}),
        "/fhir/Observation?patient=123",
    )
    .expect("checked");
    assert!(c.target.is_none());
    // a response rule alone makes the check
    let rules = json!({"consent": {"enforce": false}, "rules": [{"name": "r", "phase": "response",
        "expression": "true"}]});
    let c = check(rules, system.clone(), "/fhir/Observation/1").expect("checked for the rule");
    assert!(c.rules && c.reads_everything());
    // consent alone makes the check, unless the token's consent grants every label
    let c = check(json!({}), system.clone(), "/fhir/Observation/1").expect("checked for labels");
    assert!(!c.rules && c.reads_everything());
    let cfg = config_with(json!({}));
    let all: Vec<String> = cfg
        .consent
        .codes(cfg.consent.all())
        .map(str::to_string)
        .collect();
    assert!(check(
        json!({}),
        json!({"scope": "system/*.rs", "consent": all}),
        "/fhir/Observation/1"
    )
    .is_none());
    // capability statements are never checked
    assert!(check(
        json!({}),
        json!({"scope": "patient/Observation.rs", "patient": "123"}),
        "/fhir/metadata"
    )
    .is_none());
}

#[test]
fn labels_are_checked_for_interactions_that_return_resources_and_consent_that_lacks_a_label() {
    let cfg = config_with(json!({}));
    let none = token_of(&cfg, json!({}));
    let all: Vec<String> = cfg
        .consent
        .codes(cfg.consent.all())
        .map(str::to_string)
        .collect();
    let every = token_of(&cfg, json!({"consent": all}));
    let some = token_of(&cfg, json!({"consent": all[..all.len() - 1].to_vec()}));
    for i in [
        Interaction::Read,
        Interaction::SearchType,
        Interaction::Create,
        Interaction::Update,
    ] {
        assert!(labels_checked(&cfg, &none, i), "{i:?}");
        assert!(
            labels_checked(&cfg, &some, i),
            "{i:?}: one label not granted"
        );
        assert!(
            !labels_checked(&cfg, &every, i),
            "{i:?}: every label granted"
        );
    }
    for i in [Interaction::Delete, Interaction::Capabilities] {
        assert!(!labels_checked(&cfg, &none, i), "{i:?} returns no resource");
    }
    let off = config_with(json!({"consent": {"enforce": false}}));
    assert!(!labels_checked(
        &off,
        &token_of(&off, json!({})),
        Interaction::Read
    ));
}

/// `fhirgate eval --explain` says which answers will be checked, and why.
#[test]
fn the_explanation_says_what_the_response_check_will_look_at() {
    let cfg = config_with(json!({"consent": {"enforce": false},
        "rules": [{"name": "r", "phase": "response", "expression": "true"}]}));
    let trace = |claims: Value| {
        let t = token_of(&cfg, claims);
        decide_explained(&cfg, &t, &req("GET", "/fhir/Observation/1", &[]), None).trace
    };
    let says = |trace: &[String], what: &str| trace.iter().any(|l| l.contains(what));
    let patient = trace(json!({"scope": "patient/Observation.rs", "patient": "123"}));
    assert!(says(
        &patient,
        "every returned resource will be checked against the scopes"
    ));
    assert!(says(&patient, "response rules: will be checked"));
    let system = trace(json!({"scope": "system/*.rs"}));
    assert!(!says(&system, "against the scopes"), "{system:?}");
    assert!(says(&system, "response rules: will be checked"));
}

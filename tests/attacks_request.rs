//! Issue 12, the request side, written as attacks: what would a FHIR server do with what the
//! filter let through? Each test sends what an attacker would, through the real engine on the
//! simulated host in both Envoy modes, and asserts the answer, the reason code and that the
//! upstream never received the request.
//!
//! One strict reading of bodies (duplicate members, ambiguous JSON, a body that names another
//! resource than its URL), one credential (RFC 6750 §3.1), no method overrides, no underscore
//! spellings of owned headers, scopes split on spaces only, a body on GET/DELETE, and query
//! narrowing of patient searches.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use fhirgate::exchange::PROBE_AFTER_MS;
use harness::tokens::{self, Spec, AUDIENCE, ISSUER};
use harness::{EnvoyMode, Harness, Outcome, Req};
use serde_json::{json, Value};

const MODES: [EnvoyMode; 2] = [EnvoyMode::StopIteration, EnvoyMode::StopAll];

fn config_with(smart: Value) -> String {
    json!({
        "fhir": {"basePath": "/fhir", "maxBodyBytes": 8192},
        "providers": [{
            "name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}
        }],
        "smart": smart,
        "forward": {"headers": {"x-fhirgate-patient": "patient", "x-user": "subject"}}
    })
    .to_string()
}

fn config() -> String {
    config_with(json!({}))
}

fn token(h: &Harness, scope: &str) -> String {
    tokens::token(&Spec::new().scope(scope).patient("123"), h.now_s())
}

/// Sends `req` in `mode` and returns the outcome, whether the upstream got the whole request,
/// and the reason code of the audit record.
fn attack(mode: EnvoyMode, scope: &str, req: impl Fn(&str) -> Req) -> (Outcome, bool, String) {
    let mut h = Harness::with_mode(&config(), 1, mode);
    let t = token(&h, scope);
    let id = h.send(0, req(&t));
    if h.outcome(id) == Outcome::Pending {
        // Safe mode, not learned yet: the probe releases the held headers and the body follows.
        h.advance(PROBE_AFTER_MS);
        h.tick();
    }
    let out = h.outcome(id);
    let complete = h.upstream_saw(id).complete;
    let reason = h
        .audit_records()
        .last()
        .and_then(|r| r["reason"].as_str().map(str::to_string))
        .unwrap_or_default();
    (out, complete, reason)
}

/// The attack is refused with `status` and `reason` in both modes, and never completed upstream.
fn refused(scope: &str, status: u16, reason: &str, req: impl Fn(&str) -> Req) {
    for mode in MODES {
        let (out, complete, got) = attack(mode, scope, &req);
        assert_eq!(out.status(), status, "{mode:?}: {}", out.text());
        assert_eq!(got, reason, "{mode:?}");
        assert!(!complete, "{mode:?}: the upstream received the request");
    }
}

fn json_post(path: &str, token: &str, body: &str) -> Req {
    Req::get(path)
        .method("POST")
        .bearer(token)
        .header("content-type", "application/fhir+json")
        .body(body.as_bytes())
}

fn json_put(path: &str, token: &str, body: &str) -> Req {
    json_post(path, token, body).method("PUT")
}

const WRITER: &str = "patient/Observation.cruds patient/Patient.cruds";

// ---------------------------------------------------------------------------------------------
// 1. One strict reading of request bodies.

#[test]
fn a_create_naming_two_patients_with_one_member_is_refused() {
    // serde keeps the last `subject` (Patient/123, allowed); a first-wins server writes 999's.
    let body = r#"{"resourceType":"Observation","status":"final",
        "subject":{"reference":"Patient/999"},"subject":{"reference":"Patient/123"}}"#;
    refused(WRITER, 400, "fhir.duplicate_member", |t| {
        json_post("/fhir/Observation", t, body)
    });
    // Deeper down, too.
    let nested = r#"{"resourceType":"Observation","status":"final",
        "subject":{"reference":"Patient/999","reference":"Patient/123"}}"#;
    refused(WRITER, 400, "fhir.duplicate_member", |t| {
        json_post("/fhir/Observation", t, nested)
    });
}

#[test]
fn a_batch_with_two_types_or_a_twice_named_entry_member_is_refused() {
    // `type` twice: one reading is a batch, the other a transaction.
    let twice_typed = r#"{"resourceType":"Bundle","type":"batch","type":"transaction","entry":[]}"#;
    refused(WRITER, 400, "fhir.duplicate_member", |t| {
        json_post("/fhir", t, twice_typed)
    });
    // An entry whose request names two methods (GET checked, DELETE done).
    let two_methods = r#"{"resourceType":"Bundle","type":"batch","entry":[
        {"request":{"method":"DELETE","method":"GET","url":"Patient/123"}}]}"#;
    refused(WRITER, 400, "fhir.duplicate_member", |t| {
        json_post("/fhir", t, two_methods)
    });
    // A resource deep in an entry naming two subjects.
    let deep = r#"{"resourceType":"Bundle","type":"transaction","entry":[
        {"request":{"method":"POST","url":"Observation"},
         "resource":{"resourceType":"Observation","status":"final",
           "subject":{"reference":"Patient/123"},"subject":{"reference":"Patient/999"}}}]}"#;
    refused(WRITER, 400, "fhir.duplicate_member", |t| {
        json_post("/fhir", t, deep)
    });
}

#[test]
fn ambiguous_json_bodies_are_refused() {
    let cases = [
        // Trailing data: one parser stops after the first value, another reads the second.
        r#"{"resourceType":"Observation","subject":{"reference":"Patient/123"}}{"x":1}"#,
        // A lone surrogate: decoders replace it, drop it or refuse it.
        r#"{"resourceType":"Observation","subject":{"reference":"Patient/123\ud800"}}"#,
        // Not JSON at all, though labelled JSON.
        "resourceType=Observation",
    ];
    for body in cases {
        refused(WRITER, 400, "fhir.invalid_json", |t| {
            json_post("/fhir/Observation", t, body)
        });
    }
}

#[test]
fn an_update_whose_body_names_another_resource_is_refused() {
    // The URL is checked (Patient/123); the server writes the body's id.
    refused(WRITER, 400, "fhir.body_id_mismatch", |t| {
        json_put(
            "/fhir/Patient/123",
            t,
            r#"{"resourceType":"Patient","id":"456"}"#,
        )
    });
    // FHIR: an update without an id is 400 too.
    refused(WRITER, 400, "fhir.body_id_mismatch", |t| {
        json_put("/fhir/Patient/123", t, r#"{"resourceType":"Patient"}"#)
    });
    refused(WRITER, 400, "fhir.body_type_mismatch", |t| {
        json_put(
            "/fhir/Patient/123",
            t,
            r#"{"resourceType":"Observation","id":"123","subject":{"reference":"Patient/123"}}"#,
        )
    });
    refused(WRITER, 400, "fhir.body_type_mismatch", |t| {
        json_post(
            "/fhir/Observation",
            t,
            r#"{"resourceType":"Patient","id":"123"}"#,
        )
    });
    // The same inside a transaction.
    let entry = r#"{"resourceType":"Bundle","type":"transaction","entry":[
        {"request":{"method":"PUT","url":"Patient/123"},
         "resource":{"resourceType":"Patient"}}]}"#;
    refused(WRITER, 400, "fhir.invalid_bundle", |t| {
        json_post("/fhir", t, entry)
    });
}

#[test]
fn the_same_writes_spelt_once_go_upstream_as_they_were_checked() {
    for mode in MODES {
        let mut h = Harness::with_mode(&config(), 1, mode);
        let t = token(&h, WRITER);
        let body = r#"{"resourceType":"Patient","id":"123","active":true}"#;
        let id = h.send(0, json_put("/fhir/Patient/123", &t, body));
        h.advance(PROBE_AFTER_MS);
        h.tick();
        assert!(
            h.upstream_saw(id).complete,
            "{mode:?}: {}",
            h.outcome(id).text()
        );
        let body = r#"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/123"}}"#;
        let id = h.send(0, json_post("/fhir/Observation", &t, body));
        assert!(
            h.upstream_saw(id).complete,
            "{mode:?}: {}",
            h.outcome(id).text()
        );
    }
}

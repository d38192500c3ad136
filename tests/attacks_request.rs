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

// ---------------------------------------------------------------------------------------------
// 2. One credential (RFC 6750 §3.1).

const READER: &str = "patient/Observation.rs patient/Patient.rs";

fn assert_invalid_request(out: &Outcome) {
    let challenge = out.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{}",
        out.text()
    );
}

#[test]
fn a_second_token_in_the_query_is_refused_in_any_spelling() {
    let spellings = [
        "access_token",
        "ACCESS_TOKEN",
        "Access_Token",
        "access%5Ftoken",
        "%61ccess_token",
        "access_token:exact",
        "access_token%20",
    ];
    for name in spellings {
        let path = format!("/fhir/Observation?patient=123&{name}=other-token");
        // Next to the checked header token...
        refused(READER, 400, "request.token_in_query", |t| {
            Req::get(&path).bearer(t)
        });
        // ...and instead of it.
        refused(READER, 400, "request.token_in_query", |_| Req::get(&path));
        let (out, _, _) = attack(EnvoyMode::StopIteration, READER, |_| Req::get(&path));
        assert_invalid_request(&out);
    }
}

#[test]
fn a_second_token_in_a_search_form_or_a_bundle_entry_is_refused() {
    for form in [
        "patient=123&access_token=other-token",
        "patient=123&ACCESS%5FTOKEN=other-token",
    ] {
        refused(READER, 400, "request.token_in_body", |t| {
            Req::get("/fhir/Observation/_search")
                .method("POST")
                .bearer(t)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.as_bytes())
        });
        let (out, _, _) = attack(EnvoyMode::StopIteration, READER, |t| {
            Req::get("/fhir/Observation/_search")
                .method("POST")
                .bearer(t)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.as_bytes())
        });
        assert_invalid_request(&out);
    }
    let bundle = r#"{"resourceType":"Bundle","type":"batch","entry":[
        {"request":{"method":"GET","url":"Observation?patient=123&access_token=other"}}]}"#;
    refused(READER, 400, "request.token_in_body", |t| {
        json_post("/fhir", t, bundle)
    });
}

// ---------------------------------------------------------------------------------------------
// 3. No method overrides, no underscore spellings, spaces only, no body where none belongs.

#[test]
fn method_override_headers_are_refused_in_any_spelling() {
    for name in [
        "X-HTTP-Method-Override",
        "x-http-method",
        "X-Method-Override",
        "x_http_method_override",
        "X_HTTP_METHOD",
    ] {
        refused(READER, 400, "request.method_override", |t| {
            Req::get("/fhir/Patient/123")
                .bearer(t)
                .header(name, "DELETE")
        });
    }
}

#[test]
fn underscore_and_case_spellings_of_owned_and_identity_headers_never_reach_the_upstream() {
    for mode in MODES {
        let mut h = Harness::with_mode(&config(), 1, mode);
        let t = token(&h, READER);
        let out = h.run(
            Req::get("/fhir/Patient/123")
                .bearer(&t)
                .header("x_fhirgate_patient", "999")
                .header("X_FhirGate_Anything", "x")
                .header("x_user", "admin")
                .header("X-User", "admin"),
        );
        let Outcome::Forwarded(headers) = &out else {
            panic!("{mode:?}: {}", out.text());
        };
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        for spoof in ["x_fhirgate_patient", "x_fhirgate_anything", "x_user"] {
            assert!(
                !names.contains(&spoof),
                "{mode:?}: {spoof} forwarded: {names:?}"
            );
        }
        let users: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n == "x-user")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(users, vec!["user-1"], "{mode:?}: only the token's subject");
        assert_eq!(out.header("x-fhirgate-patient").as_deref(), Some("123"));
    }
}

#[test]
fn scopes_are_split_on_spaces_only() {
    for granted in [
        "patient/Observation.rs\tpatient/Condition.rs",
        "patient/Observation.rs\npatient/Condition.rs",
        "patient/Observation.rs,patient/Condition.rs",
    ] {
        let mut h = Harness::new(&config(), 1);
        let t = tokens::token(&Spec::new().scope(granted).patient("123"), h.now_s());
        for path in [
            "/fhir/Condition?patient=123",
            "/fhir/Observation?patient=123",
        ] {
            let out = h.run(Req::get(path).bearer(&t));
            assert_eq!(out.status(), 403, "{granted:?} {path}: {}", out.text());
        }
    }
    // Spaces still separate.
    let mut h = Harness::new(&config(), 1);
    let t = token(&h, "patient/Observation.rs  patient/Condition.rs");
    let out = h.run(Req::get("/fhir/Condition?patient=123").bearer(&t));
    assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
}

#[test]
fn two_content_types_are_refused() {
    let body =
        r#"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/123"}}"#;
    refused(WRITER, 400, "request.duplicate_content_type", |t| {
        json_post("/fhir/Observation", t, body).header("content-type", "application/fhir+xml")
    });
    refused(WRITER, 400, "request.duplicate_content_type", |t| {
        Req::get("/fhir/Observation")
            .method("POST")
            .bearer(t)
            .header("content-type", "application/xml, application/fhir+json")
            .body(body.as_bytes())
    });
}

#[test]
fn a_body_on_get_head_or_delete_is_refused() {
    for method in ["GET", "HEAD", "DELETE"] {
        refused(WRITER, 400, "request.unexpected_body", |t| {
            Req::get("/fhir/Observation/1")
                .method(method)
                .bearer(t)
                .body(br#"{"resourceType":"Bundle","type":"transaction"}"#)
        });
        refused(WRITER, 400, "request.unexpected_body", |t| {
            Req::get("/fhir/Observation/1")
                .method(method)
                .bearer(t)
                .header("transfer-encoding", "chunked")
        });
    }
    // `Content-Length: 0` is no body.
    let mut h = Harness::new(&config(), 1);
    let t = token(&h, WRITER);
    let out = h.run(
        Req::get("/fhir/Observation/1")
            .bearer(&t)
            .header("content-length", "0"),
    );
    assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
}

// ---------------------------------------------------------------------------------------------
// 5. Query narrowing: a patient-scoped search naming no patient is narrowed, not refused.

fn narrowed_path(out: &Outcome) -> Option<String> {
    out.header(":path")
}

#[test]
fn a_search_naming_no_patient_is_narrowed_to_the_launch_patient() {
    let cases = [
        (
            "/fhir/Observation?code=8867-4",
            "/fhir/Observation?code=8867-4&patient=Patient/123",
        ),
        ("/fhir/Observation", "/fhir/Observation?patient=Patient/123"),
        (
            "/fhir/Observation/_search?category=vital-signs",
            "/fhir/Observation/_search?category=vital-signs&patient=Patient/123",
        ),
        (
            "/fhir/Patient?name=smith",
            "/fhir/Patient?name=smith&_id=123",
        ),
        (
            "/fhir/Encounter?date=ge2020",
            "/fhir/Encounter?date=ge2020&patient=Patient/123",
        ),
    ];
    for (path, expected) in cases {
        for mode in MODES {
            let mut h = Harness::with_mode(&config(), 1, mode);
            let t = token(&h, "patient/*.rs");
            let out = h.run(
                Req::get(path)
                    .bearer(&t)
                    .header("prefer", "return=representation, handling=lenient"),
            );
            assert_eq!(
                narrowed_path(&out).as_deref(),
                Some(expected),
                "{path} {mode:?}: {}",
                out.text()
            );
            assert_eq!(
                out.header("prefer").as_deref(),
                Some("return=representation, handling=strict"),
                "{path}"
            );
        }
    }
    // Audited as narrowed (the record is written once the response was checked).
    let mut h = Harness::new(&config(), 1);
    let t = token(&h, "patient/*.rs");
    let id = h.send(0, Req::get("/fhir/Observation?code=8867-4").bearer(&t));
    h.respond(
        0,
        id,
        200,
        r#"{"resourceType":"Bundle","type":"searchset","entry":[]}"#,
    );
    let record = h.audit_records().last().unwrap().clone();
    assert_eq!(record["narrowed"], json!(true), "{record}");
    assert_eq!(record["reason"], json!("allow"));
}

#[test]
fn a_narrowed_search_still_gets_only_the_patients_resources() {
    // A server that ignored the added parameter answers with everyone's observations.
    let mut h = Harness::new(&config(), 1);
    let t = token(&h, "patient/*.rs");
    let id = h.send(0, Req::get("/fhir/Observation?code=8867-4").bearer(&t));
    let obs = |id: &str, patient: &str| {
        json!({"resource": {"resourceType": "Observation", "id": id, "status": "final",
            "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}}})
    };
    let answer = json!({"resourceType": "Bundle", "type": "searchset",
        "entry": [obs("a", "123"), obs("b", "999")]});
    let (status, _, body) = h.respond(0, id, 200, &answer.to_string());
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("Patient/123"), "{body}");
    assert!(!body.contains("Patient/999"), "{body}");
    assert!(
        h.audit_records().last().unwrap()["withheld"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn a_search_that_names_someone_else_is_refused_not_rewritten() {
    for path in [
        "/fhir/Observation?patient=Patient/999",
        "/fhir/Observation?patient=123,999",
        "/fhir/Observation?subject:missing=true",
        "/fhir/Observation?subject.name=smith",
        "/fhir/Observation?_has:Condition:subject:code=x",
        "/fhir/Patient?_id=999",
        "/fhir/Encounter/1/Observation",
    ] {
        refused("patient/*.rs", 403, "smart.patient_compartment", |t| {
            Req::get(path).bearer(t)
        });
    }
    // A search form is not rewritten either.
    refused("patient/*.rs", 403, "smart.patient_compartment", |t| {
        Req::get("/fhir/Observation/_search")
            .method("POST")
            .bearer(t)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"code=8867-4")
    });
}

#[test]
fn narrowing_can_be_turned_off_and_is_validated() {
    let mut h = Harness::new(&config_with(json!({"narrowSearches": false})), 1);
    let t = token(&h, "patient/*.rs");
    let out = h.run(Req::get("/fhir/Observation?code=8867-4").bearer(&t));
    assert_eq!(out.status(), 403, "{}", out.text());
    for bad in [json!("yes"), json!(1), json!(null)] {
        let err = Harness::try_new(&config_with(json!({"narrowSearches": bad})), 1);
        match err {
            Err(e) => assert!(e.to_string().contains("smart.narrowSearches"), "{e}"),
            Ok(_) if bad.is_null() => {}
            Ok(_) => panic!("{bad} accepted"),
        }
    }
}

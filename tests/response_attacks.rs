//! Issue 12, response side, written as attacks: an upstream that answers what it is told, through
//! the real engine on the simulated host (both hold modes where it matters). Every returned
//! resource is checked whatever the request was; unknown shapes, ambiguous JSON and answers that
//! cannot be read fail closed with 502; nothing the upstream sends panics the worker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use harness::tokens::{self, Spec, AUDIENCE, ISSUER};
use harness::{Harness, Outcome, Req};
use serde_json::{json, Value};

const ALL_LABELS: &str = "BH ETH GDIS HIV MST PSY SCA SDV SEX STD SUD TBOO R V";

fn config(extra: Value) -> String {
    let mut c = json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{
            "name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}
        }]
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

fn obs(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final", "code": {"text": "x"},
           "subject": {"reference": format!("Patient/{patient}")}})
}

fn bundle(entries: &[(Value, &str)]) -> String {
    let entry: Vec<Value> = entries
        .iter()
        .map(|(r, mode)| json!({"resource": r, "search": {"mode": mode}}))
        .collect();
    json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry})
        .to_string()
}

fn patient_token(h: &Harness, scope: &str) -> String {
    tokens::token(&Spec::new().scope(scope).patient("123"), h.now_s())
}

fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![
        (":status".to_string(), "200".to_string()),
        (
            "content-type".to_string(),
            "application/fhir+json".to_string(),
        ),
    ];
    h.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    h
}

/// Sends `path`, expects it forwarded, answers 200 with `body`: (status, body bytes).
fn answer(h: &mut Harness, path: &str, tok: &str, body: &str) -> (u16, Vec<u8>) {
    let id = h.send(0, Req::get(path).bearer(tok));
    assert!(matches!(h.outcome(id), Outcome::Forwarded(_)), "{path}");
    let (status, _, body) = h.respond(0, id, 200, body);
    (status, body)
}

fn ids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

fn last_audit(h: &Harness) -> Value {
    let line = h.logs_containing("fhirgate.audit ").pop().unwrap();
    serde_json::from_str(line.trim_start_matches("fhirgate.audit ")).unwrap()
}

fn issue_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["issue"][0]["code"].as_str().unwrap().to_string()
}

#[test]
fn a_search_answered_with_another_patients_entries_loses_them() {
    // The server ignored `patient=123` (lenient handling): the request proves nothing.
    let mut h = Harness::new(&config(json!({})), 1);
    let t = patient_token(&h, "patient/Observation.rs");
    let body = bundle(&[
        (obs("mine", "123"), "match"),
        (obs("theirs", "456"), "match"),
    ]);
    let (status, out) = answer(&mut h, "/fhir/Observation?patient=123", &t, &body);
    assert_eq!(status, 200);
    assert_eq!(ids(&out), ["mine"]);
    assert!(!String::from_utf8_lossy(&out).contains("Patient/456"));
    assert_eq!(last_audit(&h)["withheldBy"], json!({"compartment": 1}));
}

#[test]
fn included_resources_need_a_scope_for_their_type_for_every_token() {
    let mut h = Harness::new(&config(json!({})), 1);
    let t = patient_token(&h, "patient/Observation.rs");
    let body = bundle(&[
        (obs("o", "123"), "match"),
        (json!({"resourceType": "Patient", "id": "123"}), "include"),
        (
            json!({"resourceType": "Practitioner", "id": "dr"}),
            "include",
        ),
    ]);
    for path in [
        "/fhir/Observation?patient=123&_include=Observation:subject",
        "/fhir/Observation?patient=123&_include=*",
        "/fhir/Observation?patient=123&_revinclude=*",
    ] {
        let (_, out) = answer(&mut h, path, &t, &body);
        assert_eq!(ids(&out), ["o"], "{path}");
        assert_eq!(last_audit(&h)["withheldBy"], json!({"scope": 2}));
    }
    // A system/ token that reads one type only: the same.
    let sys = tokens::token(
        &Spec::new()
            .scope("system/Observation.rs")
            .claim("consent", json!(ALL_LABELS)),
        h.now_s(),
    );
    let body = bundle(&[
        (obs("o", "999"), "match"),
        (
            json!({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/999"}}),
            "include",
        ),
    ]);
    let (_, out) = answer(&mut h, "/fhir/Observation?_revinclude=*", &sys, &body);
    assert_eq!(ids(&out), ["o"]);
}

#[test]
fn a_read_answered_with_another_resource_is_refused() {
    let mut h = Harness::new(&config(json!({})), 1);
    let other = json!({"resourceType": "Patient", "id": "456"}).to_string();
    let t = patient_token(&h, "patient/Patient.rs");
    let (status, out) = answer(&mut h, "/fhir/Patient/123", &t, &other);
    assert_eq!(status, 403);
    assert_eq!(issue_code(&out), "forbidden");
    // a user/ token with a type scope (bounded: the response is checked) too
    let u = tokens::token(&Spec::new().scope("user/Patient.rs"), h.now_s());
    let (status, _) = answer(&mut h, "/fhir/Patient/123", &u, &other);
    assert_eq!(status, 403);
    assert_eq!(last_audit(&h)["withheldBy"], json!({"identity": 1}));
    let same = json!({"resourceType": "Patient", "id": "123"}).to_string();
    let (status, out) = answer(&mut h, "/fhir/Patient/123", &t, &same);
    assert_eq!(status, 200);
    assert_eq!(out, same.as_bytes());
}

#[test]
fn everything_and_operation_outputs_are_checked() {
    let mut h = Harness::new(&config(json!({})), 1);
    let t = patient_token(&h, "patient/*.rs");
    let body = bundle(&[
        (json!({"resourceType": "Patient", "id": "123"}), "match"),
        (obs("o", "123"), "match"),
        (obs("x", "456"), "match"),
        (json!({"resourceType": "Patient", "id": "456"}), "match"),
    ]);
    let (_, out) = answer(&mut h, "/fhir/Patient/123/$everything", &t, &body);
    assert_eq!(ids(&out), ["123", "o"]);
    // `$meta` of a member instance: the answer cannot show whose it is.
    let meta = json!({"resourceType": "Parameters", "parameter": [{"name": "return",
        "valueMeta": {"versionId": "1"}}]})
    .to_string();
    let (status, _) = answer(&mut h, "/fhir/Observation/o/$meta", &t, &meta);
    assert_eq!(status, 403);
    // a Parameters answer carrying another patient's resource
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": obs("x", "456")}]})
    .to_string();
    let (status, _) = answer(&mut h, "/fhir/Patient/123/$everything", &t, &params);
    assert_eq!(status, 403);
    // contained resources of another patient withhold their container
    let mut o = obs("c", "123");
    o["contained"] = json!([{"resourceType": "Patient", "id": "456"}]);
    let (_, out) = answer(
        &mut h,
        "/fhir/Observation?patient=123",
        &t,
        &bundle(&[(o, "match")]),
    );
    assert!(ids(&out).is_empty());
}

#[test]
fn unknown_shapes_and_ambiguous_json_fail_closed() {
    let mut h = Harness::new(&config(json!({})), 1);
    let t = patient_token(&h, "patient/*.rs");
    let cases: Vec<(String, &str)> = vec![
        (json!({"resourceType": "Bundle", "type": "searchset", "entry": {"resource": obs("x", "456")}}).to_string(), "response.malformed"),
        (json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"id": "x"}}]}).to_string(), "response.malformed"),
        (json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource":
            {"resourceType": "Observation", "id": "x", "subject": "Patient/123"}}]}).to_string(), "response.malformed"),
        (r#"{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"x","subject":{"reference":"Patient/123"},"subject":{"reference":"Patient/456"}}}]}"#.to_string(), "response.ambiguous_json"),
        (r#"{"resourceType":"Bundle","resourceType":"Patient","id":"123"}"#.to_string(), "response.ambiguous_json"),
    ];
    for (body, reason) in cases {
        let (status, out) = answer(&mut h, "/fhir/Observation?patient=123", &t, &body);
        assert_eq!(status, 502, "{body}");
        assert_eq!(issue_code(&out), "exception");
        assert_eq!(last_audit(&h)["reason"], reason, "{body}");
        assert!(!String::from_utf8_lossy(&out).contains("456"));
    }
}

#[test]
fn a_response_with_nothing_to_withhold_is_forwarded_byte_for_byte() {
    let mut h = Harness::new(&config(json!({})), 1);
    let t = patient_token(&h, "patient/*.rs");
    let body = "{\"resourceType\" : \"Bundle\", \"type\":\"searchset\" ,\"total\": 1,\n \"entry\": [ {\"resource\": {\"resourceType\":\"Observation\",\"id\":\"o\",\"valueQuantity\":{\"value\":1.50E+0},\"note\":[{\"text\":\"caf\\u00e9\"}],\"subject\":{\"reference\":\"Patient/123\"}}} ] }";
    h.reset_hostcalls();
    let (status, out) = answer(&mut h, "/fhir/Observation?patient=123", &t, body);
    assert_eq!(status, 200);
    assert_eq!(out, body.as_bytes(), "exactly as it came");
    assert_eq!(
        h.hostcalls().get("set_response_body"),
        None,
        "never rewritten"
    );
}

#[test]
fn only_a_token_reading_everything_with_every_label_skips_buffering() {
    let mut h = Harness::new(&config(json!({})), 1);
    let wide = tokens::token(
        &Spec::new()
            .scope("system/*.rs")
            .claim("consent", json!(ALL_LABELS)),
        h.now_s(),
    );
    let id = h.send(0, Req::get("/fhir/Observation?code=x").bearer(&wide));
    assert!(matches!(h.outcome(id), Outcome::Forwarded(_)));
    assert_eq!(
        last_audit(&h)["withheld"],
        0,
        "audited at the request: not buffered"
    );
    // a compressed answer is not the filter's to read then: it streams through
    let view = h.respond_with(
        0,
        id,
        headers(&[("content-encoding", "gzip")]),
        b"\x1f\x8b\x08\x00",
    );
    assert_eq!(view.status, 200);
    // every narrower token is buffered: system/Observation.rs with every label ...
    let narrow = tokens::token(
        &Spec::new()
            .scope("system/Observation.rs")
            .claim("consent", json!(ALL_LABELS)),
        h.now_s(),
    );
    let id = h.send(0, Req::get("/fhir/Observation?code=x").bearer(&narrow));
    let view = h.respond_with(
        0,
        id,
        headers(&[("content-encoding", "gzip")]),
        b"\x1f\x8b\x08\x00",
    );
    assert_eq!(view.status, 502);
    // ... and system/*.rs without consent
    let labels = tokens::token(&Spec::new().scope("system/*.rs"), h.now_s());
    let id = h.send(0, Req::get("/fhir/Observation?code=x").bearer(&labels));
    let view = h.respond_with(
        0,
        id,
        headers(&[("content-encoding", "gzip")]),
        b"\x1f\x8b\x08\x00",
    );
    assert_eq!(view.status, 502);
}

/// A normal exchange on worker 0 still works.
fn still_serving(h: &mut Harness, t: &str) {
    let (status, _) = answer(h, "/fhir/Observation/ok", t, &obs("ok", "123").to_string());
    assert_eq!(status, 200, "the worker keeps serving");
}

#[test]
fn upstream_answers_that_cannot_be_read_are_502_and_the_worker_serves_on() {
    let mut h = Harness::new(
        &config(json!({"fhir": {"basePath": "/fhir", "maxResponseBytes": 1024}})),
        1,
    );
    let t = patient_token(&h, "patient/*.rs");
    let good = obs("ok", "123").to_string();
    // compressed (any content-encoding but identity)
    for enc in ["gzip", "br", "deflate", "zstd", "gzip, identity"] {
        let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
        let view = h.respond_with(
            0,
            id,
            headers(&[("content-encoding", enc)]),
            b"\x1f\x8b\x08\x00\x00",
        );
        assert_eq!(view.status, 502, "{enc}");
        assert_eq!(issue_code(&view.body), "exception");
        assert_eq!(last_audit(&h)["reason"], "response.encoded");
        still_serving(&mut h, &t);
    }
    // truncated: the body ends mid-JSON
    let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
    let view = h.respond_with(0, id, headers(&[]), &good.as_bytes()[..good.len() / 2]);
    assert_eq!(view.status, 502);
    assert_eq!(last_audit(&h)["reason"], "response.not_fhir_json");
    still_serving(&mut h, &t);
    // truncated: the upstream stops sending and the stream ends (reset) before the body does
    let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
    let view = h.respond_chunked(0, id, headers(&[]), &[&good.as_bytes()[..10]], false);
    assert_eq!(
        view.status, 0,
        "nothing delivered while the body is incomplete"
    );
    h.done(0, id);
    still_serving(&mut h, &t);
    // chunked: a body in many pieces is checked as a whole
    let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
    let pieces: Vec<&[u8]> = good.as_bytes().chunks(7).collect();
    let view = h.respond_chunked(
        0,
        id,
        headers(&[("transfer-encoding", "chunked")]),
        &pieces,
        true,
    );
    assert_eq!(view.status, 200);
    assert_eq!(view.body, good.as_bytes());
    let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
    let theirs = obs("ok", "456").to_string();
    let pieces: Vec<&[u8]> = theirs.as_bytes().chunks(5).collect();
    let view = h.respond_chunked(0, id, headers(&[]), &pieces, true);
    assert_eq!(view.status, 403);
    still_serving(&mut h, &t);
    // oversized: past fhir.maxResponseBytes, in one piece or growing chunk by chunk
    let big =
        json!({"resourceType": "Observation", "id": "ok", "subject": {"reference": "Patient/123"},
        "note": [{"text": "x".repeat(2000)}]})
        .to_string();
    let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
    let (status, _, body) = h.respond(0, id, 200, &big);
    assert_eq!(status, 502);
    assert_eq!(issue_code(&body), "exception");
    assert_eq!(last_audit(&h)["reason"], "response.too_large");
    let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
    let pieces: Vec<&[u8]> = big.as_bytes().chunks(300).collect();
    let view = h.respond_chunked(0, id, headers(&[]), &pieces, true);
    assert_eq!(view.status, 502);
    still_serving(&mut h, &t);
    // not JSON at all, whatever it says it is
    for (ctype, body) in [
        ("text/html", "<html><body>Bad gateway</body></html>"),
        (
            "application/fhir+json",
            "\u{feff}{\"resourceType\":\"Observation\"}",
        ),
        ("application/fhir+json", "null"),
        ("application/fhir+json", "\"Observation\""),
        (
            "application/fhir+xml",
            "<Observation xmlns=\"http://hl7.org/fhir\"/>",
        ),
    ] {
        let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
        let view = h.respond_with(
            0,
            id,
            vec![
                (":status".into(), "200".into()),
                ("content-type".into(), ctype.into()),
            ],
            body.as_bytes(),
        );
        assert_eq!(view.status, 502, "{body}");
        assert_eq!(last_audit(&h)["reason"], "response.not_fhir_json", "{body}");
        still_serving(&mut h, &t);
    }
    // invalid UTF-8
    let id = h.send(0, Req::get("/fhir/Observation/ok").bearer(&t));
    let view = h.respond_with(
        0,
        id,
        headers(&[]),
        b"{\"resourceType\":\"Observation\",\"id\":\"\xff\"}",
    );
    assert_eq!(view.status, 502);
    still_serving(&mut h, &t);
}

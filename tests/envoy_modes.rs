//! The two Envoy modes (README, Envoy modes) through the real engine on a simulated Envoy: with
//! `allow_on_headers_stop_iteration` (full mode) a request denied on its body never reaches the
//! upstream and a refused response gets its status; without it (safe mode) nothing hangs, the
//! filter learns the mode, a denied body request is never completed upstream, and a refused
//! response is cut off, never delivered.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use fhirgate::exchange::{HoldMode, PROBE_AFTER_MS};
use fhirgate::host::LogLevel;
use harness::tokens::{self, Spec, AUDIENCE, ISSUER};
use harness::{EnvoyMode, Harness, Outcome, Req, UpstreamSaw};
use serde_json::{json, Value};

fn config() -> String {
    json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{
            "name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}
        }],
        "forward": {"headers": {"x-fhirgate-patient": "patient"}}
    })
    .to_string()
}

fn writer(h: &Harness) -> String {
    tokens::token(
        &Spec::new()
            .scope("patient/Observation.cu patient/Observation.rs")
            .patient("123"),
        h.now_s(),
    )
}

fn observation(patient: &str) -> Vec<u8> {
    // id 1: the tests read `Observation/1`, and a read must be answered with what was read.
    json!({"resourceType": "Observation", "id": "1", "status": "final", "code": {"text": "x"},
           "subject": {"reference": format!("Patient/{patient}")}})
    .to_string()
    .into_bytes()
}

fn create(token: &str, patient: &str) -> Req {
    Req::get("/fhir/Observation")
        .method("POST")
        .header("content-type", "application/fhir+json")
        .bearer(token)
        .body(&observation(patient))
}

/// Moves the clock past the probe and runs every worker's tick.
fn probe(h: &mut Harness) {
    h.advance(PROBE_AFTER_MS);
    h.tick();
}

fn critical_logs(h: &Harness) -> Vec<String> {
    h.sim
        .logs
        .borrow()
        .iter()
        .filter(|(l, _)| *l == LogLevel::Critical)
        .map(|(_, m)| m.clone())
        .collect()
}

#[test]
fn full_mode_sends_nothing_upstream_for_a_write_denied_on_its_body() {
    let mut h = Harness::with_mode(&config(), 1, EnvoyMode::StopIteration);
    let t = writer(&h);
    let denied = h.send(0, create(&t, "456"));
    assert_eq!(h.outcome(denied).status(), 403);
    assert_eq!(
        h.upstream_saw(denied),
        UpstreamSaw::default(),
        "not even the headers"
    );
    let allowed = h.send(0, create(&t, "123"));
    assert!(matches!(h.outcome(allowed), Outcome::Forwarded(_)));
    let saw = h.upstream_saw(allowed);
    assert!(saw.headers && saw.complete && !saw.reset);
    assert_eq!(h.workers[0].hold_mode(), HoldMode::Full);
    assert!(critical_logs(&h).is_empty());
}

#[test]
fn full_mode_refuses_a_foreign_resource_with_a_status() {
    let mut h = Harness::with_mode(&config(), 1, EnvoyMode::StopIteration);
    let t = writer(&h);
    let id = h.send(0, Req::get("/fhir/Observation/1").bearer(&t));
    assert!(matches!(h.outcome(id), Outcome::Forwarded(_)));
    let (status, headers, body) = h.respond(
        0,
        id,
        200,
        std::str::from_utf8(&observation("456")).unwrap(),
    );
    assert_eq!(status, 403);
    assert!(!String::from_utf8_lossy(&body).contains("Patient/456"));
    assert!(headers
        .iter()
        .any(|(n, v)| n == "cache-control" && v == "no-store"));
}

#[test]
fn safe_mode_is_learned_once_and_a_denied_write_never_completes_upstream() {
    let mut h = Harness::with_mode(&config(), 1, EnvoyMode::StopAll);
    let t = writer(&h);
    let first = h.send(0, create(&t, "456"));
    assert_eq!(
        h.outcome(first),
        Outcome::Pending,
        "held: the mode is not known yet"
    );
    assert_eq!(h.upstream_saw(first), UpstreamSaw::default());
    probe(&mut h);
    // Released by the probe; Envoy had the body: it arrives at once, the mode is learned, and
    // the decision denies: the upstream saw the headers, never the request completed.
    assert_eq!(h.outcome(first).status(), 403);
    let saw = h.upstream_saw(first);
    assert!(saw.headers && saw.reset && !saw.complete, "{saw:?}");
    assert_eq!(h.workers[0].hold_mode(), HoldMode::Safe);
    let logs = critical_logs(&h);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].contains("allow_on_headers_stop_iteration"));
    // From now on no request waits for the probe.
    let denied = h.send(0, create(&t, "456"));
    assert_eq!(h.outcome(denied).status(), 403);
    let saw = h.upstream_saw(denied);
    assert!(saw.headers && saw.reset && !saw.complete);
    let allowed = h.send(0, create(&t, "123"));
    assert!(matches!(h.outcome(allowed), Outcome::Forwarded(_)));
    assert!(h.upstream_saw(allowed).complete);
    assert_eq!(critical_logs(&h).len(), 1, "said once");
}

#[test]
fn safe_mode_decided_on_headers_still_holds_everything_until_the_decision() {
    let mut h = Harness::with_mode(&config(), 1, EnvoyMode::StopAll);
    let t = writer(&h);
    // A read is decided on its headers: nothing reaches the upstream when it is denied.
    let denied = h.send(0, Req::get("/fhir/Condition?patient=123").bearer(&t));
    assert_eq!(h.outcome(denied).status(), 403);
    assert_eq!(h.upstream_saw(denied), UpstreamSaw::default());
    let none = h.send(0, Req::get("/fhir/Observation?patient=123"));
    assert_eq!(h.outcome(none).status(), 401);
    assert_eq!(h.upstream_saw(none), UpstreamSaw::default());
}

#[test]
fn safe_mode_cuts_off_a_refused_response_and_rewrites_bundles() {
    let mut h = Harness::with_mode(&config(), 1, EnvoyMode::StopAll);
    let t = writer(&h);
    let read = h.send(0, Req::get("/fhir/Observation/1").bearer(&t));
    assert!(matches!(h.outcome(read), Outcome::Forwarded(_)));
    let headers = vec![
        (":status".to_string(), "200".to_string()),
        (
            "content-type".to_string(),
            "application/fhir+json".to_string(),
        ),
    ];
    let view = h.respond_with(0, read, headers.clone(), &observation("456"));
    assert_eq!(view.status, 0, "held: nothing sent yet");
    probe(&mut h);
    let view = h.release_response(0, read);
    assert!(view.reset, "cut off, never delivered");
    assert!(view.body.is_empty());
    assert_eq!(h.workers[0].hold_mode(), HoldMode::Safe);
    // Known safe mode: the headers go at once; the patient's own resource passes, and a Bundle
    // loses a labelled entry.
    let read = h.send(0, Req::get("/fhir/Observation/1").bearer(&t));
    let view = h.respond_with(0, read, headers.clone(), &observation("123"));
    assert!(!view.reset);
    assert_eq!(view.status, 200);
    assert!(String::from_utf8_lossy(&view.body).contains("Patient/123"));
    let search = h.send(0, Req::get("/fhir/Observation?patient=123").bearer(&t));
    let mut labelled: Value = serde_json::from_slice(&observation("123")).unwrap();
    labelled["meta"] = json!({"security": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]});
    let bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": serde_json::from_slice::<Value>(&observation("123")).unwrap()},
        {"resource": labelled}]});
    let view = h.respond_with(0, search, headers, bundle.to_string().as_bytes());
    assert!(!view.reset);
    let got: Value = serde_json::from_slice(&view.body).unwrap();
    assert_eq!(
        got["entry"].as_array().unwrap().len(),
        2,
        "one kept, one outcome"
    );
    assert!(!view.body.windows(3).any(|w| w == b"PSY"));
}

#[test]
fn workers_share_the_learned_mode() {
    let mut h = Harness::with_mode(&config(), 2, EnvoyMode::StopAll);
    let t = writer(&h);
    let first = h.send(0, create(&t, "123"));
    probe(&mut h);
    assert!(matches!(h.outcome(first), Outcome::Forwarded(_)));
    h.tick();
    assert_eq!(h.workers[1].hold_mode(), HoldMode::Safe);
    assert_eq!(critical_logs(&h).len(), 1, "said once for the proxy");
    // Worker 1 never waits for a probe.
    let second = h.send(1, create(&t, "123"));
    assert!(matches!(h.outcome(second), Outcome::Forwarded(_)));
}

#[test]
fn no_request_waits_longer_than_the_probe_and_one_tick() {
    let mut h = Harness::with_mode(&config(), 1, EnvoyMode::StopAll);
    let t = writer(&h);
    let ids: Vec<_> = (0..5).map(|_| h.send(0, create(&t, "123"))).collect();
    for id in &ids {
        assert_eq!(h.outcome(*id), Outcome::Pending);
    }
    h.advance(PROBE_AFTER_MS);
    h.tick();
    for id in &ids {
        assert!(
            matches!(h.outcome(*id), Outcome::Forwarded(_)),
            "{}",
            h.outcome(*id).text()
        );
    }
    assert_eq!(h.workers[0].streams_in_flight(), 0);
}

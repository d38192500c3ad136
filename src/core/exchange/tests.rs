//! The state machine driven by hand: events in, effects and verdicts out, no host.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::rc::Rc;

use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::token::{TokenKind, VerifiedToken};

const T0: u64 = 1_790_000_000_000;

fn config(extra: Value) -> Rc<Config> {
    let mut cfg = json!({
        "fhir": {"basePath": "/fhir"},
        "providers": [{
            "name": "t", "issuer": "https://idp.example.org",
            "audiences": ["https://fhir.example.org/fhir"],
            "jwks": {"inline": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}
        }],
        "forward": {"headers": {"x-fhirgate-subject": "subject"}}
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    Rc::new(Config::from_json(cfg.to_string().as_bytes()).unwrap())
}

fn token(scope: &str, patient: Option<&str>) -> Rc<VerifiedToken> {
    let cfg = config(json!({}));
    let mut claims = json!({"iss": "https://idp.example.org", "sub": "alice", "scope": scope});
    if let Some(p) = patient {
        claims["patient"] = json!(p);
    }
    let Value::Object(map) = claims else {
        unreachable!()
    };
    Rc::new(VerifiedToken::for_policy_test(
        TokenKind::Jwt,
        map,
        &cfg.claim_names,
    ))
}

fn headers(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
        (":authority".to_string(), "fhir.example.org".to_string()),
    ];
    h.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    h
}

fn request(ex: &mut Exchange, h: Vec<(String, String)>, eos: bool) -> (Verdict, Vec<Effect>) {
    let mut out = Vec::new();
    let v = ex.handle(
        Event::RequestHeaders {
            headers: h,
            end_of_stream: eos,
            connection: Connection {
                source: "10.0.0.1:5000".into(),
            },
        },
        T0,
        &mut out,
    );
    (v, out)
}

fn feed(ex: &mut Exchange, event: Event, now: u64) -> (Verdict, Vec<Effect>) {
    let mut out = Vec::new();
    let authenticated = matches!(event, Event::Authenticated(Ok(_)));
    let mut v = ex.handle(event, now, &mut out);
    // The sender check follows every verified token; answered here as the engine would for an
    // unbound bearer token (tests/sender_constraint.rs covers bound ones).
    if authenticated {
        assert!(
            out.iter().any(|e| matches!(e, Effect::CheckSender(..))),
            "a verified token is always checked for its binding"
        );
        out.retain(|e| !matches!(e, Effect::CheckSender(..)));
        v = ex.handle(Event::SenderChecked(Ok(())), now, &mut out);
    }
    (v, out)
}

fn audits(out: &[Effect]) -> Vec<&AuditRecord> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Audit(r, _, _) => Some(&**r),
            _ => None,
        })
        .collect()
}

fn reply(out: &[Effect]) -> Option<&LocalReply> {
    out.iter().find_map(|e| match e {
        Effect::Reply(r) => Some(r),
        _ => None,
    })
}

fn set_headers(out: &[Effect]) -> Vec<(&str, &str)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::SetRequestHeader(n, v) => Some((n.as_str(), v.as_str())),
            _ => None,
        })
        .collect()
}

fn removed(out: &[Effect]) -> Vec<&str> {
    out.iter()
        .filter_map(|e| match e {
            Effect::RemoveRequestHeader(n) => Some(n.as_str()),
            _ => None,
        })
        .collect()
}

fn has(out: &[Effect], f: impl Fn(&Effect) -> bool) -> bool {
    out.iter().any(f)
}

const BEARER: (&str, &str) = ("authorization", "Bearer abc.def.ghi");

#[test]
fn a_read_asks_for_authentication_and_holds_then_goes_on_with_identity_headers() {
    let cfg = config(json!({"consent": {"enforce": false}}));
    let mut ex = Exchange::new(cfg, HoldMode::Full);
    let (v, out) = request(
        &mut ex,
        headers("GET", "/fhir/Patient/123", &[BEARER]),
        true,
    );
    assert_eq!(v, Verdict::Pause);
    assert!(has(
        &out,
        |e| matches!(e, Effect::Authenticate(c) if c.token == "abc.def.ghi")
    ));
    assert!(audits(&out).is_empty(), "nothing decided yet");
    let (v, out) = feed(
        &mut ex,
        Event::Authenticated(Ok(token("system/*.rs", None))),
        T0 + 1,
    );
    assert_eq!(v, Verdict::Continue);
    assert_eq!(set_headers(&out), [("x-fhirgate-subject", "alice")]);
    let records = audits(&out);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].reason, "allow");
    assert!(ex.is_done());
}

#[test]
fn spoofed_owned_and_configured_headers_are_removed_before_anything_else() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    let h = headers(
        "GET",
        "/fhir/Patient/123",
        &[
            ("x-fhirgate-patient", "Patient/9"),
            ("x-fhirgate-patient", "Patient/8"),
            ("x-fhirgate-subject", "mallory"),
        ],
    );
    let (_, out) = request(&mut ex, h, true);
    assert_eq!(removed(&out), ["x-fhirgate-patient", "x-fhirgate-subject"]);
    assert_eq!(reply(&out).map(|r| r.status), Some(401), "no credentials");
}

#[test]
fn public_discovery_passes_without_a_token_and_is_audited() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    let (v, out) = request(&mut ex, headers("GET", "/fhir/metadata", &[]), true);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(audits(&out)[0].reason, "public.discovery");
    assert!(!has(&out, |e| matches!(e, Effect::Authenticate(_))));
    let mut ex = Exchange::new(
        config(json!({"fhir": {"basePath": "/fhir", "publicDiscovery": false}})),
        HoldMode::Full,
    );
    let (v, out) = request(&mut ex, headers("GET", "/fhir/metadata", &[]), true);
    assert_eq!(v, Verdict::Pause);
    assert_eq!(reply(&out).map(|r| r.status), Some(401));
}

#[test]
fn refusals_are_audited_before_the_answer() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    let (v, out) = request(
        &mut ex,
        headers(
            "GET",
            "/fhir/Patient/1",
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
        ),
        true,
    );
    assert_eq!(v, Verdict::Pause);
    let audit_at = out
        .iter()
        .position(|e| matches!(e, Effect::Audit(..)))
        .unwrap();
    let reply_at = out
        .iter()
        .position(|e| matches!(e, Effect::Reply(_)))
        .unwrap();
    assert!(audit_at < reply_at);
    assert_eq!(reply(&out).unwrap().status, 400);
    assert!(ex.is_done());
}

#[test]
fn a_declared_body_over_the_limit_is_refused_before_authentication() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    let h = headers(
        "POST",
        "/fhir/Observation",
        &[BEARER, ("content-length", "99999999")],
    );
    let (_, out) = request(&mut ex, h, false);
    assert_eq!(reply(&out).unwrap().status, 413);
    assert!(!has(&out, |e| matches!(e, Effect::Authenticate(_))));
}

fn observation(patient: &str) -> Vec<u8> {
    // id 1: what the tests read (`Observation/1`), so a read's answer is the resource read.
    json!({"resourceType": "Observation", "id": "1", "status": "final",
           "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}})
    .to_string()
    .into_bytes()
}

#[test]
fn full_mode_holds_a_write_until_its_body_decides_and_learns_the_mode() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Unknown);
    let (v, _) = request(
        &mut ex,
        headers("POST", "/fhir/Observation", &[BEARER]),
        false,
    );
    assert_eq!(v, Verdict::Pause);
    // The body arrives while the headers are held: that proves full mode.
    let body = observation("123");
    let (v, out) = feed(
        &mut ex,
        Event::RequestBody {
            buffered: body.len(),
            end_of_stream: true,
        },
        T0 + 1,
    );
    assert_eq!(v, Verdict::Pause);
    assert!(has(&out, |e| matches!(e, Effect::Learned(HoldMode::Full))));
    let (v, out) = feed(
        &mut ex,
        Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
        T0 + 2,
    );
    assert_eq!(v, Verdict::Pause);
    assert!(has(
        &out,
        |e| matches!(e, Effect::ReadRequestBody(n) if *n == body.len())
    ));
    assert!(
        set_headers(&out).is_empty(),
        "nothing goes upstream before the decision"
    );
    let (v, out) = feed(&mut ex, Event::RequestBodyRead(body), T0 + 3);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(set_headers(&out), [("x-fhirgate-subject", "alice")]);
}

#[test]
fn full_mode_denies_a_foreign_write_without_releasing_anything() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    request(
        &mut ex,
        headers("POST", "/fhir/Observation", &[BEARER]),
        false,
    );
    feed(
        &mut ex,
        Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
        T0,
    );
    let body = observation("456");
    let (v, out) = feed(
        &mut ex,
        Event::RequestBody {
            buffered: body.len(),
            end_of_stream: true,
        },
        T0,
    );
    assert_eq!(v, Verdict::Pause);
    assert!(has(&out, |e| matches!(e, Effect::ReadRequestBody(_))));
    let (v, out) = feed(&mut ex, Event::RequestBodyRead(body), T0);
    assert_eq!(v, Verdict::Pause);
    assert_eq!(reply(&out).unwrap().status, 403);
    assert!(set_headers(&out).is_empty());
    assert!(!has(
        &out,
        |e| matches!(e, Effect::RemoveRequestHeader(n) if n == "accept-encoding")
    ));
}

#[test]
fn safe_mode_releases_the_headers_after_authentication_and_holds_the_body() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Safe);
    request(
        &mut ex,
        headers(
            "POST",
            "/fhir/Observation",
            &[BEARER, ("accept-encoding", "br")],
        ),
        false,
    );
    let (v, out) = feed(
        &mut ex,
        Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
        T0,
    );
    assert_eq!(v, Verdict::Continue, "headers go on");
    assert_eq!(set_headers(&out), [("x-fhirgate-subject", "alice")]);
    assert!(removed(&out).contains(&"accept-encoding"));
    let (v, _) = feed(
        &mut ex,
        Event::RequestBody {
            buffered: 10,
            end_of_stream: false,
        },
        T0,
    );
    assert_eq!(v, Verdict::Pause, "the body is held");
    let body = observation("456");
    feed(
        &mut ex,
        Event::RequestBody {
            buffered: body.len(),
            end_of_stream: true,
        },
        T0,
    );
    let (v, out) = feed(&mut ex, Event::RequestBodyRead(body), T0);
    assert_eq!(v, Verdict::Pause);
    assert_eq!(
        reply(&out).unwrap().status,
        403,
        "the upstream request is reset"
    );
}

#[test]
fn unknown_mode_probes_a_hold_that_sees_no_body_and_learns_safe_mode() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Unknown);
    request(
        &mut ex,
        headers("POST", "/fhir/Observation", &[BEARER]),
        false,
    );
    let (v, _) = feed(
        &mut ex,
        Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
        T0,
    );
    assert_eq!(v, Verdict::Pause, "held while the mode is unknown");
    let (v, out) = feed(&mut ex, Event::Timer, T0 + PROBE_AFTER_MS - 1);
    assert_eq!(v, Verdict::Pause);
    assert!(out.is_empty());
    let (v, out) = feed(&mut ex, Event::Timer, T0 + PROBE_AFTER_MS);
    assert_eq!(
        v,
        Verdict::Continue,
        "released so Envoy can deliver the body"
    );
    assert_eq!(set_headers(&out), [("x-fhirgate-subject", "alice")]);
    let body = observation("123");
    let (_, out) = feed(
        &mut ex,
        Event::RequestBody {
            buffered: body.len(),
            end_of_stream: true,
        },
        T0 + PROBE_AFTER_MS + 1,
    );
    assert!(has(&out, |e| matches!(e, Effect::Learned(HoldMode::Safe))));
    let (v, out) = feed(
        &mut ex,
        Event::RequestBodyRead(body),
        T0 + PROBE_AFTER_MS + 1,
    );
    assert_eq!(v, Verdict::Continue);
    assert!(
        set_headers(&out).is_empty(),
        "identity headers were set at the release"
    );
}

#[test]
fn a_known_full_mode_never_releases_a_hold_early() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    request(
        &mut ex,
        headers("POST", "/fhir/Observation", &[BEARER]),
        false,
    );
    feed(
        &mut ex,
        Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
        T0,
    );
    let (v, out) = feed(&mut ex, Event::Timer, T0 + 60_000);
    assert_eq!(v, Verdict::Pause);
    assert!(out.is_empty());
}

fn upstream(ex: &mut Exchange, scope: &str, patient: Option<&str>) {
    upstream_at(ex, "/fhir/Observation/1", scope, patient);
}

fn upstream_at(ex: &mut Exchange, path: &str, scope: &str, patient: Option<&str>) {
    let (_, out) = request(
        ex,
        headers("GET", path, &[BEARER, ("accept-encoding", "gzip")]),
        true,
    );
    assert!(has(&out, |e| matches!(e, Effect::Authenticate(_))));
    assert!(!ex.is_done(), "authenticating");
    let (v, out) = feed(ex, Event::Authenticated(Ok(token(scope, patient))), T0);
    assert_eq!(v, Verdict::Continue);
    assert!(
        audits(&out).is_empty(),
        "the record waits for the response check"
    );
    assert!(!ex.is_done(), "the response is still to be checked");
    assert!(removed(&out).contains(&"accept-encoding"));
}

fn response_headers(status: &str, extra: &[(&str, &str)]) -> Event {
    let mut h = vec![
        (":status".to_string(), status.to_string()),
        (
            "content-type".to_string(),
            "application/fhir+json".to_string(),
        ),
        ("etag".to_string(), "W/\"1\"".to_string()),
        ("content-length".to_string(), "100".to_string()),
    ];
    h.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    Event::ResponseHeaders {
        headers: h,
        end_of_stream: false,
    }
}

fn bundle_of(patients: &[&str]) -> Vec<u8> {
    let entries: Vec<Value> = patients
        .iter()
        .map(|p| json!({"resource": serde_json::from_slice::<Value>(&observation(p)).unwrap()}))
        .collect();
    json!({"resourceType": "Bundle", "type": "searchset", "entry": entries})
        .to_string()
        .into_bytes()
}

fn body_events(ex: &mut Exchange, body: Vec<u8>) -> (Verdict, Vec<Effect>) {
    let (v, out) = feed(
        ex,
        Event::ResponseBody {
            buffered: body.len(),
            end_of_stream: true,
        },
        T0,
    );
    assert_eq!(v, Verdict::Pause);
    assert!(has(
        &out,
        |e| matches!(e, Effect::ReadResponseBody(n) if *n == body.len())
    ));
    feed(ex, Event::ResponseBodyRead(body), T0)
}

#[test]
fn full_mode_holds_the_response_headers_and_refuses_a_foreign_resource_with_403() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    let (v, out) = feed(&mut ex, response_headers("200", &[]), T0);
    assert_eq!(v, Verdict::Pause);
    assert!(
        out.is_empty(),
        "held headers are left alone until the body decides"
    );
    let (v, out) = body_events(&mut ex, observation("456"));
    assert_eq!(v, Verdict::Continue);
    assert!(has(
        &out,
        |e| matches!(e, Effect::SetResponseHeader(n, None) if n == "content-length")
    ));
    assert!(has(
        &out,
        |e| matches!(e, Effect::SetResponseHeader(n, Some(s)) if n == ":status" && s == "403")
    ));
    assert!(has(
        &out,
        |e| matches!(e, Effect::SetResponseHeader(n, None) if n == "etag")
    ));
    assert!(has(&out, |e| matches!(e, Effect::ReplaceResponseBody(_))));
    assert_eq!(audits(&out)[0].reason, "response.outside_scope");
}

#[test]
fn safe_mode_lets_the_response_headers_go_and_cuts_a_refused_response_off() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Safe);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    let (v, _) = feed(&mut ex, response_headers("200", &[]), T0);
    assert_eq!(v, Verdict::Continue);
    let (v, out) = body_events(&mut ex, observation("456"));
    assert_eq!(v, Verdict::Pause);
    assert!(has(&out, |e| matches!(e, Effect::ResetResponse)));
    assert!(!has(&out, |e| matches!(e, Effect::ReplaceResponseBody(_))));
    assert_eq!(audits(&out)[0].reason, "response.outside_scope");
}

#[test]
fn a_bundle_is_rewritten_in_both_modes() {
    for mode in [HoldMode::Full, HoldMode::Safe] {
        let mut ex = Exchange::new(config(json!({})), mode);
        // `user/` access reads any patient's data: a labelled entry is what gets withheld.
        upstream_at(&mut ex, "/fhir/Observation", "user/Observation.rs", None);
        feed(&mut ex, response_headers("200", &[]), T0);
        let mut bundle: Value = serde_json::from_slice(&bundle_of(&["123", "456"])).unwrap();
        bundle["entry"][1]["resource"]["meta"] = json!({"security": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]});
        let (v, out) = body_events(&mut ex, bundle.to_string().into_bytes());
        assert_eq!(v, Verdict::Continue, "{mode:?}");
        let body = out
            .iter()
            .find_map(|e| match e {
                Effect::ReplaceResponseBody(b) => Some(b.clone()),
                _ => None,
            })
            .unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("Patient/123") && !text.contains("Patient/456"));
        assert_eq!(audits(&out)[0].withheld, 1);
    }
}

#[test]
fn only_what_needs_changing_is_touched() {
    // No Accept-Encoding sent: nothing to remove. A held response that passes unchanged keeps
    // every upstream header (its Content-Length is right).
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    let (_, out) = request(
        &mut ex,
        headers("GET", "/fhir/Observation/1", &[BEARER]),
        true,
    );
    assert!(removed(&out).is_empty());
    let (_, out) = feed(
        &mut ex,
        Event::Authenticated(Ok(token("patient/Observation.rs", Some("123")))),
        T0,
    );
    assert!(!removed(&out).contains(&"accept-encoding"));
    feed(&mut ex, response_headers("200", &[]), T0);
    let (v, out) = body_events(&mut ex, observation("123"));
    assert_eq!(v, Verdict::Continue);
    assert!(
        !has(&out, |e| matches!(e, Effect::SetResponseHeader(..))),
        "{out:?}"
    );
}

#[test]
fn a_compressed_answer_is_replaced_by_a_502_before_anything_is_sent() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Safe);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    let (v, out) = feed(
        &mut ex,
        response_headers("200", &[("content-encoding", "gzip")]),
        T0,
    );
    assert_eq!(v, Verdict::Pause);
    let replaced = out.iter().find_map(|e| match e {
        Effect::ReplaceResponse(r) => Some(r.status),
        _ => None,
    });
    assert_eq!(replaced, Some(502));
    assert_eq!(audits(&out)[0].reason, "response.encoded");
    assert!(ex.is_done());
}

#[test]
fn an_oversized_answer_is_refused_in_both_modes() {
    let cfg = config(json!({"fhir": {"basePath": "/fhir", "maxResponseBytes": 2048}}));
    for (mode, reset) in [(HoldMode::Full, false), (HoldMode::Safe, true)] {
        let mut ex = Exchange::new(Rc::clone(&cfg), mode);
        upstream(&mut ex, "patient/Observation.rs", Some("123"));
        feed(&mut ex, response_headers("200", &[]), T0);
        let (_, out) = feed(
            &mut ex,
            Event::ResponseBody {
                buffered: 4096,
                end_of_stream: false,
            },
            T0,
        );
        assert_eq!(has(&out, |e| matches!(e, Effect::ResetResponse)), reset);
        assert_eq!(audits(&out)[0].reason, "response.too_large");
    }
}

#[test]
fn upstream_errors_pass_and_are_audited() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    let (v, out) = feed(&mut ex, response_headers("404", &[]), T0);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(audits(&out).len(), 1);
    assert!(ex.is_done());
}

#[test]
fn unknown_mode_releases_a_held_response_that_sees_no_body() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Unknown);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    let (v, _) = feed(&mut ex, response_headers("200", &[]), T0);
    assert_eq!(v, Verdict::Pause);
    let (v, _) = feed(&mut ex, Event::Timer, T0 + PROBE_AFTER_MS);
    assert_eq!(v, Verdict::Continue);
    let body = observation("456");
    let (_, out) = feed(
        &mut ex,
        Event::ResponseBody {
            buffered: body.len(),
            end_of_stream: true,
        },
        T0 + PROBE_AFTER_MS + 1,
    );
    assert!(has(&out, |e| matches!(e, Effect::Learned(HoldMode::Safe))));
    let (_, out) = feed(
        &mut ex,
        Event::ResponseBodyRead(body),
        T0 + PROBE_AFTER_MS + 1,
    );
    assert!(
        has(&out, |e| matches!(e, Effect::ResetResponse)),
        "headers already went: cut off"
    );
}

#[test]
fn a_request_whose_response_never_comes_is_still_audited() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    let (_, out) = feed(&mut ex, Event::Done, T0 + 5);
    assert_eq!(audits(&out).len(), 1);
    assert_eq!(audits(&out)[0].reason, "allow");
}

#[test]
fn an_explained_exchange_records_its_steps_and_a_plain_one_does_not() {
    let cfg = config(json!({"consent": {"enforce": false}}));
    let mut plain = Exchange::new(Rc::clone(&cfg), HoldMode::Full);
    let mut told = Exchange::explained(cfg, HoldMode::Full);
    for ex in [&mut plain, &mut told] {
        request(ex, headers("GET", "/fhir/Patient/123", &[BEARER]), true);
        feed(
            ex,
            Event::Authenticated(Ok(token("patient/Patient.rs", Some("123")))),
            T0,
        );
    }
    assert!(plain.explanation().is_empty());
    assert!(told.explanation().iter().any(|l| l.starts_with("token:")));
    assert!(told.explanation().iter().any(|l| l.contains("SMART")));
}

#[test]
fn the_busy_answers_fail_closed_with_the_configured_realm() {
    let cfg = config(json!({"realm": "hospital"}));
    let r = busy_reply(&cfg, Direction::Request);
    assert_eq!(r.status, 503);
    assert!(r.headers.iter().any(|(n, _)| n == "retry-after"));
    assert_eq!(busy_reply(&cfg, Direction::Response).status, 502);
}

#[test]
fn a_get_declaring_a_body_is_refused_on_its_headers_even_when_they_end_the_stream() {
    let refused = |headers: &[(&str, &str)]| {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        hygiene::refused_on_headers("GET", "/fhir/Patient/1", &headers, true).map(|d| d.reason)
    };
    let unexpected = Some("request.unexpected_body".to_string());
    assert_eq!(refused(&[("transfer-encoding", "chunked")]), unexpected);
    assert_eq!(refused(&[("Transfer_Encoding", "chunked")]), unexpected);
    assert_eq!(refused(&[("content-length", "12")]), unexpected);
    assert_eq!(refused(&[("content-length", "0")]), None);
    assert_eq!(refused(&[("accept", "application/fhir+json")]), None);
    let duplicate = Some("request.duplicate_content_type".to_string());
    let json = ("content-type", "application/fhir+json");
    assert_eq!(refused(&[json, json]), duplicate);
    assert_eq!(
        refused(&[("content-type", "application/json, text/xml")]),
        duplicate
    );
    assert_eq!(refused(&[json, ("accept", "application/fhir+json")]), None);
}

/// The body limit (`fhir.maxBodyBytes`) is inclusive wherever the body is counted: declared by
/// `content-length`, buffered before the token is verified (full mode) and after it.
#[test]
fn a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
    let cfg = config(json!({"fhir": {"basePath": "/fhir", "maxBodyBytes": 1024}}));
    let scope = "patient/Observation.cu";
    let post = |len: Option<usize>| {
        let mut extra = vec![BEARER];
        let cl = len.map(|n| n.to_string());
        if let Some(cl) = &cl {
            extra.push(("content-length", cl.as_str()));
        }
        headers("POST", "/fhir/Observation", &extra)
    };
    let body = |ex: &mut Exchange, n: usize| {
        feed(
            ex,
            Event::RequestBody {
                buffered: n,
                end_of_stream: false,
            },
            T0,
        )
    };
    let refused = |out: &[Effect]| reply(out).map(|r| r.status) == Some(413);
    // declared
    for (n, over) in [(1024, false), (1025, true)] {
        let mut ex = Exchange::new(Rc::clone(&cfg), HoldMode::Full);
        let (_, out) = request(&mut ex, post(Some(n)), false);
        assert_eq!(refused(&out), over, "content-length {n}");
        assert_eq!(ex.is_done(), over);
    }
    // buffered while the token is being verified
    for (n, over) in [(1024, false), (1025, true)] {
        let mut ex = Exchange::new(Rc::clone(&cfg), HoldMode::Full);
        request(&mut ex, post(None), false);
        let (_, out) = body(&mut ex, n);
        assert_eq!(refused(&out), over, "{n} bytes before authentication");
        assert_eq!(ex.is_done(), over);
    }
    // buffered after it
    for (n, over) in [(1024, false), (1025, true)] {
        let mut ex = Exchange::new(Rc::clone(&cfg), HoldMode::Full);
        request(&mut ex, post(None), false);
        feed(
            &mut ex,
            Event::Authenticated(Ok(token(scope, Some("123")))),
            T0,
        );
        assert!(!ex.is_done());
        let (_, out) = body(&mut ex, n);
        assert_eq!(refused(&out), over, "{n} bytes after authentication");
        assert_eq!(ex.is_done(), over);
    }
}

/// What the engine reads between callbacks: whether the request waits for its token or body, and
/// since when (its bound on waits), through every state.
#[test]
fn the_engine_sees_each_state_and_when_the_request_began() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    assert_eq!(
        (ex.is_authenticating(), ex.is_undecided(), ex.started_ms()),
        (false, false, None)
    );
    let (_, out) = request(
        &mut ex,
        headers("POST", "/fhir/Observation", &[BEARER]),
        false,
    );
    let credential = out
        .iter()
        .find_map(|e| match e {
            Effect::Authenticate(c) => Some(format!("{c:?}")),
            _ => None,
        })
        .expect("authenticate");
    assert!(credential.starts_with("Credential") && credential.contains("Bearer"));
    assert!(
        !credential.contains("abc.def.ghi"),
        "Debug never prints the token"
    );
    assert_eq!(
        (ex.is_authenticating(), ex.is_undecided(), ex.started_ms()),
        (true, true, Some(T0))
    );
    // the sender check: no longer authenticating, still undecided
    let mut out = Vec::new();
    ex.handle(
        Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
        T0 + 5,
        &mut out,
    );
    assert!(has(&out, |e| matches!(e, Effect::CheckSender(..))));
    assert_eq!(
        (ex.is_authenticating(), ex.is_undecided(), ex.started_ms()),
        (false, false, Some(T0))
    );
    ex.handle(Event::SenderChecked(Ok(())), T0 + 6, &mut out);
    // reading the body
    assert_eq!(
        (ex.is_authenticating(), ex.is_undecided(), ex.started_ms()),
        (false, true, Some(T0))
    );
    let body = observation("123");
    feed(
        &mut ex,
        Event::RequestBody {
            buffered: body.len(),
            end_of_stream: true,
        },
        T0 + 7,
    );
    let (v, _) = feed(&mut ex, Event::RequestBodyRead(body), T0 + 8);
    assert_eq!(v, Verdict::Continue);
    // upstream, then checking the response
    assert_eq!(
        (ex.is_authenticating(), ex.is_undecided(), ex.started_ms()),
        (false, false, Some(T0))
    );
    assert!(!ex.is_done());
    feed(&mut ex, response_headers("201", &[]), T0 + 9);
    assert_eq!(ex.started_ms(), Some(T0));
    body_events(&mut ex, observation("123"));
    assert!(ex.is_done());
    assert_eq!(ex.started_ms(), None);
}

/// What the worker learns about the proxy reaches an exchange that has begun (`Unknown` teaches
/// nothing and changes nothing).
#[test]
fn a_learned_mode_changes_how_the_exchange_holds() {
    let after_auth = |initial: HoldMode, learned: &[HoldMode]| {
        let mut ex = Exchange::new(config(json!({})), initial);
        for m in learned {
            ex.set_mode(*m);
        }
        request(
            &mut ex,
            headers("POST", "/fhir/Observation", &[BEARER]),
            false,
        );
        feed(
            &mut ex,
            Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
            T0,
        )
        .0
    };
    assert_eq!(after_auth(HoldMode::Safe, &[]), Verdict::Continue);
    assert_eq!(after_auth(HoldMode::Full, &[]), Verdict::Pause);
    assert_eq!(
        after_auth(HoldMode::Safe, &[HoldMode::Full]),
        Verdict::Pause
    );
    assert_eq!(
        after_auth(HoldMode::Full, &[HoldMode::Safe]),
        Verdict::Continue
    );
    assert_eq!(
        after_auth(HoldMode::Full, &[HoldMode::Unknown]),
        Verdict::Pause
    );
    assert_eq!(
        after_auth(HoldMode::Safe, &[HoldMode::Unknown]),
        Verdict::Continue
    );
}

#[test]
fn hold_modes_are_stored_by_name_and_read_back() {
    for mode in [HoldMode::Unknown, HoldMode::Full, HoldMode::Safe] {
        assert_eq!(HoldMode::parse(mode.as_str()), Some(mode));
    }
    assert_eq!(
        [HoldMode::Unknown, HoldMode::Full, HoldMode::Safe].map(HoldMode::as_str),
        ["unknown", "full", "safe"]
    );
    for text in ["", "Full", "SAFE", "full ", "none"] {
        assert_eq!(HoldMode::parse(text), None, "{text:?}");
    }
}

/// A write whose headers end the stream has no body to wait for: it is decided as soon as its
/// token is (here refused: no resource is no resource in the patient's compartment), never left
/// waiting.
#[test]
fn a_write_without_a_body_is_decided_at_once() {
    for mode in [HoldMode::Full, HoldMode::Safe] {
        let mut ex = Exchange::new(config(json!({})), mode);
        request(
            &mut ex,
            headers("POST", "/fhir/Observation", &[BEARER]),
            true,
        );
        let (v, out) = feed(
            &mut ex,
            Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
            T0,
        );
        assert!(
            has(&out, |e| matches!(e, Effect::ReadRequestBody(0))) || reply(&out).is_some(),
            "{mode:?}: {out:?}"
        );
        let out = match reply(&out) {
            Some(_) => out,
            None => feed(&mut ex, Event::RequestBodyRead(Vec::new()), T0).1,
        };
        assert_eq!(reply(&out).map(|r| r.status), Some(403), "{mode:?}");
        assert_eq!(audits(&out)[0].reason, "smart.write_outside_compartment");
        assert_eq!(v, Verdict::Pause);
        assert!(!ex.is_undecided());
    }
}

/// A mode is learned once, by an exchange that did not know it; one that knows it teaches nothing.
#[test]
fn the_mode_is_learned_once_and_only_when_unknown() {
    let learned = |initial: HoldMode| {
        let mut ex = Exchange::new(config(json!({})), initial);
        let mut all = request(
            &mut ex,
            headers("POST", "/fhir/Observation", &[BEARER]),
            false,
        )
        .1;
        let body = observation("123");
        // two body events while the headers are held, then the token, then the body
        for (n, eos) in [(10, false), (body.len(), true)] {
            all.extend(
                feed(
                    &mut ex,
                    Event::RequestBody {
                        buffered: n,
                        end_of_stream: eos,
                    },
                    T0,
                )
                .1,
            );
        }
        all.extend(
            feed(
                &mut ex,
                Event::Authenticated(Ok(token("patient/Observation.cu", Some("123")))),
                T0,
            )
            .1,
        );
        all.extend(feed(&mut ex, Event::RequestBodyRead(body), T0).1);
        all.iter()
            .filter_map(|e| match e {
                Effect::Learned(m) => Some(*m),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(learned(HoldMode::Unknown), [HoldMode::Full]);
    assert!(learned(HoldMode::Full).is_empty());
}

/// A search that only a patient scope allows and names no patient goes upstream narrowed to the
/// launch patient, with `Prefer: handling=strict`, and its response is checked.
#[test]
fn a_narrowed_search_goes_upstream_with_the_patient_added() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    request(
        &mut ex,
        headers("GET", "/fhir/Observation?code=x", &[BEARER]),
        true,
    );
    let (v, out) = feed(
        &mut ex,
        Event::Authenticated(Ok(token("patient/Observation.rs", Some("123")))),
        T0,
    );
    assert_eq!(v, Verdict::Continue);
    let set = set_headers(&out);
    assert!(
        set.contains(&(":path", "/fhir/Observation?code=x&patient=Patient/123")),
        "{set:?}"
    );
    assert!(set.contains(&("prefer", "handling=strict")), "{set:?}");
    assert!(!ex.is_done(), "the response is checked");
}

fn metric_value(out: &[Effect], name: &str) -> Option<i64> {
    out.iter().find_map(|e| match e {
        Effect::Metric(m) if m.name == name => Some(m.value),
        _ => None,
    })
}

/// A rewritten answer counts what it withheld and what it redacted, each only when there is some;
/// a flag a response rule raises reaches the audit record.
#[test]
fn a_rewritten_answer_counts_what_changed_and_keeps_the_response_flags() {
    let cfg = config(json!({"consent": {"enforce": false}, "rules": [
        {"name": "redact-r", "phase": "response", "effect": "redact", "expression": "resource.id == 'r'"},
        {"name": "saw-f", "phase": "response", "effect": "flag", "expression": "resource.id == 'f'"}]}));
    let entry = |id: &str, patient: &str| {
        let mut o: Value = serde_json::from_slice(&observation(patient)).unwrap();
        o["id"] = json!(id);
        json!({"resource": o})
    };
    let run = |entries: Vec<Value>| {
        let mut ex = Exchange::new(Rc::clone(&cfg), HoldMode::Full);
        upstream_at(
            &mut ex,
            "/fhir/Observation?patient=123",
            "patient/Observation.rs",
            Some("123"),
        );
        feed(&mut ex, response_headers("200", &[]), T0);
        let bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": entries});
        body_events(&mut ex, bundle.to_string().into_bytes()).1
    };
    let withheld = crate::metrics::RESPONSE_ENTRIES_WITHHELD;
    let redacted = crate::metrics::RESPONSE_RESOURCES_REDACTED;
    // one withheld (another patient's), nothing redacted
    let out = run(vec![entry("a", "123"), entry("b", "456")]);
    assert_eq!(metric_value(&out, withheld), Some(1));
    assert_eq!(metric_value(&out, redacted), None);
    // two redacted, nothing withheld
    let out = run(vec![
        entry("r", "123"),
        entry("a", "123"),
        entry("r", "123"),
    ]);
    assert_eq!(metric_value(&out, redacted), Some(2));
    assert_eq!(metric_value(&out, withheld), None);
    // a flag raised on the response is audited
    let out = run(vec![entry("f", "123")]);
    assert_eq!(audits(&out)[0].flags, ["saw-f"]);
}

#[test]
fn an_answer_of_exactly_the_limit_is_checked() {
    let cfg = config(json!({"fhir": {"basePath": "/fhir", "maxResponseBytes": 2048}}));
    for (n, refused) in [(2048, false), (2049, true)] {
        let mut ex = Exchange::new(Rc::clone(&cfg), HoldMode::Full);
        upstream(&mut ex, "patient/Observation.rs", Some("123"));
        feed(&mut ex, response_headers("200", &[]), T0);
        let (_, out) = feed(
            &mut ex,
            Event::ResponseBody {
                buffered: n,
                end_of_stream: false,
            },
            T0,
        );
        assert_eq!(!audits(&out).is_empty(), refused, "{n} bytes");
        assert_eq!(ex.is_done(), refused);
    }
}

/// The timer releases held response headers only in the modes that allow it, and only once.
#[test]
fn the_timer_never_releases_a_full_mode_response_and_touches_a_released_one_no_more() {
    let mut ex = Exchange::new(config(json!({})), HoldMode::Full);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    feed(&mut ex, response_headers("200", &[]), T0);
    let (v, out) = feed(&mut ex, Event::Timer, T0 + 60_000);
    assert_eq!(v, Verdict::Pause);
    assert!(out.is_empty(), "{out:?}");
    // safe mode: the headers went at once; a timer changes nothing
    let mut ex = Exchange::new(config(json!({})), HoldMode::Safe);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    let (v, _) = feed(&mut ex, response_headers("200", &[]), T0);
    assert_eq!(v, Verdict::Continue);
    let (_, out) = feed(&mut ex, Event::Timer, T0 + 60_000);
    assert!(out.is_empty(), "{out:?}");
    // unknown mode: released once, after the probe time; later timers change nothing
    let mut ex = Exchange::new(config(json!({})), HoldMode::Unknown);
    upstream(&mut ex, "patient/Observation.rs", Some("123"));
    feed(&mut ex, response_headers("200", &[]), T0);
    let (v, out) = feed(&mut ex, Event::Timer, T0 + PROBE_AFTER_MS);
    assert_eq!(v, Verdict::Continue);
    assert!(!out.is_empty());
    let (_, out) = feed(&mut ex, Event::Timer, T0 + 2 * PROBE_AFTER_MS);
    assert!(out.is_empty(), "{out:?}");
}

/// What rules and the decision see of the request headers: never the credentials, nor fhirgate's
/// own headers in any spelling; repeated headers joined.
#[test]
fn the_request_view_hides_credentials_and_owned_headers() {
    let h: Vec<(String, String)> = [
        (":method", "GET"),
        (":path", "/fhir/Patient/1"),
        (":authority", "fhir.example.org"),
        ("authorization", "Bearer secret"),
        ("cookie", "s=1"),
        ("x-fhirgate-subject", "mallory"),
        ("x_fhirgate_patient", "999"),
        ("X-FHIRGATE-Scopes", "system/*.cruds"),
        ("x-other", "1"),
        ("x-other", "2"),
        ("x-request-id", "r-1"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let info = request_info(&h, "10.0.0.1:5000");
    assert_eq!(
        (info.method.as_str(), info.path.as_str()),
        ("GET", "/fhir/Patient/1")
    );
    assert_eq!(info.host, "fhir.example.org");
    assert_eq!(info.request_id.as_deref(), Some("r-1"));
    let names: Vec<&str> = info.headers.keys().map(String::as_str).collect();
    assert_eq!(names, ["x-other", "x-request-id"]);
    assert_eq!(info.headers["x-other"], "1,2");
}

#[test]
fn public_discovery_is_exactly_metadata_and_the_smart_configuration() {
    let on = config(json!({}));
    let off = config(json!({"fhir": {"basePath": "/fhir", "publicDiscovery": false}}));
    let info = |method: &str, path: &str| RequestInfo {
        method: method.into(),
        path: path.into(),
        ..RequestInfo::default()
    };
    for (method, path, public) in [
        ("GET", "/fhir/metadata", true),
        ("HEAD", "/fhir/metadata", true),
        ("GET", "/fhir/metadata?_format=json", true),
        ("GET", "/fhir/.well-known/smart-configuration", true),
        ("POST", "/fhir/metadata", false),
        ("DELETE", "/fhir/metadata", false),
        ("GET", "/fhir/Patient", false),
        ("GET", "/fhir/metadata/x", false),
        ("GET", "/fhir/", false),
        ("GET", "/metadata", false),
        ("GET", "/fhirmetadata", false),
    ] {
        assert_eq!(
            is_public_discovery(&on, &info(method, path)),
            public,
            "{method} {path}"
        );
        assert!(
            !is_public_discovery(&off, &info(method, path)),
            "off: {method} {path}"
        );
    }
}

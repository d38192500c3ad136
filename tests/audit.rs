//! The audit trail through the real filter logic on the simulated host: record contents and
//! options (subject modes, purpose of use, break-the-glass), the access-log values, metrics by
//! rule, and batched shipping to a collector (bounds, drops, failures, never on a request's path).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod harness;

use fhirgate::host::CalloutResult;
use harness::tokens::{self, Spec, AUDIENCE, ISSUER};
use harness::{Harness, Outcome, Req};
use serde_json::{json, Value};

const READ: &str = "/fhir/Patient/123";
const AUDIT_KEY: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY";
const FORWARD_KEY: &str = "Wnl4d3Z1dHNycXBvbm1sa2ppaGdmZWRjYmFaWVhXVlU";

/// The configuration of these tests; they look at the access-log values, which are set only
/// when `audit.accessLog` asks for them (on unless a test says otherwise).
fn config(mut audit: Value) -> String {
    if audit.get("accessLog").is_none() {
        audit["accessLog"] = json!(true);
    }
    json!({
        "providers": [{
            "name": "main",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "jwks": {"inline": serde_json::from_str::<Value>(&tokens::jwks()).unwrap()}
        }],
        "rules": [
            {"name": "no-deletes", "match": "request.method == 'DELETE'", "expression": "false",
             "message": "no deletes here"},
            {"name": "emergency", "effect": "flag",
             "expression": "'BTG' in claimValues(token.claims, 'purpose_of_use')"}
        ],
        // Labels are not the subject here: without the consent check reads are not buffered,
        // so each record is written at decision time (tests/consent.rs audits checked responses).
        "consent": {"enforce": false},
        "audit": audit
    })
    .to_string()
}

fn collector(extra: Value) -> Value {
    let mut c = json!({
        "cluster": "audit", "authority": "collector.example.org", "path": "/ingest",
        "batchSize": 3, "flushInterval": "500ms", "maxQueue": 5, "timeout": "1s", "maxInFlight": 1
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn token(h: &Harness, spec: Spec) -> String {
    tokens::token(&spec.scope("user/*.cruds"), h.now_s())
}

fn audit_callouts(h: &Harness) -> Vec<harness::Callout> {
    h.callouts()
        .into_iter()
        .filter(|c| c.cluster == "audit")
        .collect()
}

#[test]
fn every_record_has_the_basic_audit_event_fields() {
    let mut h = Harness::new(&config(json!({})), 1);
    let t = token(
        &h,
        Spec::new()
            .patient("123")
            .claim("purpose_of_use", json!("TREAT")),
    );
    let out = h.run(Req::get(READ).bearer(&t).source("10.1.2.3:5555"));
    assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
    let r = &h.audit_records()[0];
    for (field, want) in [
        ("outcome", json!("allow")),
        ("reason", json!("allow")),
        ("interaction", json!("read")),
        ("resourceType", json!("Patient")),
        ("resourceId", json!("123")),
        ("patient", json!("123")),
        ("subject", json!("user-1")),
        ("clientId", json!("test-app")),
        ("issuer", json!(ISSUER)),
        ("source", json!("10.1.2.3:5555")),
        ("purposeOfUse", json!(["TREAT"])),
        ("breakTheGlass", json!(false)),
        ("withheld", json!(0)),
    ] {
        assert_eq!(r[field], want, "{field} in {r}");
    }
    assert!(r["requestId"].as_str().unwrap().starts_with("req-"));
    assert!(r["time"].as_str().unwrap().ends_with('Z'));
    let text = r.to_string();
    assert!(
        !text.contains(t.split('.').nth(2).unwrap()),
        "token in the record"
    );
}

#[test]
fn the_subject_can_be_pseudonymous_or_omitted() {
    let cfg = config(json!({"subject": "pseudonym", "pseudonymSecret": AUDIT_KEY}));
    let mut h = Harness::new(&cfg, 1);
    let t = token(&h, Spec::new());
    let id = h.send(0, Req::get(READ).bearer(&t));
    let r = &h.audit_records()[0];
    assert!(r.get("subject").is_none(), "{r}");
    let p = r["subjectPseudonym"].as_str().unwrap();
    assert_eq!(p.len(), 43);
    // A known-answer vector of the README's formula, base64url(HMAC-SHA256(key, iss ‖ 0x00 ‖ sub)),
    // computed outside the filter:
    //   printf 'https://idp.example.org\0user-1' | openssl dgst -sha256 -mac HMAC \
    //     -macopt hexkey:$(printf ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef | xxd -p -c 64) -binary \
    //     | basenc --base64url | tr -d =
    assert_eq!(AUDIT_KEY, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY");
    assert_eq!(p, "Cjn7dhfezH1BppEK0wUxJthtOEdfajEOCZB-lfRacbo");
    assert!(
        !h.all_logs().contains("user-1"),
        "the plain subject is logged"
    );
    assert_eq!(
        h.filter_state(id)
            .get("fhirgate.subject")
            .map(String::as_str),
        Some(p)
    );

    let mut h = Harness::new(&config(json!({"subject": "omit"})), 1);
    let t = token(&h, Spec::new());
    let id = h.send(0, Req::get(READ).bearer(&t));
    let r = &h.audit_records()[0];
    assert!(r.get("subject").is_none() && r.get("subjectPseudonym").is_none());
    assert!(!h.filter_state(id).contains_key("fhirgate.subject"));
}

#[test]
fn audit_options_are_validated_naming_the_key() {
    for (audit, key) in [
        (json!({"subject": "hashed"}), "audit.subject"),
        (json!({"subject": "pseudonym"}), "audit.pseudonymSecret"),
        (
            json!({"subject": "plain", "pseudonymSecret": AUDIT_KEY}),
            "audit.pseudonymSecret",
        ),
        (
            json!({"subject": "pseudonym", "pseudonymSecret": "c2hvcnQ"}),
            "audit.pseudonymSecret",
        ),
        (json!({"purposeOfUseClaim": ""}), "audit.purposeOfUseClaim"),
        (
            json!({"breakTheGlassPurposes": ["B T G"]}),
            "audit.breakTheGlassPurposes[0]",
        ),
        (json!({"colector": {}}), "audit"),
        (
            json!({"collector": collector(json!({"batchSize": 0}))}),
            "audit.collector.batchSize",
        ),
        (
            json!({"collector": collector(json!({"flushInterval": "10ms"}))}),
            "audit.collector.flushInterval",
        ),
        (
            json!({"collector": collector(json!({"maxInFlight": 1000}))}),
            "audit.collector.maxInFlight",
        ),
        (
            json!({"collector": collector(json!({"path": "ingest"}))}),
            "audit.collector.path",
        ),
        (
            json!({"collector": collector(json!({"timeout": "soon"}))}),
            "audit.collector.timeout",
        ),
    ] {
        let err = match Harness::try_new(&config(audit.clone()), 1) {
            Ok(_) => panic!("accepted {audit}"),
            Err(e) => e,
        };
        assert!(err.key.starts_with(key), "{audit}: {err}");
    }
    // The audit pseudonym key must not be the forwarding one (the two would be linkable).
    let mut v: Value = serde_json::from_str(&config(json!({
        "subject": "pseudonym", "pseudonymSecret": FORWARD_KEY
    })))
    .unwrap();
    v["forward"] = json!({"pseudonymSecret": FORWARD_KEY});
    let err = Harness::try_new(&v.to_string(), 1).err().unwrap();
    assert_eq!(err.key, "audit.pseudonymSecret");
}

#[test]
fn purpose_of_use_is_bounded_and_validated_and_btg_is_flagged() {
    let mut h = Harness::new(&config(json!({})), 1);
    let many: Vec<String> = (0..20).map(|i| format!("P{i}")).collect();
    let junk = json!(["TREAT", "<script>", "a b", "x".repeat(200), 7]);
    let t1 = token(&h, Spec::new().claim("purpose_of_use", junk));
    let t2 = token(&h, Spec::new().claim("purpose_of_use", json!(many)));
    let t3 = token(
        &h,
        Spec::new().claim(
            "purpose_of_use",
            json!("http://terminology.hl7.org/CodeSystem/v3-ActReason|ETREAT"),
        ),
    );
    let t4 = token(&h, Spec::new().claim("purpose_of_use", json!("BTG")));
    for t in [&t1, &t2, &t3, &t4] {
        h.run(Req::get(READ).bearer(t));
    }
    let r = h.audit_records();
    assert_eq!(r[0]["purposeOfUse"], json!(["TREAT"]));
    assert_eq!(r[1]["purposeOfUse"].as_array().unwrap().len(), 8);
    assert_eq!(r[2]["breakTheGlass"], json!(true), "ETREAT by system|code");
    assert_eq!(r[3]["breakTheGlass"], json!(true));
    assert_eq!(r[3]["flags"], json!(["emergency"]));
    assert_eq!(h.metric("break_the_glass_total"), 2);
    assert_eq!(h.metric("rules.emergency.flagged"), 1);

    // A configured claim and code list.
    let cfg = config(json!({"purposeOfUseClaim": "pou", "breakTheGlassPurposes": ["EMERG"]}));
    let mut h = Harness::new(&cfg, 1);
    let t = token(&h, Spec::new().claim("pou", json!("EMERG TREAT")));
    h.run(Req::get(READ).bearer(&t));
    let r = &h.audit_records()[0];
    assert_eq!(r["purposeOfUse"], json!(["EMERG", "TREAT"]));
    assert_eq!(r["breakTheGlass"], json!(true));
}

#[test]
fn denials_are_counted_by_reason_and_rule_and_set_access_log_values() {
    let mut h = Harness::new(&config(json!({})), 1);
    let t = token(&h, Spec::new());
    let id = h.send(0, Req::get(READ).method("DELETE").bearer(&t));
    assert_eq!(h.outcome(id).status(), 403);
    assert_eq!(h.metric("rules.no_deletes.denied"), 1);
    assert_eq!(h.metric("decisions.deny.rule_denied"), 1);
    let fs = h.filter_state(id);
    assert_eq!(fs["fhirgate.outcome"], "deny");
    assert_eq!(fs["fhirgate.reason"], "rule.denied");
    assert_eq!(fs["fhirgate.rule"], "no-deletes");
    assert_eq!(fs["fhirgate.client_id"], "test-app");
    assert_eq!(fs["fhirgate.subject"], "user-1");
    assert_eq!(fs["fhirgate.interaction"], "delete");
    assert_eq!(fs["fhirgate.resource_type"], "Patient");
    assert!(
        !fs.values().any(|v| v.contains("123")),
        "no resource id: {fs:?}"
    );

    let id = h.send(0, Req::get(READ));
    let fs = h.filter_state(id);
    assert_eq!(fs["fhirgate.reason"], "token.missing");
    assert!(!fs.contains_key("fhirgate.rule"));
    assert_eq!(h.metric("decisions.deny.token_missing"), 1);

    let mut h = Harness::new(&config(json!({"accessLog": false})), 1);
    let id = h.send(0, Req::get(READ));
    assert!(h.filter_state(id).is_empty());
    // Not asked for (the default): no filter state, not one hostcall for it.
    let mut cfg: Value = serde_json::from_str(&config(json!({}))).unwrap();
    cfg["audit"].as_object_mut().unwrap().remove("accessLog");
    let mut h = Harness::new(&cfg.to_string(), 1);
    let id = h.send(0, Req::get(READ));
    assert_eq!(h.outcome(id).status(), 401);
    assert!(h.filter_state(id).is_empty());
    assert_eq!(h.hostcalls().get("set_filter_state"), None);
}

#[test]
fn batches_go_out_on_the_tick_never_on_a_request_path() {
    let mut h = Harness::new(&config(json!({"collector": collector(json!({}))})), 1);
    assert_eq!(h.workers[0].tick_period_ms(), 500);
    let t = token(&h, Spec::new());
    for _ in 0..4 {
        let out = h.run(Req::get(READ).bearer(&t));
        assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
    }
    assert!(audit_callouts(&h).is_empty(), "a callout on a request path");
    assert_eq!(h.metric("audit_queue_depth"), 4);
    h.tick();
    let calls = audit_callouts(&h);
    assert_eq!(calls.len(), 1, "maxInFlight 1");
    let c = &calls[0];
    assert_eq!(c.header(":method"), Some("POST"));
    assert_eq!(c.header(":path"), Some("/ingest"));
    assert_eq!(c.header(":authority"), Some("collector.example.org"));
    assert_eq!(c.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(c.timeout_ms, 1000);
    let body = String::from_utf8(c.body.clone().unwrap()).unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "batchSize 3");
    assert_eq!(lines[0], h.audit_records()[0], "the same record as the log");
    assert!(!body.contains(t.split('.').nth(1).unwrap()));
    assert_eq!(h.metric("audit_queue_depth"), 1);
    h.answer_all("audit", 204, "");
    assert_eq!(h.metric("audit_records_shipped_total"), 3);
    // The last record is sent once it waited flushInterval.
    h.tick();
    assert!(audit_callouts(&h).is_empty());
    h.advance(500);
    h.tick();
    assert_eq!(audit_callouts(&h).len(), 1);
    h.answer_all("audit", 200, "");
    assert_eq!(h.metric("audit_records_shipped_total"), 4);
    assert_eq!(h.metric("audit_batches_sent_total"), 2);
    assert_eq!(h.metric("audit_queue_depth"), 0);
}

#[test]
fn a_full_queue_drops_and_counts_while_requests_go_on() {
    let mut h = Harness::new(&config(json!({"collector": collector(json!({}))})), 1);
    let t = token(&h, Spec::new());
    for _ in 0..8 {
        let out = h.run(Req::get(READ).bearer(&t));
        assert!(matches!(out, Outcome::Forwarded(_)), "{}", out.text());
    }
    assert_eq!(h.audit_records().len(), 8, "the log keeps every record");
    assert_eq!(h.metric("audit_queue_depth"), 5);
    assert_eq!(h.metric("audit_records_dropped_total"), 3);
}

#[test]
fn collector_failures_timeouts_and_refusals_are_counted() {
    let mut h = Harness::new(
        &config(json!({"collector": collector(json!({"batchSize": 1, "maxInFlight": 2}))})),
        1,
    );
    let t = token(&h, Spec::new());
    for _ in 0..5 {
        h.run(Req::get(READ).bearer(&t));
    }
    h.tick();
    let calls = audit_callouts(&h);
    assert_eq!(calls.len(), 2);
    h.answer(
        calls[0].token,
        CalloutResult::Response {
            status: 503,
            body: Vec::new(),
        },
    );
    h.answer(calls[1].token, CalloutResult::Failed);
    assert_eq!(h.metric("audit_records_failed_total"), 2);
    assert_eq!(
        h.logs_containing("audit collector: a batch failed").len(),
        1
    );
    // While the collector hangs, requests are not delayed; its callouts time out.
    h.tick();
    assert_eq!(audit_callouts(&h).len(), 2);
    let out = h.run(Req::get(READ).bearer(&t));
    assert!(matches!(out, Outcome::Forwarded(_)));
    h.advance(1000);
    assert_eq!(h.metric("audit_records_failed_total"), 4);
    assert_eq!(h.metric("audit_batches_failed_total"), 4);
    // A proxy that refuses the callout (unknown cluster).
    h.sim.refuse_callouts.set(true);
    h.tick();
    assert_eq!(h.metric("audit_records_failed_total"), 5);
    assert_eq!(h.metric("audit_queue_depth"), 1);
    h.sim.refuse_callouts.set(false);
    h.tick();
    h.answer_all("audit", 200, "");
    assert_eq!(h.metric("audit_records_shipped_total"), 1);
    assert_eq!(
        h.logs_containing("audit collector: batches are delivered again")
            .len(),
        1
    );
    assert_eq!(h.metric("audit_queue_depth"), 0);
}

#[test]
fn lost_collector_callouts_free_their_slot() {
    let mut h = Harness::new(
        &config(json!({"collector": collector(json!({"batchSize": 1}))})),
        1,
    );
    let t = token(&h, Spec::new());
    h.run(Req::get(READ).bearer(&t));
    h.run(Req::get(READ).bearer(&t));
    h.tick();
    assert_eq!(audit_callouts(&h).len(), 1);
    h.lose_callouts();
    h.advance(3000);
    h.tick();
    assert!(
        audit_callouts(&h).is_empty(),
        "still within the grace period"
    );
    h.advance(4000);
    h.tick();
    assert_eq!(h.metric("audit_records_failed_total"), 1);
    assert_eq!(audit_callouts(&h).len(), 1, "the slot is free again");
}

#[test]
fn allowed_requests_whose_response_never_came_are_audited_at_stream_end() {
    let cfg: Value = serde_json::from_str(&config(json!({}))).unwrap();
    let mut h = Harness::new(&cfg.to_string(), 1);
    let t = tokens::token(&Spec::new().scope("patient/*.rs").patient("123"), h.now_s());
    let id = h.send(0, Req::get("/fhir/Observation/obs-1").bearer(&t));
    assert!(matches!(h.outcome(id), Outcome::Forwarded(_)));
    assert!(
        h.audit_records().is_empty(),
        "audited after the response check"
    );
    h.done(0, id);
    let r = h.audit_records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["outcome"], "allow");
}

#[test]
fn response_filtering_is_counted_and_audited_once() {
    let mut h = Harness::new(&config(json!({})), 1);
    let t = tokens::token(&Spec::new().scope("patient/*.rs").patient("123"), h.now_s());
    let mine =
        json!({"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/123"}});
    let id = h.send(
        0,
        Req::get("/fhir/Observation?patient=Patient/123&_include=Observation:performer").bearer(&t),
    );
    let bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": mine, "search": {"mode": "match"}},
        {"resource": {"resourceType": "Patient", "id": "999"}, "search": {"mode": "include"}}]});
    let (status, _, _) = h.respond(0, id, 200, &bundle.to_string());
    assert_eq!(status, 200);
    assert_eq!(h.metric("responses_rewritten_total"), 1);
    assert_eq!(h.metric("response_entries_withheld_total"), 1);
    let id2 = h.send(0, Req::get("/fhir/Observation/xyz").bearer(&t));
    let theirs = json!({"resourceType": "Observation", "id": "xyz", "subject": {"reference": "Patient/999"}});
    let (status, _, _) = h.respond(0, id2, 200, &theirs.to_string());
    assert_eq!(status, 403);
    assert_eq!(h.metric("responses_denied_total"), 1);
    h.done(0, id);
    h.done(0, id2);
    let r = h.audit_records();
    assert_eq!(
        r.len(),
        2,
        "one record per decision, none added at stream end"
    );
    assert_eq!(r[0]["withheld"], 1);
    assert_eq!(r[1]["outcome"], "deny");
    assert_eq!(h.filter_state(id2)["fhirgate.outcome"], "deny");
}

#[test]
fn the_example_bootstrap_configuration_loads() {
    let yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/envoy/envoy.yaml")).unwrap();
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.trim_end().ends_with("value: |"));
    let indent = lines.next().unwrap().find("value").unwrap();
    let json: String = lines
        .take_while(|l| l.len() > indent && l[..=indent].trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let config = fhirgate::config::Config::from_json(json.as_bytes()).unwrap();
    assert!(config.audit.collector.is_some());
    assert!(yaml.contains("%FILTER_STATE(wasm.fhirgate.outcome:PLAIN)%"));
}

//! Consent by security labels and resource rules (allow, redact, deny) through the real engine
//! on the simulated host: which responses are buffered, what the client receives, what the
//! audit record says.
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

const ACT: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

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

fn obs(id: &str, label: Option<&str>) -> Value {
    let mut o = json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"text": "secret finding"}, "subject": {"reference": "Patient/123"}});
    if let Some(code) = label {
        o["meta"] = json!({"versionId": "1", "security": [{"system": ACT, "code": code}]});
    }
    o
}

fn search(resources: &[Value]) -> String {
    let entry: Vec<Value> = resources
        .iter()
        .map(|r| json!({"resource": r, "search": {"mode": "match"}}))
        .collect();
    json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry})
        .to_string()
}

fn token(h: &Harness, spec: Spec) -> String {
    tokens::token(&spec, h.now_s())
}

/// Sends `path`, expects it forwarded, answers 200 with `body`; returns status and JSON body.
fn exchange(h: &mut Harness, path: &str, tok: &str, body: &str) -> (u16, Value) {
    let id = h.send(0, Req::get(path).bearer(tok));
    assert!(matches!(h.outcome(id), Outcome::Forwarded(_)), "{path}");
    let (status, _, body) = h.respond(0, id, 200, body);
    (status, serde_json::from_slice(&body).unwrap())
}

fn last_audit(h: &Harness) -> Value {
    let line = h.logs_containing("fhirgate.audit ").pop().unwrap();
    serde_json::from_str(line.trim_start_matches("fhirgate.audit ")).unwrap()
}

#[test]
fn labelled_resources_are_withheld_without_consent_for_every_token_kind() {
    let mut h = Harness::new(&config(json!({})), 1);
    // a system/ token has no patient context, yet labels still apply (fail closed)
    let system = token(&h, Spec::new().scope("system/*.rs"));
    let bundle = search(&[obs("a", None), obs("p", Some("PSY")), obs("h", Some("HIV"))]);
    let (status, v) = exchange(&mut h, "/fhir/Observation?code=x", &system, &bundle);
    assert_eq!(status, 200);
    let entries = v["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["resource"]["id"], "a");
    assert_eq!(entries[1]["search"]["mode"], "outcome");
    assert!(v.get("total").is_none());
    let audit = last_audit(&h);
    assert_eq!(audit["withheld"], 2);
    assert_eq!(audit["withheldBy"], json!({"label": 2}));
    assert_eq!(audit["withheldLabels"], json!(["HIV", "PSY"]));
    let text = h.all_logs();
    assert!(
        !text.contains("secret finding") && !text.contains("\"p\""),
        "no content or ids"
    );
    assert_eq!(h.metric("response_entries_withheld_total"), 2);

    // a buffered response loses its content-length (the proxy recomputes it)
    let id = h.send(0, Req::get("/fhir/Observation/p").bearer(&system));
    let (status, headers, body) = h.respond(0, id, 200, &obs("p", Some("PSY")).to_string());
    assert!(!headers.iter().any(|(n, _)| n == "content-length"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 403);
    assert_eq!(v["issue"][0]["code"], "forbidden");
    assert!(
        !v.to_string().contains("PSY"),
        "the denial does not say why"
    );
}

#[test]
fn the_consent_claim_lets_granted_labels_through() {
    let mut h = Harness::new(&config(json!({})), 1);
    let bundle = search(&[obs("p", Some("PSY")), obs("h", Some("HIV"))]);
    let psy = token(
        &h,
        Spec::new()
            .scope("system/*.rs")
            .claim("consent", json!(["PSY"])),
    );
    let (_, v) = exchange(&mut h, "/fhir/Observation?code=x", &psy, &bundle);
    assert_eq!(v["entry"][0]["resource"]["id"], "p");
    assert_eq!(v["entry"][1]["search"]["mode"], "outcome", "h withheld");
    assert_eq!(v["entry"].as_array().unwrap().len(), 2);
    assert_eq!(last_audit(&h)["withheldLabels"], json!(["HIV"]));
    // a token granting every configured label needs no response check at all
    let all = "BH ETH GDIS HIV MST PSY SCA SDV SEX STD SUD TBOO R V";
    let wide = token(
        &h,
        Spec::new()
            .scope("system/*.rs")
            .claim("consent", json!(all)),
    );
    let id = h.send(0, Req::get("/fhir/Observation?code=x").bearer(&wide));
    assert!(matches!(h.outcome(id), Outcome::Forwarded(_)));
    assert_eq!(
        last_audit(&h)["withheld"],
        0,
        "audited at the request: not buffered"
    );
}

#[test]
fn the_claim_name_and_labels_are_configurable_and_the_check_can_be_off() {
    let cfg =
        config(json!({"consent": {"claim": "sens", "labels": ["http://example.org/l|SECRET"]}}));
    let mut h = Harness::new(&cfg, 1);
    let tok = token(
        &h,
        Spec::new()
            .scope("system/*.rs")
            .claim("consent", json!("PSY")),
    );
    let mut secret = obs("s", None);
    secret["meta"] = json!({"security": [{"system": "http://example.org/l", "code": "SECRET"}]});
    let body = search(&[obs("p", Some("PSY")), secret.clone()]);
    let (_, v) = exchange(&mut h, "/fhir/Observation?code=x", &tok, &body);
    assert_eq!(
        v["entry"][0]["resource"]["id"], "p",
        "PSY is not configured here"
    );
    assert_eq!(v["entry"].as_array().unwrap().len(), 2);
    let granted = token(
        &h,
        Spec::new()
            .scope("system/*.rs")
            .claim("sens", json!(["SECRET"])),
    );
    let (status, _) = exchange(&mut h, "/fhir/Observation/s", &granted, &secret.to_string());
    assert_eq!(status, 200);

    let mut off = Harness::new(&config(json!({"consent": {"enforce": false}})), 1);
    let tok = token(&off, Spec::new().scope("system/*.rs"));
    let id = off.send(0, Req::get("/fhir/Observation/p").bearer(&tok));
    assert!(matches!(off.outcome(id), Outcome::Forwarded(_)));
    assert_eq!(
        off.logs_containing("fhirgate.audit ").len(),
        1,
        "not buffered"
    );
}

#[test]
fn responses_that_carry_no_resources_are_not_buffered() {
    let mut h = Harness::new(&config(json!({})), 1);
    let tok = token(&h, Spec::new().scope("system/*.cruds"));
    let del = h.run(
        Req::get("/fhir/Observation/p")
            .method("DELETE")
            .bearer(&tok),
    );
    assert!(matches!(del, Outcome::Forwarded(_)));
    assert_eq!(h.logs_containing("fhirgate.audit ").len(), 1);
}

#[test]
fn redact_allow_and_deny_rules_on_returned_resources() {
    let rules = json!([
        {"name": "clinicians-see-redacted", "phase": "response", "effect": "redact",
         "match": "token.scopes.exists(s, s.startsWith('user/'))",
         "expression": "has(resource.meta) && has(resource.meta.security) && resource.meta.security.exists(s, s.code == 'PSY')"},
        {"name": "emergency", "phase": "response", "effect": "allow",
         "expression": "'BTG' in claimValues(token.claims, 'purpose_of_use')"},
        {"name": "no-drafts", "phase": "response",
         "expression": "!has(resource.status) || resource.status != 'preliminary'",
         "message": "preliminary results are not released"}
    ]);
    let mut h = Harness::new(&config(json!({ "rules": rules })), 1);
    let user = token(&h, Spec::new().scope("user/*.rs"));
    let (status, v) = exchange(
        &mut h,
        "/fhir/Observation/p",
        &user,
        &obs("p", Some("PSY")).to_string(),
    );
    assert_eq!(status, 200, "a redacted read answers 200");
    assert_eq!(v["id"], "p");
    assert!(v.get("code").is_none() && v.get("subject").is_none());
    assert_eq!(
        v["meta"]["security"],
        json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED", "display": "redacted"}])
    );
    assert_eq!(last_audit(&h)["redacted"], 1);
    assert_eq!(h.metric("response_resources_redacted_total"), 1);

    let btg = token(
        &h,
        Spec::new()
            .scope("system/*.rs")
            .claim("purpose_of_use", json!("BTG")),
    );
    let (status, v) = exchange(
        &mut h,
        "/fhir/Observation/h",
        &btg,
        &obs("h", Some("HIV")).to_string(),
    );
    assert_eq!(
        (status, v["code"]["text"].as_str()),
        (200, Some("secret finding"))
    );

    let mut draft = obs("d", Some("HIV"));
    draft["status"] = json!("preliminary");
    let body = search(&[obs("a", None), draft.clone()]);
    let (_, v) = exchange(&mut h, "/fhir/Observation?code=x", &btg, &body);
    assert_eq!(
        v["entry"].as_array().unwrap().len(),
        2,
        "a + the outcome entry"
    );
    let audit = last_audit(&h);
    assert_eq!(audit["withheldBy"], json!({"rule": 1}), "deny beats allow");
    assert_eq!(audit["withheldRules"], json!(["no-drafts"]));
    let (status, v) = exchange(&mut h, "/fhir/Observation/d", &btg, &draft.to_string());
    assert_eq!(status, 403);
    assert_eq!(
        v["issue"][0]["diagnostics"],
        "preliminary results are not released"
    );
}

#[test]
fn allow_rules_never_open_another_patients_record() {
    let rules = json!([{"name": "allow-all", "phase": "response", "effect": "allow", "expression": "true"}]);
    let mut h = Harness::new(&config(json!({ "rules": rules })), 1);
    let tok = token(&h, Spec::new().scope("patient/*.rs").patient("123"));
    let mut theirs = obs("x", Some("PSY"));
    theirs["subject"] = json!({"reference": "Patient/999"});
    let (status, _) = exchange(&mut h, "/fhir/Observation/x", &tok, &theirs.to_string());
    assert_eq!(status, 403);
    let (status, _) = exchange(
        &mut h,
        "/fhir/Observation/p",
        &tok,
        &obs("p", Some("PSY")).to_string(),
    );
    assert_eq!(status, 200);
}

#[test]
fn writes_that_echo_a_labelled_resource_are_redacted_not_refused() {
    let mut h = Harness::new(&config(json!({})), 1);
    let tok = token(&h, Spec::new().scope("system/*.cruds"));
    let body = obs("p", Some("SUD")).to_string();
    let id = h.send(
        0,
        Req::get("/fhir/Observation/p")
            .method("PUT")
            .bearer(&tok)
            .header("content-type", "application/fhir+json")
            .body(body.as_bytes()),
    );
    assert!(matches!(h.outcome(id), Outcome::Forwarded(_)));
    let (status, _, out) = h.respond(0, id, 200, &body);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["meta"]["security"][0]["code"], "REDACTED");
    assert_eq!(last_audit(&h)["withheldLabels"], json!(["SUD"]));
}

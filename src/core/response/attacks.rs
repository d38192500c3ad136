//! Attacks on the response check (issue 12): an upstream that answers what it is told. Every
//! returned resource is checked whatever the request was; unknown shapes and ambiguous JSON
//! fail closed; what passes is forwarded exactly as it came.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};

use super::*;
use crate::consent::ConsentPolicy;
use crate::smart::ScopeSet;

fn obs(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "category": [{"coding": [{"code": "laboratory"}]}],
           "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}})
}

fn searchset(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(),
           "entry": entries.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>()})
}

fn check(scopes: &str, patient: Option<&str>) -> ResponseCheck {
    ResponseCheck::for_scopes(scopes, patient)
}

fn verdict(body: &Value, c: &ResponseCheck) -> ResponseVerdict {
    check_response(body.to_string().as_bytes(), c)
}

fn kept_ids(v: &ResponseVerdict) -> Vec<String> {
    let ResponseVerdict::Rewrite { body, .. } = v else {
        panic!("expected a rewrite, got {v:?}")
    };
    let b: Value = serde_json::from_slice(body).unwrap();
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

fn denied(v: &ResponseVerdict) -> (u16, String) {
    let ResponseVerdict::Deny(d) = v else {
        panic!("expected a denial, got {v:?}")
    };
    (d.status(), d.reason.clone())
}

#[test]
fn included_resources_of_types_without_a_scope_are_withheld() {
    // patient/Observation.rs only: an _include of the Patient and a Practitioner (shared data,
    // but no scope reads the type) must not reach the client.
    let mut b = searchset(vec![obs("a", "123")]);
    b["entry"].as_array_mut().unwrap().extend([
        json!({"resource": {"resourceType": "Patient", "id": "123"}, "search": {"mode": "include"}}),
        json!({"resource": {"resourceType": "Practitioner", "id": "dr"}, "search": {"mode": "include"}}),
    ]);
    let c = check("patient/Observation.rs", Some("123"));
    let v = verdict(&b, &c);
    assert_eq!(kept_ids(&v), ["a"]);
    // system/ tokens too: a type the scopes do not name is withheld.
    let c = check("system/Observation.rs", None);
    let mut b = searchset(vec![obs("a", "999")]);
    b["entry"].as_array_mut().unwrap().push(json!({"resource":
        {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/999"}},
        "search": {"mode": "include"}}));
    assert_eq!(kept_ids(&verdict(&b, &c)), ["a"]);
    // *.rs in system/ reads everything: nothing is withheld (and nothing is buffered).
    let all = check("system/*.rs", None);
    assert!(all.reads_everything());
    assert_eq!(verdict(&b, &all), ResponseVerdict::Pass);
}

#[test]
fn every_search_mode_is_checked() {
    let c = check("patient/*.rs", Some("123"));
    for mode in ["match", "include", "outcome", "other"] {
        let b = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": obs("mine", "123"), "search": {"mode": "match"}},
            {"resource": obs("theirs", "456"), "search": {"mode": mode}},
        ]});
        assert_eq!(kept_ids(&verdict(&b, &c)), ["mine"], "{mode}");
    }
}

#[test]
fn contained_resources_of_another_patient_withhold_their_container() {
    let c = check("patient/*.rs", Some("123"));
    let mut o = obs("a", "123");
    o["contained"] = json!([{"resourceType": "Patient", "id": "456"}]);
    assert_eq!(denied(&verdict(&o, &c)).0, 403);
    let b = searchset(vec![o, obs("b", "123")]);
    assert_eq!(kept_ids(&verdict(&b, &c)), ["b"]);
    // A contained Practitioner (shared) is fine.
    let mut o = obs("a", "123");
    o["contained"] = json!([{"resourceType": "Practitioner", "id": "p"}]);
    assert_eq!(verdict(&o, &c), ResponseVerdict::Pass);
}

#[test]
fn resources_nested_in_parameters_and_bundles_are_checked() {
    let c = check("patient/*.rs", Some("123"));
    let p = json!({"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": obs("x", "123")},
        {"name": "other", "part": [{"name": "deep", "resource": obs("y", "456")}]},
    ]});
    assert_eq!(denied(&verdict(&p, &c)).0, 403);
    let ok = json!({"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": obs("x", "123")}]});
    assert_eq!(verdict(&ok, &c), ResponseVerdict::Pass);
    // a Bundle inside an entry (e.g. a document) carrying another patient's resource
    let inner = searchset(vec![obs("z", "456")]);
    let b = searchset(vec![obs("a", "123"), inner]);
    let c = check("patient/*.rs user/Bundle.rs", Some("123"));
    assert_eq!(kept_ids(&verdict(&b, &c)), ["a"]);
    // the outcome of a batch entry is a resource too
    let b = json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "200", "outcome": {"resourceType": "OperationOutcome",
            "contained": [{"resourceType": "Patient", "id": "456"}]}}}]});
    let ResponseVerdict::Rewrite { body, withheld } =
        verdict(&b, &check("patient/*.rs", Some("123")))
    else {
        panic!()
    };
    assert_eq!(withheld, 1);
    assert!(!String::from_utf8(body).unwrap().contains("456"));
}

#[test]
fn nesting_deeper_than_the_limit_is_withheld() {
    let c = check("user/*.rs patient/Observation.rs", Some("123"));
    let c = ResponseCheck {
        scopes: ScopeSet::parse(["user/Bundle.rs", "user/Observation.rs"]),
        ..c
    };
    let mut r = obs("a", "123");
    for _ in 0..=MAX_DEPTH {
        r = searchset(vec![r]);
    }
    let b = searchset(vec![r]);
    let ResponseVerdict::Rewrite { withheld, .. } = verdict(&b, &c) else {
        panic!()
    };
    assert_eq!(withheld, 1);
}

#[test]
fn a_read_answered_with_another_resource_is_refused() {
    let mut c = check("user/Patient.rs", None);
    c.target = Some(Target {
        resource_type: "Patient".into(),
        id: "123".into(),
        read: true,
    });
    let other = json!({"resourceType": "Patient", "id": "456"});
    assert_eq!(
        denied(&verdict(&other, &c)),
        (403, "response.outside_scope".into())
    );
    let obs_instead = json!({"resourceType": "Observation", "id": "123"});
    assert_eq!(denied(&verdict(&obs_instead, &c)).0, 403);
    let same = json!({"resourceType": "Patient", "id": "123"});
    assert_eq!(verdict(&same, &c), ResponseVerdict::Pass);
    // patient-bound: Patient/123 answered with Patient/456 (the compartment would catch it too)
    let mut c = check("patient/Patient.rs", Some("123"));
    c.target = Some(Target {
        resource_type: "Patient".into(),
        id: "123".into(),
        read: true,
    });
    assert_eq!(denied(&verdict(&other, &c)).0, 403);
}

#[test]
fn operation_outputs_about_an_instance_are_not_patient_data_by_default() {
    let meta = json!({"resourceType": "Parameters", "parameter": [{"name": "return",
        "valueMeta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]}}]});
    // Observation/x/$meta under a patient scope: the answer cannot show whose it is.
    let mut c = check("patient/*.rs", Some("123"));
    c.target = Some(Target {
        resource_type: "Observation".into(),
        id: "x".into(),
        read: false,
    });
    assert_eq!(denied(&verdict(&meta, &c)).0, 403);
    // Patient/123/$meta of the patient itself is readable, but its labels are checked.
    c.target = Some(Target {
        resource_type: "Patient".into(),
        id: "123".into(),
        read: false,
    });
    assert_eq!(verdict(&meta, &c), ResponseVerdict::Pass);
    let consent = ConsentPolicy::default();
    let policy = ResponsePolicy {
        check: &c,
        consent: Some((&consent, 0)),
        rules: None,
        mode: LabelMode::Read,
    };
    let out = filter_response(meta.to_string().as_bytes(), &policy);
    assert_eq!(denied(&out.verdict).0, 403);
    assert_eq!(out.summary.withheld_labels, ["PSY"]);
}

#[test]
fn granular_scopes_bound_included_resources_too() {
    let c = check("patient/Observation.rs?category=laboratory", Some("123"));
    let mut vital = obs("v", "123");
    vital["category"] = json!([{"coding": [{"code": "vital-signs"}]}]);
    let b = searchset(vec![obs("lab", "123"), vital, obs("theirs", "456")]);
    assert_eq!(kept_ids(&verdict(&b, &c)), ["lab"]);
}

#[test]
fn unknown_shapes_fail_closed() {
    let c = check("patient/*.rs", Some("123"));
    let consent = ConsentPolicy::default();
    let cases = [
        json!({"resourceType": "Bundle", "type": "searchset", "entry": {"resource": obs("a", "456")}}),
        json!({"resourceType": "Bundle", "type": "searchset", "entry": ["x"]}),
        json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": "Observation/1"}]}),
        json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"id": "1"}}]}),
        json!({"resourceType": "Observation", "id": "a", "subject": "Patient/123"}),
        json!({"resourceType": "Observation", "id": "a", "subject": {"reference": ["Patient/123"]}}),
        json!({"resourceType": "Observation", "id": "a", "subject": [1]}),
        json!({"resourceType": "Observation", "id": "a", "subject": {"reference": "Patient/123"}, "contained": {"resourceType": "Patient"}}),
        json!({"resourceType": "Observation", "id": "a", "subject": {"reference": "Patient/123"}, "meta": {"security": {"code": "PSY"}}}),
        json!({"resourceType": "Observation", "id": "a", "subject": {"reference": "Patient/123"}, "meta": [1]}),
        json!({"resourceType": "Parameters", "parameter": {"name": "x"}}),
        json!({"resourceType": 5}),
        json!(["Observation"]),
    ];
    for body in cases {
        let policy = ResponsePolicy {
            check: &c,
            consent: Some((&consent, 0)),
            rules: None,
            mode: LabelMode::Read,
        };
        let out = filter_response(body.to_string().as_bytes(), &policy);
        assert_eq!(denied(&out.verdict).0, 502, "{body}");
    }
}

#[test]
fn duplicate_members_and_ambiguous_json_are_502() {
    let c = check("patient/*.rs", Some("123"));
    let bodies: [&str; 5] = [
        // the other reading sees Patient/456
        r#"{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/123"},"subject":{"reference":"Patient/456"}}"#,
        r#"{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/123","reference":"Patient/456"}}}]}"#,
        r#"{"resourceType":"Observation","resourceType":"Patient","id":"123"}"#,
        r#"{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/123"},"note":[{"text":"\ud800"}]}"#,
        r#"{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/123"}} trailing"#,
    ];
    for body in bodies {
        let (status, reason) = denied(&check_response(body.as_bytes(), &c));
        assert_eq!(status, 502, "{body}");
        assert!(
            reason == "response.ambiguous_json" || reason == "response.not_fhir_json",
            "{reason}"
        );
    }
}

#[test]
fn what_passes_is_forwarded_byte_for_byte_and_kept_entries_are_copied() {
    let c = check("patient/*.rs", Some("123"));
    // Nothing to withhold: Pass (the engine forwards the upstream's bytes untouched).
    let odd = "{ \"resourceType\" : \"Observation\",\n \"id\":\"a\", \"valueQuantity\": {\"value\": 1.50e0},\n \"subject\" : {\"reference\":\"Patient/123\"} }";
    assert_eq!(check_response(odd.as_bytes(), &c), ResponseVerdict::Pass);
    // Something withheld: the kept entry is the very text that was checked.
    let kept = "{\"resource\" : { \"resourceType\":\"Observation\" , \"id\":\"a\",\"valueQuantity\":{\"value\":1.50e0},\"subject\":{\"reference\":\"Patient/123\"}}}";
    let body = format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":2,\"entry\":[{kept},{}]}}",
        json!({"resource": obs("b", "456")})
    );
    let ResponseVerdict::Rewrite {
        body: out,
        withheld,
    } = check_response(body.as_bytes(), &c)
    else {
        panic!()
    };
    assert_eq!(withheld, 1);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(kept), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v.get("total").is_none());
    assert_eq!(v["entry"].as_array().unwrap().len(), 2);
    assert_eq!(v["entry"][1]["search"]["mode"], "outcome");
}

#[test]
fn a_write_or_delete_result_the_token_cannot_read_is_redacted_not_refused() {
    // The write happened: refusing its answer would only hide that; its content is withheld.
    let c = check("patient/Observation.cud", Some("123"));
    for mode in [LabelMode::Write, LabelMode::Off] {
        let policy = ResponsePolicy {
            check: &c,
            consent: None,
            rules: None,
            mode,
        };
        let out = filter_response(obs("a", "123").to_string().as_bytes(), &policy);
        let ResponseVerdict::Rewrite { body, .. } = out.verdict else {
            panic!("{mode:?}: {:?}", out.verdict)
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["meta"]["security"][0]["code"], "REDACTED");
        assert_eq!(v["id"], "a");
        assert!(v.get("subject").is_none());
    }
}

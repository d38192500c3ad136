use serde_json::{json, Value};

use super::*;

fn patient_check(id: &str) -> ResponseCheck {
    ResponseCheck {
        patient: Some(id.into()),
        granular: Vec::new(),
        rules: false,
    }
}

fn obs(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}})
}

#[test]
fn single_resource_in_the_compartment_passes() {
    let body = obs("o1", "123").to_string();
    assert_eq!(
        check_response(body.as_bytes(), &patient_check("123")),
        ResponseVerdict::Pass
    );
}

#[test]
fn single_resource_of_another_patient_is_refused() {
    let body = obs("o1", "999").to_string();
    let ResponseVerdict::Deny(d) = check_response(body.as_bytes(), &patient_check("123")) else {
        panic!()
    };
    assert_eq!(d.status(), 403);
    let body = json!({"resourceType": "Patient", "id": "999"}).to_string();
    assert!(matches!(
        check_response(body.as_bytes(), &patient_check("123")),
        ResponseVerdict::Deny(_)
    ));
}

#[test]
fn bundles_lose_foreign_entries_and_say_so() {
    let bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": 3, "entry": [
        {"resource": obs("a", "123"), "search": {"mode": "match"}},
        {"resource": obs("b", "999"), "search": {"mode": "match"}},
        {"resource": {"resourceType": "Patient", "id": "999"}, "search": {"mode": "include"}},
    ]});
    let ResponseVerdict::Rewrite { body, withheld } =
        check_response(bundle.to_string().as_bytes(), &patient_check("123"))
    else {
        panic!()
    };
    assert_eq!(withheld, 2);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v.get("total").is_none());
    let entries = v["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["resource"]["id"], "a");
    assert_eq!(entries[1]["search"]["mode"], "outcome");
    assert_eq!(entries[1]["resource"]["resourceType"], "OperationOutcome");
    assert!(!String::from_utf8_lossy(&body).contains("\"b\""));
}

#[test]
fn untouched_bundles_pass_unchanged() {
    let bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": 1,
        "entry": [{"resource": obs("a", "123")}]});
    assert_eq!(
        check_response(bundle.to_string().as_bytes(), &patient_check("123")),
        ResponseVerdict::Pass
    );
}

#[test]
fn non_json_and_unknown_shapes_fail_closed() {
    for body in [&b"<Patient/>"[..], b"", b"[1,2]", b"{\"id\": \"x\"}"] {
        let ResponseVerdict::Deny(d) = check_response(body, &patient_check("123")) else {
            panic!()
        };
        assert_eq!(d.status(), 502);
    }
}

#[test]
fn operation_outcomes_pass() {
    let body = json!({"resourceType": "OperationOutcome", "issue": []}).to_string();
    assert_eq!(
        check_response(body.as_bytes(), &patient_check("123")),
        ResponseVerdict::Pass
    );
}

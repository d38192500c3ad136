//! Query narrowing (token patient `123`): what is added, and what is never narrowed.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn added(path: &str) -> Option<(String, String)> {
    narrowing(&req("GET", path), "123").map(|n| (n.param, n.value))
}

fn pair(p: &str, v: &str) -> Option<(String, String)> {
    Some((p.to_string(), v.to_string()))
}

#[test]
fn each_type_gets_its_patient_parameter() {
    assert_eq!(added("/fhir/Observation"), pair("patient", "Patient/123"));
    assert_eq!(
        added("/fhir/Observation?code=x"),
        pair("patient", "Patient/123")
    );
    assert_eq!(
        added("/fhir/Observation/_search?code=x"),
        pair("patient", "Patient/123")
    );
    assert_eq!(added("/fhir/Patient?name=x"), pair("_id", "123"));
    assert_eq!(added("/fhir/AdverseEvent"), pair("subject", "Patient/123"));
}

#[test]
fn searches_naming_a_patient_or_not_type_searches_are_never_narrowed() {
    for path in [
        "/fhir/Observation?patient=999",
        "/fhir/Observation?subject:missing=true",
        "/fhir/Observation?subject.name=x",
        "/fhir/Observation?performer=Patient/999",
        "/fhir/Patient?_id=999",
        "/fhir/Practitioner",
        "/fhir/Observation/1",
        "/fhir/Encounter/1/Observation",
        "/fhir/_search",
    ] {
        assert_eq!(added(path), None, "{path}");
    }
}

#[test]
fn the_path_and_prefer_are_rewritten_exactly() {
    let n = Narrowing {
        param: "patient".into(),
        value: "Patient/123".into(),
    };
    assert_eq!(
        n.apply_to_path("/fhir/Observation"),
        "/fhir/Observation?patient=Patient/123"
    );
    assert_eq!(
        n.apply_to_path("/fhir/Observation?"),
        "/fhir/Observation?patient=Patient/123"
    );
    assert_eq!(
        n.apply_to_path("/fhir/Observation?code=x&"),
        "/fhir/Observation?code=x&patient=Patient/123"
    );
    assert_eq!(
        n.apply_to_path("/fhir/Observation?code=x"),
        "/fhir/Observation?code=x&patient=Patient/123"
    );
    assert_eq!(strict_prefer(None), "handling=strict");
    assert_eq!(
        strict_prefer(Some("return=minimal, Handling=lenient")),
        "return=minimal, handling=strict"
    );
}

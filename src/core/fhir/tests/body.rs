//! The one strict reading of a write's body.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn read(
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: &str,
) -> Result<Option<Value>, FhirError> {
    read_write_body(&ok(method, path), ct, body.as_bytes())
}

const JSON: Option<&str> = Some("application/fhir+json; charset=utf-8");

#[test]
fn duplicates_and_ambiguity_are_refused() {
    let dup = r#"{"resourceType":"Observation","subject":{"reference":"a","reference":"b"}}"#;
    assert_eq!(
        read("POST", "/fhir/Observation", JSON, dup),
        Err(FhirError::DuplicateMember)
    );
    assert_eq!(
        read("POST", "/fhir/Observation", None, dup),
        Err(FhirError::DuplicateMember)
    );
    let patch = r#"[{"op":"replace","op":"remove","path":"/subject"}]"#;
    assert_eq!(
        read(
            "PATCH",
            "/fhir/Observation/1",
            Some("application/json-patch+json"),
            patch
        ),
        Err(FhirError::DuplicateMember)
    );
    assert_eq!(
        read(
            "POST",
            "/fhir/Observation",
            JSON,
            r#"{"resourceType":"Observation"} 1"#
        ),
        Err(FhirError::InvalidJson)
    );
    // Not JSON by its type: not read here.
    assert_eq!(
        read(
            "POST",
            "/fhir/Observation",
            Some("application/fhir+xml"),
            "<x/>"
        ),
        Ok(None)
    );
    assert_eq!(read("POST", "/fhir/Observation", JSON, ""), Ok(None));
}

#[test]
fn the_body_must_name_the_urls_resource() {
    let put = |body: &str| read("PUT", "/fhir/Patient/123", JSON, body);
    assert!(put(r#"{"resourceType":"Patient","id":"123"}"#).is_ok());
    assert_eq!(
        put(r#"{"resourceType":"Patient","id":"456"}"#),
        Err(FhirError::BodyIdMismatch)
    );
    assert_eq!(
        put(r#"{"resourceType":"Patient"}"#),
        Err(FhirError::BodyIdMismatch)
    );
    assert_eq!(
        put(r#"{"resourceType":"Patient","id":123}"#),
        Err(FhirError::BodyIdMismatch)
    );
    assert_eq!(
        put(r#"{"resourceType":"Group","id":"123"}"#),
        Err(FhirError::BodyTypeMismatch)
    );
    assert_eq!(put("[]"), Err(FhirError::BodyTypeMismatch));
    let create = |body: &str| read("POST", "/fhir/Observation", JSON, body);
    assert!(create(r#"{"resourceType":"Observation"}"#).is_ok());
    assert_eq!(
        create(r#"{"resourceType":"Patient"}"#),
        Err(FhirError::BodyTypeMismatch)
    );
    // A conditional update names its resource by criteria: no id needed.
    assert!(read(
        "PUT",
        "/fhir/Patient?identifier=x",
        JSON,
        r#"{"resourceType":"Patient"}"#
    )
    .is_ok());
}

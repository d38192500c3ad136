//! Batch and transaction bundles.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use serde_json::{json, Value};

const JSON: Option<&str> = Some("application/fhir+json");

fn post_base(body: &Value) -> Result<FhirRequest, FhirError> {
    let bytes = serde_json::to_vec(body).unwrap();
    parse_request("POST", "/fhir", BASE, JSON, Some(&bytes))
}

fn entries_of(body: &Value) -> Result<Vec<(usize, FhirRequest)>, FhirError> {
    bundle_entries(&serde_json::to_vec(body).unwrap(), BASE)
}

fn bundle(entries: Value) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn entry(method: &str, url: &str) -> Value {
    json!({"request": {"method": method, "url": url}})
}

fn entry_with(method: &str, url: &str, resource: Value) -> Value {
    json!({"request": {"method": method, "url": url}, "resource": resource})
}

#[track_caller]
fn entry_error(body: &Value) -> (usize, FhirError) {
    match entries_of(body) {
        Err(FhirError::Entry { index, source }) => (index, *source),
        other => panic!("expected an entry error, got {other:?}"),
    }
}

#[test]
fn batch_and_transaction_from_bundle_type() {
    let r = post_base(&json!({"resourceType": "Bundle", "type": "batch"})).unwrap();
    assert_eq!(r.interaction, Interaction::Batch);
    assert_eq!(r.resource_type, None);
    let r = post_base(&json!({"resourceType": "Bundle", "type": "transaction"})).unwrap();
    assert_eq!(r.interaction, Interaction::Transaction);
    assert_eq!(r.to_cel_value()["interaction"], "transaction");
}

#[test]
fn container_rejections() {
    for body in [
        json!({"resourceType": "Bundle", "type": "document"}),
        json!({"resourceType": "Bundle", "type": "collection"}),
        json!({"resourceType": "Bundle"}),
        json!({"resourceType": "Patient", "type": "batch"}),
        json!({"type": "batch"}),
        json!([{"resourceType": "Bundle", "type": "batch"}]),
    ] {
        let e = post_base(&body).unwrap_err();
        assert!(matches!(e, FhirError::InvalidBundle(_)), "{body}: {e:?}");
        assert_eq!(e.status(), 400);
        assert_eq!(e.code(), "invalid_bundle");
    }
    let e = parse_request("POST", "/fhir", BASE, JSON, Some(b"{not json")).unwrap_err();
    assert!(matches!(e, FhirError::InvalidBundle(_)));
    let e = parse_request("POST", "/fhir", BASE, JSON, Some(b"\xff\xfe")).unwrap_err();
    assert_eq!(e, FhirError::NonUtf8);
    assert_eq!(
        parse_request("POST", "/fhir", BASE, JSON, None),
        Err(FhirError::BodyRequired)
    );
    let xml = b"<Bundle xmlns=\"http://hl7.org/fhir\"/>";
    let e = parse_request(
        "POST",
        "/fhir",
        BASE,
        Some("application/fhir+xml"),
        Some(xml),
    );
    assert_eq!(e, Err(FhirError::UnsupportedMediaType));
}

#[test]
fn container_media_types() {
    let body = serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "batch"})).unwrap();
    for ct in [
        None,
        Some("application/json"),
        Some("application/fhir+json; charset=utf-8; fhirVersion=4.0"),
        Some("application/json+fhir"),
    ] {
        let r = parse_request("POST", "/fhir", BASE, ct, Some(&body)).unwrap();
        assert_eq!(r.interaction, Interaction::Batch, "{ct:?}");
    }
}

#[test]
fn entries_become_requests() {
    let b = bundle(json!([
        entry("GET", "Patient/1"),
        entry_with(
            "POST",
            "Observation",
            json!({"resourceType": "Observation"})
        ),
        entry_with(
            "PUT",
            "Patient/1",
            json!({"resourceType": "Patient", "id": "1"})
        ),
        entry("DELETE", "Observation?code=x"),
        entry("GET", "Observation?patient=1,2"),
        entry("GET", "https://fhir.example.org/fhir/Patient/2"),
        entry("GET", "/fhir/Patient/3/_history/4"),
        entry("GET", "Patient/1/Observation"),
        entry_with(
            "POST",
            "Patient/1/$everything",
            json!({"resourceType": "Parameters"})
        ),
        entry_with("PATCH", "Patient/1", json!({"resourceType": "Binary"})),
        entry("HEAD", "metadata"),
        entry("GET", "http://h/fhir?_type=Patient"),
    ]));
    let list = entries_of(&b).unwrap();
    let got: Vec<(usize, Interaction, Option<&str>, Option<&str>)> = list
        .iter()
        .map(|(i, r)| {
            (
                *i,
                r.interaction,
                r.resource_type.as_deref(),
                r.id.as_deref(),
            )
        })
        .collect();
    use Interaction as I;
    assert_eq!(
        got,
        vec![
            (0, I::Read, Some("Patient"), Some("1")),
            (1, I::Create, Some("Observation"), None),
            (2, I::Update, Some("Patient"), Some("1")),
            (3, I::Delete, Some("Observation"), None),
            (4, I::SearchType, Some("Observation"), None),
            (5, I::Read, Some("Patient"), Some("2")),
            (6, I::Vread, Some("Patient"), Some("3")),
            (7, I::SearchCompartment, Some("Observation"), None),
            (8, I::Operation, Some("Patient"), Some("1")),
            (9, I::Patch, Some("Patient"), Some("1")),
            (10, I::Capabilities, None, None),
            (11, I::SearchSystem, None, None),
        ]
    );
    assert!(list[3].1.conditional);
    assert_eq!(values(&list[4].1, "patient"), ["1", "2"]);
}

#[test]
fn empty_or_missing_entries() {
    assert!(
        entries_of(&json!({"resourceType": "Bundle", "type": "batch"}))
            .unwrap()
            .is_empty()
    );
    assert!(entries_of(&bundle(json!([]))).unwrap().is_empty());
    let e = entries_of(&json!({"resourceType": "Bundle", "type": "batch", "entry": {}}));
    assert!(matches!(e, Err(FhirError::InvalidBundle(_))));
    let e = entries_of(&json!({"resourceType": "Bundle", "type": "searchset", "entry": []}));
    assert!(matches!(e, Err(FhirError::InvalidBundle(_))));
}

#[test]
fn entry_limits() {
    let at_limit: Vec<Value> = (0..MAX_BUNDLE_ENTRIES)
        .map(|_| entry("GET", "Patient/1"))
        .collect();
    assert_eq!(
        entries_of(&bundle(json!(at_limit))).unwrap().len(),
        MAX_BUNDLE_ENTRIES
    );
    let over: Vec<Value> = (0..=MAX_BUNDLE_ENTRIES)
        .map(|_| entry("GET", "Patient/1"))
        .collect();
    let e = entries_of(&bundle(json!(over))).unwrap_err();
    assert_eq!(e, FhirError::TooManyEntries);
    assert_eq!(e.status(), 413);
}

#[test]
fn entry_errors_name_the_entry() {
    let b = bundle(json!([
        entry("GET", "Patient/1"),
        entry("GET", "Patient/../Observation")
    ]));
    assert_eq!(entry_error(&b), (1, FhirError::DotSegment));

    let b = bundle(json!([
        entry("GET", "Patient/1"),
        entry("GET", "Patient%2F1")
    ]));
    assert_eq!(entry_error(&b), (1, FhirError::PercentInPath));

    let b = bundle(json!([entry("GET", "patient/1")]));
    assert_eq!(entry_error(&b), (0, FhirError::UnknownResourceType));

    let b = bundle(json!([entry("FOO", "Patient/1")]));
    assert_eq!(entry_error(&b), (0, FhirError::MethodNotAllowed));
    let b = bundle(json!([entry("get", "Patient/1")]));
    assert_eq!(entry_error(&b), (0, FhirError::MethodNotAllowed));

    let b = bundle(json!([entry("GET", "Patient/1;x")]));
    assert_eq!(entry_error(&b), (0, FhirError::MatrixParam));
    let b = bundle(json!([entry("GET", "Patient/1#x")]));
    assert_eq!(entry_error(&b), (0, FhirError::Fragment));
    let b = bundle(json!([entry("GET", "Patient\\1")]));
    assert_eq!(entry_error(&b), (0, FhirError::Backslash));
    let b = bundle(json!([entry("GET", "Patient//1")]));
    assert_eq!(entry_error(&b), (0, FhirError::EmptySegment));
}

#[test]
fn malformed_entries() {
    let cases = [
        json!({"resource": {"resourceType": "Patient"}}),
        json!({"request": {"url": "Patient/1"}}),
        json!({"request": {"method": "GET"}}),
        json!({"request": {"method": 1, "url": "Patient/1"}}),
        json!({"request": "GET Patient/1"}),
        json!("GET Patient/1"),
    ];
    for (i, c) in cases.iter().enumerate() {
        let (index, e) = entry_error(&bundle(json!([entry("GET", "Patient/1"), c])));
        assert_eq!(index, 1, "case {i}");
        assert!(matches!(e, FhirError::InvalidBundle(_)), "case {i}: {e:?}");
    }
}

#[test]
fn entry_urls_outside_the_base() {
    for url in [
        "https://h/other/Patient/1",
        "/other/Patient/1",
        "/Patient/1",
        "https://h",
        "ftp://h/fhir/Patient/1",
    ] {
        let (_, e) = entry_error(&bundle(json!([entry("GET", url)])));
        assert!(matches!(e, FhirError::InvalidBundle(_)), "{url}: {e:?}");
        assert_eq!(e.status(), 400, "{url}");
    }
}

#[test]
fn nested_batches_are_rejected() {
    let inner = json!({"resourceType": "Bundle", "type": "batch", "entry": []});
    for b in [
        bundle(json!([entry_with("POST", "", inner.clone())])),
        bundle(json!([entry_with("POST", "/fhir", inner.clone())])),
        bundle(json!([entry_with("POST", "https://h/fhir", inner.clone())])),
        bundle(json!([entry_with("POST", "Bundle", inner.clone())])),
        bundle(json!([entry_with(
            "PUT",
            "Bundle/1",
            json!({"resourceType": "Bundle", "id": "1", "type": "transaction"})
        )])),
        bundle(json!([entry_with(
            "POST",
            "Patient/1/$everything",
            inner.clone()
        )])),
    ] {
        let (_, e) = entry_error(&b);
        assert_eq!(
            e,
            FhirError::InvalidBundle("nested batch/transaction in an entry"),
            "{b}"
        );
    }
    // Storing a document Bundle is an ordinary create.
    let b = bundle(json!([entry_with(
        "POST",
        "Bundle",
        json!({"resourceType": "Bundle", "type": "document"})
    )]));
    assert_eq!(
        entries_of(&b).unwrap()[0].1.interaction,
        Interaction::Create
    );
}

#[test]
fn resource_must_match_the_url() {
    let b = bundle(json!([entry_with(
        "POST",
        "Observation",
        json!({"resourceType": "Patient"})
    )]));
    assert!(matches!(entry_error(&b).1, FhirError::InvalidBundle(_)));
    let b = bundle(json!([entry_with(
        "PUT",
        "Patient/1",
        json!({"resourceType": "Patient", "id": "2"})
    )]));
    assert!(matches!(entry_error(&b).1, FhirError::InvalidBundle(_)));
    let b = bundle(json!([entry_with(
        "PUT",
        "Patient/1",
        json!({"resourceType": "Patient", "id": 1})
    )]));
    assert!(matches!(entry_error(&b).1, FhirError::InvalidBundle(_)));
    let b = bundle(json!([entry_with("PUT", "Patient/1", json!({"id": "1"}))]));
    assert!(matches!(entry_error(&b).1, FhirError::InvalidBundle(_)));
    let b = bundle(json!([entry("POST", "Observation")]));
    assert!(matches!(entry_error(&b).1, FhirError::InvalidBundle(_)));
    let b = bundle(json!([entry("PUT", "Observation?code=x")]));
    assert!(matches!(entry_error(&b).1, FhirError::InvalidBundle(_)));
    // A conditional update with a matching resource is fine.
    let b = bundle(json!([entry_with(
        "PUT",
        "Observation?code=x",
        json!({"resourceType": "Observation"})
    )]));
    let list = entries_of(&b).unwrap();
    assert!(list[0].1.conditional);
}

#[test]
fn post_search_entries_are_rejected() {
    let b = bundle(json!([entry("POST", "Observation/_search")]));
    assert!(matches!(entry_error(&b).1, FhirError::InvalidBundle(_)));
    let b = bundle(json!([entry("GET", "Observation/_search?code=x")]));
    assert_eq!(
        entries_of(&b).unwrap()[0].1.interaction,
        Interaction::SearchType
    );
}

#[test]
fn if_none_exist_in_entries() {
    let b = bundle(json!([{
        "request": {"method": "POST", "url": "Observation", "ifNoneExist": "patient=Patient/9&code=x"},
        "resource": {"resourceType": "Observation"}
    }]));
    let list = entries_of(&b).unwrap();
    let r = &list[0].1;
    assert!(r.conditional);
    assert_eq!(values(r, "patient"), ["Patient/9"]);
    let b = bundle(json!([{
        "request": {"method": "POST", "url": "Observation", "ifNoneExist": 3},
        "resource": {"resourceType": "Observation"}
    }]));
    assert!(matches!(entry_error(&b).1, FhirError::InvalidBundle(_)));
}

#[test]
fn root_base_entries() {
    let b = serde_json::to_vec(&bundle(json!([
        entry("GET", "Patient/1"),
        entry("GET", "/Patient/2")
    ])))
    .unwrap();
    let list = bundle_entries(&b, "").unwrap();
    assert_eq!(list[0].1.id.as_deref(), Some("1"));
    assert_eq!(list[1].1.id.as_deref(), Some("2"));
}

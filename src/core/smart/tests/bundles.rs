//! Authorizing batch/transaction entries one by one (as the engine does).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::fhir::{bundle_entries, FhirError};
use serde_json::json;

/// Index of the first denied entry, or `None` when every entry is allowed.
fn first_denied(
    sc: &str,
    bundle: &serde_json::Value,
    patient: Option<&str>,
) -> Option<(usize, SmartDenial)> {
    let bytes = serde_json::to_vec(bundle).unwrap();
    let set = scopes(sc);
    bundle_entries(&bytes, "/fhir")
        .unwrap()
        .into_iter()
        .find_map(|(i, r)| authorize(&set, &r, patient).err().map(|d| (i, d)))
}

fn tx(entries: serde_json::Value) -> serde_json::Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[test]
fn all_entries_allowed() {
    let b = tx(json!([
        {"request": {"method": "GET", "url": "Observation?patient=123"}},
        {"request": {"method": "GET", "url": "Patient/123"}},
        {"request": {"method": "POST", "url": "Observation"}, "resource": {"resourceType": "Observation"}},
    ]));
    assert_eq!(
        first_denied("patient/Observation.crs patient/Patient.r", &b, P),
        None
    );
}

#[test]
fn denied_entry_is_named() {
    let b = tx(json!([
        {"request": {"method": "GET", "url": "Observation?patient=123"}},
        {"request": {"method": "GET", "url": "Patient/456"}},
        {"request": {"method": "GET", "url": "Observation?patient=456"}},
    ]));
    let (index, d) = first_denied("patient/Observation.rs patient/Patient.r", &b, P).unwrap();
    assert_eq!(index, 1);
    assert_eq!(
        d,
        SmartDenial::Compartment {
            reason: "other_patient"
        }
    );

    let b = tx(json!([
        {"request": {"method": "GET", "url": "Observation?patient=123"}},
        {"request": {"method": "DELETE", "url": "Observation/o1"}},
    ]));
    let (index, d) = first_denied("patient/Observation.rs", &b, P).unwrap();
    assert_eq!(index, 1);
    assert_eq!(
        d,
        SmartDenial::InsufficientScope {
            required: "patient/Observation.d".into()
        }
    );
}

#[test]
fn conditional_entries_are_checked() {
    let b = tx(json!([{
        "request": {"method": "POST", "url": "Observation", "ifNoneExist": "patient=456"},
        "resource": {"resourceType": "Observation"}
    }]));
    let (index, d) = first_denied("patient/Observation.cs", &b, P).unwrap();
    assert_eq!(index, 0);
    assert_eq!(d.code(), "patient_compartment");
}

#[test]
fn malformed_entries_never_reach_authorization() {
    let b = tx(json!([
        {"request": {"method": "GET", "url": "Observation?patient=123"}},
        {"request": {"method": "GET", "url": "Patient/../Patient/456"}},
    ]));
    let e = bundle_entries(&serde_json::to_vec(&b).unwrap(), "/fhir").unwrap_err();
    assert_eq!(e.entry_index(), Some(1));
    assert_eq!(e.code(), FhirError::DotSegment.code());
}

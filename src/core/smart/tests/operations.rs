//! The operations table.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[test]
fn patient_everything() {
    let g = allow("patient/*.rs", "GET", "/fhir/Patient/123/$everything", P);
    assert!(g.patient_constrained);
    assert!(!g.needs_response_check);
    allow("patient/*.read", "POST", "/fhir/Patient/123/$everything", P);
    // It returns every type: per-type scopes are not enough.
    let d = deny(
        "patient/Patient.rs patient/Observation.rs",
        "GET",
        "/fhir/Patient/123/$everything",
        P,
    );
    assert_eq!(
        d,
        SmartDenial::InsufficientScope {
            required: "patient/*.rs".into()
        }
    );
    assert_eq!(
        required("patient/*.r", "GET", "/fhir/Patient/123/$everything", P),
        "patient/*.rs"
    );
    // Another patient.
    assert_eq!(
        compartment_denial("patient/*.rs", "GET", "/fhir/Patient/456/$everything"),
        "other_patient"
    );
    allow("user/*.rs", "GET", "/fhir/Patient/456/$everything", P);
    // Type level: every patient.
    assert_eq!(
        compartment_denial("patient/*.rs", "GET", "/fhir/Patient/$everything"),
        "type_wide_access"
    );
    allow("user/*.rs", "GET", "/fhir/Patient/$everything", None);
    // System-level `$everything` is no standard operation: unknown, wide scopes only.
    assert_eq!(
        required("patient/*.rs", "GET", "/fhir/$everything", P),
        "user/*.cruds"
    );
}

#[test]
fn encounter_everything_needs_response_check() {
    let g = allow("patient/*.rs", "GET", "/fhir/Encounter/e1/$everything", P);
    assert!(g.needs_response_check);
}

#[test]
fn export_is_system_only() {
    for path in [
        "/fhir/$export",
        "/fhir/Patient/$export",
        "/fhir/Group/g1/$export",
    ] {
        assert_eq!(required("user/*.cruds", "GET", path, None), "system/*.r");
        assert_eq!(required("patient/*.cruds", "GET", path, P), "system/*.r");
        let g = allow("system/*.r", "GET", path, None);
        assert!(!g.patient_constrained);
        allow("system/*.read", "POST", path, None);
    }
    assert_eq!(
        required("system/Patient.rs", "GET", "/fhir/$export", None),
        "system/*.r"
    );
}

#[test]
fn validate() {
    // Validating a posted resource stores nothing: c on the type, no compartment rule.
    let g = allow(
        "patient/Observation.c",
        "POST",
        "/fhir/Observation/$validate",
        P,
    );
    assert!(g.patient_constrained && !g.needs_request_check && !g.needs_response_check);
    assert_eq!(
        required(
            "patient/Observation.r",
            "POST",
            "/fhir/Observation/$validate",
            P
        ),
        "patient/Observation.c"
    );
    assert_eq!(
        required("user/Observation.c", "POST", "/fhir/$validate", None),
        "user/*.c"
    );
    // Instance level reads the stored resource.
    let g = allow(
        "patient/Observation.r",
        "GET",
        "/fhir/Observation/o1/$validate",
        P,
    );
    assert!(g.needs_response_check);
    assert_eq!(
        compartment_denial("patient/Patient.r", "GET", "/fhir/Patient/456/$validate"),
        "other_patient"
    );
}

#[test]
fn meta() {
    allow("patient/Patient.r", "GET", "/fhir/Patient/123/$meta", P);
    assert_eq!(
        compartment_denial("patient/Patient.r", "GET", "/fhir/Patient/456/$meta"),
        "other_patient"
    );
    assert_eq!(
        compartment_denial("patient/Observation.s", "GET", "/fhir/Observation/$meta"),
        "type_wide_access"
    );
    allow("patient/ValueSet.s", "GET", "/fhir/ValueSet/$meta", P);
    assert_eq!(
        required("user/Observation.s", "GET", "/fhir/$meta", None),
        "user/*.s"
    );
    allow(
        "patient/Patient.u",
        "POST",
        "/fhir/Patient/123/$meta-add",
        P,
    );
    allow(
        "patient/Patient.u",
        "POST",
        "/fhir/Patient/123/$meta-delete",
        P,
    );
    assert_eq!(
        compartment_denial("patient/Patient.u", "POST", "/fhir/Patient/456/$meta-add"),
        "other_patient"
    );
    assert_eq!(
        compartment_denial(
            "patient/Observation.u",
            "POST",
            "/fhir/Observation/o1/$meta-add"
        ),
        "instance_write_unverifiable"
    );
    assert_eq!(
        required(
            "patient/Patient.r",
            "POST",
            "/fhir/Patient/123/$meta-add",
            P
        ),
        "patient/Patient.u"
    );
}

#[test]
fn lastn_and_stats_are_searches() {
    for op in ["$lastn", "$stats"] {
        let path = format!("/fhir/Observation/{op}?patient=123&code=x");
        allow("patient/Observation.s", "GET", &path, P);
        let path = format!("/fhir/Observation/{op}?code=x");
        assert_eq!(
            compartment_denial("patient/Observation.s", "GET", &path),
            "search_not_constrained_to_patient"
        );
        allow("user/Observation.s", "GET", &path, None);
    }
}

#[test]
fn match_returns_other_patients() {
    assert_eq!(
        compartment_denial("patient/Patient.rs", "POST", "/fhir/Patient/$match"),
        "type_wide_access"
    );
    allow("user/Patient.s", "POST", "/fhir/Patient/$match", None);
}

#[test]
fn document() {
    let g = allow("patient/*.r", "GET", "/fhir/Composition/c1/$document", P);
    assert!(g.needs_response_check);
    assert_eq!(
        required(
            "patient/Composition.r",
            "GET",
            "/fhir/Composition/c1/$document",
            P
        ),
        "patient/*.r"
    );
}

#[test]
fn terminology_operations() {
    let g = allow(
        "patient/ValueSet.r",
        "GET",
        "/fhir/ValueSet/$expand?url=x",
        P,
    );
    assert!(!g.needs_response_check);
    allow("patient/ValueSet.r", "GET", "/fhir/ValueSet/vs1/$expand", P);
    allow("user/ValueSet.r", "GET", "/fhir/$expand?url=x", None);
    allow(
        "patient/CodeSystem.r",
        "GET",
        "/fhir/CodeSystem/$lookup?code=x",
        P,
    );
    allow(
        "patient/CodeSystem.r",
        "GET",
        "/fhir/CodeSystem/$validate-code?code=x",
        P,
    );
    allow(
        "patient/ConceptMap.r",
        "GET",
        "/fhir/ConceptMap/$translate?code=x",
        P,
    );
    assert_eq!(
        required("", "GET", "/fhir/$lookup", None),
        "user/CodeSystem.r"
    );
    assert_eq!(
        required("", "GET", "/fhir/$closure", None),
        "user/ConceptMap.r"
    );
    // On a non-terminology type it is an unknown operation.
    assert_eq!(
        required("patient/*.cruds", "GET", "/fhir/Observation/$expand", P),
        "user/*.cruds"
    );
}

#[test]
fn unknown_operations_need_wide_non_patient_scopes() {
    for path in [
        "/fhir/$purge",
        "/fhir/$graphql?query=x",
        "/fhir/Patient/123/$purge",
        "/fhir/Observation/$reindex",
        "/fhir/$process-message",
    ] {
        assert_eq!(
            required("patient/*.cruds", "POST", path, P),
            "user/*.cruds",
            "{path}"
        );
        assert_eq!(
            required("user/*.rs", "POST", path, None),
            "user/*.cruds",
            "{path}"
        );
        let g = allow("user/*.cruds", "POST", path, None);
        assert!(!g.patient_constrained);
        allow("system/*.*", "POST", path, None);
    }
}

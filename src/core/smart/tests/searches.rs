//! Patient-scoped searches (token patient `123`): what constrains a search to the patient.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::compartment::reason;
use super::*;

const UNCONSTRAINED: &str = "search_not_constrained_to_patient";

fn denied_search(sc: &str, path: &str) -> &'static str {
    compartment_denial(sc, "GET", path)
}

#[test]
fn constrained_type_searches_are_allowed() {
    for query in [
        "patient=123",
        "patient=Patient/123",
        "patient=http://fhir.example.org/fhir/Patient/123",
        "patient=https://h/Patient/123",
        "patient:Patient=123",
        "subject=Patient/123",
        "subject:Patient=123",
        "subject:Patient=Patient/123",
        "performer=Patient/123",
        "patient=123&patient=123",
        "patient=123,123",
        "patient=123&code=x&date=ge2020",
        "patient=123&subject=Patient/456",
        "patient=123&subject.name=x",
        "patient=123&patient:missing=false",
    ] {
        let g = allow(
            "patient/Observation.rs",
            "GET",
            &format!("/fhir/Observation?{query}"),
            P,
        );
        assert!(g.patient_constrained && !g.needs_response_check, "{query}");
    }
    allow(
        "patient/Encounter.s",
        "GET",
        "/fhir/Encounter?patient=123",
        P,
    );
    allow(
        "patient/Condition.s",
        "GET",
        "/fhir/Condition?asserter=Patient/123",
        P,
    );
    allow(
        "patient/MedicationRequest.s",
        "GET",
        "/fhir/MedicationRequest?subject=Patient/123",
        P,
    );
    allow(
        "patient/MedicationRequest.s",
        "GET",
        "/fhir/MedicationRequest?patient=123",
        P,
    );
    allow(
        "patient/Group.s",
        "GET",
        "/fhir/Group?member=Patient/123",
        P,
    );
    allow("patient/Task.s", "GET", "/fhir/Task?patient=123", P);
    allow(
        "patient/AuditEvent.s",
        "GET",
        "/fhir/AuditEvent?patient=123",
        P,
    );
}

#[test]
fn unconstrained_type_searches_are_denied() {
    for query in [
        "",
        "code=x",
        "patient=456",
        "patient=123,456",
        "patient=456,123",
        "patient=123&patient=456",
        "patient=",
        "patient=Patient/1234",
        "patient=Patient/12",
        "patient=xPatient/123",
        "patient=Patient/123/_history/1",
        "patient=http:///Patient/123",
        "patient=ftp://h/Patient/123",
        "patient=urn:x:Patient/123",
        "patient=Group/123",
        "subject=123",
        "performer=123",
        "subject=Group/123",
        "_id=123",
        "PATIENT=123",
        "Patient=123",
        "patient%20=123",
        "subject.name=x",
        "patient.identifier=x",
        "subject:Patient.name=x",
        "patient:missing=false",
        "patient:not=456",
        "subject:not=Patient/456",
        "subject:below=Patient/123",
        "subject:above=Patient/123",
        "subject:identifier=x|123",
        "patient:identifier=x|123",
        "patient:Group=123",
        "subject:Group=Patient/123",
        "subject:text=Patient/123",
    ] {
        assert_eq!(
            denied_search(
                "patient/Observation.rs",
                &format!("/fhir/Observation?{query}")
            ),
            UNCONSTRAINED,
            "{query}"
        );
    }
}

#[test]
fn patient_type_search_needs_id() {
    let g = allow("patient/Patient.rs", "GET", "/fhir/Patient?_id=123", P);
    assert!(!g.needs_response_check);
    allow(
        "patient/Patient.rs",
        "GET",
        "/fhir/Patient?_id=123&name=x",
        P,
    );
    for query in [
        "",
        "_id=456",
        "_id=123,456",
        "_id=123&_id=456",
        "_id=Patient/123",
        "name=x",
        "link=Patient/123",
        "_id:not=456",
        "identifier=x",
    ] {
        assert_eq!(
            denied_search("patient/Patient.rs", &format!("/fhir/Patient?{query}")),
            UNCONSTRAINED,
            "{query}"
        );
    }
}

#[test]
fn reverse_chains_and_named_queries_are_denied() {
    for path in [
        "/fhir/Patient?_id=123&_has:Observation:patient:code=x",
        "/fhir/Observation?patient=123&_has:Provenance:target:agent=Practitioner/1",
        "/fhir/Practitioner?_has:Observation:performer:patient=456",
        "/fhir/Patient/123/Observation?_has:Provenance:target:agent=x",
    ] {
        assert_eq!(
            denied_search("patient/*.rs", path),
            reason::REVERSE_CHAIN,
            "{path}"
        );
    }
    assert_eq!(
        denied_search("patient/*.rs", "/fhir/Observation?patient=123&_query=all"),
        reason::NAMED_QUERY
    );
    assert_eq!(
        denied_search("patient/*.rs", "/fhir/Patient/123/Observation?_query=all"),
        reason::NAMED_QUERY
    );
}

#[test]
fn includes_need_a_response_check() {
    for query in [
        "_include=Observation:performer",
        "_revinclude=Provenance:target",
        "_include:iterate=Observation:subject",
    ] {
        let g = allow(
            "patient/Observation.rs",
            "GET",
            &format!("/fhir/Observation?patient=123&{query}"),
            P,
        );
        assert!(g.needs_response_check, "{query}");
    }
    let g = allow(
        "patient/Patient.rs",
        "GET",
        "/fhir/Patient?_id=123&_revinclude=Observation:patient",
        P,
    );
    assert!(g.needs_response_check);
    let g = allow(
        "patient/Practitioner.rs",
        "GET",
        "/fhir/Practitioner?_revinclude=Observation:performer",
        P,
    );
    assert!(g.needs_response_check);
}

#[test]
fn form_searches_are_checked_with_their_body() {
    let sc = scopes("patient/Observation.rs");
    let form = Some("application/x-www-form-urlencoded");
    let r = parse_request(
        "POST",
        "/fhir/Observation/_search",
        "/fhir",
        form,
        Some(b"patient=123"),
    )
    .unwrap();
    assert!(authorize(&sc, &r, P).is_ok());
    let r = parse_request(
        "POST",
        "/fhir/Observation/_search?patient=123",
        "/fhir",
        form,
        Some(b"patient=456"),
    )
    .unwrap();
    assert!(matches!(
        authorize(&sc, &r, P),
        Err(SmartDenial::Compartment { .. })
    ));
    let r = parse_request(
        "POST",
        "/fhir/Observation/_search",
        "/fhir",
        form,
        Some(b"code=x"),
    )
    .unwrap();
    assert!(matches!(
        authorize(&sc, &r, P),
        Err(SmartDenial::Compartment { .. })
    ));
}

#[test]
fn compartment_searches() {
    let g = allow(
        "patient/Observation.rs",
        "GET",
        "/fhir/Patient/123/Observation?code=x",
        P,
    );
    assert!(g.patient_constrained && !g.needs_response_check);
    allow("patient/*.s", "GET", "/fhir/Patient/123/*", P);
    assert_eq!(
        compartment_denial(
            "patient/Observation.rs",
            "GET",
            "/fhir/Patient/456/Observation"
        ),
        "other_patient"
    );
    assert_eq!(
        compartment_denial("patient/*.s", "GET", "/fhir/Patient/456/*"),
        "other_patient"
    );
    let g = allow(
        "patient/Observation.rs",
        "GET",
        "/fhir/Patient/123/Observation?_include=Observation:performer",
        P,
    );
    assert!(g.needs_response_check);
    // Patients linked to the patient are other patients: check the response.
    let g = allow("patient/Patient.rs", "GET", "/fhir/Patient/123/Patient", P);
    assert!(g.needs_response_check);
    // Another compartment says nothing about the patient.
    assert_eq!(
        denied_search("patient/Observation.rs", "/fhir/Encounter/e1/Observation"),
        UNCONSTRAINED
    );
    assert_eq!(
        denied_search("patient/*.s", "/fhir/Practitioner/p1/*"),
        UNCONSTRAINED
    );
    allow(
        "patient/Observation.rs",
        "GET",
        "/fhir/Encounter/e1/Observation?patient=123",
        P,
    );
}

#[test]
fn member_types_without_search_parameters_cannot_be_searched() {
    for path in [
        "/fhir/Bundle?x=1",
        "/fhir/Binary?x=1",
        "/fhir/Linkage",
        "/fhir/Subscription",
    ] {
        assert_eq!(denied_search("patient/*.rs", path), UNCONSTRAINED, "{path}");
    }
}

//! The patient compartment under `patient/` scopes (token patient `123`): instances, writes,
//! type- and system-wide access, the type table.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::compartment::{check, reason, search};
use super::super::need::Rule;
use super::super::table;
use super::*;

const UNCONSTRAINED: &str = "search_not_constrained_to_patient";

#[test]
fn patient_instance_access() {
    for (method, sc) in [
        ("GET", "patient/Patient.r"),
        ("PUT", "patient/Patient.u"),
        ("PATCH", "patient/Patient.u"),
        ("DELETE", "patient/Patient.d"),
    ] {
        let g = allow(sc, method, "/fhir/Patient/123", P);
        assert!(g.patient_constrained);
        assert!(!g.needs_response_check);
        assert_eq!(
            compartment_denial(sc, method, "/fhir/Patient/456"),
            "other_patient",
            "{method}"
        );
        assert_eq!(
            compartment_denial(sc, method, "/fhir/Patient/1234"),
            "other_patient",
            "{method}"
        );
        assert_eq!(
            compartment_denial(sc, method, "/fhir/Patient/12"),
            "other_patient",
            "{method}"
        );
    }
    allow(
        "patient/Patient.r",
        "GET",
        "/fhir/Patient/123/_history/2",
        P,
    );
    allow("patient/Patient.r", "GET", "/fhir/Patient/123/_history", P);
    assert_eq!(
        compartment_denial("patient/Patient.r", "GET", "/fhir/Patient/456/_history/2"),
        "other_patient"
    );
    assert_eq!(
        compartment_denial("patient/Patient.r", "GET", "/fhir/Patient/456/_history"),
        "other_patient"
    );
    assert_eq!(
        compartment_denial("patient/Patient.c", "POST", "/fhir/Patient"),
        "create_patient"
    );
}

#[test]
fn member_instance_reads_need_a_response_check() {
    for path in [
        "/fhir/Observation/abc",
        "/fhir/Observation/abc/_history/1",
        "/fhir/Observation/abc/_history",
    ] {
        let g = allow("patient/Observation.r", "GET", path, P);
        assert!(
            g.patient_constrained && g.needs_response_check && !g.needs_request_check,
            "{path}"
        );
    }
    let g = allow("patient/Binary.r", "GET", "/fhir/Binary/b1", P);
    assert!(g.needs_response_check);
}

#[test]
fn member_instance_writes_are_unverifiable() {
    for (method, sc) in [
        ("PUT", "patient/Observation.u"),
        ("PATCH", "patient/Observation.u"),
        ("DELETE", "patient/Observation.d"),
    ] {
        assert_eq!(
            compartment_denial(sc, method, "/fhir/Observation/abc"),
            "instance_write_unverifiable"
        );
    }
    let g = allow("patient/Observation.c", "POST", "/fhir/Observation", P);
    assert!(g.needs_request_check && !g.needs_response_check);
}

#[test]
fn shared_types_are_readable_not_writable() {
    for path in [
        "/fhir/Practitioner/1",
        "/fhir/Organization/o",
        "/fhir/Medication/m",
        "/fhir/ValueSet/v",
    ] {
        let g = allow("patient/*.rs", "GET", path, P);
        assert!(g.patient_constrained && !g.needs_response_check, "{path}");
    }
    for path in [
        "/fhir/Practitioner?name=x",
        "/fhir/Location?address=x",
        "/fhir/Practitioner/_history",
    ] {
        allow("patient/*.rs", "GET", path, P);
    }
    assert_eq!(
        compartment_denial("patient/*.cruds", "POST", "/fhir/Practitioner"),
        "write_outside_compartment"
    );
    assert_eq!(
        compartment_denial("patient/*.cruds", "PUT", "/fhir/Practitioner/1"),
        "write_outside_compartment"
    );
    assert_eq!(
        compartment_denial("patient/*.cruds", "DELETE", "/fhir/Organization/1"),
        "write_outside_compartment"
    );
    assert_eq!(
        compartment_denial("patient/*.cruds", "PUT", "/fhir/Practitioner?name=x"),
        "write_outside_compartment"
    );
}

#[test]
fn unconstrainable_type_and_system_access() {
    assert_eq!(
        compartment_denial(
            "patient/Observation.rs",
            "GET",
            "/fhir/Observation/_history"
        ),
        "type_wide_access"
    );
    assert_eq!(
        compartment_denial("patient/Patient.rs", "GET", "/fhir/Patient/_history"),
        "type_wide_access"
    );
    assert_eq!(
        compartment_denial("patient/*.rs", "GET", "/fhir?_type=Observation&patient=123"),
        "system_wide_access"
    );
    assert_eq!(
        compartment_denial("patient/*.rs", "GET", "/fhir/_search?patient=123"),
        "system_wide_access"
    );
    assert_eq!(
        compartment_denial("patient/*.rs", "GET", "/fhir/_history"),
        "system_wide_access"
    );
}

#[test]
fn conditional_writes() {
    let g = allow(
        "patient/Observation.us",
        "PUT",
        "/fhir/Observation?patient=123&code=x",
        P,
    );
    assert!(g.needs_request_check);
    assert_eq!(
        compartment_denial("patient/Observation.us", "PUT", "/fhir/Observation?code=x"),
        UNCONSTRAINED
    );
    assert_eq!(
        compartment_denial(
            "patient/Observation.us",
            "PUT",
            "/fhir/Observation?patient=456"
        ),
        UNCONSTRAINED
    );
    let g = allow(
        "patient/Observation.ds",
        "DELETE",
        "/fhir/Observation?patient=123&code=x",
        P,
    );
    assert!(!g.needs_request_check && !g.needs_response_check);
    assert_eq!(
        compartment_denial(
            "patient/Observation.ds",
            "DELETE",
            "/fhir/Observation?code=x"
        ),
        UNCONSTRAINED
    );
    assert_eq!(
        compartment_denial(
            "patient/Observation.us",
            "PATCH",
            "/fhir/Observation?patient=123"
        ),
        "patch_unverifiable"
    );
    let g = allow("patient/Patient.us", "PUT", "/fhir/Patient?_id=123", P);
    assert!(g.needs_request_check);
    allow("patient/Patient.us", "PATCH", "/fhir/Patient?_id=123", P);
    assert_eq!(
        compartment_denial("patient/Patient.ds", "DELETE", "/fhir/Patient?_id=456"),
        UNCONSTRAINED
    );
    assert_eq!(
        compartment_denial("patient/Patient.ds", "DELETE", "/fhir/Patient?name=x"),
        UNCONSTRAINED
    );
}

#[test]
fn conditional_create_cannot_probe_other_patients() {
    let sc = scopes("patient/Observation.cs");
    let mut r = req("POST", "/fhir/Observation");
    r.apply_if_none_exist("patient=456&code=x").unwrap();
    assert_eq!(
        authorize(&sc, &r, P),
        Err(SmartDenial::Compartment {
            reason: UNCONSTRAINED
        })
    );
    let mut r = req("POST", "/fhir/Observation");
    r.apply_if_none_exist("patient=123&code=x").unwrap();
    let g = authorize(&sc, &r, P).unwrap();
    assert!(g.needs_request_check);
    let mut r = req("POST", "/fhir/Patient");
    r.apply_if_none_exist("_id=123").unwrap();
    assert_eq!(
        authorize(&scopes("patient/Patient.cs"), &r, P),
        Err(SmartDenial::Compartment {
            reason: "create_patient"
        })
    );
}

#[test]
fn unknown_types_fail_closed() {
    let params = Default::default();
    assert_eq!(
        check(&Rule::ReadInstance { ty: "Foo", id: "1" }, "123"),
        Err(reason::UNKNOWN_TYPE)
    );
    assert_eq!(
        check(&Rule::Create { ty: "Foo" }, "123"),
        Err(reason::UNKNOWN_TYPE)
    );
    assert_eq!(
        check(&Rule::TypeWide { ty: "Foo" }, "123"),
        Err(reason::UNKNOWN_TYPE)
    );
    assert_eq!(search("Foo", &params, "123"), Err(reason::UNKNOWN_TYPE));
}

#[test]
fn every_fhir_type_is_classified() {
    let known: Vec<&str> = table::known_types().collect();
    for ty in crate::fhir::types::resource_types() {
        assert!(
            table::class_of(ty).is_some(),
            "{ty} has no compartment class"
        );
    }
    for ty in &known {
        assert!(
            crate::fhir::types::is_resource_type(ty),
            "{ty} in the table is not a FHIR type"
        );
    }
    assert_eq!(known.len(), crate::fhir::types::resource_types().count());
}

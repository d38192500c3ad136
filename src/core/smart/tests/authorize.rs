//! Interaction-to-permission mapping, contexts and denials.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[test]
fn read_family_needs_r() {
    for path in [
        "/fhir/Observation/1",
        "/fhir/Observation/1/_history/2",
        "/fhir/Observation/1/_history",
    ] {
        let g = allow("user/Observation.r", "GET", path, None);
        assert_eq!(g.via, "user/Observation.r");
        assert!(!g.patient_constrained);
        assert_eq!(
            required("user/Observation.s", "GET", path, None),
            "user/Observation.r"
        );
        assert_eq!(
            required("user/Observation.s", "GET", path, P),
            "patient/Observation.r"
        );
    }
}

#[test]
fn searches_need_s() {
    allow(
        "user/Observation.s",
        "GET",
        "/fhir/Observation?code=x",
        None,
    );
    allow(
        "user/Observation.s",
        "GET",
        "/fhir/Observation/_search?code=x",
        None,
    );
    assert_eq!(
        required("user/Observation.r", "GET", "/fhir/Observation", None),
        "user/Observation.s"
    );
    // history-type lists a type like a search.
    allow(
        "user/Observation.s",
        "GET",
        "/fhir/Observation/_history",
        None,
    );
    assert_eq!(
        required(
            "user/Observation.r",
            "GET",
            "/fhir/Observation/_history",
            None
        ),
        "user/Observation.s"
    );
    // Compartment searches need s on the target type, `*` for `/*`.
    allow(
        "user/Observation.s",
        "GET",
        "/fhir/Patient/1/Observation",
        None,
    );
    assert_eq!(
        required("user/Observation.s", "GET", "/fhir/Patient/1/*", None),
        "user/*.s"
    );
    allow("user/*.s", "GET", "/fhir/Patient/1/*", None);
}

#[test]
fn system_level_needs_star() {
    assert_eq!(
        required("user/Observation.s", "GET", "/fhir?_type=Observation", None),
        "user/*.s"
    );
    assert_eq!(
        required("user/Observation.s", "GET", "/fhir/_history", None),
        "user/*.s"
    );
    assert_eq!(
        required("user/Observation.s", "GET", "/fhir/_search", None),
        "user/*.s"
    );
    allow("user/*.s", "GET", "/fhir?_type=Observation", None);
    allow("system/*.s", "GET", "/fhir/_history", None);
}

#[test]
fn writes_need_c_u_d() {
    allow("user/Observation.c", "POST", "/fhir/Observation", None);
    allow("user/Observation.u", "PUT", "/fhir/Observation/1", None);
    allow("user/Observation.u", "PATCH", "/fhir/Observation/1", None);
    allow("user/Observation.d", "DELETE", "/fhir/Observation/1", None);
    assert_eq!(
        required("user/Observation.rs", "POST", "/fhir/Observation", None),
        "user/Observation.c"
    );
    assert_eq!(
        required("user/Observation.cd", "PUT", "/fhir/Observation/1", None),
        "user/Observation.u"
    );
    assert_eq!(
        required("user/Observation.cd", "PATCH", "/fhir/Observation/1", None),
        "user/Observation.u"
    );
    assert_eq!(
        required("user/Observation.cu", "DELETE", "/fhir/Observation/1", None),
        "user/Observation.d"
    );
}

#[test]
fn conditional_writes_also_need_s() {
    let path = "/fhir/Observation?identifier=a|b";
    assert_eq!(
        required("user/Observation.u", "PUT", path, None),
        "user/Observation.us"
    );
    assert_eq!(
        required("user/Observation.u", "PATCH", path, None),
        "user/Observation.us"
    );
    assert_eq!(
        required("user/Observation.d", "DELETE", path, None),
        "user/Observation.ds"
    );
    allow("user/Observation.us", "PUT", path, None);
    allow("user/Observation.ds", "DELETE", path, None);
    allow("user/Observation.cruds", "PATCH", path, None);

    // If-None-Exist turns a create into create + search.
    let mut r = req("POST", "/fhir/Observation");
    r.apply_if_none_exist("identifier=a|b").unwrap();
    let d = authorize(&scopes("user/Observation.c"), &r, None).unwrap_err();
    assert_eq!(
        d,
        SmartDenial::InsufficientScope {
            required: "user/Observation.cs".into()
        }
    );
    assert!(authorize(&scopes("user/Observation.cs"), &r, None).is_ok());
}

#[test]
fn v1_scopes_map_to_v2() {
    allow("user/Observation.read", "GET", "/fhir/Observation/1", None);
    allow("user/Observation.read", "GET", "/fhir/Observation", None);
    assert_eq!(
        required("user/Observation.read", "POST", "/fhir/Observation", None),
        "user/Observation.c"
    );
    allow("user/Observation.write", "POST", "/fhir/Observation", None);
    allow("user/Observation.write", "PUT", "/fhir/Observation/1", None);
    allow(
        "user/Observation.write",
        "DELETE",
        "/fhir/Observation/1",
        None,
    );
    assert_eq!(
        required("user/Observation.write", "GET", "/fhir/Observation/1", None),
        "user/Observation.r"
    );
    // v1 write lacks s, so a conditional update needs read too.
    assert_eq!(
        required(
            "user/Observation.write",
            "PUT",
            "/fhir/Observation?code=x",
            None
        ),
        "user/Observation.us"
    );
    allow(
        "user/Observation.write user/Observation.read",
        "PUT",
        "/fhir/Observation?code=x",
        None,
    );
    allow(
        "user/Observation.*",
        "DELETE",
        "/fhir/Observation?code=x",
        None,
    );
}

#[test]
fn star_type_and_other_types() {
    allow("user/*.r", "GET", "/fhir/Condition/1", None);
    allow("user/*.cruds", "DELETE", "/fhir/Condition/1", None);
    assert_eq!(
        required("user/Patient.rs", "GET", "/fhir/Observation/1", None),
        "user/Observation.r"
    );
}

#[test]
fn permissions_combine_within_a_context() {
    let g = allow(
        "patient/*.r patient/*.s",
        "GET",
        "/fhir/Patient/123/$everything",
        P,
    );
    assert_eq!(g.via, "patient/*.r patient/*.s");
    // Across types too: u from the Observation scope, s from the `*` scope.
    let g = allow(
        "user/Observation.u user/*.s",
        "PUT",
        "/fhir/Observation?code=x",
        None,
    );
    assert_eq!(g.via, "user/Observation.u user/*.s");
    // ... but never across contexts.
    let d = deny(
        "patient/*.r user/*.s",
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
}

#[test]
fn unhelpful_scopes_are_not_named_in_via() {
    let g = allow(
        "user/Observation.c user/Observation.r user/Condition.s user/*.s",
        "GET",
        "/fhir/Observation?code=x",
        None,
    );
    assert_eq!(g.via, "user/*.s");
}

#[test]
fn system_and_user_scopes_are_not_patient_constrained() {
    let g = allow("system/Observation.rs", "GET", "/fhir/Observation", None);
    assert!(!g.patient_constrained && !g.needs_response_check && !g.needs_request_check);
    // A user scope wins over a patient scope that would need the compartment.
    let g = allow(
        "patient/Observation.rs user/Observation.rs",
        "GET",
        "/fhir/Observation",
        P,
    );
    assert_eq!(g.via, "user/Observation.rs");
    assert!(!g.patient_constrained);
    let g = allow(
        "patient/Observation.rs system/Observation.rs",
        "GET",
        "/fhir/Observation/9",
        P,
    );
    assert_eq!(g.via, "system/Observation.rs");
}

#[test]
fn capabilities_and_bundles_need_no_scope() {
    let g = allow("", "GET", "/fhir/metadata", None);
    assert_eq!(g.via, "public");
    assert!(!g.patient_constrained);
    let body = br#"{"resourceType":"Bundle","type":"transaction"}"#;
    let r = parse_request("POST", "/fhir", "/fhir", None, Some(body)).unwrap();
    let g = authorize(&ScopeSet::default(), &r, None).unwrap();
    assert_eq!(g.via, "bundle");
}

#[test]
fn no_scope_at_all() {
    assert_eq!(
        required("", "GET", "/fhir/Observation/1", None),
        "user/Observation.r"
    );
    assert_eq!(
        required("openid fhirUser", "GET", "/fhir/Observation", P),
        "patient/Observation.s"
    );
}

#[test]
fn invalid_scopes_grant_nothing() {
    for sc in [
        "patient/observation.rs",
        "patient/Observation.sr",
        "Patient/Observation.rs",
        "patient/Observation",
        "patient/Observation.read?category=x",
        "patient/*.rs?category=x",
    ] {
        let d = deny(sc, "GET", "/fhir/Observation?patient=123", P);
        assert_eq!(d.code(), "insufficient_scope", "{sc}");
    }
}

#[test]
fn patient_scopes_need_a_patient_context() {
    let d = deny(
        "patient/Observation.rs",
        "GET",
        "/fhir/Observation?patient=123",
        None,
    );
    assert_eq!(d, SmartDenial::NoPatientContext);
    assert_eq!(d.code(), "no_patient_context");
    let d = deny(
        "patient/Observation.rs",
        "GET",
        "/fhir/Observation?patient=123",
        Some(""),
    );
    assert_eq!(d, SmartDenial::NoPatientContext);
    // Even a shared type needs the context.
    let d = deny(
        "patient/Practitioner.rs",
        "GET",
        "/fhir/Practitioner/1",
        None,
    );
    assert_eq!(d, SmartDenial::NoPatientContext);
    // A user scope still works without it.
    allow(
        "patient/Observation.rs user/Observation.rs",
        "GET",
        "/fhir/Observation",
        None,
    );
}

#[test]
fn malformed_patient_context_is_denied() {
    for bad in ["Patient/123", "123,456", "1 2", "a_b", "../1"] {
        let d = deny(
            "patient/Observation.rs",
            "GET",
            "/fhir/Observation?patient=123",
            Some(bad),
        );
        assert_eq!(d, SmartDenial::InvalidPatientContext, "{bad}");
        assert_eq!(d.code(), "invalid_patient_context");
    }
}

#[test]
fn required_scope_prefers_patient_context_when_present() {
    assert_eq!(
        required("", "GET", "/fhir/Condition?patient=123", P),
        "patient/Condition.s"
    );
    assert_eq!(
        required("", "GET", "/fhir/Condition?patient=123", None),
        "user/Condition.s"
    );
}

#[test]
fn malformed_request_models_are_denied() {
    let mut r = req("GET", "/fhir/Observation/1");
    r.id = None;
    let d = authorize(&scopes("user/*.cruds"), &r, None).unwrap_err();
    assert_eq!(d, SmartDenial::Malformed);
    assert_eq!(d.code(), "malformed_request");
    let mut r = req("GET", "/fhir/Patient/1/Observation");
    r.compartment = None;
    assert_eq!(
        authorize(&scopes("user/*.cruds"), &r, None),
        Err(SmartDenial::Malformed)
    );
    let mut r = req("GET", "/fhir/$meta");
    r.operation = None;
    assert_eq!(
        authorize(&scopes("user/*.cruds"), &r, None),
        Err(SmartDenial::Malformed)
    );
}

#[test]
fn denial_messages_hold_no_request_data() {
    let d = deny("patient/Patient.r", "GET", "/fhir/Patient/secret-id-999", P);
    assert!(!d.to_string().contains("secret"), "{d}");
    assert_eq!(d.code(), "patient_compartment");
    let d = deny("", "GET", "/fhir/Observation?code=secret", P);
    assert!(!d.to_string().contains("secret"), "{d}");
}

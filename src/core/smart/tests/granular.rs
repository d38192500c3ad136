//! Granular scopes: search coverage, reads with response checks, resource matching.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use serde_json::json;

const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
const VITAL: &str = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs";

fn lab_scope() -> String {
    format!("patient/Observation.rs?category={LAB}")
}

fn constraint(param: &str, value: &str) -> Constraint {
    Constraint {
        param: param.into(),
        value: value.into(),
    }
}

#[test]
fn covered_search_is_allowed() {
    let g = allow(
        &lab_scope(),
        "GET",
        &format!("/fhir/Observation?patient=123&category={LAB}"),
        P,
    );
    assert!(g.patient_constrained);
    assert!(!g.needs_response_check);
    assert_eq!(g.via, lab_scope());
    assert_eq!(g.granular, vec![vec![constraint("category", LAB)]]);
}

#[test]
fn uncovered_searches_are_denied() {
    for query in [
        "patient=123".to_string(),
        "patient=123&category=laboratory".to_string(),
        format!("patient=123&category={LAB},{VITAL}"),
        format!("patient=123&category={LAB}&category={VITAL}"),
        format!("patient=123&category:not={VITAL}"),
        format!("patient=123&category:text={LAB}"),
        format!("patient=123&code={LAB}"),
    ] {
        let d = deny(
            &lab_scope(),
            "GET",
            &format!("/fhir/Observation?{query}"),
            P,
        );
        assert_eq!(
            d,
            SmartDenial::InsufficientScope {
                required: "patient/Observation.s".into()
            },
            "{query}"
        );
    }
}

#[test]
fn or_values_covered_by_several_scopes() {
    let both = format!("{} patient/Observation.rs?category={VITAL}", lab_scope());
    let g = allow(
        &both,
        "GET",
        &format!("/fhir/Observation?patient=123&category={LAB},{VITAL}"),
        P,
    );
    assert_eq!(g.via, both);
    assert_eq!(g.granular.len(), 2);
}

#[test]
fn granular_searches_still_need_the_compartment() {
    let d = deny(
        &lab_scope(),
        "GET",
        &format!("/fhir/Observation?category={LAB}"),
        P,
    );
    assert_eq!(
        d,
        SmartDenial::Compartment {
            reason: "search_not_constrained_to_patient"
        }
    );
    let d = deny(
        &lab_scope(),
        "GET",
        &format!("/fhir/Observation?patient=123&category={LAB}"),
        None,
    );
    assert_eq!(d, SmartDenial::NoPatientContext);
    let g = allow(
        &lab_scope(),
        "GET",
        &format!("/fhir/Patient/123/Observation?category={LAB}"),
        P,
    );
    assert!(g.patient_constrained);
}

#[test]
fn granular_reads_need_a_response_check() {
    let g = allow(&lab_scope(), "GET", "/fhir/Observation/o1", P);
    assert!(g.needs_response_check && g.patient_constrained);
    assert_eq!(g.granular, vec![vec![constraint("category", LAB)]]);
    let g = allow(
        "user/Observation.r?category=laboratory",
        "GET",
        "/fhir/Observation/o1/_history/2",
        None,
    );
    assert!(g.needs_response_check && !g.patient_constrained);
}

#[test]
fn granular_scopes_grant_nothing_else() {
    let sc = "user/Observation.cruds?category=laboratory";
    assert_eq!(
        required(sc, "POST", "/fhir/Observation", None),
        "user/Observation.c"
    );
    assert_eq!(
        required(sc, "PUT", "/fhir/Observation/1", None),
        "user/Observation.u"
    );
    assert_eq!(
        required(sc, "DELETE", "/fhir/Observation/1", None),
        "user/Observation.d"
    );
    assert_eq!(
        required(sc, "GET", "/fhir/Observation/_history", None),
        "user/Observation.s"
    );
    assert_eq!(
        required(sc, "PUT", "/fhir/Observation?category=laboratory", None),
        "user/Observation.us"
    );
    assert_eq!(
        required(sc, "GET", "/fhir/Patient/1/*?category=laboratory", None),
        "user/*.s"
    );
}

#[test]
fn code_without_system_covers_any_system() {
    let sc = "user/Observation.rs?category=laboratory";
    for value in ["laboratory", "http://x|laboratory", "|laboratory"] {
        allow(
            sc,
            "GET",
            &format!("/fhir/Observation?category={value}"),
            None,
        );
    }
    for value in ["lab", "laboratory2", "http://x|lab"] {
        deny(
            sc,
            "GET",
            &format!("/fhir/Observation?category={value}"),
            None,
        );
    }
}

#[test]
fn multi_constraint_scopes_need_all() {
    let sc = "user/Observation.rs?category=laboratory&code=http://loinc.org|1234-5";
    allow(
        sc,
        "GET",
        "/fhir/Observation?category=laboratory&code=http://loinc.org|1234-5",
        None,
    );
    deny(sc, "GET", "/fhir/Observation?category=laboratory", None);
    deny(
        sc,
        "GET",
        "/fhir/Observation?code=http://loinc.org|1234-5",
        None,
    );
}

#[test]
fn tag_and_security_constraints() {
    let sc =
        "user/Observation.s?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N";
    allow(
        sc,
        "GET",
        "/fhir/Observation?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N",
        None,
    );
    deny(
        sc,
        "GET",
        "/fhir/Observation?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
        None,
    );
    allow(
        "user/Observation.s?_tag=t1",
        "GET",
        "/fhir/Observation?_tag=t1",
        None,
    );
}

#[test]
fn full_scopes_win_over_granular() {
    let g = allow(
        &format!("{} patient/Observation.rs", lab_scope()),
        "GET",
        "/fhir/Observation?patient=123",
        P,
    );
    assert!(g.granular.is_empty());
    assert_eq!(g.via, "patient/Observation.rs");
}

#[test]
fn granular_user_scope_after_patient_compartment_denial() {
    let sc = "patient/Observation.rs user/Observation.rs?category=laboratory";
    let g = allow(sc, "GET", "/fhir/Observation?category=laboratory", P);
    assert_eq!(g.via, "user/Observation.rs?category=laboratory");
    assert!(!g.patient_constrained);
    // Without the category the patient-scope compartment denial is reported.
    let d = deny(sc, "GET", "/fhir/Observation?code=x", P);
    assert_eq!(d.code(), "patient_compartment");
}

#[test]
fn resources_match_constraints() {
    let obs = json!({
        "resourceType": "Observation",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}, {"code": "local"}]},
        "meta": {"tag": [{"system": "http://t", "code": "t1"}], "security": [{"system": "http://s", "code": "R"}]}
    });
    let m = |param: &str, value: &str| {
        resource_matches_granular(&obs, &[vec![constraint(param, value)]])
    };
    assert!(m("category", LAB));
    assert!(m("category", "laboratory"));
    assert!(!m("category", VITAL));
    assert!(m("code", "http://loinc.org|1234-5"));
    assert!(m("code", "1234-5"));
    assert!(m("code", "|local"));
    assert!(!m("code", "|1234-5"));
    assert!(m("_tag", "http://t|t1"));
    assert!(!m("_tag", "http://t|t2"));
    assert!(m("_security", "R"));
    assert!(!m("_security", "N"));
    assert!(!m("status", "final"));
    // Alternatives: any set; all constraints of a set.
    assert!(resource_matches_granular(
        &obs,
        &[
            vec![constraint("category", VITAL)],
            vec![constraint("code", "1234-5")]
        ]
    ));
    assert!(!resource_matches_granular(
        &obs,
        &[vec![constraint("category", LAB), constraint("code", "9")]]
    ));
    assert!(resource_matches_granular(&obs, &[]));
    assert!(!resource_matches_granular(
        &json!({"resourceType": "Observation"}),
        &[vec![constraint("category", "laboratory")]]
    ));
}

/// A granular scope grants only in its own context: a `patient/` one never lends itself to the
/// `system`/`user` checks (which would drop the patient constraint), and a plain scope of the
/// context is not a granular candidate.
#[test]
fn a_granular_scope_grants_in_its_own_context_only() {
    // a search naming no patient, covered only by a patient-context granular scope
    let d = deny(
        &lab_scope(),
        "GET",
        &format!("/fhir/Observation?category={LAB}"),
        P,
    );
    assert!(matches!(d, SmartDenial::Compartment { .. }), "{d:?}");
    // the same scope in user context grants without a patient constraint
    let user = format!("user/Observation.rs?category={LAB}");
    let g = allow(
        &user,
        "GET",
        &format!("/fhir/Observation?category={LAB}"),
        P,
    );
    assert!(!g.patient_constrained);
    // patient context: constrained to the patient
    let g = allow(
        &format!("{} user/Patient.rs", lab_scope()),
        "GET",
        &format!("/fhir/Observation?patient=123&category={LAB}"),
        P,
    );
    assert!(g.patient_constrained);
    assert_eq!(g.via, lab_scope());
}

/// The granular scopes that may cover a request are of its type and grant its permission: a
/// constraint on another type, or on the same type for another permission, covers nothing.
#[test]
fn a_granular_scope_covers_only_its_type_and_permission() {
    let other_type = format!("{} patient/Condition.rs?code=x", lab_scope());
    deny(
        &other_type,
        "GET",
        "/fhir/Observation?patient=123&code=x",
        P,
    );
    allow(&other_type, "GET", "/fhir/Condition?patient=123&code=x", P);
    let read_only = format!("patient/Observation.r?category={LAB}");
    deny(
        &read_only,
        "GET",
        &format!("/fhir/Observation?patient=123&category={LAB}"),
        P,
    );
}

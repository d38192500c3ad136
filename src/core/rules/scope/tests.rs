#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn has(granted: &str, required: &str) -> bool {
    implies(
        granted.split_whitespace(),
        &Required::parse(required).unwrap(),
    )
}

#[test]
fn v1_and_v2_are_equivalent() {
    assert!(has("patient/Observation.read", "patient/Observation.rs"));
    assert!(has("patient/Observation.read", "patient/Observation.r"));
    assert!(!has("patient/Observation.read", "patient/Observation.c"));
    assert!(has("patient/Observation.write", "patient/Observation.cud"));
    assert!(!has("patient/Observation.write", "patient/Observation.r"));
    assert!(has("patient/Observation.*", "patient/Observation.cruds"));
    assert!(has("patient/Observation.rs", "patient/Observation.read"));
    assert!(!has("patient/Observation.r", "patient/Observation.read"));
}

#[test]
fn permissions_combine_across_scopes() {
    assert!(has(
        "patient/Observation.r patient/Observation.s",
        "patient/Observation.rs"
    ));
    assert!(has(
        "patient/*.r patient/Observation.s",
        "patient/Observation.rs"
    ));
    assert!(!has("patient/Observation.r", "patient/Observation.rs"));
}

#[test]
fn wildcard_type_grants_every_type_but_not_the_reverse() {
    assert!(has("user/*.rs", "user/Condition.s"));
    assert!(has("user/*.rs", "user/*.r"));
    assert!(!has("user/Condition.rs", "user/*.r"));
}

#[test]
fn contexts_do_not_imply_each_other() {
    assert!(!has("user/Observation.rs", "patient/Observation.rs"));
    assert!(!has("patient/Observation.rs", "user/Observation.rs"));
    assert!(!has("system/*.cruds", "patient/Observation.r"));
}

#[test]
fn granular_scopes_only_cover_constrained_requests() {
    let g = "patient/Observation.rs?category=laboratory";
    assert!(!has(g, "patient/Observation.rs"));
    assert!(has(g, "patient/Observation.rs?category=laboratory"));
    assert!(!has(g, "patient/Observation.rs?category=vital-signs"));
    // an unconstrained scope covers a constrained requirement
    assert!(has(
        "patient/Observation.rs",
        "patient/Observation.s?category=x"
    ));
}

#[test]
fn invalid_granted_scopes_grant_nothing() {
    for bad in [
        "patient/Observation.sr",              // out of order
        "patient/Observation.rr",              // repeated
        "patient/Observation.x",               // unknown letter
        "patient/Observation.",                // empty
        "patient/observation.rs",              // lowercase type
        "admin/Observation.rs",                // bad context
        "patient/Observation.read?category=x", // constraint on v1
        "patient/Observation.rs?category",     // malformed constraint
        "patientObservation.rs",
        "patient/Foo.rs",                      // not a FHIR resource type
        "patient/*.rs?category=x",             // granular needs one type
        "patient/Observation.rs?status=final", // not a granular parameter
    ] {
        assert!(!has(bad, "patient/Observation.r"), "{bad}");
        assert!(crate::smart::Scope::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn required_scope_validation() {
    assert!(Required::parse("patient/Observation.sr").is_err());
    assert!(Required::parse("user/x.rs").is_err());
    assert!(Required::parse("user/Foo.rs").is_err());
    assert!(Required::parse("user/Observation.rs?category=a%2").is_err());
    assert!(Required::parse("").is_err());
    assert!(Required::parse("a b").is_err());
    assert_eq!(
        Required::parse("openid").unwrap(),
        Required::Plain("openid".into())
    );
    assert_eq!(
        Required::parse("launch/patient").unwrap(),
        Required::Plain("launch/patient".into())
    );
}

#[test]
fn plain_scopes_need_exact_membership() {
    assert!(has("openid fhirUser", "fhirUser"));
    assert!(!has("openid fhirUser", "fhiruser"));
    assert!(!has("openid", "offline_access"));
}

#[test]
fn granular_values_are_compared_after_percent_decoding() {
    let g = "patient/Observation.rs?category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory";
    assert!(has(
        g,
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    ));
}

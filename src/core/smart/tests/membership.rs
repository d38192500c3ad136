//! Response-side compartment membership.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use serde_json::json;

fn m(resource: serde_json::Value) -> Membership {
    resource_in_patient_compartment(&resource, "123")
}

#[test]
fn patient_resources_by_id() {
    assert_eq!(
        m(json!({"resourceType": "Patient", "id": "123"})),
        Membership::In
    );
    assert_eq!(
        m(json!({"resourceType": "Patient", "id": "456"})),
        Membership::Out
    );
    assert_eq!(m(json!({"resourceType": "Patient"})), Membership::Out);
    // A link to the patient does not make another Patient ours.
    assert_eq!(
        m(
            json!({"resourceType": "Patient", "id": "9", "link": [{"other": {"reference": "Patient/123"}}]})
        ),
        Membership::Out
    );
}

#[test]
fn member_resources_by_reference() {
    assert_eq!(
        m(json!({"resourceType": "Observation", "subject": {"reference": "Patient/123"}})),
        Membership::In
    );
    assert_eq!(
        m(json!({"resourceType": "Observation", "subject": {"reference": "Patient/456"}})),
        Membership::Out
    );
    assert_eq!(
        m(json!({"resourceType": "Observation", "subject": {"reference": "Patient/1234"}})),
        Membership::Out
    );
    assert_eq!(
        m(json!({"resourceType": "Observation", "subject": {"reference": "Group/123"}})),
        Membership::Out
    );
    assert_eq!(m(json!({"resourceType": "Observation"})), Membership::Out);
    assert_eq!(
        m(
            json!({"resourceType": "Observation", "subject": {"reference": "Patient/456"},
                 "performer": [{"reference": "Practitioner/1"}, {"reference": "Patient/123"}]})
        ),
        Membership::In
    );
    assert_eq!(
        m(
            json!({"resourceType": "Observation", "subject": {"reference": "https://h/fhir/Patient/123"}})
        ),
        Membership::In
    );
    assert_eq!(
        m(
            json!({"resourceType": "Observation", "subject": {"reference": "Patient/123/_history/4"}})
        ),
        Membership::In
    );
    // Identifier-only, contained and urn references do not count.
    assert_eq!(
        m(json!({"resourceType": "Observation", "subject": {"identifier": {"value": "123"}}})),
        Membership::Out
    );
    assert_eq!(
        m(json!({"resourceType": "Observation", "subject": {"reference": "#p1"}})),
        Membership::Out
    );
    assert_eq!(
        m(json!({"resourceType": "Observation", "subject": {"reference": "urn:uuid:123"}})),
        Membership::Out
    );
    // A reference that is not a string is not read another way: membership is unknown.
    assert_eq!(
        m(json!({"resourceType": "Observation", "subject": {"reference": 123}})),
        Membership::Unknown
    );
}

#[test]
fn nested_reference_paths() {
    assert_eq!(
        m(json!({"resourceType": "Encounter", "subject": {"reference": "Patient/123"}})),
        Membership::In
    );
    assert_eq!(
        m(json!({"resourceType": "Condition", "asserter": {"reference": "Patient/123"}})),
        Membership::In
    );
    assert_eq!(
        m(json!({"resourceType": "Appointment", "participant": [
            {"actor": {"reference": "Practitioner/1"}}, {"actor": {"reference": "Patient/123"}}]})),
        Membership::In
    );
    assert_eq!(
        m(json!({"resourceType": "CarePlan", "activity": [
            {"detail": {"performer": [{"reference": "Patient/456"}]}},
            {"detail": {"performer": [{"reference": "Patient/123"}]}}]})),
        Membership::In
    );
    assert_eq!(
        m(
            json!({"resourceType": "AuditEvent", "entity": [{"what": {"reference": "Patient/123"}}]})
        ),
        Membership::In
    );
    assert_eq!(
        m(json!({"resourceType": "Task", "for": {"reference": "Patient/123"}})),
        Membership::In
    );
    assert_eq!(
        m(json!({"resourceType": "Binary", "securityContext": {"reference": "Patient/123"}})),
        Membership::In
    );
    assert_eq!(m(json!({"resourceType": "Binary"})), Membership::Out);
}

#[test]
fn shared_and_unknown() {
    assert_eq!(
        m(json!({"resourceType": "Practitioner", "id": "1"})),
        Membership::Shared
    );
    assert_eq!(m(json!({"resourceType": "Medication"})), Membership::Shared);
    assert_eq!(
        m(json!({"resourceType": "Foo", "subject": {"reference": "Patient/123"}})),
        Membership::Unknown
    );
    assert_eq!(
        m(json!({"subject": {"reference": "Patient/123"}})),
        Membership::Unknown
    );
    assert_eq!(m(json!("Patient/123")), Membership::Unknown);
    // Member types whose owner cannot be read from the resource.
    assert_eq!(
        m(json!({"resourceType": "Bundle", "type": "document"})),
        Membership::Unknown
    );
    assert_eq!(m(json!({"resourceType": "Linkage"})), Membership::Unknown);
}

#[test]
fn an_instance_is_placed_from_its_address_only_when_it_is_a_patient_or_shared() {
    for (ty, id, m) in [
        ("Patient", "123", Membership::In),
        ("Patient", "456", Membership::Out),
        ("Medication", "m1", Membership::Shared),
        ("Organization", "o1", Membership::Shared),
        ("Observation", "123", Membership::Unknown),
        ("NotAType", "123", Membership::Unknown),
    ] {
        assert_eq!(instance_membership(ty, id, "123"), m, "{ty}/{id}");
    }
}

/// A `null` reference element is no reference (JSON's null is "absent"); any other non-object
/// is malformed.
#[test]
fn a_null_reference_element_is_absent() {
    let obs = |subject: serde_json::Value| {
        serde_json::json!({"resourceType": "Observation", "id": "o", "subject": subject,
            "performer": [{"reference": "Patient/123"}]})
    };
    assert_eq!(
        resource_in_patient_compartment(&obs(serde_json::Value::Null), "123"),
        Membership::In
    );
    assert_eq!(
        resource_in_patient_compartment(
            &obs(serde_json::json!({"reference": "Patient/456"})),
            "456"
        ),
        Membership::In
    );
}

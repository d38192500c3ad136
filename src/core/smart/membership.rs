//! Response-side check: is a returned resource in a patient's compartment?

use serde_json::Value;

use super::compartment::relative_patient_id;
use super::table::{class_of, Class};

/// How a resource relates to one patient's compartment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The resource is the patient, or one of its compartment references names the patient.
    In,
    /// A compartment type, but no compartment reference names the patient.
    Out,
    /// A type that holds no patient data (Practitioner, Medication, ValueSet, ...): patient scopes
    /// may see it.
    Shared,
    /// Not decidable (unknown type, no `resourceType`, a member type without known reference
    /// paths): treat as denied.
    Unknown,
}

/// Whether `resource` (FHIR JSON) belongs to patient `patient` (a bare id).
///
/// A `Patient` is in only its own compartment (`id` equal). Other member types are `In` when a
/// reference at one of the table's element paths (e.g. `Observation.subject`,
/// `Observation.performer`, `Encounter.subject`, `Condition.asserter`) is `Patient/[id]`,
/// `Patient/[id]/_history/[vid]` or an absolute URL ending in `/Patient/[id]`. References by
/// identifier only, contained (`#x`) and `urn:` references do not count.
pub fn resource_in_patient_compartment(resource: &Value, patient: &str) -> Membership {
    let Some(rt) = resource.get("resourceType").and_then(Value::as_str) else {
        return Membership::Unknown;
    };
    match class_of(rt) {
        Some(Class::Patient) => {
            if resource.get("id").and_then(Value::as_str) == Some(patient) {
                Membership::In
            } else {
                Membership::Out
            }
        }
        Some(Class::Shared) => Membership::Shared,
        Some(Class::Member { paths, .. }) => {
            if paths.is_empty() {
                return Membership::Unknown;
            }
            let found = paths.iter().any(|p| {
                references_at(resource, p)
                    .iter()
                    .any(|r| names_patient(r, patient))
            });
            if found {
                Membership::In
            } else {
                Membership::Out
            }
        }
        None => Membership::Unknown,
    }
}

/// All `reference` strings found at a dot-separated element path (arrays are flattened at each
/// step).
fn references_at<'v>(resource: &'v Value, path: &str) -> Vec<&'v str> {
    let mut nodes: Vec<&Value> = vec![resource];
    for step in path.split('.') {
        nodes = nodes
            .into_iter()
            .filter_map(|n| n.get(step))
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect();
    }
    nodes
        .into_iter()
        .filter_map(|n| n.get("reference").and_then(Value::as_str))
        .collect()
}

fn names_patient(reference: &str, patient: &str) -> bool {
    let Some(rest) = relative_patient_id(reference) else {
        return false;
    };
    let id = rest.split_once("/_history/").map_or(rest, |(id, _)| id);
    id == patient
}

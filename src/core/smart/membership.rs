//! Response-side check: is a returned resource in a patient's compartment?

use serde_json::Value;

use crate::tape::{JsonRef, Malformed};

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
/// identifier only, contained (`#x`) and `urn:` references do not count. A reference element of
/// an unexpected shape makes the membership `Unknown` (see [`membership`] for the strict form).
pub fn resource_in_patient_compartment(resource: &Value, patient: &str) -> Membership {
    membership(resource, patient).unwrap_or(Membership::Unknown)
}

/// [`resource_in_patient_compartment`] on any JSON representation, refusing unexpected shapes:
/// an `id` or `reference` that is not a string, a reference-holding element (or one on its path)
/// that is neither an object nor an array of objects.
pub fn membership<'a, J: JsonRef<'a>>(resource: J, patient: &str) -> Result<Membership, Malformed> {
    let Some(rt) = resource.opt_text("resourceType", "resourceType")? else {
        return Ok(Membership::Unknown);
    };
    Ok(match class_of(&rt) {
        Some(Class::Patient) => {
            if resource.opt_text("id", "id")?.as_deref() == Some(patient) {
                Membership::In
            } else {
                Membership::Out
            }
        }
        Some(Class::Shared) => Membership::Shared,
        Some(Class::Member { paths, .. }) => {
            if paths.is_empty() {
                return Ok(Membership::Unknown);
            }
            let mut found = false;
            for p in paths {
                visit_references(resource, p.split('.'), p, &mut |r| {
                    found |= names_patient(r, patient);
                })?;
            }
            if found {
                Membership::In
            } else {
                Membership::Out
            }
        }
        None => Membership::Unknown,
    })
}

/// Calls `f` with every `reference` string at a dot-separated element path (arrays are
/// flattened at each step), without collecting them.
fn visit_references<'a, J: JsonRef<'a>>(
    node: J,
    mut steps: std::str::Split<'static, char>,
    path: &'static str,
    f: &mut impl FnMut(&str),
) -> Result<(), Malformed> {
    let Some(step) = steps.next() else {
        if let Some(r) = node.opt_text("reference", path)? {
            f(&r);
        }
        return Ok(());
    };
    match node.get(step) {
        None => Ok(()),
        Some(v) if v.is_null() => Ok(()),
        Some(v) if v.is_object() => visit_references(v, steps, path, f),
        Some(v) => {
            for item in v.items().ok_or(Malformed(path))? {
                if !item.is_object() {
                    return Err(Malformed(path));
                }
                visit_references(item, steps.clone(), path, f)?;
            }
            Ok(())
        }
    }
}

fn names_patient(reference: &str, patient: &str) -> bool {
    let Some(rest) = relative_patient_id(reference) else {
        return false;
    };
    let id = rest.split_once("/_history/").map_or(rest, |(id, _)| id);
    id == patient
}

/// How the instance `[resource_type]/[id]` relates to `patient`'s compartment when only its
/// address is known (an operation's output about it): the patient itself is `In`, shared types
/// are `Shared`, anything else cannot be placed (`Unknown`).
pub fn instance_membership(resource_type: &str, id: &str, patient: &str) -> Membership {
    match class_of(resource_type) {
        Some(Class::Patient) if id == patient => Membership::In,
        Some(Class::Patient) => Membership::Out,
        Some(Class::Shared) => Membership::Shared,
        _ => Membership::Unknown,
    }
}

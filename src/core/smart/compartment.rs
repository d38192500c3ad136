//! Request-side patient compartment rules for requests granted by `patient/` scopes.

use super::need::{Rule, Write};
use super::table::{class_of, Class};

type Params = std::collections::BTreeMap<String, Vec<String>>;

/// What the engine must still verify for an allowed request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Checks {
    /// Returned resources must be in the patient's compartment.
    pub response: bool,
    /// The resource in the request body must be in the patient's compartment.
    pub request: bool,
}

const RESPONSE: Checks = Checks {
    response: true,
    request: false,
};
const REQUEST: Checks = Checks {
    response: false,
    request: true,
};
const NONE: Checks = Checks {
    response: false,
    request: false,
};

/// Stable reasons for compartment denials.
pub(crate) mod reason {
    pub const OTHER_PATIENT: &str = "other_patient";
    pub const UNCONSTRAINED_SEARCH: &str = "search_not_constrained_to_patient";
    pub const REVERSE_CHAIN: &str = "reverse_chain_not_allowed";
    pub const NAMED_QUERY: &str = "named_query_not_allowed";
    pub const UNKNOWN_TYPE: &str = "compartment_membership_unknown";
    pub const WRITE_OUTSIDE: &str = "write_outside_compartment";
    pub const INSTANCE_WRITE: &str = "instance_write_unverifiable";
    pub const PATCH: &str = "patch_unverifiable";
    pub const CREATE_PATIENT: &str = "create_patient";
    pub const TYPE_WIDE: &str = "type_wide_access";
    pub const SYSTEM_WIDE: &str = "system_wide_access";
}

/// Applies the compartment rule for patient `patient` (a valid id).
pub(crate) fn check(rule: &Rule<'_>, patient: &str) -> Result<Checks, &'static str> {
    match rule {
        Rule::Public | Rule::Bundle | Rule::NoData => Ok(NONE),
        Rule::ReadInstance { ty, id } => match class_of(ty) {
            Some(Class::Patient) => same_patient(id, patient).map(|_| NONE),
            Some(Class::Member { .. }) => Ok(RESPONSE),
            Some(Class::Shared) => Ok(NONE),
            None => Err(reason::UNKNOWN_TYPE),
        },
        Rule::WriteInstance { ty, id, .. } => match class_of(ty) {
            Some(Class::Patient) => same_patient(id, patient).map(|_| NONE),
            Some(Class::Member { .. }) => Err(reason::INSTANCE_WRITE),
            Some(Class::Shared) => Err(reason::WRITE_OUTSIDE),
            None => Err(reason::UNKNOWN_TYPE),
        },
        Rule::Create { ty } => match class_of(ty) {
            Some(Class::Patient) => Err(reason::CREATE_PATIENT),
            Some(Class::Member { .. }) => Ok(REQUEST),
            Some(Class::Shared) => Err(reason::WRITE_OUTSIDE),
            None => Err(reason::UNKNOWN_TYPE),
        },
        Rule::Search { ty, params } => search(ty, params, patient),
        Rule::ConditionalWrite { ty, params, write } => {
            let class = class_of(ty).ok_or(reason::UNKNOWN_TYPE)?;
            if class == Class::Shared {
                return Err(reason::WRITE_OUTSIDE);
            }
            search(ty, params, patient)?;
            match (class, write) {
                (Class::Patient, Write::Create) => Err(reason::CREATE_PATIENT),
                (Class::Patient, Write::Patch | Write::Delete) => Ok(NONE),
                (_, Write::Create | Write::Update) => Ok(REQUEST),
                (_, Write::Patch) => Err(reason::PATCH),
                (_, Write::Delete) => Ok(NONE),
            }
        }
        Rule::CompartmentSearch {
            kind,
            id,
            ty,
            params,
        } => {
            if *kind == "Patient" {
                same_patient(id, patient)?;
                forbidden_params(params)?;
                let response = has_includes(params) || *ty == Some("Patient");
                Ok(Checks {
                    response,
                    request: false,
                })
            } else {
                // Another compartment (Encounter/1/Observation) says nothing about the patient:
                // the parameters must constrain it like a type search.
                match ty {
                    Some(ty) => search(ty, params, patient),
                    None => Err(reason::UNCONSTRAINED_SEARCH),
                }
            }
        }
        Rule::TypeWide { ty } => match class_of(ty) {
            Some(Class::Shared) => Ok(NONE),
            Some(_) => Err(reason::TYPE_WIDE),
            None => Err(reason::UNKNOWN_TYPE),
        },
        Rule::SystemWide => Err(reason::SYSTEM_WIDE),
    }
}

fn same_patient(id: &str, patient: &str) -> Result<(), &'static str> {
    if id == patient {
        Ok(())
    } else {
        Err(reason::OTHER_PATIENT)
    }
}

/// The parameter name without its modifier (`subject:Patient` -> `subject`).
fn base_name(name: &str) -> &str {
    name.split_once(':').map_or(name, |(b, _)| b)
}

fn has_includes(params: &Params) -> bool {
    params
        .keys()
        .any(|k| matches!(base_name(k), "_include" | "_revinclude"))
}

/// `_has` (reverse chaining) selects by other resources' data and `_query` runs server-defined
/// logic: neither can be checked here, so both are denied under patient scopes.
fn forbidden_params(params: &Params) -> Result<(), &'static str> {
    for name in params.keys() {
        match base_name(name) {
            "_has" => return Err(reason::REVERSE_CHAIN),
            "_query" => return Err(reason::NAMED_QUERY),
            _ => {}
        }
    }
    Ok(())
}

/// A type search under a patient scope.
pub(crate) fn search(ty: &str, params: &Params, patient: &str) -> Result<Checks, &'static str> {
    forbidden_params(params)?;
    let response = has_includes(params);
    let constrained = match class_of(ty).ok_or(reason::UNKNOWN_TYPE)? {
        Class::Shared => true,
        Class::Patient => params
            .get("_id")
            .is_some_and(|values| all_refer(values, |v| v == patient)),
        Class::Member { params: names, .. } => params.iter().any(|(name, values)| {
            let (base, modifier) = match name.split_once(':') {
                Some((b, m)) => (b, Some(m)),
                None => (name.as_str(), None),
            };
            if !names.contains(&base) || !matches!(modifier, None | Some("Patient")) {
                return false;
            }
            // A bare id only means "the patient" where the parameter can only point at a Patient.
            let bare_ok = base == "patient" || modifier == Some("Patient");
            all_refer(values, |v| refers_to_patient(v, patient, bare_ok))
        }),
    };
    if constrained {
        Ok(Checks {
            response,
            request: false,
        })
    } else {
        Err(reason::UNCONSTRAINED_SEARCH)
    }
}

/// Non-empty and every value (OR list, or repeats) satisfies `f`.
fn all_refer(values: &[String], f: impl Fn(&str) -> bool) -> bool {
    !values.is_empty() && values.iter().all(|v| f(v))
}

/// Whether a reference search value names `patient`: `Patient/[id]`, an absolute
/// `http(s)://.../Patient/[id]`, or the bare id when `bare_ok`.
pub(crate) fn refers_to_patient(value: &str, patient: &str, bare_ok: bool) -> bool {
    if bare_ok && value == patient {
        return true;
    }
    let Some(id) = relative_patient_id(value) else {
        return false;
    };
    id == patient
}

/// The id in `Patient/[id]` or `http(s)://host/.../Patient/[id]`.
pub(crate) fn relative_patient_id(value: &str) -> Option<&str> {
    if let Some(id) = value.strip_prefix("Patient/") {
        return Some(id);
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))?;
    let (host, path) = rest.split_once('/')?;
    if host.is_empty() {
        return None;
    }
    match path.strip_prefix("Patient/") {
        Some(id) => Some(id),
        None => path.rsplit_once("/Patient/").map(|(_, id)| id),
    }
}

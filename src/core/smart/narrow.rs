//! Query narrowing: a patient-scoped search that names no patient gets the launch patient
//! added for the upstream, instead of a 403 (`smart.narrowSearches`).
//!
//! Only a type search (`GET [type]?…`, `GET [type]/_search?…`) is narrowed, and only when it
//! carries none of its type's compartment parameters at all (in any modifier or chained form):
//! a search that names a patient, rightly or not (`patient=Patient/999`, `subject:missing=true`,
//! `subject.name=x`, a comma list with another patient), is judged as written (403 when it
//! leaves the patient), never silently rewritten. What is added:
//!
//! | type | added |
//! |---|---|
//! | `Patient` | `_id=[patient]` |
//! | a member type with a `patient` parameter (Observation, Condition, …) | `patient=Patient/[patient]` |
//! | other member types | their first compartment parameter, `=Patient/[patient]` (e.g. `Group?member=…`, `Account?subject=…`) |
//! | shared types | nothing (already allowed), member types without parameters and unknown types: nothing (403) |
//!
//! The parameter is appended to the query (search parameters are ANDed, so it only narrows),
//! and the request carries `Prefer: handling=strict` so the server refuses parameters it would
//! otherwise ignore.

use super::table::{class_of, Class};
use crate::fhir::{FhirRequest, Interaction};

/// The parameter added to a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowing {
    /// Parameter name (`patient`, `subject`, `_id`, …).
    pub param: String,
    /// Its value (`Patient/123`, or the bare id for `_id`).
    pub value: String,
}

/// The base of a parameter name: without modifier (`:Patient`) and chain (`.name`).
fn base_of(name: &str) -> &str {
    let end = name.find([':', '.']).unwrap_or(name.len());
    name.get(..end).unwrap_or(name)
}

/// What to add to `req` so that it is constrained to `patient` (a valid id), if it may be
/// narrowed (see the module docs).
pub fn narrowing(req: &FhirRequest, patient: &str) -> Option<Narrowing> {
    if req.interaction != Interaction::SearchType {
        return None;
    }
    let ty = req.resource_type.as_deref()?;
    let names = req.params.keys().map(|k| base_of(k)).collect::<Vec<_>>();
    match class_of(ty)? {
        Class::Patient => (!names.contains(&"_id")).then(|| Narrowing {
            param: "_id".to_string(),
            value: patient.to_string(),
        }),
        Class::Member { params, .. } => {
            if params.is_empty() || names.iter().any(|n| params.contains(n)) {
                return None;
            }
            let param = if params.contains(&"patient") {
                "patient"
            } else {
                params.first()?
            };
            Some(Narrowing {
                param: param.to_string(),
                value: format!("Patient/{patient}"),
            })
        }
        Class::Shared => None,
    }
}

impl Narrowing {
    /// `path` with the parameter appended to its query (ids and `Patient/` need no escaping).
    pub fn apply_to_path(&self, path: &str) -> String {
        let sep = match path.split_once('?') {
            None => "?",
            Some((_, "")) => "",
            Some((_, q)) if q.ends_with('&') => "",
            Some(_) => "&",
        };
        format!("{path}{sep}{}={}", self.param, self.value)
    }
}

/// The `Prefer` header for a narrowed search: the client's preferences, with any `handling`
/// replaced by `handling=strict`.
pub fn strict_prefer(existing: Option<&str>) -> String {
    let mut parts: Vec<String> = existing
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter(|p| {
            !p.split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("handling")
        })
        .map(str::to_string)
        .collect();
    parts.push("handling=strict".to_string());
    parts.join(", ")
}

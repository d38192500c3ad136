//! Response-side protection: what a patient-scoped or granular-scoped request may see when the
//! request alone could not prove it (instance reads of non-Patient types, `_include`,
//! operations). Single resources outside the allowed set are refused with 403; search and
//! batch Bundles lose the entries outside it and gain an OperationOutcome entry (search mode
//! `outcome`) saying how many were withheld; `total` is dropped because it no longer matches.

use serde_json::{json, Value};

use crate::decision::ResponseCheck;
use crate::outcome::{Denial, DenyKind};
use crate::smart::{resource_in_patient_compartment, resource_matches_granular, Membership};

/// What to do with an upstream response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// Forward it unchanged.
    Pass,
    /// Forward this body instead (Bundle entries withheld).
    Rewrite {
        /// The new body.
        body: Vec<u8>,
        /// How many entries were withheld.
        withheld: u32,
    },
    /// Replace the response with this denial.
    Deny(Denial),
}

fn allowed(resource: &Value, check: &ResponseCheck) -> bool {
    let in_compartment = match &check.patient {
        Some(patient) => matches!(
            resource_in_patient_compartment(resource, patient),
            Membership::In | Membership::Shared
        ),
        None => true,
    };
    in_compartment && resource_matches_granular(resource, &check.granular)
}

/// Checks a 2xx FHIR JSON response body.
pub fn check_response(body: &[u8], check: &ResponseCheck) -> ResponseVerdict {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return ResponseVerdict::Deny(Denial::new(
            DenyKind::BadGateway,
            "response.not_fhir_json",
            "the upstream response could not be checked",
        ));
    };
    match value.get("resourceType").and_then(Value::as_str) {
        Some("OperationOutcome") => ResponseVerdict::Pass,
        Some("Bundle") => filter_bundle(&mut value, check),
        Some(_) if allowed(&value, check) => ResponseVerdict::Pass,
        Some(_) => ResponseVerdict::Deny(Denial::new(
            DenyKind::Forbidden,
            "response.outside_scope",
            "the resource is outside what the token may read",
        )),
        None => ResponseVerdict::Deny(Denial::new(
            DenyKind::BadGateway,
            "response.not_fhir_json",
            "the upstream response could not be checked",
        )),
    }
}

fn filter_bundle(bundle: &mut Value, check: &ResponseCheck) -> ResponseVerdict {
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return ResponseVerdict::Pass;
    };
    let before = entries.len();
    entries.retain(|entry| match entry.get("resource") {
        Some(r) if r.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") => {
            true
        }
        Some(r) => allowed(r, check),
        None => true,
    });
    let withheld = u32::try_from(before - entries.len()).unwrap_or(u32::MAX);
    if withheld == 0 {
        return ResponseVerdict::Pass;
    }
    entries.push(json!({
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "information",
                "code": "suppressed",
                "diagnostics": format!("{withheld} result(s) withheld: outside what the token may read")
            }]
        },
        "search": {"mode": "outcome"}
    }));
    if let Some(obj) = bundle.as_object_mut() {
        obj.remove("total");
    }
    match serde_json::to_vec(bundle) {
        Ok(body) => ResponseVerdict::Rewrite { body, withheld },
        Err(_) => ResponseVerdict::Deny(Denial::new(
            DenyKind::BadGateway,
            "response.rewrite_failed",
            "the upstream response could not be checked",
        )),
    }
}

#[cfg(test)]
mod tests;

//! Unit tests of the FHIR request model.

mod body;
mod bundle;
mod paths;
mod query;
mod rejects;

use super::*;

pub(super) const BASE: &str = "/fhir";

/// Parses a request without a body against base `/fhir`.
pub(super) fn parse(method: &str, path: &str) -> Result<FhirRequest, FhirError> {
    parse_request(method, path, BASE, None, None)
}

/// Parses a request that must succeed.
pub(super) fn ok(method: &str, path: &str) -> FhirRequest {
    match parse(method, path) {
        Ok(r) => r,
        Err(e) => panic!("{method} {path}: unexpected error {e:?}"),
    }
}

/// Parses a request that must fail, returning the error.
pub(super) fn err(method: &str, path: &str) -> FhirError {
    match parse(method, path) {
        Ok(r) => panic!("{method} {path}: expected an error, got {r:?}"),
        Err(e) => e,
    }
}

pub(super) fn values(req: &FhirRequest, name: &str) -> Vec<String> {
    req.params.get(name).cloned().unwrap_or_default()
}

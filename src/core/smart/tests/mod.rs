//! Unit tests of SMART scopes and the patient compartment.

mod authorize;
mod bundles;
mod compartment;
#[cfg(not(target_arch = "wasm32"))]
mod definition;
mod granular;
mod membership;
mod narrow;
mod operations;
mod scopes;
mod searches;

use super::*;
use crate::fhir::{parse_request, FhirRequest};

/// The token's launch patient in most tests.
pub(super) const P: Option<&str> = Some("123");

pub(super) fn req(method: &str, path: &str) -> FhirRequest {
    match parse_request(method, path, "/fhir", None, None) {
        Ok(r) => r,
        Err(e) => panic!("{method} {path}: {e:?}"),
    }
}

pub(super) fn scopes(s: &str) -> ScopeSet {
    ScopeSet::parse([s])
}

#[track_caller]
pub(super) fn allow(sc: &str, method: &str, path: &str, patient: Option<&str>) -> Grant {
    match authorize(&scopes(sc), &req(method, path), patient) {
        Ok(g) => g,
        Err(d) => panic!("[{sc}] {method} {path}: denied {d:?}"),
    }
}

#[track_caller]
pub(super) fn deny(sc: &str, method: &str, path: &str, patient: Option<&str>) -> SmartDenial {
    match authorize(&scopes(sc), &req(method, path), patient) {
        Ok(g) => panic!("[{sc}] {method} {path}: allowed {g:?}"),
        Err(d) => d,
    }
}

/// The required scope of an insufficient-scope denial.
#[track_caller]
pub(super) fn required(sc: &str, method: &str, path: &str, patient: Option<&str>) -> String {
    match deny(sc, method, path, patient) {
        SmartDenial::InsufficientScope { required } => required,
        other => panic!("[{sc}] {method} {path}: expected insufficient_scope, got {other:?}"),
    }
}

/// The reason of a compartment denial under patient `123`.
#[track_caller]
pub(super) fn compartment_denial(sc: &str, method: &str, path: &str) -> &'static str {
    match deny(sc, method, path, P) {
        SmartDenial::Compartment { reason } => reason,
        other => panic!("[{sc}] {method} {path}: expected a compartment denial, got {other:?}"),
    }
}

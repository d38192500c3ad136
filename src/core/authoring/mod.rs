//! Library side of the `fhirgate` policy-author tool (native builds only): policy files, their
//! table-driven cases, explanations and rendering. Pure: callers read the files and pass their
//! contents in.

pub mod cases;
pub mod full;
pub mod istio;
pub mod policy;
pub mod render;

pub use cases::{run_suite, Case, CaseRequest, Decider, Expect, Outcome, SuiteReport};
pub use full::{ExchangeDecider, DEFAULT_SOURCE};
pub use policy::{check_document, CheckReport, DocumentKind, Policy, Problem};
pub use render::{render, Format, RenderOptions};

use crate::rules::RuleSet;

/// FHIR base path used for policy cases.
pub const CASE_BASE_PATH: &str = "/fhir";

/// The decider `fhirgate test` and `eval` use for a policy: the filter's exchange, as Envoy runs
/// it.
pub fn default_decider(policy: &Policy, _rules: &RuleSet) -> Result<Box<dyn Decider>, String> {
    Ok(Box::new(ExchangeDecider::new(policy, false)?))
}

/// The same exchange with SMART enforcement and the consent check off, so only the policy's
/// rules decide; for `fhirgate eval --rules-only`.
pub fn rules_only_decider(policy: &Policy, _rules: &RuleSet) -> Result<Box<dyn Decider>, String> {
    Ok(Box::new(ExchangeDecider::new(policy, true)?))
}

/// Runs `fhirgate test` over a directory's files given as (file name, contents).
pub fn test_files(files: &[(String, String)]) -> SuiteReport {
    run_suite(files, &default_decider)
}

#[cfg(test)]
mod tests;

use serde_json::json;

use super::*;

mod compile;
mod evaluate;

pub(super) fn rule(name: &str, m: Option<&str>, expr: &str) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        description: None,
        match_: m.map(Into::into),
        expression: expr.into(),
        message: None,
        effect: Effect::Deny,
        phase: Phase::Request,
        step_up: None,
    }
}

pub(super) fn flag(name: &str, m: Option<&str>, expr: &str) -> RuleConfig {
    RuleConfig {
        effect: Effect::Flag,
        ..rule(name, m, expr)
    }
}

pub(super) const SECRET: &str = "S3CRET-claim-value";

pub(super) fn input() -> RuleInput {
    RuleInput {
        request: json!({"method": "GET", "path": "/fhir/Observation", "host": "fhir",
                        "headers": {}, "query": {"category": ["sensitive"]}}),
        source: json!({"address": "10.1.2.3:5000"}),
        token: json!({"kind": "jwt", "issuer": "https://idp", "subject": SECRET, "clientId": "app",
                      "scopes": ["patient/Observation.rs"], "patient": "123",
                      "claims": {"consent": "no-research", "btg": "false", "secret": SECRET,
                                 "num": 7, "acr": "urn:pwd"}}),
        token_cel: None,
        fhir: json!({"interaction": "search-type", "resourceType": "Observation", "id": "",
                     "versionId": "", "operation": "", "params": {"category": ["sensitive"]}}),
    }
}

pub(super) fn compile_err(rules: &[RuleConfig]) -> RuleError {
    RuleSet::compile(rules).expect_err("should not compile")
}

pub(super) fn one_err(expr: &str) -> RuleError {
    compile_err(&[rule("r1", None, expr)])
}

pub(super) fn deny_of(v: &RuleVerdict) -> (&str, &str, bool, Option<&StepUp>) {
    match v {
        RuleVerdict::Deny {
            rule,
            message,
            error,
            step_up,
            ..
        } => (rule, message, *error, step_up.as_ref()),
        other => panic!("expected deny, got {other:?}"),
    }
}

//! The data of the rule layer: rules as configured, the inputs of an evaluation and its results.

use serde::{Deserialize, Serialize};

use super::error::Field;

/// What a rule does when it applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The expression must hold, else the request is denied (default).
    #[default]
    Deny,
    /// When the expression holds, the rule's name is reported as a flag; never denies.
    Flag,
    /// Response phase only: when the expression holds, a returned resource that the built-in
    /// consent check would withhold for its security labels is let through. Never overrides a
    /// deny rule, the compartment or a granular scope.
    Allow,
    /// Response phase only: when the expression holds, the returned resource is reduced to
    /// `resourceType`, `id`, `meta.versionId`, `meta.lastUpdated` and a `REDACTED` label.
    Redact,
}

impl Effect {
    pub(crate) fn is_deny(&self) -> bool {
        *self == Effect::Deny
    }

    /// The effect's name as written in rules.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Deny => "deny",
            Effect::Flag => "flag",
            Effect::Allow => "allow",
            Effect::Redact => "redact",
        }
    }
}

/// When a rule runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// On the request, before it is forwarded (default).
    #[default]
    Request,
    /// On the upstream's response; the rule also sees `resource` (the returned resource).
    Response,
}

impl Phase {
    pub(crate) fn is_request(&self) -> bool {
        *self == Phase::Request
    }
}

/// Step-up authentication asked for when a deny rule denies (RFC 9470): the filter answers 401
/// `insufficient_user_authentication` with these `acr_values` (and `max_age`) instead of 403.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepUp {
    /// Space-separated ACR values the client should request.
    pub acr_values: String,
    /// Maximum age of the authentication in seconds, if required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
}

/// One rule as written in the configuration or a policy file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleConfig {
    /// Unique name, reported in denials, flags and audit records.
    pub name: String,
    /// Free text for readers of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// CEL bool: when the rule applies (always when absent).
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<String>,
    /// CEL bool: must hold (deny rules) or raises the flag (flag rules).
    pub expression: String,
    /// Message of the denial (a default naming the rule otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `deny` (default), `flag`, or (response phase only) `allow` or `redact`.
    #[serde(default, skip_serializing_if = "Effect::is_deny")]
    pub effect: Effect,
    /// `request` (default) or `response`.
    #[serde(default, skip_serializing_if = "Phase::is_request")]
    pub phase: Phase,
    /// Ask for step-up authentication instead of a plain 403 (deny rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUp>,
}

/// The variables of one evaluation, as JSON (contract §2). Each should be an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleInput {
    /// `request.*`: method, path, host, headers, query.
    pub request: serde_json::Value,
    /// `source.*`: address.
    pub source: serde_json::Value,
    /// `token.*`: kind, issuer, subject, clientId, scopes, patient, fhirUser, claims (read by
    /// the rules only when `token_cel` is `None`).
    pub token: serde_json::Value,
    /// `token` already converted for CEL (`VerifiedToken::rules_value`, built once per verified
    /// token and reused on cache hits); when set, the rules read it instead of `token`.
    pub token_cel: Option<cel_interpreter::Value>,
    /// `fhir.*`: interaction, resourceType, id, versionId, operation, compartment, params.
    pub fhir: serde_json::Value,
}

/// What happened to one rule during an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOutcome {
    /// `match` was false: the rule did not apply.
    NotApplicable,
    /// Deny rule: the expression held.
    Held,
    /// Deny rule: the expression was false.
    Violated,
    /// Flag rule: the expression was true, the flag is raised.
    Flagged,
    /// Flag rule: the expression was false.
    NotFlagged,
    /// Allow or redact rule: the expression was true, the effect applies.
    Applied,
    /// Allow or redact rule: the expression was false.
    NotApplied,
    /// Evaluation failed or gave a non-boolean (deny rules deny).
    Error {
        /// Which field failed.
        field: Field,
        /// Data-free description.
        reason: String,
    },
}

/// One line of the explanation of a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// The rule's name.
    pub rule: String,
    /// The rule's effect.
    pub effect: Effect,
    /// What happened.
    pub outcome: RuleOutcome,
}

/// The response-phase rules' verdict on one returned resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceVerdict {
    /// The first deny rule violated (or failed: `true`), if any: the resource is withheld.
    pub denied: Option<(String, bool)>,
    /// The first redact rule that applied (or failed), if any.
    pub redact: Option<String>,
    /// The first allow rule that applied, if any.
    pub allow: Option<String>,
    /// Names of the flag rules that fired.
    pub flags: Vec<String>,
    /// Every response rule, in order.
    pub trace: Vec<RuleTrace>,
}

/// The result of evaluating the rules of one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleVerdict {
    /// Every applicable deny rule held.
    Allow {
        /// Names of the flag rules that fired, in rule order.
        flags: Vec<String>,
        /// Every rule of the phase, in order.
        trace: Vec<RuleTrace>,
    },
    /// A deny rule was violated or failed; the first one in order is reported.
    Deny {
        /// The denying rule's name.
        rule: String,
        /// Its message (or, on error, a message saying evaluation failed).
        message: String,
        /// Step-up to ask for (only when the rule was violated, not on error).
        step_up: Option<StepUp>,
        /// True when the denial comes from an evaluation error.
        error: bool,
        /// Every rule of the phase, in order.
        trace: Vec<RuleTrace>,
    },
}

impl RuleVerdict {
    /// The evaluation trace.
    pub fn trace(&self) -> &[RuleTrace] {
        match self {
            RuleVerdict::Allow { trace, .. } | RuleVerdict::Deny { trace, .. } => trace,
        }
    }

    /// True for `Allow`.
    pub fn is_allow(&self) -> bool {
        matches!(self, RuleVerdict::Allow { .. })
    }
}

//! Policy files (`policies/<name>.json`): a description and a list of rules, checked with the
//! same compiler the filter uses.

use serde::{Deserialize, Serialize};

use crate::rules::{RuleConfig, RuleError, RuleSet};

/// A policy file: `{"description": "...", "rules": [ ... ]}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// What the policy is for and how it behaves (required, shown by the tool).
    pub description: String,
    /// The rules, in evaluation order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One problem found by [`check_document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The rule concerned, when there is one.
    pub rule: Option<String>,
    /// Stable code (`rule_*` from [`RuleError::code`], or `policy_json` / `policy_shape`).
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl From<&RuleError> for Problem {
    fn from(e: &RuleError) -> Self {
        Problem {
            rule: e.rule().map(str::to_string),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn problem(code: &'static str, message: String) -> Problem {
    Problem {
        rule: None,
        code,
        message,
    }
}

/// What kind of document was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A policy file (`description` + `rules`).
    Policy,
    /// A plugin configuration (its `rules` are checked).
    PluginConfig,
}

/// The outcome of checking one document.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Policy file or plugin configuration.
    pub kind: DocumentKind,
    /// Number of rules found.
    pub rules: usize,
    /// Every problem (empty when the document is fine).
    pub problems: Vec<Problem>,
}

impl Policy {
    /// Parses a policy file (unknown keys are errors) and compiles its rules.
    pub fn parse(text: &str) -> Result<(Policy, RuleSet), Vec<Problem>> {
        let policy: Policy = serde_json::from_str(text).map_err(|e| {
            vec![problem(
                "policy_json",
                format!("not a valid policy file: {e}"),
            )]
        })?;
        if policy.description.trim().is_empty() {
            return Err(vec![problem(
                "policy_shape",
                "`description` must say what the policy does".to_string(),
            )]);
        }
        let set = RuleSet::compile_all(&policy.rules)
            .map_err(|errs| errs.iter().map(Problem::from).collect::<Vec<_>>())?;
        Ok((policy, set))
    }
}

/// Checks a policy file or a plugin configuration (recognised by its `providers` key) and
/// reports every problem with the rules: parse errors, unknown variables or functions, bad
/// arguments, non-boolean results, bad names, step-up or messages.
pub fn check_document(text: &str) -> CheckReport {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return CheckReport {
                kind: DocumentKind::Policy,
                rules: 0,
                problems: vec![problem("policy_json", format!("not valid JSON: {e}"))],
            }
        }
    };
    let is_config = value.get("providers").is_some();
    if !is_config {
        let rules = value
            .get("rules")
            .and_then(|r| r.as_array())
            .map_or(0, Vec::len);
        let problems = match Policy::parse(text) {
            Ok(_) => Vec::new(),
            Err(p) => p,
        };
        return CheckReport {
            kind: DocumentKind::Policy,
            rules,
            problems,
        };
    }
    let raw_rules = value
        .get("rules")
        .cloned()
        .unwrap_or(serde_json::Value::Array(Vec::new()));
    let rules: Vec<RuleConfig> = match serde_json::from_value(raw_rules) {
        Ok(r) => r,
        Err(e) => {
            return CheckReport {
                kind: DocumentKind::PluginConfig,
                rules: 0,
                problems: vec![problem("policy_shape", format!("`rules`: {e}"))],
            }
        }
    };
    let mut problems: Vec<Problem> = match RuleSet::compile_all(&rules) {
        Ok(_) => Vec::new(),
        Err(errs) => errs.iter().map(Problem::from).collect(),
    };
    // Everything else the filter checks at load, as `on_configure` would report it.
    if problems.is_empty() {
        if let Err(e) = crate::config::Config::from_json(text.as_bytes()) {
            problems.push(problem("config", e.to_string()));
        }
    }
    CheckReport {
        kind: DocumentKind::PluginConfig,
        rules: rules.len(),
        problems,
    }
}

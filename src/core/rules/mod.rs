//! CEL rules (contract §1 `rules`, §2 vocabulary): compiled once at configuration time, evaluated
//! per request. Pure logic: no I/O, no clock, no `proxy_wasm`.
//!
//! A `deny` rule applies when its `match` is true (or absent) and then its `expression` must be
//! true; a false result, a non-boolean result or an evaluation error denies (fail closed). All
//! applicable rules are evaluated in order and the first denial wins (deny overrides). A `flag`
//! rule never denies: when `match` and `expression` are both true its name is reported (for the
//! audit trail, e.g. break-the-glass access); its errors are only traced.
//!
//! The functions rules may call are listed in [`functions`]; the checks made at compile time in
//! [`lint`].

mod convert;
mod error;
pub mod functions;
pub mod lint;
mod model;
pub mod net;
pub mod scope;
mod syntax;

use std::sync::Arc;

use cel_interpreter::{Context, Value};
use cel_parser::ast::IdedExpr;

pub use convert::{describe_error, json_to_cel};
pub use error::{Field, RuleError};
pub use model::{
    Effect, Phase, ResourceVerdict, RuleConfig, RuleInput, RuleOutcome, RuleTrace, RuleVerdict,
    StepUp,
};

/// Longest rule name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest CEL source of one `match` or `expression`, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;
/// Longest `message`.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Variables of request-phase rules.
pub const REQUEST_VARIABLES: &[&str] = &["request", "source", "token", "fhir"];
/// Variables of response-phase rules (the request ones plus `resource`).
pub const RESPONSE_VARIABLES: &[&str] = &["request", "source", "token", "fhir", "resource"];

#[derive(Debug)]
struct CompiledRule {
    name: String,
    effect: Effect,
    phase: Phase,
    match_: Option<IdedExpr>,
    expression: IdedExpr,
    message: String,
    step_up: Option<StepUp>,
}

struct Inner {
    root: Context<'static>,
    rules: Vec<CompiledRule>,
    /// Top-level variables some request-phase rule reads (only these are converted).
    request_vars: Vec<&'static str>,
    /// Top-level variables some response-phase rule reads.
    response_vars: Vec<&'static str>,
}

/// The top-level variables of `vars` that the rules of `phase` reference.
fn used_variables(
    rules: &[CompiledRule],
    phase: Phase,
    vars: &[&'static str],
) -> Vec<&'static str> {
    let mut used = Vec::new();
    for rule in rules.iter().filter(|r| r.phase == phase) {
        for expr in rule.match_.iter().chain(std::iter::once(&rule.expression)) {
            let refs = expr.references();
            for v in vars {
                if refs.has_variable(v) && !used.contains(v) {
                    used.push(*v);
                }
            }
        }
    }
    used
}

/// A compiled, validated list of rules. Cheap to clone (shared).
#[derive(Clone)]
pub struct RuleSet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field(
                "rules",
                &self
                    .inner
                    .rules
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::from_compiled(Vec::new())
    }
}

fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

fn check_step_up(rule: &RuleConfig) -> Result<(), String> {
    let Some(s) = &rule.step_up else {
        return Ok(());
    };
    if rule.effect != Effect::Deny {
        return Err("only deny rules can ask for step-up".to_string());
    }
    let v = &s.acr_values;
    if v.trim().is_empty() {
        return Err("acrValues must not be empty".to_string());
    }
    if v.len() > 512 || v != v.trim() || v.contains("  ") {
        return Err(
            "acrValues must be single-space-separated values, at most 512 bytes".to_string(),
        );
    }
    if !v
        .bytes()
        .all(|b| b == b' ' || ((0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'))
    {
        return Err("acrValues may only hold printable ASCII without '\"' and '\\'".to_string());
    }
    Ok(())
}

/// Compiles one rule, pushing every problem found into `errors`.
fn compile_rule(
    index: usize,
    cfg: &RuleConfig,
    errors: &mut Vec<RuleError>,
) -> Option<CompiledRule> {
    if cfg.name.is_empty() {
        errors.push(RuleError::EmptyName { index });
        return None;
    }
    if !valid_name(&cfg.name) {
        errors.push(RuleError::InvalidName {
            index,
            name: cfg.name.chars().take(MAX_NAME_LEN).collect(),
        });
        return None;
    }
    let name = cfg.name.clone();
    let before = errors.len();
    if let Some(m) = &cfg.message {
        if m.is_empty() || m.len() > MAX_MESSAGE_LEN || m.chars().any(char::is_control) {
            errors.push(RuleError::Text {
                rule: name.clone(),
                problem: format!(
                    "message must be 1-{MAX_MESSAGE_LEN} bytes without control characters"
                ),
            });
        }
    }
    if matches!(cfg.effect, Effect::Allow | Effect::Redact) && cfg.phase != Phase::Response {
        errors.push(RuleError::Effect {
            rule: name.clone(),
            problem: format!(
                "effect `{}` only applies to returned resources: it needs `phase: \"response\"`",
                cfg.effect.as_str()
            ),
        });
    }
    if let Err(problem) = check_step_up(cfg) {
        errors.push(RuleError::StepUp {
            rule: name.clone(),
            problem,
        });
    }
    let vars = match cfg.phase {
        Phase::Request => REQUEST_VARIABLES,
        Phase::Response => RESPONSE_VARIABLES,
    };
    let match_ = match cfg
        .match_
        .as_deref()
        .map(|m| lint::compile_expr(&name, Field::Match, m, vars))
    {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
    };
    let expression = lint::compile_expr(&name, Field::Expression, &cfg.expression, vars)
        .map_err(|e| errors.push(e))
        .ok();
    if errors.len() > before {
        return None;
    }
    Some(CompiledRule {
        message: cfg
            .message
            .clone()
            .unwrap_or_else(|| format!("denied by policy rule '{name}'")),
        name,
        effect: cfg.effect,
        phase: cfg.phase,
        match_,
        expression: expression?,
        step_up: cfg.step_up.clone(),
    })
}

fn eval_bool(expr: &IdedExpr, scope: &Context) -> Result<bool, String> {
    match Value::resolve(expr, scope) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("the result is a {}, not a bool", other.type_of())),
        Err(e) => Err(describe_error(&e)),
    }
}

impl CompiledRule {
    fn run(&self, scope: &Context) -> RuleOutcome {
        if let Some(m) = &self.match_ {
            match eval_bool(m, scope) {
                Ok(true) => {}
                Ok(false) => return RuleOutcome::NotApplicable,
                Err(reason) => {
                    return RuleOutcome::Error {
                        field: Field::Match,
                        reason,
                    }
                }
            }
        }
        match (eval_bool(&self.expression, scope), self.effect) {
            (Ok(true), Effect::Deny) => RuleOutcome::Held,
            (Ok(false), Effect::Deny) => RuleOutcome::Violated,
            (Ok(true), Effect::Flag) => RuleOutcome::Flagged,
            (Ok(false), Effect::Flag) => RuleOutcome::NotFlagged,
            (Ok(true), Effect::Allow | Effect::Redact) => RuleOutcome::Applied,
            (Ok(false), Effect::Allow | Effect::Redact) => RuleOutcome::NotApplied,
            (Err(reason), _) => RuleOutcome::Error {
                field: Field::Expression,
                reason,
            },
        }
    }
}

impl RuleSet {
    fn from_compiled(rules: Vec<CompiledRule>) -> RuleSet {
        let request_vars = used_variables(&rules, Phase::Request, REQUEST_VARIABLES);
        let response_vars = used_variables(&rules, Phase::Response, RESPONSE_VARIABLES);
        RuleSet {
            inner: Arc::new(Inner {
                root: functions::root_context(),
                rules,
                request_vars,
                response_vars,
            }),
        }
    }

    /// Compiles and lints the rules; the error names the first bad rule and why (parse error,
    /// unknown variable or function, wrong arguments, non-boolean result, bad step-up, empty,
    /// invalid or duplicate name).
    pub fn compile(rules: &[RuleConfig]) -> Result<RuleSet, RuleError> {
        match Self::compile_all(rules) {
            Ok(set) => Ok(set),
            Err(mut errors) => Err(errors.swap_remove(0)),
        }
    }

    /// Like [`RuleSet::compile`] but reports every problem found (at least one on `Err`).
    pub fn compile_all(rules: &[RuleConfig]) -> Result<RuleSet, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        let mut seen: Vec<&str> = Vec::with_capacity(rules.len());
        for (index, cfg) in rules.iter().enumerate() {
            if !cfg.name.is_empty() && seen.contains(&cfg.name.as_str()) {
                errors.push(RuleError::DuplicateName {
                    rule: cfg.name.clone(),
                });
                continue;
            }
            seen.push(&cfg.name);
            if let Some(rule) = compile_rule(index, cfg, &mut errors) {
                compiled.push(rule);
            }
        }
        if errors.is_empty() {
            Ok(RuleSet::from_compiled(compiled))
        } else {
            Err(errors)
        }
    }

    /// Number of rules (both phases).
    pub fn len(&self) -> usize {
        self.inner.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.inner.rules.is_empty()
    }

    /// True when some rule runs on responses (the engine then buffers response bodies).
    pub fn has_response_rules(&self) -> bool {
        self.inner.rules.iter().any(|r| r.phase == Phase::Response)
    }

    /// Names of the rules in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.rules.iter().map(|r| r.name.as_str())
    }

    /// Evaluates the request-phase rules.
    pub fn evaluate(&self, input: &RuleInput) -> RuleVerdict {
        self.run_phase(Phase::Request, input)
    }

    /// Evaluates the response-phase rules on one resource (`resource` bound to it) as a
    /// verdict: a deny rule violated or failed denies; allow and redact rules are only traced.
    pub fn evaluate_response(
        &self,
        input: &RuleInput,
        resource: &serde_json::Value,
    ) -> RuleVerdict {
        let Some(rules) = self.response_rules(input) else {
            return RuleVerdict::Allow {
                flags: Vec::new(),
                trace: Vec::new(),
            };
        };
        let v = rules.evaluate(resource);
        match v.denied {
            None => RuleVerdict::Allow {
                flags: v.flags,
                trace: v.trace,
            },
            Some((rule, error)) => RuleVerdict::Deny {
                message: self.denial_message(&rule, error),
                rule,
                step_up: None,
                error,
                trace: v.trace,
            },
        }
    }

    /// The message of a denial by `rule` (a fixed text when its evaluation failed).
    pub fn denial_message(&self, rule: &str, error: bool) -> String {
        denial_message(&self.inner.rules, rule, error)
    }

    /// The response-phase rules bound to one request's variables (converted once), ready to be
    /// evaluated on each returned resource; `None` when there are no response rules.
    pub fn response_rules(&self, input: &RuleInput) -> Option<ResponseRules<'_>> {
        if !self.has_response_rules() {
            return None;
        }
        Some(ResponseRules {
            rules: &self.inner.rules,
            scope: self.bind(Phase::Response, input),
            uses_resource: self.inner.response_vars.contains(&"resource"),
        })
    }

    /// A scope with the request-side variables the rules of `phase` read.
    fn bind(&self, phase: Phase, input: &RuleInput) -> Context<'_> {
        // only the variables the phase's rules read are converted (most of the per-request cost)
        let mut scope = self.inner.root.new_inner_scope();
        let used = match phase {
            Phase::Request => &self.inner.request_vars,
            Phase::Response => &self.inner.response_vars,
        };
        for name in used {
            if *name == "token" {
                if let Some(token) = &input.token_cel {
                    scope.add_variable_from_value("token", token.clone());
                    continue;
                }
            }
            let value = match *name {
                "request" => &input.request,
                "source" => &input.source,
                "token" => &input.token,
                "fhir" => &input.fhir,
                _ => continue,
            };
            scope.add_variable_from_value(*name, json_to_cel(value));
        }
        scope
    }

    fn run_phase(&self, phase: Phase, input: &RuleInput) -> RuleVerdict {
        let mut trace = Vec::new();
        let mut flags = Vec::new();
        let mut denial: Option<(usize, bool)> = None;
        if !self.inner.rules.iter().any(|r| r.phase == phase) {
            return RuleVerdict::Allow { flags, trace };
        }
        let scope = self.bind(phase, input);
        for (i, rule) in self.inner.rules.iter().enumerate() {
            if rule.phase != phase {
                continue;
            }
            let outcome = rule.run(&scope);
            match (&outcome, rule.effect) {
                (RuleOutcome::Violated, Effect::Deny) if denial.is_none() => {
                    denial = Some((i, false))
                }
                (RuleOutcome::Error { .. }, Effect::Deny) if denial.is_none() => {
                    denial = Some((i, true))
                }
                (RuleOutcome::Flagged, _) => flags.push(rule.name.clone()),
                _ => {}
            }
            trace.push(RuleTrace {
                rule: rule.name.clone(),
                effect: rule.effect,
                outcome,
            });
        }
        match denial.and_then(|(i, error)| self.inner.rules.get(i).map(|r| (r, error))) {
            None => RuleVerdict::Allow { flags, trace },
            Some((rule, error)) => RuleVerdict::Deny {
                rule: rule.name.clone(),
                message: if error {
                    format!("policy rule '{}' could not be evaluated", rule.name)
                } else {
                    rule.message.clone()
                },
                step_up: if error { None } else { rule.step_up.clone() },
                error,
                trace,
            },
        }
    }
}

fn denial_message(rules: &[CompiledRule], rule: &str, error: bool) -> String {
    if error {
        return format!("policy rule '{rule}' could not be evaluated");
    }
    rules
        .iter()
        .find(|r| r.name == rule)
        .map(|r| r.message.clone())
        .unwrap_or_else(|| format!("denied by policy rule '{rule}'"))
}

/// The response-phase rules of a [`RuleSet`] with one request's variables bound; see
/// [`RuleSet::response_rules`].
pub struct ResponseRules<'a> {
    rules: &'a [CompiledRule],
    scope: Context<'a>,
    uses_resource: bool,
}

impl ResponseRules<'_> {
    /// The message of a denial by `rule` (a fixed text when its evaluation failed).
    pub fn denial_message(&self, rule: &str, error: bool) -> String {
        denial_message(self.rules, rule, error)
    }

    /// Evaluates every response rule on `resource`. Deny rules: violated or failed -> `denied`
    /// (first in order). Redact rules: applied or failed -> `redact` (fail closed). Allow rules:
    /// applied -> `allow` (a failure does not allow). Flag rules: fired -> `flags`.
    pub fn evaluate(&self, resource: &serde_json::Value) -> ResourceVerdict {
        let mut scope = self.scope.new_inner_scope();
        if self.uses_resource {
            scope.add_variable_from_value("resource", json_to_cel(resource));
        }
        let mut v = ResourceVerdict::default();
        for rule in self.rules.iter().filter(|r| r.phase == Phase::Response) {
            let outcome = rule.run(&scope);
            let failed = matches!(outcome, RuleOutcome::Error { .. });
            match rule.effect {
                Effect::Deny if v.denied.is_none() => match outcome {
                    RuleOutcome::Violated => v.denied = Some((rule.name.clone(), false)),
                    RuleOutcome::Error { .. } => v.denied = Some((rule.name.clone(), true)),
                    _ => {}
                },
                Effect::Redact
                    if v.redact.is_none() && (failed || outcome == RuleOutcome::Applied) =>
                {
                    v.redact = Some(rule.name.clone());
                }
                Effect::Allow if v.allow.is_none() && outcome == RuleOutcome::Applied => {
                    v.allow = Some(rule.name.clone());
                }
                Effect::Flag if outcome == RuleOutcome::Flagged => {
                    v.flags.push(rule.name.clone());
                }
                _ => {}
            }
            v.trace.push(RuleTrace {
                rule: rule.name.clone(),
                effect: rule.effect,
                outcome,
            });
        }
        v
    }
}

#[cfg(test)]
mod tests;

//! Step-by-step explanations of decisions, and the rules-only decider (the rule part of a
//! decision, without token verification or SMART enforcement).

use serde_json::Value;

use super::cases::{Case, Decider, Outcome};
use super::request;
use crate::response::{Checked, ResponseVerdict};
use crate::rules::{Effect, RuleOutcome, RuleSet, RuleVerdict};

/// One line per rule of a verdict, e.g. `rule 'x' (deny): match true, expression false -> VIOLATED`.
pub fn explain_verdict(phase: &str, verdict: &RuleVerdict, out: &mut Vec<String>) {
    if verdict.trace().is_empty() {
        out.push(format!("{phase} rules: none"));
    }
    for t in verdict.trace() {
        let effect = t.effect.as_str();
        let what = match &t.outcome {
            RuleOutcome::NotApplicable => "match is false -> not applicable".to_string(),
            RuleOutcome::Held => "expression holds -> ok".to_string(),
            RuleOutcome::Violated => "expression is false -> VIOLATED".to_string(),
            RuleOutcome::Flagged => "expression is true -> FLAG raised".to_string(),
            RuleOutcome::NotFlagged => "expression is false -> no flag".to_string(),
            RuleOutcome::Applied => {
                format!("expression is true -> {}", t.effect.as_str().to_uppercase())
            }
            RuleOutcome::NotApplied => "expression is false -> no effect".to_string(),
            RuleOutcome::Error { field, reason } => match t.effect {
                Effect::Deny => format!("ERROR in `{field}`: {reason} -> denies (fail closed)"),
                Effect::Flag => format!("ERROR in `{field}`: {reason} -> ignored (flag rule)"),
                Effect::Allow => format!("ERROR in `{field}`: {reason} -> does not allow"),
                Effect::Redact => format!("ERROR in `{field}`: {reason} -> redacts (fail closed)"),
            },
        };
        out.push(format!("{phase} rule '{}' ({effect}): {what}", t.rule));
    }
    match verdict {
        RuleVerdict::Allow { flags, .. } if flags.is_empty() => {
            out.push(format!("{phase} rules: allow"))
        }
        RuleVerdict::Allow { flags, .. } => {
            out.push(format!("{phase} rules: allow, flags {flags:?}"))
        }
        RuleVerdict::Deny {
            rule,
            message,
            step_up,
            ..
        } => match step_up {
            Some(s) => out.push(format!(
                "{phase} rules: deny by '{rule}' ({message}); step-up with acr_values \"{}\"",
                s.acr_values
            )),
            None => out.push(format!("{phase} rules: deny by '{rule}' ({message})")),
        },
    }
}

/// Lines explaining a response check: what was withheld (by cause, labels, rules) or redacted,
/// and the verdict.
pub fn explain_response(checked: &Checked, out: &mut Vec<String>) {
    let s = &checked.summary;
    for (cause, n) in &s.withheld_by {
        out.push(format!("response: {n} resource(s) withheld ({cause})"));
    }
    if !s.withheld_labels.is_empty() {
        out.push(format!(
            "response: labels not granted by the consent claim: {:?}",
            s.withheld_labels
        ));
    }
    if !s.withheld_rules.is_empty() {
        out.push(format!(
            "response: rules that withheld or redacted: {:?}",
            s.withheld_rules
        ));
    }
    if s.redacted > 0 {
        out.push(format!("response: {} resource(s) redacted", s.redacted));
    }
    if !checked.flags.is_empty() {
        out.push(format!("response: flags {:?}", checked.flags));
    }
    out.push(match &checked.verdict {
        ResponseVerdict::Pass => "response: passes unchanged".to_string(),
        ResponseVerdict::Rewrite { .. } => "response: rewritten".to_string(),
        ResponseVerdict::Deny(d) => format!("response: denied {} ({})", d.status(), d.reason),
    });
}

/// Folds a rule verdict into an outcome: a denial is 401 with step-up, else 403.
pub fn apply_verdict(verdict: &RuleVerdict, outcome: &mut Outcome) {
    match verdict {
        RuleVerdict::Allow { flags, .. } => outcome.flags.extend(flags.iter().cloned()),
        RuleVerdict::Deny { rule, step_up, .. } => {
            outcome.allowed = false;
            outcome.rule = Some(rule.clone());
            outcome.status = if step_up.is_some() { 401 } else { 403 };
            outcome.acr_values = step_up.as_ref().map(|s| s.acr_values.clone());
        }
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Evaluates only the policy's rules: token variables come straight from the case's claims and
/// the FHIR variables from a simplified reading of the request; no SMART enforcement.
pub struct RulesOnly {
    rules: RuleSet,
    base: String,
}

impl RulesOnly {
    /// A decider for `rules` with the FHIR base path `base` (e.g. `/fhir`).
    pub fn new(rules: RuleSet, base: &str) -> Self {
        RulesOnly {
            rules,
            base: base.to_string(),
        }
    }
}

impl Decider for RulesOnly {
    fn decide(&self, case: &Case) -> Result<Outcome, String> {
        let input = request::rule_input(&case.token, &case.request, &self.base)?;
        let mut ex = Vec::new();
        let t = &input.token;
        ex.push(format!(
            "token: subject '{}', client '{}', scopes {}, patient {}",
            text(t, "subject"),
            text(t, "clientId"),
            t.get("scopes").cloned().unwrap_or_default(),
            t.get("patient")
                .map_or("(none)".to_string(), |p| p.to_string()),
        ));
        ex.push(format!(
            "request: {} {} from {}",
            text(&input.request, "method"),
            case.request.path,
            text(&input.source, "address")
        ));
        let f = &input.fhir;
        ex.push(format!(
            "fhir: interaction {}, type '{}', id '{}', operation '{}', params {}",
            text(f, "interaction"),
            text(f, "resourceType"),
            text(f, "id"),
            text(f, "operation"),
            f.get("params").cloned().unwrap_or_default()
        ));
        ex.push("smart: not evaluated here (rules only)".to_string());
        let mut outcome = Outcome {
            allowed: true,
            status: 200,
            ..Outcome::default()
        };
        let verdict = self.rules.evaluate(&input);
        explain_verdict("request", &verdict, &mut ex);
        apply_verdict(&verdict, &mut outcome);
        if let (true, Some(resource)) = (outcome.allowed, &case.response) {
            let verdict = self.rules.evaluate_response(&input, resource);
            explain_verdict("response", &verdict, &mut ex);
            apply_verdict(&verdict, &mut outcome);
        }
        ex.push(if outcome.allowed {
            "decision: allow (200)".to_string()
        } else {
            format!("decision: deny ({})", outcome.status)
        });
        outcome.explanation = ex;
        Ok(outcome)
    }
}

//! Step-by-step explanations of a decision, for `fhirgate eval` and `fhirgate test` (the
//! exchange records them only when asked: [`crate::exchange::Exchange::explained`]).

use crate::response::{Checked, ResponseVerdict};
use crate::rules::{Effect, RuleOutcome, RuleVerdict};

/// One line per rule of a verdict, e.g. `rule 'x' (deny): match true, expression false -> VIOLATED`.
pub fn rule_verdict(phase: &str, verdict: &RuleVerdict, out: &mut Vec<String>) {
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
pub fn response_check(checked: &Checked, out: &mut Vec<String>) {
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

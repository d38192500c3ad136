//! Response-side protection: what a request may see when the request alone could not prove it.
//!
//! Each returned resource (a single resource, or each entry of a Bundle) meets, in order:
//! 1. the SMART checks: the patient compartment and granular scopes ([`ResponseCheck`]);
//! 2. the response-phase rules ([`ResponseRules`]): a `deny` rule violated (or failing) withholds
//!    it; else a `redact` rule that holds (or fails) reduces it to [`redacted`];
//! 3. the built-in consent check ([`crate::consent`]): a resource carrying a configured security
//!    label that the token's consent claim does not grant is withheld, unless an `allow` rule
//!    holds for it.
//!
//! A withheld single resource is refused with 403 (for writes, whose effect already happened, a
//! label-withheld result is redacted instead). A Bundle loses its withheld entries (batch and
//! transaction responses keep the slot, with a `403` entry response, so entries still line up
//! with the request), gains an OperationOutcome entry (search mode `outcome`) saying how many were
//! withheld, and loses `total`. Bodies are rewritten only when something changed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::consent::{ConsentPolicy, LabelSet, OBSERVATION_VALUE};
use crate::fhir::Interaction;
use crate::outcome::{Denial, DenyKind};
use crate::rules::ResponseRules;
use crate::smart::{
    resource_in_patient_compartment, resource_matches_granular, Constraint, Membership,
};

/// What returned resources must satisfy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseCheck {
    /// Resources must be in this patient's compartment (or shared, non-patient data).
    pub patient: Option<String>,
    /// Resources must match one of these granular scope constraint sets (empty: no constraint).
    pub granular: Vec<Vec<Constraint>>,
    /// Response-phase CEL rules must hold for the response body (bound to `resource`).
    pub rules: bool,
}

/// What to do with an upstream response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// Forward it unchanged.
    Pass,
    /// Forward this body instead (entries withheld or resources redacted).
    Rewrite {
        /// The new body.
        body: Vec<u8>,
        /// How many entries were withheld.
        withheld: u32,
    },
    /// Replace the response with this denial.
    Deny(Denial),
}

/// How the consent check treats the response of an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMode {
    /// Not checked: the response carries no resource (delete, capabilities).
    Off,
    /// Reads, searches, history, operations, batches: labelled resources are withheld.
    Read,
    /// Create, update, patch: the write happened, so a labelled result is redacted instead.
    Write,
}

impl LabelMode {
    /// The mode for `interaction`.
    pub fn of(interaction: Interaction) -> LabelMode {
        match interaction {
            Interaction::Delete | Interaction::Capabilities => LabelMode::Off,
            Interaction::Create | Interaction::Update | Interaction::Patch => LabelMode::Write,
            _ => LabelMode::Read,
        }
    }
}

/// Everything a response is checked against.
pub struct ResponsePolicy<'a> {
    /// SMART compartment and granular-scope checks.
    pub check: &'a ResponseCheck,
    /// The consent check: the policy and the labels the token's consent grants.
    pub consent: Option<(&'a ConsentPolicy, LabelSet)>,
    /// Response-phase rules bound to the request.
    pub rules: Option<&'a ResponseRules<'a>>,
    /// How label-withheld results are handled.
    pub mode: LabelMode,
}

/// What was withheld and redacted, for the audit record: counts, label codes and rule names,
/// never content or ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseSummary {
    /// Withheld resources by cause: `compartment` (SMART), `rule`, `label`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub withheld_by: BTreeMap<&'static str, u32>,
    /// Codes of the ungranted labels that withheld (or, for writes, redacted) resources, in
    /// configuration order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withheld_labels: Vec<String>,
    /// The same labels as a set.
    #[serde(skip)]
    label_set: LabelSet,
    /// Rules that withheld or redacted resources.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub withheld_rules: Vec<String>,
    /// Resources returned redacted.
    #[serde(skip_serializing_if = "is_zero")]
    pub redacted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ResponseSummary {
    /// Total withheld.
    pub fn withheld(&self) -> u32 {
        self.withheld_by.values().sum()
    }

    fn add_labels(&mut self, consent: Option<&ConsentPolicy>, set: LabelSet) {
        self.label_set |= set;
        self.withheld_labels = consent
            .into_iter()
            .flat_map(|c| c.codes(self.label_set))
            .map(str::to_string)
            .collect();
    }

    fn add_rule(&mut self, rule: &str) {
        if !self.withheld_rules.iter().any(|r| r == rule) {
            self.withheld_rules.push(rule.to_string());
        }
    }
}

/// The result of [`filter_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Pass, rewrite or deny.
    pub verdict: ResponseVerdict,
    /// What was withheld or redacted.
    pub summary: ResponseSummary,
    /// Flag rules that fired on some resource.
    pub flags: Vec<String>,
}

/// Why a resource is withheld.
enum Why {
    Compartment,
    Rule { rule: String, error: bool },
    Label(LabelSet),
}

/// What happens to one resource.
enum Fate {
    Keep,
    Redact(Option<LabelSet>),
    Withhold(Why),
}

fn in_scope(resource: &Value, check: &ResponseCheck) -> bool {
    let in_compartment = match &check.patient {
        Some(patient) => matches!(
            resource_in_patient_compartment(resource, patient),
            Membership::In | Membership::Shared
        ),
        None => true,
    };
    in_compartment && resource_matches_granular(resource, &check.granular)
}

fn fate(resource: &Value, p: &ResponsePolicy, flags: &mut Vec<String>) -> Fate {
    if !in_scope(resource, p.check) {
        return Fate::Withhold(Why::Compartment);
    }
    let verdict = p.rules.map(|r| r.evaluate(resource)).unwrap_or_default();
    for f in verdict.flags {
        if !flags.contains(&f) {
            flags.push(f);
        }
    }
    if let Some((rule, error)) = verdict.denied {
        return Fate::Withhold(Why::Rule { rule, error });
    }
    if verdict.redact.is_some() {
        return Fate::Redact(None);
    }
    let ungranted = match p.consent {
        Some((c, granted)) if p.mode != LabelMode::Off => c.labels_of(resource) & !granted,
        _ => 0,
    };
    match (ungranted, verdict.allow) {
        (0, _) | (_, Some(_)) => Fate::Keep,
        (set, None) if p.mode == LabelMode::Write => Fate::Redact(Some(set)),
        (set, None) => Fate::Withhold(Why::Label(set)),
    }
}

/// The redacted form of a resource: `resourceType`, `id`, `meta.versionId`, `meta.lastUpdated`,
/// and `meta.security` replaced by the single label v3-ObservationValue `REDACTED` (the original
/// labels would tell what kind of data was removed).
pub fn redacted(resource: &Value) -> Value {
    let mut out = Map::new();
    for key in ["resourceType", "id"] {
        if let Some(v) = resource.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    let mut meta = Map::new();
    for key in ["versionId", "lastUpdated"] {
        if let Some(v) = resource.get("meta").and_then(|m| m.get(key)) {
            meta.insert(key.to_string(), v.clone());
        }
    }
    meta.insert(
        "security".to_string(),
        json!([{"system": OBSERVATION_VALUE, "code": "REDACTED", "display": "redacted"}]),
    );
    out.insert("meta".to_string(), Value::Object(meta));
    Value::Object(out)
}

fn bad_gateway(reason: &str) -> Denial {
    Denial::new(
        DenyKind::BadGateway,
        reason,
        "the upstream response could not be checked",
    )
}

fn outside() -> Denial {
    // The same text whatever the cause: a client must not learn that a resource is sensitive.
    Denial::new(
        DenyKind::Forbidden,
        "response.outside_scope",
        "the resource is outside what the token may read",
    )
}

/// Checks only the SMART compartment and granular scopes of a 2xx FHIR JSON response body.
pub fn check_response(body: &[u8], check: &ResponseCheck) -> ResponseVerdict {
    let policy = ResponsePolicy {
        check,
        consent: None,
        rules: None,
        mode: LabelMode::Read,
    };
    filter_response(body, &policy).verdict
}

/// Checks a 2xx FHIR JSON response body against everything in `p`.
pub fn filter_response(body: &[u8], p: &ResponsePolicy) -> Checked {
    let mut out = Checked {
        verdict: ResponseVerdict::Pass,
        summary: ResponseSummary::default(),
        flags: Vec::new(),
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        out.verdict = ResponseVerdict::Deny(bad_gateway("response.not_fhir_json"));
        return out;
    };
    match value.get("resourceType").and_then(Value::as_str) {
        Some("OperationOutcome") => {}
        Some("Bundle") => {
            // A label on the Bundle itself covers the whole response.
            let own = match p.consent {
                Some((c, granted)) if p.mode != LabelMode::Off => c.own_labels(&value) & !granted,
                _ => 0,
            };
            if own != 0 {
                out.summary.withheld_by.insert("label", 1);
                out.summary.add_labels(p.consent.map(|c| c.0), own);
                out.verdict = ResponseVerdict::Deny(outside());
            } else {
                out.verdict = filter_bundle(&mut value, p, &mut out);
            }
        }
        Some(_) => out.verdict = single(&value, p, &mut out),
        None => out.verdict = ResponseVerdict::Deny(bad_gateway("response.not_fhir_json")),
    }
    out
}

fn rewrite(value: &Value, withheld: u32) -> ResponseVerdict {
    match serde_json::to_vec(value) {
        Ok(body) => ResponseVerdict::Rewrite { body, withheld },
        Err(_) => ResponseVerdict::Deny(bad_gateway("response.rewrite_failed")),
    }
}

/// Records a withholding in the summary.
fn note(out: &mut Checked, p: &ResponsePolicy, why: &Why) {
    let key = match why {
        Why::Compartment => "compartment",
        Why::Rule { rule, .. } => {
            out.summary.add_rule(rule);
            "rule"
        }
        Why::Label(set) => {
            out.summary.add_labels(p.consent.map(|c| c.0), *set);
            "label"
        }
    };
    *out.summary.withheld_by.entry(key).or_insert(0) += 1;
}

fn note_redacted(out: &mut Checked, p: &ResponsePolicy, labels: Option<LabelSet>) {
    out.summary.redacted += 1;
    if let Some(set) = labels {
        out.summary.add_labels(p.consent.map(|c| c.0), set);
    }
}

fn single(value: &Value, p: &ResponsePolicy, out: &mut Checked) -> ResponseVerdict {
    match fate(value, p, &mut out.flags) {
        Fate::Keep => ResponseVerdict::Pass,
        Fate::Redact(labels) => {
            note_redacted(out, p, labels);
            rewrite(&redacted(value), 0)
        }
        Fate::Withhold(why) => {
            note(out, p, &why);
            match why {
                Why::Rule { rule, error } => {
                    let message = p
                        .rules
                        .map(|r| r.denial_message(&rule, error))
                        .unwrap_or_default();
                    let reason = if error { "rule.error" } else { "rule.denied" };
                    let mut denial = Denial::new(DenyKind::Forbidden, reason, message);
                    denial.rule = Some(rule);
                    ResponseVerdict::Deny(denial)
                }
                Why::Compartment | Why::Label(_) => ResponseVerdict::Deny(outside()),
            }
        }
    }
}

fn is_outcome(resource: &Value) -> bool {
    resource.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome")
}

fn filter_bundle(bundle: &mut Value, p: &ResponsePolicy, out: &mut Checked) -> ResponseVerdict {
    let keeps_slots = matches!(
        bundle.get("type").and_then(Value::as_str),
        Some("batch-response" | "transaction-response")
    );
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return ResponseVerdict::Pass;
    };
    let mut changed = false;
    let mut withheld = 0u32;
    let mut kept = Vec::with_capacity(entries.len());
    for mut entry in entries.drain(..) {
        let fate = match entry.get("resource") {
            Some(r) if !is_outcome(r) => fate(r, p, &mut out.flags),
            _ => Fate::Keep,
        };
        match fate {
            Fate::Keep => kept.push(entry),
            Fate::Redact(labels) => {
                note_redacted(out, p, labels);
                if let Some(r) = entry.get_mut("resource") {
                    *r = redacted(r);
                }
                changed = true;
                kept.push(entry);
            }
            Fate::Withhold(why) => {
                note(out, p, &why);
                withheld += 1;
                changed = true;
                if keeps_slots {
                    kept.push(json!({"response": {
                        "status": "403 Forbidden",
                        "outcome": suppressed("the resource is outside what the token may read")
                    }}));
                }
            }
        }
    }
    *entries = kept;
    if withheld > 0 && !keeps_slots {
        entries.push(json!({
            "resource": suppressed(&format!(
                "{withheld} result(s) withheld: outside what the token may read"
            )),
            "search": {"mode": "outcome"}
        }));
        if let Some(obj) = bundle.as_object_mut() {
            obj.remove("total");
        }
    }
    if changed {
        rewrite(bundle, withheld)
    } else {
        ResponseVerdict::Pass
    }
}

fn suppressed(text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "suppressed", "diagnostics": text}]
    })
}

#[cfg(test)]
mod tests;

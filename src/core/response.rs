//! Response-side protection: every returned resource is checked, whatever the request was.
//!
//! The body is read once, strictly ([`crate::tape`]: duplicate member names, ambiguous strings
//! and anything that is not one JSON text are refused with 502), and never turned into a
//! `serde_json::Value` as a whole. The resources it holds are the top-level resource, the entries
//! of a Bundle (every search mode, included resources too, and `entry.response.outcome`), the
//! `contained` resources of each, and the resources nested in Bundles and `Parameters`
//! (`parameter[].resource`, `.part[]`), down to [`MAX_DEPTH`] levels (deeper is withheld). A
//! top-level Bundle or `Parameters` is the container of the answer; every other resource meets:
//!
//! 1. the SMART checks ([`ResponseCheck`], `access.rs`): its type is readable by the token's
//!    scopes, in the patient compartment for `patient/` scopes, matching granular constraints. A
//!    resource whose nested resources fail fails with them; a read (`[type]/[id]`) must be
//!    answered with that very resource, and the `Parameters` output of an instance operation
//!    (`[type]/[id]/$meta`) is only readable when that instance is;
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
//! withheld, and loses `total`. Bodies are rewritten only when something changed, by splicing:
//! what is kept is copied byte for byte from what was checked; a body with nothing to withhold
//! is forwarded exactly as it came. A resource or element of an unexpected shape (an `entry` that
//! is not a list, a reference that is not a string, a resource without `resourceType`) fails the
//! whole answer closed (502).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::consent::{ConsentPolicy, LabelSet, OBSERVATION_VALUE};
use crate::fhir::Interaction;
use crate::outcome::{Denial, DenyKind};
use crate::rules::ResponseRules;
use crate::tape::{JsonRef, Malformed, Tape, TapeError, Val};

mod access;

use access::Refusal;
pub use access::{ResponseCheck, Target};

/// Deepest nesting of resources in a response (a Bundle in a Bundle entry is one level).
pub const MAX_DEPTH: usize = 8;

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
    /// SMART: `scope` (no scope reads the type), `compartment`, `identity` (not what was read).
    Smart(&'static str),
    Rule {
        rule: String,
        error: bool,
    },
    Label(LabelSet),
}

/// What happens to one resource.
enum Fate {
    Keep,
    Redact(Option<LabelSet>),
    Withhold(Why),
}

/// What the walk of one resource (and everything nested in it) found.
#[derive(Default)]
struct Tree {
    /// The first SMART refusal met.
    refused: Option<&'static str>,
    /// Configured labels carried (own and nested), when the consent check applies.
    labels: LabelSet,
}

fn refusal_reason(r: Refusal) -> &'static str {
    match r {
        Refusal::Scope => "scope",
        Refusal::Compartment => "compartment",
    }
}

fn labels_apply(p: &ResponsePolicy) -> bool {
    p.consent.is_some() && p.mode != LabelMode::Off
}

/// `resourceType` of a resource, which must be an object with a string `resourceType`.
fn resource_type<'t>(r: Val<'t>) -> Result<std::borrow::Cow<'t, str>, Malformed> {
    if !r.is_object() {
        return Err(Malformed("resource"));
    }
    r.opt_text("resourceType", "resourceType")?
        .ok_or(Malformed("resourceType"))
}

/// Walks `r` and what it holds; `container`: the top-level Bundle or Parameters, whose own type
/// is not a resource the token reads.
fn walk(
    r: Val<'_>,
    depth: usize,
    container: bool,
    p: &ResponsePolicy,
    t: &mut Tree,
) -> Result<(), Malformed> {
    let rt = resource_type(r)?;
    if depth > MAX_DEPTH {
        t.refused.get_or_insert("compartment");
        return Ok(());
    }
    if !container {
        if let Some(why) = p.check.refusal(&rt, r)? {
            t.refused.get_or_insert(refusal_reason(why));
            return Ok(());
        }
    }
    if labels_apply(p) {
        if let Some((c, _)) = p.consent {
            t.labels |= c.security_labels(r)?;
        }
    }
    for c in r.list("contained", "contained")? {
        walk(c, depth + 1, false, p, t)?;
    }
    // A top-level Bundle's entries are checked one by one by the caller.
    if rt == "Bundle" && !container {
        for e in r.list("entry", "Bundle.entry")? {
            entry_walk(e, depth + 1, p, t)?;
        }
    }
    if rt == "Parameters" {
        for param in r.list("parameter", "Parameters.parameter")? {
            parameter_walk(param, depth + 1, p, t)?;
        }
    }
    Ok(())
}

/// A Bundle entry: its `resource` and its `response.outcome`.
fn entry_walk(e: Val<'_>, depth: usize, p: &ResponsePolicy, t: &mut Tree) -> Result<(), Malformed> {
    if let Some(r) = e.get("resource").filter(|r| !r.is_null()) {
        walk(r, depth, false, p, t)?;
    }
    for response in e.objects("response", "Bundle.entry.response")? {
        if let Some(o) = response.get("outcome").filter(|o| !o.is_null()) {
            walk(o, depth, false, p, t)?;
        }
    }
    Ok(())
}

fn parameter_walk(
    param: Val<'_>,
    depth: usize,
    p: &ResponsePolicy,
    t: &mut Tree,
) -> Result<(), Malformed> {
    if depth > MAX_DEPTH {
        t.refused.get_or_insert("compartment");
        return Ok(());
    }
    if let Some(r) = param.get("resource").filter(|r| !r.is_null()) {
        walk(r, depth, false, p, t)?;
    }
    if let Some(meta) = param.get("valueMeta").filter(|m| !m.is_null()) {
        if !meta.is_object() {
            return Err(Malformed("Parameters.parameter.valueMeta"));
        }
        if let (true, Some((c, _))) = (labels_apply(p), p.consent) {
            t.labels |= c.meta_labels(meta)?;
        }
    }
    for part in param.list("part", "Parameters.parameter.part")? {
        parameter_walk(part, depth + 1, p, t)?;
    }
    Ok(())
}

/// The fate of one top-level resource (the answer, or a Bundle entry's resource).
fn fate(
    r: Val<'_>,
    container: bool,
    p: &ResponsePolicy,
    flags: &mut Vec<String>,
) -> Result<Fate, Malformed> {
    let mut tree = Tree::default();
    walk(r, 0, container, p, &mut tree)?;
    if let Some(why) = tree.refused {
        // A write or delete happened: its result is redacted, not refused.
        if p.mode != LabelMode::Read {
            return Ok(Fate::Redact(None));
        }
        return Ok(Fate::Withhold(Why::Smart(why)));
    }
    let rt = resource_type(r)?;
    if rt == "OperationOutcome" {
        return Ok(Fate::Keep);
    }
    // Rules see resources: a top-level Bundle's entries, not the Bundle.
    let rules = p.rules.filter(|_| !(container && rt == "Bundle"));
    let verdict = match rules {
        Some(rules) => match r.to_value() {
            Some(v) => rules.evaluate(&v),
            None => return Err(Malformed("resource")),
        },
        None => Default::default(),
    };
    for f in verdict.flags {
        if !flags.contains(&f) {
            flags.push(f);
        }
    }
    if let Some((rule, error)) = verdict.denied {
        return Ok(Fate::Withhold(Why::Rule { rule, error }));
    }
    if verdict.redact.is_some() {
        return Ok(Fate::Redact(None));
    }
    // `tree.labels` holds labels only where they apply ([`labels_apply`]).
    let ungranted = match p.consent {
        Some((_, granted)) => tree.labels & !granted,
        None => 0,
    };
    Ok(match (ungranted, verdict.allow) {
        (0, _) | (_, Some(_)) => Fate::Keep,
        (set, None) if p.mode == LabelMode::Write => Fate::Redact(Some(set)),
        (set, None) => Fate::Withhold(Why::Label(set)),
    })
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

/// The redacted form of a resource on the tape, as JSON text.
fn redacted_text(r: Val<'_>) -> Result<String, Malformed> {
    let mut small = Map::new();
    for key in ["resourceType", "id"] {
        if let Some(v) = r.get(key).and_then(|v| v.to_value()) {
            small.insert(key.to_string(), v);
        }
    }
    if let Some(meta) = r.get("meta").filter(|m| m.is_object()) {
        let mut m = Map::new();
        for key in ["versionId", "lastUpdated"] {
            if let Some(v) = meta.get(key).and_then(|v| v.to_value()) {
                m.insert(key.to_string(), v);
            }
        }
        small.insert("meta".to_string(), Value::Object(m));
    }
    serde_json::to_string(&redacted(&Value::Object(small))).map_err(|_| Malformed("resource"))
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

/// The 502 reason of a body the scanner refused.
fn tape_reason(e: TapeError) -> &'static str {
    match e {
        TapeError::Syntax(_) | TapeError::TooLarge => "response.not_fhir_json",
        TapeError::Duplicate | TapeError::Surrogate | TapeError::TooDeep => {
            "response.ambiguous_json"
        }
    }
}

/// Checks only the SMART side (types, compartment, granular scopes) of a 2xx FHIR JSON body.
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
    let tape = match Tape::parse(body) {
        Ok(t) => t,
        Err(e) => {
            out.verdict = ResponseVerdict::Deny(bad_gateway(tape_reason(e)));
            return out;
        }
    };
    let root = tape.root();
    out.verdict = match top(&tape, root, p, &mut out) {
        Ok(v) => v,
        Err(Malformed(_)) => {
            out.summary = ResponseSummary::default();
            ResponseVerdict::Deny(bad_gateway("response.malformed"))
        }
    };
    out
}

fn top(
    tape: &Tape<'_>,
    root: Val<'_>,
    p: &ResponsePolicy,
    out: &mut Checked,
) -> Result<ResponseVerdict, Malformed> {
    if !root.is_object() {
        return Ok(ResponseVerdict::Deny(bad_gateway("response.not_fhir_json")));
    }
    let Some(rt) = root.opt_text("resourceType", "resourceType")? else {
        return Ok(ResponseVerdict::Deny(bad_gateway("response.not_fhir_json")));
    };
    if let Some(t) = p.check.target.as_ref().filter(|t| t.read) {
        let id = root.opt_text("id", "id")?;
        if rt != t.resource_type.as_str() || id.as_deref() != Some(t.id.as_str()) {
            note(out, p, &Why::Smart("identity"));
            return Ok(ResponseVerdict::Deny(outside()));
        }
    }
    match rt.as_ref() {
        "Bundle" => {
            // The Bundle's own labels and contained resources cover the whole response.
            let fate = fate(root, true, p, &mut out.flags)?;
            match fate {
                Fate::Keep => filter_bundle(tape, root, p, out),
                Fate::Redact(labels) => {
                    note_redacted(out, p, labels);
                    Ok(rewrite(&redacted_text(root)?, 0))
                }
                Fate::Withhold(why) => {
                    note(out, p, &why);
                    Ok(withhold_single(p, why))
                }
            }
        }
        "Parameters" if !p.check.may_read_about_target() => {
            note(out, p, &Why::Smart("compartment"));
            Ok(ResponseVerdict::Deny(outside()))
        }
        other => single(root, other == "Parameters", p, out),
    }
}

fn rewrite(text: &str, withheld: u32) -> ResponseVerdict {
    ResponseVerdict::Rewrite {
        body: text.as_bytes().to_vec(),
        withheld,
    }
}

/// Records a withholding in the summary.
fn note(out: &mut Checked, p: &ResponsePolicy, why: &Why) {
    let key = match why {
        Why::Smart(key) => key,
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

fn withhold_single(p: &ResponsePolicy, why: Why) -> ResponseVerdict {
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
        Why::Smart(_) | Why::Label(_) => ResponseVerdict::Deny(outside()),
    }
}

fn single(
    r: Val<'_>,
    container: bool,
    p: &ResponsePolicy,
    out: &mut Checked,
) -> Result<ResponseVerdict, Malformed> {
    Ok(match fate(r, container, p, &mut out.flags)? {
        Fate::Keep => ResponseVerdict::Pass,
        Fate::Redact(labels) => {
            note_redacted(out, p, labels);
            rewrite(&redacted_text(r)?, 0)
        }
        Fate::Withhold(why) => {
            note(out, p, &why);
            withhold_single(p, why)
        }
    })
}

/// What becomes of one entry in the rewritten Bundle.
enum Slot {
    /// Copied as received.
    Keep,
    /// Replaced by this text.
    Text(String),
    /// Left out.
    Drop,
}

fn filter_bundle(
    tape: &Tape<'_>,
    bundle: Val<'_>,
    p: &ResponsePolicy,
    out: &mut Checked,
) -> Result<ResponseVerdict, Malformed> {
    let keeps_slots = matches!(
        bundle.opt_text("type", "Bundle.type")?.as_deref(),
        Some("batch-response" | "transaction-response")
    );
    let Some(entries) = bundle.get("entry").filter(|e| !e.is_null()) else {
        return Ok(ResponseVerdict::Pass);
    };
    if entries.items().is_none() {
        return Err(Malformed("Bundle.entry"));
    }
    let mut slots = Vec::new();
    let mut changed = false;
    let mut withheld = 0u32;
    for entry in entries.elements() {
        if !entry.is_object() {
            return Err(Malformed("Bundle.entry"));
        }
        let resource = entry.get("resource").filter(|r| !r.is_null());
        let fate = match resource {
            Some(r) => fate(r, false, p, &mut out.flags)?,
            None => {
                // No resource: only the entry's response outcome can carry one.
                let mut tree = Tree::default();
                entry_walk(entry, 0, p, &mut tree)?;
                match tree.refused {
                    Some(why) => Fate::Withhold(Why::Smart(why)),
                    None => Fate::Keep,
                }
            }
        };
        // The outcome of an entry that has a resource is checked too.
        let fate = match (fate, resource) {
            (Fate::Keep, Some(_)) => {
                let mut tree = Tree::default();
                for response in entry.objects("response", "Bundle.entry.response")? {
                    if let Some(o) = response.get("outcome").filter(|o| !o.is_null()) {
                        walk(o, 1, false, p, &mut tree)?;
                    }
                }
                match tree.refused {
                    Some(why) => Fate::Withhold(Why::Smart(why)),
                    None => Fate::Keep,
                }
            }
            (other, _) => other,
        };
        let slot = match fate {
            Fate::Keep => Slot::Keep,
            Fate::Redact(labels) => {
                note_redacted(out, p, labels);
                changed = true;
                match resource {
                    Some(r) => Slot::Text(replace_member(entry, "resource", &redacted_text(r)?)),
                    None => Slot::Keep,
                }
            }
            Fate::Withhold(why) => {
                note(out, p, &why);
                withheld += 1;
                changed = true;
                if keeps_slots {
                    Slot::Text(
                        json!({"response": {
                            "status": "403 Forbidden",
                            "outcome": suppressed("the resource is outside what the token may read")
                        }})
                        .to_string(),
                    )
                } else {
                    Slot::Drop
                }
            }
        };
        slots.push(slot);
    }
    if !changed {
        return Ok(ResponseVerdict::Pass);
    }
    let mut items: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(slots.len() + 1);
    for (slot, entry) in slots.into_iter().zip(entries.elements()) {
        match slot {
            Slot::Keep => items.push(entry.raw().into()),
            Slot::Text(t) => items.push(t.into()),
            Slot::Drop => {}
        }
    }
    let drop_total = withheld > 0 && !keeps_slots;
    if drop_total {
        items.push(
            json!({
                "resource": suppressed(&format!(
                    "{withheld} result(s) withheld: outside what the token may read"
                )),
                "search": {"mode": "outcome"}
            })
            .to_string()
            .into(),
        );
    }
    let text = tape.text();
    let mut body = String::with_capacity(text.len());
    body.push('{');
    let mut first = true;
    for (key, value, span) in bundle.members() {
        if drop_total && key.is("total") {
            continue;
        }
        if !first {
            body.push(',');
        }
        first = false;
        if key.is("entry") {
            body.push_str(key.raw());
            body.push(':');
            body.push('[');
            body.push_str(&items.join(","));
            body.push(']');
        } else {
            body.push_str(text.get(span).unwrap_or_else(|| value.raw()));
        }
    }
    body.push('}');
    Ok(rewrite(&body, withheld))
}

/// An object's text with member `name`'s value replaced by `value` (other members copied).
fn replace_member(object: Val<'_>, name: &str, value: &str) -> String {
    let mut s = String::from("{");
    let mut first = true;
    for (key, v, _) in object.members() {
        if !first {
            s.push(',');
        }
        first = false;
        s.push_str(key.raw());
        s.push(':');
        s.push_str(if key.is(name) { value } else { v.raw() });
    }
    s.push('}');
    s
}

fn suppressed(text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "suppressed", "diagnostics": text}]
    })
}

#[cfg(test)]
mod attacks;
#[cfg(test)]
mod tests;

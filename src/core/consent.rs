//! Consent by security labels: resources whose `meta.security` carries a configured sensitivity
//! or confidentiality label are withheld unless the token's consent claim grants that label (or a
//! response rule of effect `allow` lets the resource through; see [`crate::response`]). Pure.
//!
//! Matching is fail-closed on the resource side and exact on the grant side:
//! - a label on a resource matches a configured label when the codes are equal ignoring ASCII
//!   case and the systems are equal after normalisation (ASCII case, a trailing `/`, and the HL7
//!   aliases: OIDs and the pre-R4 `http://hl7.org/fhir/v3/...` URLs); a label **without** a
//!   system matches every configured label with its code;
//! - labels are collected from the resource's own `meta.security`, its `contained` resources,
//!   and the resources nested in it (`Bundle.entry[].resource`, `Parameters.parameter[].resource`
//!   and `.part[]`), down to [`MAX_DEPTH`] levels; deeper nesting, or a `meta.security` that is not
//!   a list of objects, counts as carrying every configured label;
//! - the consent claim (a list of strings or a space-separated string; any other type grants
//!   nothing) grants a label by its exact configured code (`PSY`) or by `system|code` with the
//!   exact code; nothing else (no wildcards, no case folding) grants anything.

use serde_json::{Map, Value};

use crate::tape::{JsonRef, Malformed};

/// HL7 v3 ActCode (sensitivity codes such as PSY, HIV).
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// HL7 v3 Confidentiality (R restricted, V very restricted).
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
/// HL7 v3 ObservationValue, whose `REDACTED` code marks a redacted resource.
pub const OBSERVATION_VALUE: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// Default sensitivity codes (v3 ActCode `_InformationSensitivityPolicy` members).
pub const DEFAULT_SENSITIVITY: [&str; 12] = [
    "BH", "ETH", "GDIS", "HIV", "MST", "PSY", "SCA", "SDV", "SEX", "STD", "SUD", "TBOO",
];
/// Default confidentiality codes.
pub const DEFAULT_CONFIDENTIALITY: [&str; 2] = ["R", "V"];
/// Most labels a configuration may list (they are kept as bits of a `u64`).
pub const MAX_LABELS: usize = 64;
/// Deepest nesting of resources searched for labels.
pub const MAX_DEPTH: usize = 8;

/// Other names of the HL7 code systems, normalised (lowercase, no trailing `/`).
const ALIASES: [(&str, &str); 4] = [
    ("urn:oid:2.16.840.1.113883.5.4", ACT_CODE),
    ("http://hl7.org/fhir/v3/actcode", ACT_CODE),
    ("urn:oid:2.16.840.1.113883.5.25", CONFIDENTIALITY),
    ("http://hl7.org/fhir/v3/confidentiality", CONFIDENTIALITY),
];

/// One configured security label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Code system URI as configured.
    pub system: String,
    /// Code as configured (the canonical case a grant must use).
    pub code: String,
    /// `system` normalised for comparison.
    normalized: String,
}

impl Label {
    /// A label from its system and code.
    pub fn new(system: &str, code: &str) -> Label {
        Label {
            system: system.to_string(),
            code: code.to_string(),
            normalized: normalize_system(system),
        }
    }
}

/// Normalises a code-system URI: ASCII lowercase, no trailing `/`, HL7 aliases resolved.
fn normalize_system(system: &str) -> String {
    let s = system.trim().trim_end_matches('/').to_ascii_lowercase();
    for (alias, canonical) in ALIASES {
        if s == alias {
            return canonical.to_ascii_lowercase();
        }
    }
    s
}

/// A set of configured labels, as bits (bit `i` = `labels[i]`).
pub type LabelSet = u64;

/// The label check as configured (`consent` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPolicy {
    /// Whether the built-in label check runs at all.
    pub enforce: bool,
    /// Claim holding the consented codes.
    pub claim: String,
    /// The labels that make a resource sensitive (at most [`MAX_LABELS`]).
    pub labels: Vec<Label>,
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        let labels = DEFAULT_SENSITIVITY
            .iter()
            .map(|c| Label::new(ACT_CODE, c))
            .chain(
                DEFAULT_CONFIDENTIALITY
                    .iter()
                    .map(|c| Label::new(CONFIDENTIALITY, c)),
            )
            .collect();
        ConsentPolicy {
            enforce: true,
            claim: "consent".to_string(),
            labels,
        }
    }
}

impl ConsentPolicy {
    /// True when the check runs (enforced, with at least one label).
    pub fn active(&self) -> bool {
        self.enforce && !self.labels.is_empty()
    }

    /// Every configured label.
    pub fn all(&self) -> LabelSet {
        match self.labels.len() {
            0 => 0,
            n if n >= 64 => u64::MAX,
            n => (1u64 << n) - 1,
        }
    }

    /// The labels the token's consent claim grants.
    pub fn grants(&self, claims: &Map<String, Value>) -> LabelSet {
        let items: Vec<&str> = match claims.get(&self.claim) {
            Some(Value::String(s)) => s.split_ascii_whitespace().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut set = 0;
        for item in items {
            let (system, code) = match item.rsplit_once('|') {
                Some((s, c)) => (Some(normalize_system(s)), c),
                None => (None, item),
            };
            for (i, label) in self.labels.iter().enumerate() {
                let system_ok = system.as_deref().is_none_or(|s| s == label.normalized);
                if system_ok && label.code == code {
                    set |= bit(i);
                }
            }
        }
        set
    }

    /// The configured labels `resource` carries (itself, contained and nested resources).
    pub fn labels_of(&self, resource: &Value) -> LabelSet {
        self.collect(resource, 0, true)
    }

    /// The configured labels in `resource`'s own `meta.security` and its `contained` resources
    /// (not nested entries: for a search Bundle, whose entries are checked one by one).
    pub fn own_labels(&self, resource: &Value) -> LabelSet {
        self.collect(resource, 0, false)
    }

    fn collect(&self, resource: &Value, depth: usize, nested: bool) -> LabelSet {
        if depth > MAX_DEPTH {
            return self.all();
        }
        let mut set = match resource.get("meta").and_then(|m| m.get("security")) {
            None | Some(Value::Null) => 0,
            Some(Value::Array(codings)) => {
                let mut s = 0;
                for coding in codings {
                    s |= self.match_coding(coding);
                }
                s
            }
            Some(_) => self.all(),
        };
        let children = |key: &str| {
            resource
                .get(key)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        for c in children("contained") {
            set |= self.collect(c, depth + 1, true);
        }
        if nested {
            for e in children("entry") {
                if let Some(r) = e.get("resource") {
                    set |= self.collect(r, depth + 1, true);
                }
            }
            for p in children("parameter") {
                set |= self.parameter(p, depth + 1);
            }
        }
        set
    }

    fn parameter(&self, p: &Value, depth: usize) -> LabelSet {
        if depth > MAX_DEPTH {
            return self.all();
        }
        let mut set = match p.get("resource") {
            Some(r) => self.collect(r, depth, true),
            None => 0,
        };
        for part in p
            .get("part")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            set |= self.parameter(part, depth + 1);
        }
        set
    }

    fn match_coding(&self, coding: &Value) -> LabelSet {
        if !coding.is_object() {
            return self.all();
        }
        self.coding_labels(coding).unwrap_or_else(|_| self.all())
    }

    /// The configured labels in one resource's own `meta.security` (not its contained or nested
    /// resources), refusing shapes other than an object `meta` with a list of codings whose
    /// `system` and `code` are strings.
    pub fn security_labels<'a, J: JsonRef<'a>>(&self, resource: J) -> Result<LabelSet, Malformed> {
        match resource.get("meta") {
            None => Ok(0),
            Some(m) if m.is_null() => Ok(0),
            Some(m) if m.is_object() => self.meta_labels(m),
            Some(_) => Err(Malformed("meta")),
        }
    }

    /// The configured labels in a `Meta` element's `security` (a resource's `meta`, or an
    /// operation's `valueMeta`).
    pub fn meta_labels<'a, J: JsonRef<'a>>(&self, meta: J) -> Result<LabelSet, Malformed> {
        let mut set = 0;
        for coding in meta.list("security", "meta.security")? {
            set |= self.coding_labels(coding)?;
        }
        Ok(set)
    }

    fn coding_labels<'a, J: JsonRef<'a>>(&self, coding: J) -> Result<LabelSet, Malformed> {
        let Some(code) = coding.opt_text("code", "meta.security.code")? else {
            return Ok(0);
        };
        let system = coding
            .opt_text("system", "meta.security.system")?
            .filter(|s| !s.trim().is_empty())
            .map(|s| normalize_system(&s));
        let mut set = 0;
        for (i, label) in self.labels.iter().enumerate() {
            let system_ok = system.as_deref().is_none_or(|s| s == label.normalized);
            if system_ok && label.code.eq_ignore_ascii_case(code.trim()) {
                set |= bit(i);
            }
        }
        Ok(set)
    }

    /// The codes of the labels in `set`, in configuration order.
    pub fn codes(&self, set: LabelSet) -> impl Iterator<Item = &str> {
        self.labels
            .iter()
            .enumerate()
            .filter(move |(i, _)| set & bit(*i) != 0)
            .map(|(_, l)| l.code.as_str())
    }
}

fn bit(i: usize) -> LabelSet {
    1u64.checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Parses a configured label `system|code`; `None` unless both parts are non-empty and free of
/// whitespace and further `|`.
pub fn parse_label(text: &str) -> Option<Label> {
    let (system, code) = text.split_once('|')?;
    let ok = |s: &str| !s.is_empty() && !s.contains('|') && !s.chars().any(char::is_whitespace);
    (ok(system) && ok(code)).then(|| Label::new(system, code))
}

#[cfg(test)]
mod tests;

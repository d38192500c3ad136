//! Table-driven policy tests (`policies/<name>.cases.json`, in the spirit of `opa test`): each
//! case gives token claims and a request, and the decision expected.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::policy::Policy;
use crate::rules::RuleSet;

/// One test case.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown in the report.
    pub name: String,
    /// The token's claims (as if verified).
    pub token: Map<String, Value>,
    /// The request.
    pub request: CaseRequest,
    /// The resource the upstream returns, for response-phase rules.
    #[serde(default)]
    pub response: Option<Value>,
    /// What must happen.
    pub expect: Expect,
}

fn get() -> String {
    "GET".to_string()
}

/// The request of a case.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRequest {
    /// HTTP method (default GET).
    #[serde(default = "get")]
    pub method: String,
    /// Path with query, e.g. `/fhir/Observation?patient=123`.
    pub path: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Downstream peer `ip:port` (default: an internet address, see `full::DEFAULT_SOURCE`).
    #[serde(default)]
    pub source: Option<String>,
    /// Body: a JSON value (e.g. a Bundle) or a string (e.g. a form body).
    #[serde(default)]
    pub body: Option<Value>,
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The request goes upstream.
    Allow,
    /// The filter answers itself.
    Deny,
}

/// The expected outcome; every field but `decision` is optional and checked only when given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// Allow or deny.
    pub decision: Decision,
    /// HTTP status of the denial (200 for allow).
    #[serde(default)]
    pub status: Option<u16>,
    /// The stable reason code of the audit record (`allow`, `smart.insufficient_scope`,
    /// `rule.denied`, `response.outside_scope`, …).
    #[serde(default)]
    pub reason: Option<String>,
    /// The rule that denied.
    #[serde(default)]
    pub rule: Option<String>,
    /// Exactly these flags were raised.
    #[serde(default)]
    pub flags: Option<Vec<String>>,
    /// The scope named by an `insufficient_scope` denial.
    #[serde(default)]
    pub scope: Option<String>,
    /// The `acr_values` of a step-up denial.
    #[serde(default)]
    pub acr_values: Option<String>,
    /// Resources withheld from the case's `response`.
    #[serde(default)]
    pub withheld: Option<u32>,
    /// Resources of the case's `response` returned redacted.
    #[serde(default)]
    pub redacted: Option<u32>,
    /// Exactly these label codes caused withholding (or redaction), in configuration order.
    #[serde(default)]
    pub withheld_labels: Option<Vec<String>>,
    /// The `:path` the upstream gets: the search narrowed to the launch patient
    /// (`smart.narrowSearches`). `""` expects no narrowing.
    #[serde(default)]
    pub narrowed: Option<String>,
}

/// What a decider made of a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// True when the request would go upstream.
    pub allowed: bool,
    /// 200 on allow, else the denial's status.
    pub status: u16,
    /// The reason code of the audit record.
    pub reason: String,
    /// The case's `response` went through the filter's response check.
    pub response_checked: bool,
    /// The rule that denied, if a rule did.
    pub rule: Option<String>,
    /// Flags raised by flag rules.
    pub flags: Vec<String>,
    /// The scope named by an `insufficient_scope` denial.
    pub scope: Option<String>,
    /// The `acr_values` of a step-up denial.
    pub acr_values: Option<String>,
    /// Resources withheld from the response.
    pub withheld: u32,
    /// Resources returned redacted.
    pub redacted: u32,
    /// Label codes that caused withholding or redaction.
    pub withheld_labels: Vec<String>,
    /// The `:path` sent upstream instead of the case's, when the search was narrowed to the
    /// launch patient (`smart.narrowSearches`).
    pub narrowed: Option<String>,
    /// The explanation, step by step.
    pub explanation: Vec<String>,
}

/// Turns a case into an outcome.
pub trait Decider {
    /// Decides one case; `Err` when the case cannot be run (e.g. a malformed request).
    fn decide(&self, case: &Case) -> Result<Outcome, String>;
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Every way the outcome differs from the expectation (empty = passed).
    pub mismatches: Vec<String>,
    /// The outcome, when the case could be run.
    pub outcome: Option<Outcome>,
}

impl CaseResult {
    /// True when the outcome matched the expectation.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Parses a cases file: a JSON array of cases.
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let cases: Vec<Case> =
        serde_json::from_str(text).map_err(|e| format!("not a valid cases file: {e}"))?;
    if cases.is_empty() {
        return Err("a cases file needs at least one case".to_string());
    }
    let mut names: Vec<&str> = Vec::new();
    for c in &cases {
        if c.name.trim().is_empty() || names.contains(&c.name.as_str()) {
            return Err(format!(
                "case names must be non-empty and unique: {:?}",
                c.name
            ));
        }
        names.push(&c.name);
    }
    Ok(cases)
}

/// Compares an outcome with the expectation.
pub fn compare(expect: &Expect, got: &Outcome) -> Vec<String> {
    let mut m = Vec::new();
    let decision = if got.allowed {
        Decision::Allow
    } else {
        Decision::Deny
    };
    if decision != expect.decision {
        m.push(format!(
            "expected {:?}, got {:?} (status {}{})",
            expect.decision,
            decision,
            got.status,
            got.rule
                .as_deref()
                .map(|r| format!(", rule '{r}'"))
                .unwrap_or_default()
        ));
    }
    if let Some(s) = expect.status {
        if s != got.status {
            m.push(format!("expected status {s}, got {}", got.status));
        }
    }
    if let Some(r) = &expect.reason {
        if *r != got.reason {
            m.push(format!("expected reason {r:?}, got {:?}", got.reason));
        }
    }
    if expect.rule.is_some() && expect.rule != got.rule {
        m.push(format!(
            "expected rule {:?}, got {:?}",
            expect.rule, got.rule
        ));
    }
    if let Some(f) = &expect.flags {
        if *f != got.flags {
            m.push(format!("expected flags {f:?}, got {:?}", got.flags));
        }
    }
    if expect.scope.is_some() && expect.scope != got.scope {
        m.push(format!(
            "expected scope {:?}, got {:?}",
            expect.scope, got.scope
        ));
    }
    if let Some(n) = expect.withheld {
        if n != got.withheld {
            m.push(format!("expected {n} withheld, got {}", got.withheld));
        }
    }
    if let Some(n) = expect.redacted {
        if n != got.redacted {
            m.push(format!("expected {n} redacted, got {}", got.redacted));
        }
    }
    if let Some(l) = &expect.withheld_labels {
        if *l != got.withheld_labels {
            m.push(format!(
                "expected withheldLabels {l:?}, got {:?}",
                got.withheld_labels
            ));
        }
    }
    if let Some(path) = &expect.narrowed {
        let got_path = got.narrowed.as_deref().unwrap_or_default();
        if path != got_path {
            m.push(format!("expected narrowed {path:?}, got {got_path:?}"));
        }
    }
    if expect.acr_values.is_some() && expect.acr_values != got.acr_values {
        m.push(format!(
            "expected acrValues {:?}, got {:?}",
            expect.acr_values, got.acr_values
        ));
    }
    m
}

/// Runs every case with `decider`.
pub fn run_cases(cases: &[Case], decider: &dyn Decider) -> Vec<CaseResult> {
    cases
        .iter()
        .map(|case| match decider.decide(case) {
            Ok(outcome) => {
                let mut mismatches = compare(&case.expect, &outcome);
                if case.expect.decision == Decision::Deny && case.expect.reason.is_none() {
                    mismatches.push(
                        "a deny case must state its reason (the stable reason code), or it \
                         cannot tell one denial from another"
                            .to_string(),
                    );
                }
                if case.response.is_some() && !outcome.response_checked {
                    mismatches.push(
                        "the case gives a response, but the filter checks no response for this \
                         request: the expectation about it would be ignored"
                            .to_string(),
                    );
                }
                CaseResult {
                    name: case.name.clone(),
                    mismatches,
                    outcome: Some(outcome),
                }
            }
            Err(e) => CaseResult {
                name: case.name.clone(),
                mismatches: vec![format!("could not run: {e}")],
                outcome: None,
            },
        })
        .collect()
}

/// The results for one policy file.
#[derive(Debug, Clone)]
pub struct PolicyReport {
    /// The policy's file name without `.json`.
    pub policy: String,
    /// Problems loading the policy or its cases (each counts as one failure).
    pub problems: Vec<String>,
    /// Case results.
    pub cases: Vec<CaseResult>,
}

/// The results of a whole directory.
#[derive(Debug, Clone, Default)]
pub struct SuiteReport {
    /// One entry per policy, sorted by name.
    pub policies: Vec<PolicyReport>,
}

impl SuiteReport {
    /// Cases passed.
    pub fn passed(&self) -> usize {
        self.policies
            .iter()
            .map(|p| p.cases.iter().filter(|c| c.passed()).count())
            .sum()
    }

    /// Cases failed plus loading problems.
    pub fn failed(&self) -> usize {
        self.policies
            .iter()
            .map(|p| p.problems.len() + p.cases.iter().filter(|c| !c.passed()).count())
            .sum()
    }

    /// The report as printed by `fhirgate test`: a line per case and the final
    /// `N passed, N failed` line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for p in &self.policies {
            for problem in &p.problems {
                out.push_str(&format!("FAIL {}: {problem}\n", p.policy));
            }
            for c in &p.cases {
                if c.passed() {
                    out.push_str(&format!("PASS {}: {}\n", p.policy, c.name));
                } else {
                    out.push_str(&format!("FAIL {}: {}\n", p.policy, c.name));
                    for m in &c.mismatches {
                        out.push_str(&format!("     {m}\n"));
                    }
                }
            }
        }
        out.push_str(&format!(
            "{} passed, {} failed\n",
            self.passed(),
            self.failed()
        ));
        out
    }
}

/// Builds the decider for one policy.
pub type DeciderFactory<'a> = &'a dyn Fn(&Policy, &RuleSet) -> Result<Box<dyn Decider>, String>;

/// Runs a directory's worth of files, given as (file name, contents): every `X.json` policy is
/// run against `X.cases.json`; a policy without cases, cases without a policy, and files that
/// do not load are failures. Other file names are ignored.
pub fn run_suite(files: &[(String, String)], factory: DeciderFactory<'_>) -> SuiteReport {
    let mut policies: BTreeMap<String, Option<&str>> = BTreeMap::new();
    let mut cases: BTreeMap<String, &str> = BTreeMap::new();
    for (name, text) in files {
        if let Some(stem) = name.strip_suffix(".cases.json") {
            cases.insert(stem.to_string(), text);
        } else if let Some(stem) = name.strip_suffix(".json") {
            policies.insert(stem.to_string(), Some(text));
        }
    }
    for stem in cases.keys() {
        policies.entry(stem.clone()).or_insert(None);
    }
    let mut report = SuiteReport::default();
    for (stem, policy_text) in policies {
        let mut pr = PolicyReport {
            policy: stem.clone(),
            problems: Vec::new(),
            cases: Vec::new(),
        };
        let Some(policy_text) = policy_text else {
            pr.problems
                .push(format!("{stem}.cases.json has no {stem}.json"));
            report.policies.push(pr);
            continue;
        };
        let loaded = Policy::parse(policy_text).map_err(|p| {
            p.iter()
                .map(|x| x.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        });
        let case_list = match cases.get(&stem) {
            Some(t) => parse_cases(t),
            None => Err(format!(
                "{stem}.json has no {stem}.cases.json (every policy needs cases)"
            )),
        };
        match (loaded, case_list) {
            (Ok((policy, set)), Ok(case_list)) => match factory(&policy, &set) {
                Ok(decider) => pr.cases = run_cases(&case_list, decider.as_ref()),
                Err(e) => pr.problems.push(e),
            },
            (l, c) => {
                if let Err(e) = l {
                    pr.problems.push(format!("{stem}.json: {e}"));
                }
                if let Err(e) = c {
                    pr.problems.push(e);
                }
            }
        }
        report.policies.push(pr);
    }
    report
}

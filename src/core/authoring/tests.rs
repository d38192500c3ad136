use serde_json::{json, Value};

use super::cases::{compare, parse_cases, Decision, Expect, Outcome};
use super::*;
use crate::rules::RuleSet;

const POLICY: &str = r#"{
  "description": "test policy",
  "rules": [
    {"name": "writes-need-mfa", "match": "fhir.interaction in ['create', 'update', 'patch', 'delete']",
     "expression": "hasAny(claimValues(token.claims, 'amr'), ['mfa'])",
     "stepUp": {"acrValues": "urn:mfa"}},
    {"name": "internal-only", "match": "fhir.operation == 'export'",
     "expression": "inCidr(source.address, '10.0.0.0/8')"},
    {"name": "emergency", "effect": "flag",
     "expression": "'BTG' in claimValues(token.claims, 'purpose_of_use')"}
  ]
}"#;

const CASES: &str = r#"[
  {"name": "read ok", "token": {"sub": "u", "scope": "patient/*.rs", "patient": "1"},
   "request": {"path": "/fhir/Observation?patient=1"},
   "expect": {"decision": "allow", "status": 200, "flags": []}},
  {"name": "write needs mfa", "token": {"sub": "u"},
   "request": {"method": "POST", "path": "/fhir/Observation", "body": {"resourceType": "Observation"}},
   "expect": {"decision": "deny", "status": 401, "reason": "rule.step_up", "rule": "writes-need-mfa", "acrValues": "urn:mfa"}},
  {"name": "write with mfa", "token": {"sub": "u", "amr": ["pwd", "mfa"]},
   "request": {"method": "PUT", "path": "/fhir/Observation/9"},
   "expect": {"decision": "allow"}},
  {"name": "export from outside", "token": {"sub": "svc"},
   "request": {"path": "/fhir/$export"},
   "expect": {"decision": "deny", "status": 403, "reason": "rule.denied", "rule": "internal-only"}},
  {"name": "export from inside", "token": {"sub": "svc"},
   "request": {"path": "/fhir/$export", "source": "10.9.9.9:1234"},
   "expect": {"decision": "allow"}},
  {"name": "flagged", "token": {"sub": "u", "purpose_of_use": "BTG"},
   "request": {"path": "/fhir/Patient/1"},
   "expect": {"decision": "allow", "flags": ["emergency"]}}
]"#;

fn rules_only(files: &[(String, String)]) -> SuiteReport {
    run_suite(files, &rules_only_decider)
}

fn files(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![
        ("p.json".to_string(), POLICY.to_string()),
        ("p.cases.json".to_string(), CASES.to_string()),
        ("README.md".to_string(), "ignored".to_string()),
    ];
    v.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    v
}

#[test]
fn a_suite_runs_every_case() {
    let report = rules_only(&files(&[]));
    let text = report.render();
    assert_eq!(report.failed(), 0, "{text}");
    assert_eq!(report.passed(), 6);
    assert!(text.ends_with("6 passed, 0 failed\n"), "{text}");
    assert!(text.contains("PASS p: write needs mfa"));
}

#[test]
fn failing_cases_and_missing_files_are_counted() {
    let wrong = CASES.replace(r#""status": 401"#, r#""status": 403"#);
    let report = rules_only(&[
        ("p.json".to_string(), POLICY.to_string()),
        ("p.cases.json".to_string(), wrong),
        ("lonely.json".to_string(), POLICY.to_string()),
        ("orphan.cases.json".to_string(), CASES.to_string()),
        (
            "broken.json".to_string(),
            r#"{"description": "x", "rules": [{"name": "a", "expression": "nope"}]}"#.to_string(),
        ),
        ("broken.cases.json".to_string(), CASES.to_string()),
    ]);
    let text = report.render();
    assert_eq!(report.passed(), 5, "{text}");
    assert_eq!(report.failed(), 4, "{text}");
    assert!(
        text.contains("FAIL p: write needs mfa\n     expected status 403, got 401"),
        "{text}"
    );
    assert!(
        text.contains("lonely.json has no lonely.cases.json"),
        "{text}"
    );
    assert!(
        text.contains("orphan.cases.json has no orphan.json"),
        "{text}"
    );
    assert!(text.contains("unknown variable 'nope'"), "{text}");
    assert!(text.ends_with("5 passed, 4 failed\n"));
}

/// The suite of `files(&[])` with `p.cases.json` replaced by `cases`.
fn rules_only_with_cases(cases: &str) -> SuiteReport {
    let mut all = files(&[]);
    for (name, text) in &mut all {
        if name == "p.cases.json" {
            *text = cases.to_string();
        }
    }
    rules_only(&all)
}

#[test]
fn a_deny_case_without_a_reason_fails() {
    let vague = CASES.replace(r#""reason": "rule.denied", "#, "");
    let report = rules_only_with_cases(&vague);
    let text = report.render();
    assert_eq!(report.failed(), 1, "{text}");
    assert!(
        text.contains("FAIL p: export from outside\n     a deny case must state its reason"),
        "{text}"
    );
}

#[test]
fn a_response_the_filter_never_checks_fails_the_case() {
    // The rules-only decider checks no response: a case giving one (allowed or denied) must fail
    // rather than pass with its expectation about the response silently ignored.
    let with_response = CASES
        .replace(
            r#""request": {"path": "/fhir/Observation?patient=1"},"#,
            r#""request": {"path": "/fhir/Observation?patient=1"}, "response": {"resourceType": "Bundle", "type": "searchset"},"#,
        )
        .replace(
            r#""request": {"path": "/fhir/$export"},"#,
            r#""request": {"path": "/fhir/$export"}, "response": {"resourceType": "Parameters"},"#,
        );
    assert_ne!(with_response, CASES);
    let report = rules_only_with_cases(&with_response);
    let text = report.render();
    assert_eq!(report.failed(), 2, "{text}");
    assert!(
        text.contains(
            "FAIL p: read ok\n     the case gives a response, but the filter checks no response"
        ),
        "{text}"
    );
    assert!(
        text.contains("FAIL p: export from outside\n     the case gives a response"),
        "{text}"
    );
}

#[test]
fn cases_files_are_strict() {
    assert!(parse_cases("[]").is_err());
    assert!(parse_cases(r#"[{"name": "a", "token": {}, "request": {"path": "/fhir"}, "expect": {"decision": "allow"}, "x": 1}]"#).is_err());
    assert!(parse_cases(r#"[{"name": "a", "token": {}, "request": {"path": "/fhir"}, "expect": {"decision": "maybe"}}]"#).is_err());
    let dup = r#"[{"name": "a", "token": {}, "request": {"path": "/fhir"}, "expect": {"decision": "allow"}},
                  {"name": "a", "token": {}, "request": {"path": "/fhir"}, "expect": {"decision": "allow"}}]"#;
    assert!(parse_cases(dup).is_err());
}

#[test]
fn compare_checks_only_what_is_given() {
    let got = Outcome {
        allowed: false,
        status: 403,
        rule: Some("r".into()),
        ..Outcome::default()
    };
    let mut e = Expect {
        decision: Decision::Deny,
        status: None,
        reason: None,
        rule: None,
        flags: None,
        scope: None,
        acr_values: None,
        withheld: None,
        redacted: None,
        withheld_labels: None,
        narrowed: None,
    };
    assert!(compare(&e, &got).is_empty());
    e.rule = Some("other".into());
    e.status = Some(401);
    e.flags = Some(vec!["f".into()]);
    assert_eq!(compare(&e, &got).len(), 3);
    e = Expect {
        decision: Decision::Allow,
        ..e
    };
    assert_eq!(compare(&e, &got).len(), 4);
}

#[test]
fn check_reports_policies_and_configs() {
    let ok = check_document(POLICY);
    assert_eq!(ok.kind, DocumentKind::Policy);
    assert_eq!(ok.rules, 3);
    assert!(ok.problems.is_empty());
    let bad = check_document(
        r#"{"description": "d", "rules": [{"name": "a", "expression": "x == 1"}, {"name": "b", "expression": "hasScope(token.scopes)"}]}"#,
    );
    assert_eq!(bad.problems.len(), 2);
    assert_eq!(bad.problems[0].rule.as_deref(), Some("a"));
    assert_eq!(bad.problems[1].code, "rule_bad_call");
    let cfg = check_document(r#"{"providers": [], "rules": [{"name": "a", "expression": "'x'"}]}"#);
    assert_eq!(cfg.kind, DocumentKind::PluginConfig);
    assert_eq!(cfg.problems[0].code, "rule_not_bool");
    assert_eq!(check_document("{").problems[0].code, "policy_json");
    assert_eq!(
        check_document(r#"{"description": " ", "rules": []}"#).problems[0].code,
        "policy_shape"
    );
    assert_eq!(
        check_document(r#"{"description": "d", "rules": [], "extra": 1}"#).problems[0].code,
        "policy_json"
    );
}

#[test]
fn render_plugin_merges_base_rules() {
    let (policy, _) = Policy::parse(POLICY).unwrap();
    let out = render(&policy, None, Format::Plugin, &RenderOptions::default()).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rules"].as_array().unwrap().len(), 3);
    assert_eq!(v["rules"][0]["stepUp"]["acrValues"], "urn:mfa");
    assert_eq!(v["rules"][2]["effect"], "flag");
    assert!(v["providers"][0]["jwks"]["remote"].is_object());
    let base = json!({"fhir": {"basePath": "/r4"}, "providers": [], "rules": [{"name": "base-rule", "expression": "true"}]});
    let v: Value = serde_json::from_str(
        &render(
            &policy,
            Some(&base),
            Format::Plugin,
            &RenderOptions::default(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(v["fhir"]["basePath"], "/r4");
    assert_eq!(v["rules"][0]["name"], "base-rule");
    assert_eq!(v["rules"].as_array().unwrap().len(), 4);
    let clash = json!({"providers": [], "rules": [{"name": "emergency", "expression": "true"}]});
    assert!(render(
        &policy,
        Some(&clash),
        Format::Plugin,
        &RenderOptions::default()
    )
    .unwrap_err()
    .contains("duplicate"));
    assert!(render(
        &policy,
        Some(&json!([1])),
        Format::Plugin,
        &RenderOptions::default()
    )
    .is_err());
}

fn embedded_json(yaml: &str, marker: &str) -> Value {
    let start = yaml.find(marker).unwrap() + marker.len();
    serde_json::from_str(&yaml[start..]).unwrap()
}

#[test]
fn render_envoy_and_istio() {
    let (policy, _) = Policy::parse(POLICY).unwrap();
    let opts = RenderOptions {
        wasm: Some("/opt/f.wasm".into()),
        namespace: "fhir\"ns".into(),
        ..RenderOptions::default()
    };
    let istio_opts = RenderOptions {
        wasm: None,
        sha256: Some("a".repeat(64)),
        ..opts.clone()
    };
    let envoy = render(&policy, None, Format::Envoy, &opts).unwrap();
    assert!(envoy.contains("- name: envoy.filters.http.wasm\n"));
    assert!(envoy.contains("runtime: envoy.wasm.runtime.v8"));
    assert!(envoy.contains("filename: \"/opt/f.wasm\""));
    assert_eq!(
        embedded_json(&envoy, "value: |\n")["rules"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let istio = render(&policy, None, Format::WasmPlugin, &istio_opts).unwrap();
    assert!(istio.contains("kind: WasmPlugin\n"));
    assert!(istio.contains("apiVersion: extensions.istio.io/v1alpha1\n"));
    assert!(
        istio.contains("namespace: \"fhir\\\"ns\"\n"),
        "scalars are quoted: {istio}"
    );
    assert!(istio.contains("\"app\": \"fhir-server\""));
    assert_eq!(
        embedded_json(&istio, "pluginConfig:\n")["rules"][1]["name"],
        "internal-only"
    );
    assert_eq!(Format::parse("istio"), Some(Format::WasmPlugin));
    assert_eq!(Format::parse("wasmplugin"), Some(Format::WasmPlugin));
    assert_eq!(Format::parse("envoyfilter"), Some(Format::EnvoyFilter));
    assert_eq!(Format::parse("yaml"), None);
}

/// A policy whose one rule holds only when every variable is what the contract says for the
/// case below: the tool builds the rules' input the way Envoy does.
const VARIABLES: &str = r#"{
  "description": "variables",
  "rules": [{"name": "vars", "expression":
    "request.method == 'POST' && request.path == '/fhir/Observation/_search' && request.query.x == ['1 2'] && !('authorization' in request.headers) && !('cookie' in request.headers) && request.headers['x-y'] == 'z' && 'proxy-authorization' in request.headers && source.address == '203.0.113.10:40000' && token.clientId == 'app' && token.scopes == ['a', 'b'] && token.patient == 'p1' && !has(token.fhirUser) && fhir.interaction == 'search-type' && fhir.resourceType == 'Observation' && fhir.params.code == ['a', 'b', 'c'] && fhir.params.category == ['lab', 'vital,signs']"}]
}"#;

#[test]
fn case_variables_follow_the_contract() {
    let (policy, rules) = Policy::parse(VARIABLES).unwrap();
    let decider = rules_only_decider(&policy, &rules).unwrap();
    let case = |x: &str| -> Case {
        serde_json::from_value(json!({
            "name": "vars",
            "token": {"iss": "i", "sub": "s", "azp": "app", "scp": ["a", "b"], "patient": "p1"},
            "request": {
                "method": "post",
                "path": format!("/fhir/Observation/_search?code=a%2Cb,c&x={x}"),
                "headers": {"Authorization": "Bearer secret", "Cookie": "c=1", "X-Y": "z",
                            "Proxy-Authorization": "Basic eA=="},
                "body": "category=lab&category=vital\\,signs"
            },
            "expect": {"decision": "allow"}
        }))
        .unwrap()
    };
    let outcome = decider.decide(&case("1+2")).unwrap();
    assert!(outcome.allowed, "{:#?}", outcome.explanation);
    // The same rule sees a different query value: the rule (not something else) decides.
    let outcome = decider.decide(&case("3")).unwrap();
    assert!(!outcome.allowed);
    assert_eq!(outcome.rule.as_deref(), Some("vars"));
    assert_eq!(outcome.reason, "rule.denied");
}

#[test]
fn the_default_decider_is_the_full_decision() {
    // the same policy and cases under SMART enforcement: tokens without scopes are refused
    let report = test_files(&files(&[]));
    let text = report.render();
    assert!(text.contains("PASS p: read ok"), "{text}");
    assert!(
        text.contains("FAIL p: write needs mfa\n     expected status 401, got 403"),
        "{text}"
    );
    let (policy, _) = Policy::parse(POLICY).unwrap();
    let decider = default_decider(&policy, &RuleSet::default()).unwrap();
    let case: Case = serde_json::from_value(json!({
        "name": "scoped write without mfa",
        "token": {"sub": "u", "scope": "user/Observation.cruds"},
        "request": {"method": "POST", "path": "/fhir/Observation",
                    "body": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}},
        "expect": {"decision": "deny"}
    }))
    .unwrap();
    let outcome = decider.decide(&case).unwrap();
    assert_eq!(outcome.status, 401, "{:?}", outcome.explanation);
    assert_eq!(outcome.rule.as_deref(), Some("writes-need-mfa"));
    assert_eq!(outcome.acr_values.as_deref(), Some("urn:mfa"));
    assert!(
        outcome
            .explanation
            .iter()
            .any(|l| l.contains("SMART: allowed")),
        "{:?}",
        outcome.explanation
    );
}

#[test]
fn rendered_configurations_load_in_the_filter() {
    for name in [
        "sensitive-consent",
        "break-the-glass",
        "step-up-writes",
        "network-restrictions",
        "smart-default",
    ] {
        let path = format!("{}/../../policies/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let (policy, _) = Policy::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let out = render(&policy, None, Format::Plugin, &RenderOptions::default()).unwrap();
        crate::config::Config::from_json(out.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

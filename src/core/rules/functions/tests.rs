//! The rule functions, exercised through CEL as policy authors use them.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;

use crate::rules::{RuleConfig, RuleInput, RuleOutcome, RuleSet, RuleVerdict};

fn input() -> RuleInput {
    RuleInput {
        request: json!({"method": "GET", "path": "/fhir/Observation", "host": "fhir.example.org",
                        "headers": {"user-agent": "t"}, "query": {"patient": ["123"]}}),
        source: json!({"address": "10.1.2.3:5000"}),
        token: json!({"kind": "jwt", "issuer": "https://idp", "subject": "u1", "clientId": "app",
                      "scopes": ["openid", "patient/Observation.read", "patient/Condition.rs"],
                      "patient": "123",
                      "claims": {"scope": "openid patient/Observation.read", "amr": ["pwd", "otp"],
                                 "consent": "research treatment", "acr": "urn:mfa", "n": 5,
                                 "purpose_of_use": ["http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG"]}}),
        token_cel: None,
        fhir: json!({"interaction": "search-type", "resourceType": "Observation", "id": "", "versionId": "",
                     "operation": "", "params": {"patient": ["123"], "category": ["laboratory"],
                     "category:not": ["sensitive"], "code": ["http://loinc.org|1234-5"]}}),
    }
}

/// Evaluates one expression as a deny rule: Ok(bool) or Err(reason).
fn eval_with(expr: &str, input: &RuleInput) -> Result<bool, String> {
    let set = RuleSet::compile(&[RuleConfig {
        name: "t".into(),
        description: None,
        match_: None,
        expression: expr.into(),
        message: None,
        effect: Default::default(),
        phase: Default::default(),
        step_up: None,
    }])
    .unwrap_or_else(|e| panic!("{expr}: {e}"));
    let verdict = set.evaluate(input);
    match &verdict.trace()[0].outcome {
        RuleOutcome::Held => Ok(true),
        RuleOutcome::Violated => Ok(false),
        RuleOutcome::Error { reason, .. } => {
            assert!(matches!(verdict, RuleVerdict::Deny { error: true, .. }));
            Err(reason.clone())
        }
        other => panic!("{other:?}"),
    }
}

fn eval(expr: &str) -> Result<bool, String> {
    eval_with(expr, &input())
}

#[test]
fn has_scope_uses_smart_equivalence() {
    assert_eq!(
        eval("hasScope(token.scopes, 'patient/Observation.rs')"),
        Ok(true)
    );
    assert_eq!(
        eval("hasScope(token.scopes, 'patient/Observation.r')"),
        Ok(true)
    );
    assert_eq!(
        eval("hasScope(token.scopes, 'patient/Observation.c')"),
        Ok(false)
    );
    assert_eq!(
        eval("hasScope(token.scopes, 'user/Observation.r')"),
        Ok(false)
    );
    assert_eq!(
        eval("hasScope(token.scopes, 'patient/Condition.read')"),
        Ok(true)
    );
    assert_eq!(eval("hasScope(token.scopes, 'openid')"), Ok(true));
    assert_eq!(eval("hasScope(token.scopes, 'offline_access')"), Ok(false));
    // a space-separated claim works too
    assert_eq!(
        eval("hasScope(token.claims.scope, 'patient/Observation.s')"),
        Ok(true)
    );
}

#[test]
fn has_scope_with_a_computed_invalid_scope_fails_closed() {
    let r = eval("hasScope(token.scopes, 'patient/' + fhir.resourceType + '.sr')");
    assert!(r.unwrap_err().contains("required scope is invalid"));
    assert!(eval("hasScope(token.claims.n, 'openid')").is_err());
}

#[test]
fn in_cidr_matches_ipv4_ipv6_and_lists() {
    assert_eq!(eval("inCidr(source.address, '10.0.0.0/8')"), Ok(true));
    assert_eq!(eval("inCidr(source.address, '192.168.0.0/16')"), Ok(false));
    assert_eq!(
        eval("inCidr(source.address, ['192.168.0.0/16', '10.1.0.0/16'])"),
        Ok(true)
    );
    let mut v6 = input();
    v6.source = json!({"address": "[fd00::5]:443"});
    assert_eq!(
        eval_with("inCidr(source.address, ['10.0.0.0/8', 'fd00::/8'])", &v6),
        Ok(true)
    );
    assert_eq!(
        eval_with("inCidr(source.address, '10.0.0.0/8')", &v6),
        Ok(false)
    );
}

#[test]
fn in_cidr_with_a_bad_address_fails_closed() {
    let mut bad = input();
    bad.source = json!({"address": "pipe:/var/run/x.sock"});
    let reason = eval_with("inCidr(source.address, '10.0.0.0/8')", &bad).unwrap_err();
    assert!(reason.contains("not an IP address"), "{reason}");
    assert!(
        !reason.contains("pipe"),
        "address must not be repeated: {reason}"
    );
    // a computed bad block is an error too
    assert!(eval("inCidr(source.address, [token.subject])").is_err());
}

#[test]
fn references() {
    assert_eq!(eval("refId('Patient/123') == '123'"), Ok(true));
    assert_eq!(eval("refType('Patient/123') == 'Patient'"), Ok(true));
    assert_eq!(eval("refId('Patient/123/_history/4') == '123'"), Ok(true));
    assert_eq!(
        eval("refId('https://fhir.example.org/r4/Patient/abc-1') == 'abc-1'"),
        Ok(true)
    );
    assert_eq!(
        eval("refType('http://x/Observation/9/_history/1') == 'Observation'"),
        Ok(true)
    );
    assert_eq!(
        eval("refId('Patient/' + token.patient) == token.patient"),
        Ok(true)
    );
    assert!(eval("refId(token.subject) == 'u1'").is_err());
}

#[test]
fn parse_reference_rejects_odd_forms() {
    use super::parse_reference;
    for bad in [
        "123",
        "patient/1",
        "Patient/",
        "/Patient/1",
        "a/Patient/1",
        "Patient/1?x=y",
        "#p1",
        "Patient/1#x",
        "ftp://h/Patient/1",
        "https://Patient/1",
        "Patient/1 2",
        "Patient/a_b",
    ] {
        assert_eq!(parse_reference(bad), None, "{bad}");
    }
    assert_eq!(
        parse_reference("https://h/fhir/Patient/1"),
        Some(("Patient", "1"))
    );
}

#[test]
fn param_values_include_modifiers() {
    assert_eq!(
        eval("'laboratory' in paramValues(fhir.params, 'category')"),
        Ok(true)
    );
    // a value hidden behind a modifier is still seen
    assert_eq!(
        eval("'sensitive' in paramValues(fhir.params, 'category')"),
        Ok(true)
    );
    assert_eq!(
        eval("size(paramValues(fhir.params, 'category')) == 2"),
        Ok(true)
    );
    assert_eq!(
        eval("paramValues(fhir.params, '_security') == []"),
        Ok(true)
    );
    // 'code' does not pick up 'code-value' or similar names
    let mut i = input();
    i.fhir["params"] = json!({"code-value": ["x"], "code": ["y"]});
    assert_eq!(
        eval_with("paramValues(fhir.params, 'code') == ['y']", &i),
        Ok(true)
    );
}

#[test]
fn claim_values_accept_strings_lists_and_absence() {
    assert_eq!(
        eval("'treatment' in claimValues(token.claims, 'consent')"),
        Ok(true)
    );
    assert_eq!(eval("'otp' in claimValues(token.claims, 'amr')"), Ok(true));
    assert_eq!(eval("claimValues(token.claims, 'nope') == []"), Ok(true));
    assert!(eval("'x' in claimValues(token.claims, 'n')").is_err());
    let mut i = input();
    i.token["claims"]["amr"] = json!(["pwd", 7]);
    assert!(eval_with("'pwd' in claimValues(token.claims, 'amr')", &i).is_err());
}

#[test]
fn token_code_and_list_helpers() {
    assert_eq!(
        eval("tokenCode('http://loinc.org|1234-5') == '1234-5'"),
        Ok(true)
    );
    assert_eq!(
        eval("tokenCode('|x') == 'x' && tokenCode('y') == 'y'"),
        Ok(true)
    );
    assert_eq!(
        eval("paramValues(fhir.params, 'code').map(c, tokenCode(c)) == ['1234-5']"),
        Ok(true)
    );
    assert_eq!(eval("hasAny(['a', 'b'], ['c', 'b'])"), Ok(true));
    assert_eq!(eval("hasAny(['a'], [])"), Ok(false));
    assert_eq!(
        eval("hasAll(claimValues(token.claims, 'amr'), ['pwd', 'otp'])"),
        Ok(true)
    );
    assert_eq!(eval("hasAll(['pwd'], ['pwd', 'otp'])"), Ok(false));
    assert_eq!(eval("hasAll(['pwd'], [])"), Ok(true));
    assert!(eval("hasAny(token.subject, ['u1'])").is_err());
}

#[test]
fn purpose_of_use_with_system_prefix() {
    assert_eq!(
        eval("claimValues(token.claims, 'purpose_of_use').exists(p, tokenCode(p) in ['ETREAT', 'BTG'])"),
        Ok(true)
    );
}

#[test]
fn builtins_still_work() {
    assert_eq!(eval("request.path.startsWith('/fhir/')"), Ok(true));
    assert_eq!(eval("request.path.endsWith('Observation')"), Ok(true));
    assert_eq!(eval("request.path.matches('^/fhir/[A-Z]')"), Ok(true));
    assert_eq!(eval("size(token.scopes) == 3"), Ok(true));
    assert_eq!(eval("token.subject.contains('1')"), Ok(true));
    assert_eq!(
        eval("int('5') == token.claims.n && string(token.claims.n) == '5'"),
        Ok(true)
    );
    assert_eq!(eval("max(1, 7, 3) == 7"), Ok(true));
    assert_eq!(eval("request.query.patient[0] == '123'"), Ok(true));
    assert_eq!(eval("request.headers['user-agent'] == 't'"), Ok(true));
}

#[test]
fn matches_searches_with_literal_patterns() {
    assert_eq!(
        eval("request.path.matches('^/fhir/[A-Z][a-z]+$')"),
        Ok(true)
    );
    assert_eq!(eval("matches(request.path, 'Observation')"), Ok(true));
    assert_eq!(eval("request.path.matches('^Observation')"), Ok(false));
    assert_eq!(eval("token.clientId.matches('(?i)^APP$')"), Ok(true));
    assert_eq!(
        eval("fhir.params.code.exists(c, c.matches('^http://loinc\\\\.org\\\\|[0-9-]+$'))"),
        Ok(true)
    );
    // the cache serves the second evaluation of the same pattern
    for _ in 0..3 {
        assert_eq!(
            eval("request.host.matches('\\\\.example\\\\.org$')"),
            Ok(true)
        );
    }
    // a non-string text is an evaluation error (fail closed)
    assert!(eval("token.claims.n.matches('5')").is_err());
}

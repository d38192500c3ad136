use serde_json::json;

use super::*;

fn rule(name: &str, m: Option<&str>, expr: &str) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        description: None,
        match_: m.map(Into::into),
        expression: expr.into(),
        message: None,
        effect: Effect::Deny,
        phase: Phase::Request,
        step_up: None,
    }
}

fn flag(name: &str, m: Option<&str>, expr: &str) -> RuleConfig {
    RuleConfig {
        effect: Effect::Flag,
        ..rule(name, m, expr)
    }
}

const SECRET: &str = "S3CRET-claim-value";

fn input() -> RuleInput {
    RuleInput {
        request: json!({"method": "GET", "path": "/fhir/Observation", "host": "fhir",
                        "headers": {}, "query": {"category": ["sensitive"]}}),
        source: json!({"address": "10.1.2.3:5000"}),
        token: json!({"kind": "jwt", "issuer": "https://idp", "subject": SECRET, "clientId": "app",
                      "scopes": ["patient/Observation.rs"], "patient": "123",
                      "claims": {"consent": "no-research", "btg": "false", "secret": SECRET,
                                 "num": 7, "acr": "urn:pwd"}}),
        fhir: json!({"interaction": "search-type", "resourceType": "Observation", "id": "",
                     "versionId": "", "operation": "", "params": {"category": ["sensitive"]}}),
    }
}

fn compile_err(rules: &[RuleConfig]) -> RuleError {
    RuleSet::compile(rules).expect_err("should not compile")
}

fn one_err(expr: &str) -> RuleError {
    compile_err(&[rule("r1", None, expr)])
}

fn deny_of(v: &RuleVerdict) -> (&str, &str, bool, Option<&StepUp>) {
    match v {
        RuleVerdict::Deny {
            rule,
            message,
            error,
            step_up,
            ..
        } => (rule, message, *error, step_up.as_ref()),
        other => panic!("expected deny, got {other:?}"),
    }
}

// ---------- configuration ----------

#[test]
fn rule_config_parses_contract_shape_and_rejects_unknown_keys() {
    let r: RuleConfig = serde_json::from_value(json!({
        "name": "sensitive-needs-consent",
        "match": "fhir.resourceType == 'Observation'",
        "expression": "!has(fhir.params.category) || !('sensitive' in fhir.params.category) || 'research' in token.claims.consent",
        "message": "patient consent does not cover sensitive observations",
        "stepUp": {"acrValues": "urn:mfa", "maxAge": 300}
    }))
    .unwrap();
    assert_eq!(r.effect, Effect::Deny);
    assert_eq!(r.phase, Phase::Request);
    assert_eq!(r.step_up.as_ref().unwrap().max_age, Some(300));
    assert!(serde_json::from_value::<RuleConfig>(
        json!({"name": "a", "expression": "true", "bogus": 1})
    )
    .is_err());
    assert!(serde_json::from_value::<RuleConfig>(
        json!({"name": "a", "expression": "true", "effect": "allow"})
    )
    .is_err());
    assert!(serde_json::from_value::<RuleConfig>(
        json!({"name": "a", "expression": "true", "stepUp": {"acrValues": "x", "max_age": 1}})
    )
    .is_err());
    // round trip keeps the camelCase shape and omits defaults
    let back = serde_json::to_value(&r).unwrap();
    assert!(
        back.get("match").is_some() && back.get("effect").is_none() && back.get("stepUp").is_some()
    );
}

#[test]
fn contract_example_rule_compiles_and_runs() {
    let set = RuleSet::compile(&[rule(
        "sensitive-needs-consent",
        Some("fhir.resourceType == 'Observation'"),
        "!has(fhir.params.category) || !('sensitive' in fhir.params.category) || 'research' in token.claims.consent",
    )])
    .unwrap();
    // consent is a plain string here: strict `in` refuses it instead of doing a substring test
    let v = set.evaluate(&input());
    let (name, _, error, _) = deny_of(&v);
    assert_eq!(name, "sensitive-needs-consent");
    assert!(error);
    let mut ok = input();
    ok.token["claims"]["consent"] = json!(["research"]);
    assert!(set.evaluate(&ok).is_allow());
    let mut no = input();
    no.token["claims"]["consent"] = json!(["treatment"]);
    assert!(!set.evaluate(&no).is_allow());
}

#[test]
fn empty_invalid_and_duplicate_names() {
    assert_eq!(
        compile_err(&[rule("", None, "true")]),
        RuleError::EmptyName { index: 0 }
    );
    assert!(matches!(
        compile_err(&[rule("has space", None, "true")]),
        RuleError::InvalidName { .. }
    ));
    assert!(matches!(
        compile_err(&[rule("-x", None, "true")]),
        RuleError::InvalidName { .. }
    ));
    assert!(matches!(
        compile_err(&[rule(&"a".repeat(129), None, "true")]),
        RuleError::InvalidName { .. }
    ));
    let e = compile_err(&[rule("a", None, "true"), rule("a", None, "true")]);
    assert_eq!(e, RuleError::DuplicateName { rule: "a".into() });
    assert_eq!(e.code(), "rule_duplicate_name");
    assert!(e.to_string().contains("'a'"));
}

#[test]
fn parse_errors_name_rule_and_field() {
    let e = compile_err(&[rule("bad-cel", Some("fhir.id =="), "true")]);
    assert!(
        matches!(
            e,
            RuleError::Parse {
                field: Field::Match,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("bad-cel") && msg.contains("`match`"), "{msg}");
    assert!(matches!(
        one_err("(("),
        RuleError::Parse {
            field: Field::Expression,
            ..
        }
    ));
    assert!(matches!(one_err("   "), RuleError::Parse { .. }));
}

#[test]
fn unknown_variables_are_refused() {
    let e = one_err("requst.method == 'GET'");
    assert!(
        matches!(&e, RuleError::UnknownVariable { name, .. } if name == "requst"),
        "{e:?}"
    );
    assert!(e.to_string().contains("request, source, token, fhir"));
    // `resource` only in the response phase
    assert!(matches!(
        one_err("resource.resourceType == 'Patient'"),
        RuleError::UnknownVariable { .. }
    ));
    let resp = RuleConfig {
        phase: Phase::Response,
        ..rule("resp", None, "resource.resourceType == 'Patient'")
    };
    assert!(RuleSet::compile(&[resp]).is_ok());
    // comprehension variables are scoped to the macro
    assert!(RuleSet::compile(&[rule("ok", None, "token.scopes.all(s, s != '')")]).is_ok());
    assert!(matches!(
        one_err("token.scopes.all(s, s != '') && s == ''"),
        RuleError::UnknownVariable { .. }
    ));
}

#[test]
fn unknown_functions_and_bad_calls_are_refused() {
    assert!(matches!(
        one_err("lower(token.subject) == 'x'"),
        RuleError::UnknownFunction { .. }
    ));
    assert!(matches!(
        one_err("token.subject.split(',') == []"),
        RuleError::UnknownFunction { .. }
    ));
    assert!(matches!(
        one_err("timestamp('2020-01-01T00:00:00Z') == 1"),
        RuleError::UnknownFunction { .. }
    ));
    let e = one_err("hasScope(token.scopes)");
    assert!(
        matches!(&e, RuleError::BadCall { function, .. } if function == "hasScope"),
        "{e:?}"
    );
    assert!(e.to_string().contains("takes 2"));
    assert!(matches!(
        one_err("token.scopes.hasScope('openid')"),
        RuleError::BadCall { .. }
    ));
    assert!(matches!(
        one_err("size(token.scopes, 1) == 1"),
        RuleError::BadCall { .. }
    ));
    assert!(matches!(
        one_err("all(token.scopes)"),
        RuleError::BadCall { .. }
    ));
    assert!(matches!(
        one_err("hasAny(token.scopes, 'openid')"),
        RuleError::BadCall { .. }
    ));
    assert!(matches!(
        one_err("inCidr(source.address, 8)"),
        RuleError::BadCall { .. }
    ));
}

#[test]
fn literal_arguments_are_validated() {
    for expr in [
        "hasScope(token.scopes, 'patient/Observation.sr')",
        "hasScope(token.scopes, 'system/observation.r')",
        "inCidr(source.address, '10.0.0.1/8')",
        "inCidr(source.address, ['10.0.0.0/8', '300.0.0.0/8'])",
        "inCidr(source.address, ['10.0.0.0/8', 8])",
        "refId('123') == ''",
        "paramValues(fhir.params, '') == []",
    ] {
        let e = one_err(expr);
        assert!(matches!(e, RuleError::BadLiteral { .. }), "{expr}: {e:?}");
    }
}

#[test]
fn non_boolean_results_are_refused_when_known() {
    for expr in [
        "'abc'",
        "1 + 2",
        "[true]",
        "{'a': true}",
        "null",
        "refId('Patient/1')",
        "size(token.scopes)",
    ] {
        let e = one_err(expr);
        assert!(matches!(e, RuleError::NotBool { .. }), "{expr}: {e:?}");
    }
    assert!(matches!(
        one_err("'abc' && true"),
        RuleError::NotBool { .. }
    ));
    assert!(matches!(one_err("!1"), RuleError::NotBool { .. }));
    assert!(matches!(
        one_err("1 ? true : false"),
        RuleError::NotBool { .. }
    ));
    assert!(matches!(one_err("'a' in 'abc'"), RuleError::NotBool { .. }));
    assert!(matches!(
        one_err("'abc'.all(c, true)"),
        RuleError::BadCall { .. }
    ));
    // bool-typed things are fine
    for expr in [
        "true",
        "has(token.patient)",
        "token.scopes.exists(s, s == 'x')",
        "[1].exists_one(x, x == 1)",
    ] {
        assert!(RuleSet::compile(&[rule("r", None, expr)]).is_ok(), "{expr}");
    }
}

#[test]
fn unsupported_syntax_is_refused() {
    let e = one_err("google.protobuf.Value{string_value: 'x'} == 1");
    assert!(
        matches!(e, RuleError::Unsupported { .. } | RuleError::Parse { .. }),
        "{e:?}"
    );
}

#[test]
fn oversized_and_deep_expressions_are_refused_without_crashing() {
    let long = format!("'{}' == ''", "a".repeat(MAX_SOURCE_LEN));
    assert!(matches!(one_err(&long), RuleError::TooComplex { .. }));
    let nested = format!("{}true{}", "(".repeat(200), ")".repeat(200));
    assert!(matches!(one_err(&nested), RuleError::TooComplex { .. }));
    let chain = format!("{} == 300", vec!["1"; 300].join(" + "));
    assert!(matches!(one_err(&chain), RuleError::TooComplex { .. }));
    // && and || chains are balanced by the parser and stay shallow
    let ands = vec!["true"; 300].join(" && ");
    assert!(RuleSet::compile(&[rule("ands", None, &ands)]).is_ok());
    // repeated unary operators are refused (cel-parser 0.10 reads !!x as !x)
    let nots = format!("{}true", "!".repeat(1000));
    assert!(matches!(one_err(&nots), RuleError::Parse { .. }));
    assert!(matches!(one_err("!!true"), RuleError::Parse { .. }));
    // brackets inside strings do not count
    let quoted = format!("'{}' != ''", "(".repeat(100));
    assert!(RuleSet::compile(&[rule("q", None, &quoted)]).is_ok());
}

#[test]
fn step_up_and_message_validation() {
    let mut r = rule("s", None, "false");
    r.step_up = Some(StepUp {
        acr_values: "urn:x \"injected\"".into(),
        max_age: None,
    });
    assert!(matches!(
        compile_err(&[r.clone()]),
        RuleError::StepUp { .. }
    ));
    r.step_up = Some(StepUp {
        acr_values: "".into(),
        max_age: None,
    });
    assert!(matches!(
        compile_err(&[r.clone()]),
        RuleError::StepUp { .. }
    ));
    r.step_up = Some(StepUp {
        acr_values: "urn:a\r\nx".into(),
        max_age: None,
    });
    assert!(matches!(
        compile_err(&[r.clone()]),
        RuleError::StepUp { .. }
    ));
    let mut f = flag("f", None, "true");
    f.step_up = Some(StepUp {
        acr_values: "urn:mfa".into(),
        max_age: None,
    });
    assert!(matches!(compile_err(&[f]), RuleError::StepUp { .. }));
    let mut m = rule("m", None, "true");
    m.message = Some("line\nbreak".into());
    assert!(matches!(compile_err(&[m]), RuleError::Text { .. }));
}

#[test]
fn compile_all_reports_every_problem() {
    let errs = RuleSet::compile_all(&[
        rule("a", Some("nope == 1"), "also_nope"),
        rule("b", None, "true"),
        rule("b", None, "true"),
        rule("", None, "true"),
    ])
    .unwrap_err();
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert_eq!(errs[0].rule(), Some("a"));
    assert_eq!(errs[1].rule(), Some("a"));
    assert!(matches!(errs[2], RuleError::DuplicateName { .. }));
    assert!(matches!(errs[3], RuleError::EmptyName { index: 3 }));
}

// ---------- evaluation ----------

#[test]
fn no_rules_allow() {
    let set = RuleSet::default();
    assert!(set.is_empty());
    assert_eq!(
        set.evaluate(&input()),
        RuleVerdict::Allow {
            flags: vec![],
            trace: vec![]
        }
    );
}

#[test]
fn match_gates_the_expression() {
    let set = RuleSet::compile(&[rule(
        "only-patients",
        Some("fhir.resourceType == 'Patient'"),
        "false",
    )])
    .unwrap();
    let v = set.evaluate(&input());
    assert!(v.is_allow());
    assert_eq!(v.trace()[0].outcome, RuleOutcome::NotApplicable);
}

#[test]
fn deny_overrides_and_first_denial_wins() {
    let mut second = rule("second", None, "false");
    second.message = Some("second says no".into());
    let set = RuleSet::compile(&[
        rule("first-ok", None, "true"),
        rule("first-no", None, "request.method != 'GET'"),
        second,
        flag("f", None, "true"),
    ])
    .unwrap();
    let v = set.evaluate(&input());
    let (name, message, error, step_up) = deny_of(&v);
    assert_eq!(name, "first-no");
    assert_eq!(message, "denied by policy rule 'first-no'");
    assert!(!error && step_up.is_none());
    // every rule is still evaluated and traced, in order
    let outcomes: Vec<_> = v
        .trace()
        .iter()
        .map(|t| (t.rule.as_str(), t.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("first-ok", RuleOutcome::Held),
            ("first-no", RuleOutcome::Violated),
            ("second", RuleOutcome::Violated),
            ("f", RuleOutcome::Flagged),
        ]
    );
}

#[test]
fn evaluation_errors_deny_without_leaking_data() {
    let cases = [
        // missing key
        ("token.claims.nope == 'x'", "no such key 'nope'"),
        // non-bool result at runtime
        ("token.claims.secret", "not a bool"),
        // truthiness of a string is not accepted ("false" would otherwise be true)
        ("token.claims.btg || false", "needs a bool"),
        ("!token.claims.secret", "needs a bool"),
        // `in` on a string: no substring match ("research" in "no-research")
        (
            "'research' in token.claims.consent",
            "must be a list or map",
        ),
        // macros over a string would panic the interpreter; they fail closed instead
        (
            "token.claims.secret.exists(c, c == 'S')",
            "needs a list or map",
        ),
        (
            "token.claims.consent.all(c, c != '')",
            "needs a list or map",
        ),
        // builtin errors with values inside
        ("int(token.claims.secret) == 1", "int() failed"),
        ("token.claims.secret < 1", "cannot be compared"),
        ("token.claims.num / 0 == 1", "division by zero"),
    ];
    for (expr, want) in cases {
        let mut r = rule("guarded", None, expr);
        r.step_up = Some(StepUp {
            acr_values: "urn:mfa".into(),
            max_age: None,
        });
        let set = RuleSet::compile(&[r]).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let v = set.evaluate(&input());
        let (name, message, error, step_up) = deny_of(&v);
        assert_eq!(name, "guarded");
        assert!(error, "{expr}");
        assert!(step_up.is_none(), "no step-up on errors: {expr}");
        assert_eq!(message, "policy rule 'guarded' could not be evaluated");
        let RuleOutcome::Error { field, reason } = &v.trace()[0].outcome else {
            panic!("{expr}: {:?}", v.trace())
        };
        assert_eq!(*field, Field::Expression);
        assert!(reason.contains(want), "{expr}: {reason}");
        assert!(
            !reason.contains(SECRET) && !reason.contains("research"),
            "{expr}: {reason}"
        );
    }
}

#[test]
fn match_errors_deny_too() {
    let set = RuleSet::compile(&[rule("m", Some("token.claims.nope == 1"), "true")]).unwrap();
    let v = set.evaluate(&input());
    assert!(deny_of(&v).2);
    assert!(matches!(
        v.trace()[0].outcome,
        RuleOutcome::Error {
            field: Field::Match,
            ..
        }
    ));
}

#[test]
fn flags_are_reported_and_their_errors_do_not_deny() {
    let set = RuleSet::compile(&[
        flag("btg", Some("has(token.claims.btg)"), "true"),
        flag("never", None, "false"),
        flag("broken", None, "token.claims.nope == 1"),
        flag("skipped", Some("false"), "true"),
        rule("ok", None, "true"),
    ])
    .unwrap();
    let v = set.evaluate(&input());
    let RuleVerdict::Allow { flags, trace } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(flags, &vec!["btg".to_string()]);
    assert_eq!(trace[1].outcome, RuleOutcome::NotFlagged);
    assert!(matches!(trace[2].outcome, RuleOutcome::Error { .. }));
    assert_eq!(trace[3].outcome, RuleOutcome::NotApplicable);
}

#[test]
fn step_up_is_carried_by_a_violated_rule() {
    let mut r = rule(
        "writes-need-mfa",
        Some("request.method in ['POST', 'PUT', 'PATCH', 'DELETE']"),
        "has(token.claims.acr) && token.claims.acr == 'urn:mfa'",
    );
    r.step_up = Some(StepUp {
        acr_values: "urn:mfa".into(),
        max_age: Some(600),
    });
    r.message = Some("writes need multi-factor authentication".into());
    let set = RuleSet::compile(&[r]).unwrap();
    assert!(set.evaluate(&input()).is_allow());
    let mut post = input();
    post.request["method"] = json!("POST");
    let v = set.evaluate(&post);
    let (_, message, error, step_up) = deny_of(&v);
    assert!(!error);
    assert_eq!(message, "writes need multi-factor authentication");
    assert_eq!(
        step_up,
        Some(&StepUp {
            acr_values: "urn:mfa".into(),
            max_age: Some(600)
        })
    );
    post.token["claims"]["acr"] = json!("urn:mfa");
    assert!(set.evaluate(&post).is_allow());
}

#[test]
fn response_rules_run_only_in_the_response_phase() {
    let resp = RuleConfig {
        phase: Phase::Response,
        ..rule(
            "no-restricted",
            None,
            "!has(resource.meta) || !has(resource.meta.security) || !resource.meta.security.exists(s, s.code == 'R')",
        )
    };
    let set = RuleSet::compile(&[resp, rule("req", None, "true")]).unwrap();
    assert!(set.has_response_rules());
    let v = set.evaluate(&input());
    assert_eq!(v.trace().len(), 1);
    assert_eq!(v.trace()[0].rule, "req");
    let ok = json!({"resourceType": "Observation", "meta": {"security": [{"code": "N"}]}});
    let bad = json!({"resourceType": "Observation", "meta": {"security": [{"code": "R"}]}});
    assert!(set.evaluate_response(&input(), &ok).is_allow());
    assert!(set
        .evaluate_response(&input(), &json!({"resourceType": "Patient"}))
        .is_allow());
    assert_eq!(
        deny_of(&set.evaluate_response(&input(), &bad)).0,
        "no-restricted"
    );
}

#[test]
fn macros_work_after_hardening() {
    for (expr, want) in [
        ("token.scopes.exists(s, s.startsWith('patient/'))", true),
        ("token.scopes.all(s, s.startsWith('user/'))", false),
        (
            "token.scopes.map(s, s + '!') == ['patient/Observation.rs!']",
            true,
        ),
        ("token.scopes.filter(s, s.startsWith('x')) == []", true),
        ("[1, 2, 3].exists_one(x, x == 2)", true),
        ("token.claims.exists(k, k == 'num')", true),
        (
            "fhir.params.category.exists(c, c == 'sensitive') ? has(token.patient) : false",
            true,
        ),
        ("[[1], [2]].all(l, l.exists(x, x > 0))", true),
    ] {
        let set =
            RuleSet::compile(&[rule("m", None, expr)]).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(
            set.evaluate(&input()).is_allow(),
            want,
            "{expr}: {:?}",
            set.evaluate(&input())
        );
    }
}

#[test]
fn a_macro_predicate_must_be_boolean() {
    let set = RuleSet::compile(&[rule("m", None, "token.scopes.exists(s, s)")]).unwrap();
    let v = set.evaluate(&input());
    assert!(deny_of(&v).2);
}

#[test]
fn rule_set_is_shared_and_debuggable() {
    let set = RuleSet::compile(&[rule("a", None, "true"), rule("b", None, "true")]).unwrap();
    let copy = set.clone();
    assert_eq!(copy.names().collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(format!("{set:?}"), "RuleSet { rules: [\"a\", \"b\"] }");
    assert_eq!(set.len(), 2);
}

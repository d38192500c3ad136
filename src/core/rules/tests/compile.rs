//! Configuration-time behaviour: parsing, linting, validation.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;

use super::*;

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
        json!({"name": "a", "expression": "true", "effect": "permit"})
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
        "request.path.matches('(unclosed')",
        "matches(request.path, '\\\\p{Greek}')",
        "request.path.matches(request.headers['x-pattern'])",
        "request.path.matches('a{1000}{1000}')",
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

/// The deepest rule of a shape that compiles (nesting `n` times, from `n = 1`), or `None`.
fn deepest(shape: impl Fn(usize) -> String) -> Option<(usize, String)> {
    let mut best = None;
    for n in 1..200 {
        let src = shape(n);
        if RuleSet::compile(&[rule("deep", None, &src)]).is_err() {
            break;
        }
        best = Some((n, src));
    }
    best
}

/// Regression (fuzzing, `tests/fuzz/regressions/rules/`): 40 nested `all` macros compiled under
/// the former depth bound of 96 and overflowed the stack when evaluated, killing the VM. Macros
/// now count `MACRO_DEPTH` levels of `MAX_DEPTH`; the deepest accepted rule of each shape
/// evaluates (on a 2 MiB thread natively, unoptimised; on the 1 MiB Wasm stack under
/// `make wasm-test`), and one level more is refused as too complex.
#[test]
fn deepest_accepted_rules_evaluate() {
    type Shape = Box<dyn Fn(usize) -> String + Send>;
    let shapes: Vec<(&str, Shape)> = vec![
        (
            "all",
            Box::new(|n| format!("{}true{}", "[1].all(x, ".repeat(n), ")".repeat(n))),
        ),
        (
            "exists over claims",
            Box::new(|n| {
                format!(
                    "{}token.subject != ''{}",
                    "token.scopes.exists(s, ".repeat(n),
                    ")".repeat(n)
                )
            }),
        ),
        (
            "map",
            Box::new(|n| format!("size({}[1]{}) > 0", "[1].map(x, ".repeat(n), ")".repeat(n))),
        ),
        (
            "list",
            Box::new(|n| format!("size({}1{}) > 0", "[".repeat(n), "]".repeat(n))),
        ),
        (
            "conditional",
            Box::new(|n| format!("{}true{}", "true ? (".repeat(n), ") : false".repeat(n))),
        ),
        (
            "index",
            Box::new(|n| format!("{}1{} == 1", "[".repeat(n), "][0]".repeat(n))),
        ),
        (
            "macro around a deep body",
            Box::new(|n| {
                format!(
                    "[1].all(x, [2].exists(y, size({}1{}) > 0))",
                    "[".repeat(n),
                    "]".repeat(n)
                )
            }),
        ),
    ];
    let run = move || {
        for (name, shape) in &shapes {
            let (n, src) = deepest(shape).unwrap_or_else(|| panic!("{name}: nothing compiles"));
            let set = RuleSet::compile(&[rule("deep", None, &src)]).unwrap();
            let verdict = set.evaluate(&input());
            assert!(
                matches!(verdict, RuleVerdict::Allow { .. }),
                "{name} (n = {n}): {verdict:?}"
            );
            let deeper = shape(n + 1);
            assert!(
                matches!(one_err(&deeper), RuleError::TooComplex { .. }),
                "{name}: one level more ({}) is not refused as too complex",
                n + 1
            );
        }
        // nested macros: three compile, four do not
        let nested = |n: usize| format!("{}true{}", "[1].all(x, ".repeat(n), ")".repeat(n));
        assert!(RuleSet::compile(&[rule("m3", None, &nested(3))]).is_ok());
        assert!(matches!(one_err(&nested(4)), RuleError::TooComplex { .. }));
        assert!(matches!(one_err(&nested(40)), RuleError::TooComplex { .. }));
    };
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
    #[cfg(target_arch = "wasm32")]
    run();
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

#[test]
fn allow_and_redact_are_response_only_and_resource_is_response_only() {
    for effect in [Effect::Allow, Effect::Redact] {
        let r = RuleConfig {
            effect,
            ..rule("a", None, "true")
        };
        let e = RuleSet::compile(std::slice::from_ref(&r)).unwrap_err();
        assert_eq!(e.code(), "rule_bad_effect", "{e}");
        assert!(e.to_string().contains("phase"), "{e}");
        let ok = RuleConfig {
            phase: Phase::Response,
            ..r
        };
        assert!(RuleSet::compile(&[ok]).is_ok());
    }
    let step = RuleConfig {
        effect: Effect::Redact,
        phase: Phase::Response,
        step_up: Some(StepUp {
            acr_values: "x".into(),
            max_age: None,
        }),
        ..rule("s", None, "true")
    };
    assert_eq!(
        RuleSet::compile(&[step]).unwrap_err().code(),
        "rule_bad_step_up"
    );
    let e = RuleSet::compile(&[rule("r", None, "has(resource.meta)")]).unwrap_err();
    assert!(e.to_string().contains("resource"), "{e}");
    let parsed: RuleConfig = serde_json::from_value(
        json!({"name": "a", "phase": "response", "effect": "redact", "expression": "true"}),
    )
    .unwrap();
    assert_eq!(parsed.effect, Effect::Redact);
}

//! Request-time behaviour: deny overrides, fail closed, flags, step-up, phases.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;

use super::*;

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

fn response(name: &str, effect: Effect, expr: &str) -> RuleConfig {
    RuleConfig {
        effect,
        phase: Phase::Response,
        ..rule(name, None, expr)
    }
}

#[test]
fn resource_rules_give_a_verdict_per_resource() {
    let set = RuleSet::compile(&[
        response("no-x", Effect::Deny, "resource.id != 'x'"),
        response("redact-r", Effect::Redact, "resource.id == 'r'"),
        response("allow-a", Effect::Allow, "resource.id in ['a', 'r']"),
        response("flag-f", Effect::Flag, "resource.id == 'f'"),
        response("broken-allow", Effect::Allow, "resource.missing == 1"),
    ])
    .unwrap();
    let rules = set.response_rules(&input()).unwrap();
    let v = rules.evaluate(&json!({"resourceType": "Observation", "id": "x"}));
    assert_eq!(v.denied, Some(("no-x".to_string(), false)));
    assert_eq!(v.trace.len(), 5);
    let v = rules.evaluate(&json!({"resourceType": "Observation", "id": "r"}));
    assert_eq!(
        (v.denied, v.redact.as_deref(), v.allow.as_deref()),
        (None, Some("redact-r"), Some("allow-a"))
    );
    let v = rules.evaluate(&json!({"resourceType": "Observation", "id": "f"}));
    assert_eq!(
        (v.redact, v.allow, v.flags),
        (None, None, vec!["flag-f".to_string()])
    );
    // an allow rule that fails does not allow
    assert!(matches!(v.trace[4].outcome, RuleOutcome::Error { .. }));
    // a deny rule that fails withholds; a redact rule that fails redacts
    let failing = RuleSet::compile(&[
        response("d", Effect::Deny, "resource.nope == 1"),
        response("r", Effect::Redact, "resource.nope == 1"),
    ])
    .unwrap();
    let v = failing
        .response_rules(&input())
        .unwrap()
        .evaluate(&json!({"id": "1"}));
    assert_eq!(v.denied, Some(("d".to_string(), true)));
    assert_eq!(v.redact.as_deref(), Some("r"));
    assert!(failing
        .denial_message("d", true)
        .contains("could not be evaluated"));
    assert!(RuleSet::compile(&[rule("q", None, "true")])
        .unwrap()
        .response_rules(&input())
        .is_none());
}

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};

use super::*;

fn patient_check(id: &str) -> ResponseCheck {
    ResponseCheck::for_scopes("patient/*.rs", Some(id))
}

fn obs(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}})
}

#[test]
fn single_resource_in_the_compartment_passes() {
    let body = obs("o1", "123").to_string();
    assert_eq!(
        check_response(body.as_bytes(), &patient_check("123")),
        ResponseVerdict::Pass
    );
}

#[test]
fn single_resource_of_another_patient_is_refused() {
    let body = obs("o1", "999").to_string();
    let ResponseVerdict::Deny(d) = check_response(body.as_bytes(), &patient_check("123")) else {
        panic!()
    };
    assert_eq!(d.status(), 403);
    let body = json!({"resourceType": "Patient", "id": "999"}).to_string();
    assert!(matches!(
        check_response(body.as_bytes(), &patient_check("123")),
        ResponseVerdict::Deny(_)
    ));
}

#[test]
fn bundles_lose_foreign_entries_and_say_so() {
    let bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": 3, "entry": [
        {"resource": obs("a", "123"), "search": {"mode": "match"}},
        {"resource": obs("b", "999"), "search": {"mode": "match"}},
        {"resource": {"resourceType": "Patient", "id": "999"}, "search": {"mode": "include"}},
    ]});
    let ResponseVerdict::Rewrite { body, withheld } =
        check_response(bundle.to_string().as_bytes(), &patient_check("123"))
    else {
        panic!()
    };
    assert_eq!(withheld, 2);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v.get("total").is_none());
    let entries = v["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["resource"]["id"], "a");
    assert_eq!(entries[1]["search"]["mode"], "outcome");
    assert_eq!(entries[1]["resource"]["resourceType"], "OperationOutcome");
    assert!(!String::from_utf8_lossy(&body).contains("\"b\""));
}

#[test]
fn untouched_bundles_pass_unchanged() {
    let bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": 1,
        "entry": [{"resource": obs("a", "123")}]});
    assert_eq!(
        check_response(bundle.to_string().as_bytes(), &patient_check("123")),
        ResponseVerdict::Pass
    );
}

#[test]
fn non_json_and_unknown_shapes_fail_closed() {
    for body in [&b"<Patient/>"[..], b"", b"[1,2]", b"{\"id\": \"x\"}"] {
        let ResponseVerdict::Deny(d) = check_response(body, &patient_check("123")) else {
            panic!()
        };
        assert_eq!(d.status(), 502);
    }
}

#[test]
fn operation_outcomes_pass() {
    let body = json!({"resourceType": "OperationOutcome", "issue": []}).to_string();
    assert_eq!(
        check_response(body.as_bytes(), &patient_check("123")),
        ResponseVerdict::Pass
    );
}

// ---- consent labels, resource rules, redaction

use crate::consent::{ConsentPolicy, ACT_CODE, CONFIDENTIALITY};
use crate::rules::{Effect, Phase, RuleConfig, RuleInput, RuleSet};

fn labelled(id: &str, patient: &str, code: &str) -> Value {
    let mut o = obs(id, patient);
    o["meta"] = json!({"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z",
                       "security": [{"system": ACT_CODE, "code": code}]});
    o
}

fn rules(list: &[(&str, Effect, &str)]) -> RuleSet {
    let configs: Vec<RuleConfig> = list
        .iter()
        .map(|(name, effect, expr)| RuleConfig {
            name: (*name).into(),
            description: None,
            match_: None,
            expression: (*expr).into(),
            message: Some(format!("{name} says no")),
            effect: *effect,
            phase: Phase::Response,
            step_up: None,
        })
        .collect();
    RuleSet::compile(&configs).unwrap()
}

/// Runs `filter_response` with the default consent policy, the grants of `consent` and `set`.
fn run(
    body: &Value,
    check: &ResponseCheck,
    consent: Value,
    set: &RuleSet,
    mode: LabelMode,
) -> Checked {
    let policy = ConsentPolicy::default();
    let claims = json!({ "consent": consent });
    let granted = policy.grants(claims.as_object().unwrap());
    let input = RuleInput::default();
    let bound = set.response_rules(&input);
    let p = ResponsePolicy {
        check,
        consent: Some((&policy, granted)),
        rules: bound.as_ref(),
        mode,
    };
    filter_response(body.to_string().as_bytes(), &p)
}

/// No SMART check, nothing consented, no rules.
fn plain(body: &Value) -> Checked {
    run(
        body,
        &no_check(),
        json!(null),
        &RuleSet::default(),
        LabelMode::Read,
    )
}

/// Patient 123's compartment, nothing consented, the rules `set`.
fn in_123(body: &Value, set: &RuleSet) -> Checked {
    run(
        body,
        &patient_check("123"),
        json!(null),
        set,
        LabelMode::Read,
    )
}

fn no_check() -> ResponseCheck {
    ResponseCheck::default()
}

fn body_of(c: &Checked) -> Value {
    match &c.verdict {
        ResponseVerdict::Rewrite { body, .. } => serde_json::from_slice(body).unwrap(),
        other => panic!("expected a rewrite, got {other:?}"),
    }
}

fn search(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(),
           "entry": entries.into_iter().map(|r| json!({"fullUrl": format!("http://fhir/{}", r["id"].as_str().unwrap()), "resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>()})
}

#[test]
fn a_labelled_single_resource_needs_consent() {
    let none = RuleSet::default();
    let psy = |consent: Value, mode: LabelMode| {
        run(
            &labelled("o1", "123", "PSY"),
            &no_check(),
            consent,
            &none,
            mode,
        )
    };
    let c = psy(json!(null), LabelMode::Read);
    let ResponseVerdict::Deny(d) = &c.verdict else {
        panic!("{c:?}")
    };
    assert_eq!(
        (d.status(), d.reason.as_str()),
        (403, "response.outside_scope")
    );
    assert!(
        !d.description.contains("PSY") && !d.description.contains("consent"),
        "no hint it is sensitive"
    );
    assert_eq!(c.summary.withheld_by.get("label"), Some(&1));
    assert_eq!(c.summary.withheld_labels, ["PSY"]);
    let ok = psy(json!("PSY"), LabelMode::Read);
    assert_eq!(ok.verdict, ResponseVerdict::Pass);
    assert_eq!(ok.summary, ResponseSummary::default());
    // consent for another label does not cover
    let other = psy(json!(["HIV"]), LabelMode::Read);
    assert!(matches!(other.verdict, ResponseVerdict::Deny(_)));
    // the check is off for interactions that return no resources
    let off = psy(json!(null), LabelMode::Off);
    assert_eq!(off.verdict, ResponseVerdict::Pass);
}

#[test]
fn bundles_lose_labelled_entries_and_the_audit_gets_counts_and_codes() {
    let mut r = obs("r", "123");
    r["meta"] = json!({"security": [{"system": CONFIDENTIALITY, "code": "R"}]});
    let bundle = search(vec![
        obs("a", "123"),
        labelled("p", "123", "PSY"),
        labelled("h", "123", "hiv"),
        r,
        obs("z", "999"),
    ]);
    let c = run(
        &bundle,
        &patient_check("123"),
        json!("HIV"),
        &RuleSet::default(),
        LabelMode::Read,
    );
    let v = body_of(&c);
    let ids: Vec<&str> = v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    assert_eq!(ids, ["a", "h"]);
    let last = v["entry"].as_array().unwrap().last().unwrap();
    assert_eq!(last["search"]["mode"], "outcome");
    assert!(last["resource"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .starts_with("3 result(s)"));
    assert!(v.get("total").is_none());
    assert_eq!(c.summary.withheld(), 3);
    assert_eq!(c.summary.withheld_by.get("label"), Some(&2));
    assert_eq!(c.summary.withheld_by.get("compartment"), Some(&1));
    assert_eq!(c.summary.withheld_labels, ["PSY", "R"]);
    let audit = serde_json::to_string(&c.summary).unwrap();
    assert_eq!(
        audit,
        r#"{"withheldBy":{"compartment":1,"label":2},"withheldLabels":["PSY","R"]}"#
    );
    let ResponseVerdict::Rewrite { withheld, .. } = c.verdict else {
        panic!()
    };
    assert_eq!(withheld, 3);
}

#[test]
fn a_label_on_the_bundle_itself_covers_the_whole_response() {
    let mut bundle = search(vec![obs("a", "123")]);
    bundle["meta"] = json!({"security": [{"code": "V"}]});
    let c = plain(&bundle);
    assert!(matches!(c.verdict, ResponseVerdict::Deny(ref d) if d.status() == 403));
    assert_eq!(c.summary.withheld_labels, ["V"]);
}

#[test]
fn batch_responses_keep_their_slots() {
    let bundle = json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"resource": labelled("p", "123", "PSY"), "response": {"status": "200 OK"}},
        {"resource": obs("a", "123"), "response": {"status": "200 OK"}},
        {"response": {"status": "201 Created"}}]});
    let c = plain(&bundle);
    let v = body_of(&c);
    let entries = v["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries[0].get("resource").is_none());
    assert_eq!(entries[0]["response"]["status"], "403 Forbidden");
    assert_eq!(entries[1]["resource"]["id"], "a");
    assert_eq!(c.summary.withheld(), 1);
}

#[test]
fn redact_rules_reduce_resources() {
    let set = rules(&[(
        "redact-psy",
        Effect::Redact,
        "has(resource.meta) && resource.meta.security.exists(s, s.code == 'PSY')",
    )]);
    let c = run(
        &labelled("o1", "123", "PSY"),
        &no_check(),
        json!(null),
        &set,
        LabelMode::Read,
    );
    let v = body_of(&c);
    assert_eq!(
        v,
        json!({"resourceType": "Observation", "id": "o1", "meta": {"versionId": "3",
        "lastUpdated": "2024-01-01T00:00:00Z",
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED", "display": "redacted"}]}})
    );
    assert_eq!(c.summary.redacted, 1);
    assert_eq!(c.summary.withheld(), 0);
    let bundle = search(vec![obs("a", "123"), labelled("p", "123", "PSY")]);
    let c = run(&bundle, &no_check(), json!(null), &set, LabelMode::Read);
    let v = body_of(&c);
    assert_eq!(v["total"], 2, "redaction keeps the count");
    assert_eq!(v["entry"][1]["fullUrl"], "http://fhir/p");
    assert_eq!(
        v["entry"][1]["resource"]["meta"]["security"][0]["code"],
        "REDACTED"
    );
    assert!(v["entry"][1]["resource"].get("subject").is_none());
    assert_eq!(v["entry"][0]["resource"], obs("a", "123"));
    assert!(!v.to_string().contains("PSY"));
}

#[test]
fn rule_precedence_deny_then_compartment_then_redact_then_allow() {
    let set = rules(&[
        ("deny-d", Effect::Deny, "resource.id != 'd'"),
        ("redact-r", Effect::Redact, "resource.id == 'r'"),
        ("allow-all", Effect::Allow, "true"),
    ]);
    // allow lets a labelled resource through ...
    let c = in_123(&labelled("p", "123", "PSY"), &set);
    assert_eq!(c.verdict, ResponseVerdict::Pass);
    // ... but never one outside the compartment
    let c = in_123(&labelled("p", "999", "PSY"), &set);
    assert!(
        matches!(c.verdict, ResponseVerdict::Deny(ref d) if d.reason == "response.outside_scope")
    );
    assert_eq!(c.summary.withheld_by.get("compartment"), Some(&1));
    // a deny rule beats allow, with the rule's name and message
    let c = in_123(&labelled("d", "123", "PSY"), &set);
    let ResponseVerdict::Deny(d) = &c.verdict else {
        panic!()
    };
    assert_eq!(
        (d.rule.as_deref(), d.description.as_str()),
        (Some("deny-d"), "deny-d says no")
    );
    assert_eq!(c.summary.withheld_rules, ["deny-d"]);
    // redact beats allow
    let c = in_123(&labelled("r", "123", "PSY"), &set);
    assert_eq!(c.summary.redacted, 1);
}

#[test]
fn writes_redact_instead_of_refusing() {
    let c = run(
        &labelled("o1", "123", "SUD"),
        &no_check(),
        json!(null),
        &RuleSet::default(),
        LabelMode::Write,
    );
    assert_eq!(body_of(&c)["meta"]["security"][0]["code"], "REDACTED");
    assert_eq!(c.summary.redacted, 1);
    assert_eq!(c.summary.withheld_labels, ["SUD"]);
}

#[test]
fn unchanged_bundles_are_not_reserialized_and_outcomes_pass() {
    let bundle = search(vec![
        obs("a", "123"),
        json!({"resourceType": "OperationOutcome", "id": "oo", "meta": {"security": [{"code": "PSY"}]}}),
    ]);
    let c = run(
        &bundle,
        &patient_check("123"),
        json!(null),
        &RuleSet::default(),
        LabelMode::Read,
    );
    assert_eq!(c.verdict, ResponseVerdict::Pass);
}

#[test]
fn flag_rules_fire_per_resource() {
    let set = rules(&[(
        "saw-psy",
        Effect::Flag,
        "has(resource.meta) && resource.meta.security.exists(s, s.code == 'PSY')",
    )]);
    let bundle = search(vec![
        obs("a", "123"),
        labelled("p", "123", "PSY"),
        labelled("q", "123", "PSY"),
    ]);
    let c = run(&bundle, &no_check(), json!("PSY"), &set, LabelMode::Read);
    assert_eq!(c.flags, ["saw-psy"]);
    assert_eq!(c.verdict, ResponseVerdict::Pass);
}

/// Nesting is followed down to `MAX_DEPTH` exactly: a resource held that deep (in parameter parts,
/// contained resources or a document's entries) is checked like any other and passes when it may
/// be read; one level deeper is withheld whatever it is.
#[test]
fn the_depth_limit_is_exact_for_parts_contained_and_entries() {
    let check = patient_check("123");
    let passes =
        |v: &Value| check_response(v.to_string().as_bytes(), &check) == ResponseVerdict::Pass;
    // Parameters at depth 0, its parameter at 1, each part one more; the part's resource at its depth.
    let parts = |depth: usize| {
        let mut q = json!({"name": "leaf", "resource": obs("o", "123")});
        for _ in 1..depth {
            q = json!({"name": "p", "part": [q]});
        }
        json!({"resourceType": "Parameters", "parameter": [q]})
    };
    assert!(passes(&parts(MAX_DEPTH)));
    assert!(!passes(&parts(MAX_DEPTH + 1)));
    let contained = |depth: usize| {
        let mut r = obs("o", "123");
        for i in 0..depth {
            let mut outer = obs(&format!("c{i}"), "123");
            outer["contained"] = json!([r]);
            r = outer;
        }
        r
    };
    assert!(passes(&contained(MAX_DEPTH)));
    assert!(!passes(&contained(MAX_DEPTH + 1)));
}

#[test]
fn the_label_mode_follows_what_the_interaction_returns() {
    use crate::fhir::Interaction as I;
    for (i, mode) in [
        (I::Delete, LabelMode::Off),
        (I::Capabilities, LabelMode::Off),
        (I::Create, LabelMode::Write),
        (I::Update, LabelMode::Write),
        (I::Patch, LabelMode::Write),
        (I::Read, LabelMode::Read),
        (I::Vread, LabelMode::Read),
        (I::SearchType, LabelMode::Read),
        (I::HistoryInstance, LabelMode::Read),
        (I::Batch, LabelMode::Read),
        (I::Operation, LabelMode::Read),
    ] {
        assert_eq!(LabelMode::of(i), mode, "{i:?}");
    }
    // Off: a labelled answer (a delete's OperationOutcome-less echo) is neither withheld nor
    // redacted, whatever the consent
    for body in [
        labelled("o1", "123", "PSY"),
        search(vec![labelled("a", "123", "HIV")]),
    ] {
        let c = run(
            &body,
            &no_check(),
            json!(null),
            &RuleSet::default(),
            LabelMode::Off,
        );
        assert_eq!(c.verdict, ResponseVerdict::Pass);
        assert_eq!(c.summary, ResponseSummary::default());
    }
}

#[test]
fn rules_see_the_answer_and_each_entry_but_not_the_searchset_itself() {
    // a deny rule that refuses any Bundle or Parameters it is shown
    let set = rules(&[(
        "no-containers",
        Effect::Deny,
        "resource.resourceType != 'Bundle' && resource.resourceType != 'Parameters'",
    )]);
    let c = run(
        &search(vec![obs("a", "123")]),
        &no_check(),
        json!(null),
        &set,
        LabelMode::Read,
    );
    assert_eq!(
        c.verdict,
        ResponseVerdict::Pass,
        "the searchset is not a resource the rules see"
    );
    // an operation's Parameters is the answer: the rules see it
    let params =
        json!({"resourceType": "Parameters", "parameter": [{"name": "x", "valueString": "y"}]});
    let c = run(&params, &no_check(), json!(null), &set, LabelMode::Read);
    assert!(
        matches!(c.verdict, ResponseVerdict::Deny(_)),
        "{:?}",
        c.verdict
    );
    assert_eq!(c.summary.withheld_rules, ["no-containers"]);
    // a Bundle inside a searchset (a document found by a search) is an entry: the rules see it
    let doc = json!({"resourceType": "Bundle", "id": "d", "type": "document", "entry": []});
    let c = run(
        &search(vec![obs("a", "123"), doc]),
        &no_check(),
        json!(null),
        &set,
        LabelMode::Read,
    );
    assert_eq!(c.summary.withheld(), 1);
}

#[test]
fn a_rule_that_withholds_many_entries_is_named_once() {
    let set = rules(&[
        ("not-b", Effect::Deny, "!resource.id.startsWith('b')"),
        ("not-c", Effect::Deny, "!resource.id.startsWith('c')"),
    ]);
    let bundle = search(vec![
        obs("a", "123"),
        obs("b1", "123"),
        obs("b2", "123"),
        obs("c1", "123"),
        obs("b3", "123"),
    ]);
    let c = run(&bundle, &no_check(), json!(null), &set, LabelMode::Read);
    assert_eq!(c.summary.withheld(), 4);
    assert_eq!(c.summary.withheld_rules, ["not-b", "not-c"]);
}

#[test]
fn the_audit_summary_names_redactions_only_when_there_are_some() {
    let mut s = ResponseSummary::default();
    assert_eq!(serde_json::to_value(&s).unwrap(), json!({}));
    s.redacted = 2;
    assert_eq!(serde_json::to_value(&s).unwrap(), json!({"redacted": 2}));
}

#[test]
fn an_entry_outcome_beside_a_resource_is_checked_and_a_null_one_is_nothing() {
    let check = patient_check("123");
    let batch = |outcome: Value| {
        json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"resource": obs("a", "123"), "response": {"status": "200 OK", "outcome": outcome}}]})
    };
    let v = |b: &Value| check_response(b.to_string().as_bytes(), &check);
    assert_eq!(v(&batch(json!(null))), ResponseVerdict::Pass);
    assert_eq!(
        v(&batch(
            json!({"resourceType": "OperationOutcome", "issue": []})
        )),
        ResponseVerdict::Pass
    );
    // a server that answers another patient in the outcome slot loses the entry
    let ResponseVerdict::Rewrite { withheld, body } =
        v(&batch(json!({"resourceType": "Patient", "id": "999"})))
    else {
        panic!("the entry is withheld")
    };
    assert_eq!(withheld, 1);
    assert!(!String::from_utf8_lossy(&body).contains("999"));
}

// ---- the scope arithmetic of `ResponseCheck` (which answers need checking at all)

#[test]
fn only_an_unconstrained_system_or_user_wildcard_read_reads_everything() {
    for (scopes, everything) in [
        ("system/*.rs", true),
        ("user/*.r", true),
        ("user/*.s", true),
        ("system/*.cruds", true),
        ("patient/*.rs", false),
        ("system/*.rs?category=laboratory", false),
        ("system/Observation.rs", false),
        ("system/*.cud", false),
        ("user/*.c", false),
        ("", false),
    ] {
        assert_eq!(
            ResponseCheck::for_scopes(scopes, Some("123")).reads_everything(),
            everything,
            "{scopes}"
        );
    }
    let mut off = ResponseCheck::for_scopes("patient/Observation.rs", Some("123"));
    off.smart = false;
    assert!(off.reads_everything(), "SMART not enforced");
}

#[test]
fn a_type_is_unbounded_under_a_plain_system_or_user_read_of_it() {
    for (scopes, ty, unbounded) in [
        ("system/Observation.rs", "Observation", true),
        ("user/Observation.s", "Observation", true),
        ("user/*.r", "Condition", true),
        ("system/Observation.rs", "Condition", false),
        (
            "system/Observation.rs?category=laboratory",
            "Observation",
            false,
        ),
        ("patient/Observation.rs", "Observation", false),
        ("system/Observation.cud", "Observation", false),
        // an OperationOutcome says what happened: never bounded
        ("patient/Observation.rs", "OperationOutcome", true),
        ("", "OperationOutcome", true),
    ] {
        assert_eq!(
            ResponseCheck::for_scopes(scopes, Some("123")).unbounded(ty),
            unbounded,
            "{scopes} {ty}"
        );
    }
}

#[test]
fn an_operation_answer_about_an_instance_is_readable_only_inside_the_compartment() {
    let about = |scopes: &str, ty: &str, id: &str, patient: Option<&str>| {
        let mut c = ResponseCheck::for_scopes(scopes, patient);
        c.target = Some(Target {
            resource_type: ty.into(),
            id: id.into(),
            read: false,
        });
        c.may_read_about_target()
    };
    let p = Some("123");
    assert!(about("patient/Patient.rs", "Patient", "123", p));
    assert!(
        !about("patient/Patient.rs", "Patient", "456", p),
        "another patient"
    );
    assert!(
        !about("patient/Patient.rs", "Patient", "123", None),
        "no launch patient"
    );
    assert!(
        !about("patient/Patient.rs?gender=female", "Patient", "123", p),
        "a granular scope cannot be matched from the answer"
    );
    assert!(
        !about("patient/Observation.rs", "Patient", "123", p),
        "another type"
    );
    assert!(
        !about("patient/Patient.c", "Patient", "123", p),
        "not a read"
    );
    assert!(
        !about("patient/Observation.rs", "Observation", "o1", p),
        "not placed from the id"
    );
    assert!(
        about("user/Observation.rs", "Observation", "o1", p),
        "unbounded type"
    );
    let mut none = ResponseCheck::for_scopes("patient/Patient.rs", p);
    none.target = None;
    assert!(none.may_read_about_target());
}

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Map, Value};

use super::*;

fn claims(v: Value) -> Map<String, Value> {
    let Value::Object(m) = json!({ "consent": v }) else {
        unreachable!()
    };
    m
}

fn labelled(security: Value) -> Value {
    json!({"resourceType": "Observation", "id": "o", "meta": {"security": security}})
}

fn codes(p: &ConsentPolicy, set: LabelSet) -> Vec<&str> {
    p.codes(set).collect()
}

#[test]
fn defaults_are_the_hl7_sensitivity_and_confidentiality_codes() {
    let p = ConsentPolicy::default();
    assert!(p.active());
    assert_eq!(p.claim, "consent");
    assert_eq!(p.labels.len(), 14);
    assert!(p.labels.contains(&Label::new(ACT_CODE, "PSY")));
    assert!(p.labels.contains(&Label::new(CONFIDENTIALITY, "R")));
    assert!(p.labels.contains(&Label::new(CONFIDENTIALITY, "V")));
    assert!(!p.labels.contains(&Label::new(CONFIDENTIALITY, "N")));
}

#[test]
fn labels_match_system_and_code() {
    let p = ConsentPolicy::default();
    let r = labelled(
        json!([{"system": ACT_CODE, "code": "PSY"}, {"system": CONFIDENTIALITY, "code": "R"}]),
    );
    assert_eq!(codes(&p, p.labels_of(&r)), ["PSY", "R"]);
    // the same code in another system is not the sensitivity label
    let other = labelled(json!([{"system": "http://example.org/local", "code": "PSY"}]));
    assert_eq!(p.labels_of(&other), 0);
    // R in ActCode is not the confidentiality code R
    let wrong = labelled(json!([{"system": ACT_CODE, "code": "R"}]));
    assert_eq!(p.labels_of(&wrong), 0);
    // normal confidentiality is not sensitive
    let normal = labelled(json!([{"system": CONFIDENTIALITY, "code": "N"}]));
    assert_eq!(p.labels_of(&normal), 0);
    assert_eq!(p.labels_of(&json!({"resourceType": "Patient"})), 0);
}

#[test]
fn case_tricks_system_variants_and_missing_systems_fail_closed() {
    let p = ConsentPolicy::default();
    for security in [
        json!([{"system": ACT_CODE, "code": "psy"}]),
        json!([{"system": ACT_CODE, "code": " Psy "}]),
        json!([{"system": "HTTP://terminology.hl7.org/CodeSystem/V3-ActCode/", "code": "PSY"}]),
        json!([{"system": "urn:oid:2.16.840.1.113883.5.4", "code": "PSY"}]),
        json!([{"system": "http://hl7.org/fhir/v3/ActCode", "code": "PSY"}]),
        json!([{"code": "PSY"}]),
        json!([{"system": "", "code": "PSY"}]),
    ] {
        assert_eq!(
            codes(&p, p.labels_of(&labelled(security.clone()))),
            ["PSY"],
            "{security}"
        );
    }
    let oid = labelled(json!([{"system": "urn:oid:2.16.840.1.113883.5.25", "code": "V"}]));
    assert_eq!(codes(&p, p.labels_of(&oid)), ["V"]);
}

#[test]
fn malformed_security_counts_as_every_label() {
    let p = ConsentPolicy::default();
    assert_eq!(p.labels_of(&labelled(json!({"code": "PSY"}))), p.all());
    assert_eq!(p.labels_of(&labelled(json!(["PSY"]))), p.all());
    assert_eq!(p.labels_of(&labelled(json!(null))), 0);
    // a coding without a code carries nothing
    assert_eq!(p.labels_of(&labelled(json!([{"system": ACT_CODE}]))), 0);
}

#[test]
fn labels_of_contained_and_nested_resources_count() {
    let p = ConsentPolicy::default();
    let contained = json!({"resourceType": "Observation", "contained": [
        {"resourceType": "Condition", "meta": {"security": [{"system": ACT_CODE, "code": "HIV"}]}}]});
    assert_eq!(codes(&p, p.labels_of(&contained)), ["HIV"]);
    assert_eq!(codes(&p, p.own_labels(&contained)), ["HIV"]);
    let bundle = json!({"resourceType": "Bundle", "type": "document", "entry": [
        {"resource": {"resourceType": "Composition"}},
        {"resource": {"resourceType": "Observation", "meta": {"security": [{"system": ACT_CODE, "code": "SUD"}]}}}]});
    assert_eq!(codes(&p, p.labels_of(&bundle)), ["SUD"]);
    assert_eq!(
        p.own_labels(&bundle),
        0,
        "entries are not the Bundle's own labels"
    );
    let params = json!({"resourceType": "Parameters", "parameter": [{"name": "x", "part": [
        {"name": "y", "resource": {"resourceType": "Observation", "meta": {"security": [{"code": "ETH"}]}}}]}]});
    assert_eq!(codes(&p, p.labels_of(&params)), ["ETH"]);
    let mut deep = json!({"resourceType": "Observation"});
    for _ in 0..(MAX_DEPTH + 2) {
        deep = json!({"resourceType": "Bundle", "entry": [{"resource": deep}]});
    }
    assert_eq!(p.labels_of(&deep), p.all(), "too deep fails closed");
}

#[test]
fn the_consent_claim_grants_exact_codes_only() {
    let p = ConsentPolicy::default();
    let psy = codes(&p, p.grants(&claims(json!(["PSY"]))));
    assert_eq!(psy, ["PSY"]);
    assert_eq!(
        codes(&p, p.grants(&claims(json!("research PSY  HIV")))),
        ["HIV", "PSY"]
    );
    assert_eq!(
        codes(
            &p,
            p.grants(&claims(json!([
                format!("{ACT_CODE}|SUD"),
                format!("{CONFIDENTIALITY}|R")
            ])))
        ),
        ["SUD", "R"]
    );
    // system aliases work in grants too; a wrong system grants nothing
    assert_eq!(
        codes(
            &p,
            p.grants(&claims(json!(["urn:oid:2.16.840.1.113883.5.25|V"])))
        ),
        ["V"]
    );
    assert_eq!(p.grants(&claims(json!([format!("{ACT_CODE}|R")]))), 0);
    // no case folding, no wildcard, no substring, wrong types grant nothing
    for v in [
        json!(["psy"]),
        json!("*"),
        json!(["no-PSY"]),
        json!(42),
        json!({"PSY": true}),
        json!([1, true]),
    ] {
        assert_eq!(p.grants(&claims(v.clone())), 0, "{v}");
    }
    assert_eq!(p.grants(&Map::new()), 0);
    // a configurable claim name
    let mut q = p.clone();
    q.claim = "sensitivity_consent".into();
    assert_eq!(q.grants(&claims(json!(["PSY"]))), 0);
}

#[test]
fn configured_labels_parse_as_system_bar_code() {
    assert_eq!(parse_label("http://x|A"), Some(Label::new("http://x", "A")));
    for bad in ["A", "|A", "http://x|", "http://x|A|B", "http://x|A B", ""] {
        assert_eq!(parse_label(bad), None, "{bad}");
    }
    let p = ConsentPolicy {
        enforce: true,
        claim: "consent".into(),
        labels: Vec::new(),
    };
    assert!(!p.active());
    assert_eq!(p.all(), 0);
}

#[test]
fn all_is_exactly_the_configured_labels() {
    let p = ConsentPolicy::default();
    let all = p.all();
    assert_eq!(all.count_ones() as usize, p.labels.len());
    assert_eq!(all, (1u64 << p.labels.len()) - 1);
    assert_eq!(codes(&p, all).len(), p.labels.len());
    let mut most = ConsentPolicy {
        labels: (0..MAX_LABELS)
            .map(|i| Label::new(ACT_CODE, &format!("L{i}")))
            .collect(),
        ..ConsentPolicy::default()
    };
    assert_eq!(most.all(), u64::MAX);
    most.labels.truncate(63);
    assert_eq!(most.all(), u64::MAX >> 1);
}

#[test]
fn a_null_meta_carries_no_label_and_a_meta_of_another_shape_is_malformed() {
    let p = ConsentPolicy::default();
    let null_meta = json!({"resourceType": "Observation", "id": "o", "meta": null});
    assert!(matches!(p.security_labels(&null_meta), Ok(0)));
    let string_meta = json!({"resourceType": "Observation", "id": "o", "meta": "R"});
    assert!(p.security_labels(&string_meta).is_err());
}

/// The nesting limit is exact: a label at depth `MAX_DEPTH` (a resource contained that many
/// times, or a parameter part that deep) is read as it is; one level deeper fails closed (every
/// label). Counted the same way through `contained`, `entry` and `parameter`/`part`.
#[test]
fn the_depth_limit_is_exact_whichever_way_resources_nest() {
    let p = ConsentPolicy::default();
    let hiv = || json!({"resourceType": "Condition", "meta": {"security": [{"system": ACT_CODE, "code": "HIV"}]}});
    let contained = |levels: usize| {
        let mut r = hiv();
        for _ in 0..levels {
            r = json!({"resourceType": "Observation", "contained": [r]});
        }
        r
    };
    assert_eq!(codes(&p, p.labels_of(&contained(MAX_DEPTH))), ["HIV"]);
    assert_eq!(p.labels_of(&contained(MAX_DEPTH + 1)), p.all());
    assert_eq!(codes(&p, p.own_labels(&contained(MAX_DEPTH))), ["HIV"]);
    assert_eq!(p.own_labels(&contained(MAX_DEPTH + 1)), p.all());
    // a Parameters resource at depth 0 holds its parameters at depth 1, their parts at 2, ...
    let parts = |levels: usize| {
        let mut q = json!({"name": "leaf", "resource": hiv()});
        for _ in 1..levels {
            q = json!({"name": "p", "part": [q]});
        }
        json!({"resourceType": "Parameters", "parameter": [q]})
    };
    assert_eq!(codes(&p, p.labels_of(&parts(MAX_DEPTH))), ["HIV"]);
    assert_eq!(p.labels_of(&parts(MAX_DEPTH + 1)), p.all());
    // an unlabelled chain one level too deep still fails closed, one level less carries nothing
    let mut bare = json!({"resourceType": "Observation"});
    for _ in 0..MAX_DEPTH {
        bare = json!({"resourceType": "Bundle", "entry": [{"resource": bare}]});
    }
    assert_eq!(p.labels_of(&bare), 0);
    let deeper = json!({"resourceType": "Bundle", "entry": [{"resource": bare}]});
    assert_eq!(p.labels_of(&deeper), p.all());
}

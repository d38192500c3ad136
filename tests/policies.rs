//! Every policy in `policies/` passes its table-driven cases, through the same library function
//! `fhirgate test` uses, and the `fhirgate` binary behaves as documented.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn read_json_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_policy_passes_its_cases() {
    let files = read_json_files(&policies_dir());
    let report = fhirgate::authoring::test_files(&files);
    let text = report.render();
    assert_eq!(report.failed(), 0, "{text}");
    // every policy file has cases (a policy without cases would be a failure above)
    let policies = files
        .iter()
        .filter(|(n, _)| !n.ends_with(".cases.json"))
        .count();
    assert!(policies >= 5, "{text}");
    assert_eq!(report.policies.len(), policies);
    assert!(
        report.policies.iter().all(|p| !p.cases.is_empty()),
        "{text}"
    );
}

#[test]
fn every_policy_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(policies_dir().join("README.md")).unwrap();
    for (name, _) in read_json_files(&policies_dir()) {
        if let Some(stem) = name
            .strip_suffix(".json")
            .filter(|s| !s.ends_with(".cases"))
        {
            assert!(
                readme.contains(&format!("`{stem}.json`")),
                "README.md does not describe {stem}.json"
            );
        }
    }
    for f in [
        "hasScope",
        "inCidr",
        "refType",
        "refId",
        "paramValues",
        "claimValues",
        "tokenCode",
        "hasAny",
        "hasAll",
    ] {
        assert!(
            readme.contains(&format!("`{f}(")),
            "README.md does not document {f}()"
        );
    }
}

fn fhirgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cli_test_prints_the_summary_line() {
    let (code, out, err) = fhirgate(&["test", "policies"]);
    assert_eq!(code, 0, "{out}{err}");
    let last = out.lines().last().unwrap();
    let (passed, failed) = last.split_once(" passed, ").unwrap();
    assert!(passed.parse::<usize>().unwrap() > 40, "{last}");
    assert_eq!(failed, "0 failed");
    // the default directory is policies/
    assert_eq!(fhirgate(&["test"]).0, 0);
}

#[test]
fn cli_test_fails_on_a_failing_case() {
    let dir = std::env::temp_dir().join(format!("fhirgate-policies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.json"),
        r#"{"description": "d", "rules": [{"name": "no", "expression": "false"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("p.cases.json"),
        r#"[{"name": "wrongly expects allow", "token": {"sub": "u", "scope": "user/Patient.rs"}, "request": {"path": "/fhir/Patient"}, "expect": {"decision": "allow"}}]"#,
    )
    .unwrap();
    let (code, out, _) = fhirgate(&["test", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL p: wrongly expects allow"), "{out}");
    assert!(out.ends_with("0 passed, 1 failed\n"), "{out}");
}

#[test]
fn cli_check_names_the_rule_and_problem() {
    let (code, out, _) = fhirgate(&[
        "check",
        "policies/sensitive-consent.json",
        "policies/network-restrictions.json",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("policies/sensitive-consent.json: ok (policy, 1 rules)"),
        "{out}"
    );
    let bad = std::env::temp_dir().join(format!("fhirgate-bad-{}.json", std::process::id()));
    std::fs::write(
        &bad,
        r#"{"providers": [], "rules": [{"name": "typo", "expression": "tokn.subject == 'x'"}, {"name": "calls", "expression": "lower('A') == 'a'"}]}"#,
    )
    .unwrap();
    let (code, out, _) = fhirgate(&["check", bad.to_str().unwrap()]);
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(code, 1);
    assert!(
        out.contains("rule 'typo': `expression` references unknown variable 'tokn'"),
        "{out}"
    );
    assert!(
        out.contains("rule 'calls': `expression` calls unknown function 'lower'"),
        "{out}"
    );
    assert_eq!(fhirgate(&["check"]).0, 2);
    assert_eq!(fhirgate(&["check", "/nonexistent.json"]).0, 2);
}

#[test]
fn cli_eval_explains_each_step() {
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--policy",
            "policies/step-up-writes.json",
            "--token",
            r#"{"sub": "u", "amr": ["pwd"]}"#,
            "--request",
            "POST /fhir/Observation",
        ];
        args.extend_from_slice(extra);
        fhirgate(&args)
    };
    // the full decision: SMART first (this token has no write scope)
    let (code, out, err) = eval(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("FHIR request: create Observation"), "{out}");
    assert!(out.contains("SMART: denied (insufficient_scope)"), "{out}");
    assert!(
        out.contains("result: deny (403, smart.insufficient_scope)"),
        "{out}"
    );
    // the policy's rules alone
    let (code, out, err) = eval(&["--rules-only"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("fhir: interaction create, type 'Observation'"),
        "{out}"
    );
    assert!(
        out.contains("rule 'writes-need-mfa' (deny): expression is false -> VIOLATED"),
        "{out}"
    );
    assert!(out.contains("result: deny (401, rule.step_up)"), "{out}");
}

#[test]
fn cli_render_formats() {
    let (code, out, _) = fhirgate(&[
        "render",
        "--policy",
        "policies/network-restrictions.json",
        "--format",
        "plugin",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rules"][0]["name"], "bulk-export-internal-only");
    let (code, out, _) = fhirgate(&[
        "render",
        "--policy",
        "policies/network-restrictions.json",
        "--format",
        "envoy",
        "--wasm",
        "/w/f.wasm",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("envoy.filters.http.wasm") && out.contains("\"/w/f.wasm\""));
    let sha = "a".repeat(64);
    for (format, kind) in [
        ("istio", "kind: WasmPlugin"),
        ("wasmplugin", "kind: WasmPlugin"),
        ("envoyfilter", "kind: EnvoyFilter"),
    ] {
        let (code, out, _) = fhirgate(&[
            "render",
            "--policy",
            "policies/network-restrictions.json",
            "--format",
            format,
            "--sha256",
            &sha,
            "--port",
            "8080",
        ]);
        assert_eq!(code, 0, "{format}");
        assert!(out.contains(kind) && out.contains(&sha), "{out}");
        // An Istio manifest is always pinned.
        let (code, _, err) = fhirgate(&[
            "render",
            "--policy",
            "policies/network-restrictions.json",
            "--format",
            format,
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("--sha256"), "{err}");
    }
    let (code, _, err) = fhirgate(&[
        "render",
        "--policy",
        "policies/network-restrictions.json",
        "--format",
        "wasmplugin",
        "--sha256",
        &sha,
        "--oci-layout",
        "target/oci",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not both"), "{err}");
    let (code, _, err) = fhirgate(&[
        "render",
        "--policy",
        "policies/network-restrictions.json",
        "--format",
        "wasmplugin",
        "--oci-layout",
        "/nonexistent",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/index.json"), "{err}");
    assert_eq!(
        fhirgate(&[
            "render",
            "--policy",
            "policies/network-restrictions.json",
            "--format",
            "xml"
        ])
        .0,
        2
    );
}

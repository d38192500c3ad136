//! Scope parsing.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn perms(s: &str) -> String {
    Scope::parse(s).unwrap().perms().letters()
}

#[test]
fn v2_scopes() {
    let s = Scope::parse("patient/Observation.rs").unwrap();
    assert_eq!(s.context(), Context::Patient);
    assert_eq!(s.resource_type(), "Observation");
    assert_eq!(s.perms().letters(), "rs");
    assert!(!s.is_granular());
    assert_eq!(s.as_str(), "patient/Observation.rs");
    assert_eq!(perms("user/*.cruds"), "cruds");
    assert_eq!(perms("system/Patient.r"), "r");
    assert_eq!(perms("user/Patient.cud"), "cud");
    assert_eq!(perms("user/Patient.ds"), "ds");
    assert_eq!(
        Scope::parse("system/*.s").unwrap().context(),
        Context::System
    );
    assert_eq!(Scope::parse("user/*.s").unwrap().resource_type(), "*");
}

#[test]
fn v1_scopes_expand() {
    assert_eq!(perms("patient/Observation.read"), "rs");
    assert_eq!(perms("patient/Observation.write"), "cud");
    assert_eq!(perms("patient/Observation.*"), "cruds");
    assert_eq!(perms("user/*.*"), "cruds");
    assert_eq!(perms("system/*.read"), "rs");
}

#[test]
fn invalid_scopes_are_none() {
    for s in [
        "patient/Observation.sr",
        "patient/Observation.rr",
        "patient/Observation.rsc",
        "patient/Observation.x",
        "patient/Observation.",
        "patient/Observation",
        "patient/observation.rs",
        "patient/OBSERVATION.rs",
        "patient/Foo.rs",
        "patient/.rs",
        "Patient/Observation.rs",
        "admin/Observation.rs",
        "patient//Observation.rs",
        "patient/Observation.Read",
        "patient/Observation.READ",
        "patient/Observation.rs.rs",
        "patient/Observation.read?category=x",
        "patient/*.rs?category=x",
        "patient/Observation.rs?status=final",
        "patient/Observation.rs?category=",
        "patient/Observation.rs?category",
        "patient/Observation.rs?",
        "patient/Observation.rs?category=a,b",
        "patient/Observation.rs?category=%zz",
        "patient/Observation.rs?category=%+f",
        "patient/Observation.rs?category=a&",
        "launch/patient",
        "launch",
        "openid",
        "fhirUser",
        "offline_access",
        "online_access",
        "",
    ] {
        assert!(Scope::parse(s).is_none(), "{s:?} must be invalid");
    }
}

#[test]
fn granular_scopes() {
    let s = Scope::parse(
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
    )
    .unwrap();
    assert!(s.is_granular());
    assert_eq!(
        s.constraints(),
        [Constraint {
            param: "category".into(),
            value: "http://terminology.hl7.org/CodeSystem/observation-category|laboratory".into()
        }]
    );
    let s = Scope::parse("user/Observation.s?category=http%3A%2F%2Fx%7Clab&code=1234-5").unwrap();
    assert_eq!(s.constraints().len(), 2);
    assert_eq!(s.constraints()[0].value, "http://x|lab");
    assert_eq!(s.constraints()[1].param, "code");
    assert!(Scope::parse("user/Observation.rs?_tag=a|b").is_some());
    assert!(Scope::parse("user/Observation.rs?_security=http://x|R").is_some());
}

#[test]
fn scope_set_splits_and_drops_invalid() {
    let set = ScopeSet::parse([
        "openid fhirUser launch/patient patient/Observation.rs",
        "patient/Patient.read  offline_access",
        "bogus/x.y",
    ]);
    let names: Vec<&str> = set.iter().map(Scope::as_str).collect();
    assert_eq!(names, ["patient/Observation.rs", "patient/Patient.read"]);
    assert_eq!(set.len(), 2);
    assert!(!set.is_empty());
    assert!(ScopeSet::parse(Vec::<String>::new()).is_empty());
    assert!(ScopeSet::parse(["openid profile"]).is_empty());
}

#[test]
fn perms_helpers() {
    let rs = Perms::of(&[Permission::S, Permission::R]);
    assert_eq!(rs.letters(), "rs");
    assert!(Perms::ALL.contains(rs));
    assert!(!rs.contains(Perms::ALL));
    assert!(rs.has(Permission::R) && !rs.has(Permission::C));
    assert_eq!(Perms::NONE.letters(), "");
    assert_eq!(Perms::ALL.letters(), "cruds");
    assert_eq!(rs.intersection(Perms::of(&[Permission::R])).letters(), "r");
    // sets, not sums: a permission named twice, or in both halves of a union, is there once
    let r = Perms::of(&[Permission::R]);
    assert_eq!(Perms::of(&[Permission::R, Permission::R]), r);
    assert_eq!(
        Perms::of(&[Permission::R, Permission::S, Permission::R]),
        rs
    );
    assert_eq!(r.union(rs), rs);
    assert_eq!(rs.union(rs), rs);
    assert_eq!(r.union(Perms::NONE), r);
}

/// Two scopes granting the same permission still add up to what each grants.
#[test]
fn overlapping_scopes_add_up() {
    let g = allow(
        "patient/Observation.r patient/Observation.rs",
        "GET",
        "/fhir/Observation?patient=123",
        P,
    );
    assert!(g.patient_constrained);
}

#[test]
fn allows_for_cel_helpers() {
    let set =
        scopes("patient/Observation.rs user/*.r system/Patient.c patient/Condition.rs?code=x");
    assert!(allows(&set, "patient", "Observation", Permission::R));
    assert!(allows(&set, "patient", "Observation", Permission::S));
    assert!(!allows(&set, "patient", "Observation", Permission::C));
    assert!(!allows(&set, "user", "Observation", Permission::S));
    assert!(allows(&set, "user", "Observation", Permission::R));
    assert!(allows(&set, "user", "*", Permission::R));
    assert!(!allows(&set, "patient", "*", Permission::R));
    assert!(allows(&set, "system", "Patient", Permission::C));
    assert!(!allows(&set, "system", "Observation", Permission::C));
    // Granular scopes do not count; unknown contexts are false.
    assert!(!allows(&set, "patient", "Condition", Permission::R));
    assert!(!allows(&set, "admin", "Observation", Permission::R));
    assert!(!allows(&set, "Patient", "Observation", Permission::R));
}

#[test]
fn context_names() {
    for c in [Context::Patient, Context::User, Context::System] {
        assert_eq!(Context::parse(c.as_str()), Some(c));
    }
    assert_eq!(Context::parse("USER"), None);
}

/// RFC 6749 §3.3 scope-token characters exactly: `!` and `#`..`[`, `]`..`~`; not blanks, `"` or `\`.
#[test]
fn scope_tokens_are_the_rfc_6749_characters() {
    assert!(Scope::parse("patient/Observation.rs?code=a!b").is_some());
    assert!(Scope::parse("patient/Observation.rs?code=a~b").is_some());
    for bad in [
        "patient/Observation.rs?code=a\"b",
        "patient/Observation.rs?code=a\\b",
        "patient/Observation.rs?code=a b",
        "patient/Observation.rs\t",
        "patient/Observation.rs\u{7f}",
        "patient/Observation.rs?code=é",
    ] {
        assert!(Scope::parse(bad).is_none(), "{bad:?}");
    }
}

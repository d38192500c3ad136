//! The short variant of `make fuzz`, run by `make unit`: every checked-in corpus file and
//! regression input (`tests/fuzz/corpus/<target>/`, `tests/fuzz/regressions/<target>/`) replayed
//! through the fuzz targets' own bodies (`tests/fuzz/targets.rs`, shared with the libFuzzer
//! workspace), then proptest properties of the same targets on generated structured inputs,
//! with a bounded case count, and differential checks against jwt-simple and serde_json.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "fuzz/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

/// The files of `dir` (none when it does not exist), sorted for a stable order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

/// Replays corpus and regression inputs of `name`; returns how many ran.
fn replay(name: &str) -> usize {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let mut ran = 0;
    for kind in ["corpus", "regressions"] {
        for file in files(&fuzz_dir().join(kind).join(name)) {
            let data = std::fs::read(&file).unwrap();
            // A failing input names itself (the panic message of the target follows).
            eprintln!("replaying {}", file.display());
            target(&data);
            ran += 1;
        }
    }
    ran
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (name, _) in targets::TARGETS {
        let n = files(&fuzz_dir().join("corpus").join(name)).len();
        assert!(
            n > 0,
            "target {name} has no seeds in tests/fuzz/corpus/{name}"
        );
        let fuzz_target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(
            fuzz_target.is_file(),
            "no libFuzzer target {}",
            fuzz_target.display()
        );
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        mod replay {
            $(
                #[test]
                fn $name() {
                    assert!(super::replay(stringify!($name)) > 0);
                }
            )*
        }
    };
}

replay_tests!(
    authorization,
    jwt,
    jwks,
    introspection,
    fhir_request,
    form,
    bundle,
    response,
    scope,
    config,
    rules,
    dpop,
    htu,
    strict_json,
);

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Claims a token we accept could carry, as jwt-simple signs them.
fn claims_strategy() -> impl Strategy<Value = Value> {
    (
        prop::option::of("[a-z0-9]{1,12}"),
        prop::option::of("[a-z/.* ]{0,40}"),
        prop::bool::ANY,
        prop::option::of(prop::num::f64::NORMAL),
    )
        .prop_map(|(sub, scope, aud_array, extra)| {
            let mut c = json!({
                "iss": targets::ISSUER,
                "exp": targets::NOW + 600,
                "iat": targets::NOW - 10,
                "aud": if aud_array { json!([targets::AUDIENCE, "other"]) } else { json!(targets::AUDIENCE) },
            });
            if let Some(sub) = sub {
                c["sub"] = json!(sub);
            }
            if let Some(scope) = scope {
                c["scope"] = json!(scope);
            }
            if let Some(x) = extra {
                c["x"] = json!(x);
            }
            c
        })
}

fn sign_hs(header: &Value, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let input = format!("{h}.{p}");
    let sig = HS256Key::from_bytes(targets::HMAC_SECRET).authentication_tag(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// ES256 over our own header and payload bytes (p256, the fixed scalar of `targets::ec_key`).
fn sign_es(header: &Value, claims: &Value) -> String {
    use p256::ecdsa::signature::Signer as _;
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let input = format!("{h}.{p}");
    let key = p256::ecdsa::SigningKey::from_slice(&targets::EC_SCALAR).unwrap();
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn ours_accepts(token: &str) -> bool {
    fhirgate_core::token::verify_jwt(
        token,
        &fhirgate_core::token::JwtPolicy {
            issuer: targets::ISSUER.into(),
            audiences: vec![targets::AUDIENCE.into()],
            algorithms: vec![
                fhirgate_core::token::Algorithm::ES256,
                fhirgate_core::token::Algorithm::HS256,
            ],
            accepted_types: vec!["at+jwt".into(), "JWT".into()],
            clock_skew_secs: 60,
            max_lifetime_secs: None,
        },
        &jwt_keys(),
        &fhirgate_core::token::ClaimNames::default(),
        targets::NOW,
    )
    .is_ok()
}

fn jwt_keys() -> fhirgate_core::token::KeySet {
    let doc = serde_json::to_vec(&json!({ "keys": [targets::ec_jwk()] })).unwrap();
    let algs = [
        fhirgate_core::token::Algorithm::ES256,
        fhirgate_core::token::Algorithm::HS256,
    ];
    let (keys, _) = fhirgate_core::token::KeySet::from_jwks(&doc, &algs).unwrap();
    keys.with_hmac_secret(targets::HMAC_SECRET, &algs).unwrap()
}

fn theirs_accepts(token: &str, hs: bool) -> bool {
    let opts = VerificationOptions {
        accept_future: true,
        artificial_time: Some(Duration::from_secs(targets::NOW)),
        time_tolerance: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    if hs {
        HS256Key::from_bytes(targets::HMAC_SECRET)
            .verify_token::<Value>(token, Some(opts))
            .is_ok()
    } else {
        targets::ec_key()
            .public_key()
            .verify_token::<Value>(token, Some(opts))
            .is_ok()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Differential against jwt-simple on valid tokens and their one-byte mutations: a
    /// well-formed token signed with the key is accepted by both; after a mutation, whatever we
    /// accept jwt-simple accepts (and then the mutation did not touch what was signed).
    #[test]
    fn jws_verification_agrees_with_jwt_simple(
        claims in claims_strategy(),
        hs in prop::bool::ANY,
        mutate in prop::option::of((any::<prop::sample::Index>(), 0u8..64)),
    ) {
        let header = if hs {
            json!({"alg": "HS256", "typ": "at+jwt"})
        } else {
            json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec-1"})
        };
        let token = if hs { sign_hs(&header, &claims) } else { sign_es(&header, &claims) };
        prop_assert!(ours_accepts(&token), "ours refuses a valid token");
        prop_assert!(theirs_accepts(&token, hs), "jwt-simple refuses a valid token");
        targets::jwt(token.as_bytes());
        if let Some((at, v)) = mutate {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut bytes = token.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = ALPHABET[usize::from(v)];
            let mutated = String::from_utf8(bytes).unwrap();
            if ours_accepts(&mutated) {
                prop_assert!(theirs_accepts(&mutated, hs), "we accept a mutation jwt-simple refuses");
            }
            targets::jwt(mutated.as_bytes());
        }
    }

    /// A token signed with a key we do not have, or unsigned (`alg: none`), is never accepted.
    #[test]
    fn foreign_or_unsigned_tokens_are_refused(claims in claims_strategy(), none in prop::bool::ANY) {
        let token = if none {
            let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
            let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
            format!("{h}.{p}.")
        } else {
            let other = HS256Key::from_bytes(b"another-secret-of-thirty-two-bytes!!");
            let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"at+jwt"}"#);
            let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
            let input = format!("{h}.{p}");
            let tag = other.authentication_tag(input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
        };
        prop_assert!(!ours_accepts(&token));
    }

    /// JSON strictness against serde_json on generated JSON texts, some with a repeated member.
    #[test]
    fn strict_json_agrees_with_serde_json(value in json_strategy(), dup in prop::option::of("[a-c]{1,2}")) {
        let mut text = serde_json::to_string(&value).unwrap();
        if let Some(name) = dup {
            text = format!("{{\"{name}\":1,\"k\":{text},\"{name}\":2}}");
            prop_assert_eq!(
                fhirgate_core::token::strict_json::parse(text.as_bytes()),
                Err(fhirgate_core::token::strict_json::StrictJsonError::Duplicate)
            );
        } else {
            prop_assert_eq!(
                fhirgate_core::token::strict_json::parse(text.as_bytes()).ok(),
                Some(value)
            );
        }
        targets::strict_json_differential(text.as_bytes());
    }

    /// Query strings and form bodies built from parameter maps round-trip.
    #[test]
    fn forms_round_trip(pairs in prop::collection::vec(("[a-z_:.\\-]{1,8}", "[ -~\u{e9}\u{4e2d}]{0,12}"), 0..6)) {
        let text = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", fhirgate_core::token::introspection::form_urlencode(n),
                                  fhirgate_core::token::introspection::form_urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        targets::form(text.as_bytes());
        let mut path = vec![0u8];
        path.extend_from_slice(format!("/fhir/Observation?{text}").as_bytes());
        targets::fhir_request(&path);
    }

    /// FHIR paths from the router's grammar, with noise.
    #[test]
    fn fhir_paths(
        method in 0u8..6,
        ty in prop::sample::select(vec!["Patient", "Observation", "patient", "Foo", "*", "$everything", "_search", "_history", "metadata"]),
        id in "[A-Za-z0-9.\\-%;/]{0,10}",
        tail in prop::sample::select(vec!["", "/_history", "/_history/2", "/$op", "/Observation", "/", "/..", "?a=b", "?_id=x,y"]),
    ) {
        let mut data = vec![method];
        data.extend_from_slice(format!("/fhir/{ty}/{id}{tail}").as_bytes());
        targets::fhir_request(&data);
    }

    /// Scope strings built from SMART's grammar.
    #[test]
    fn scopes(
        ctx in prop::sample::select(vec!["patient", "user", "system", "launch", "Patient"]),
        ty in prop::sample::select(vec!["Observation", "Patient", "*", "Foo"]),
        perms in "(read|write|\\*|[cruds]{1,5}|[a-z]{1,3})",
        q in prop::option::of(("(category|code|_security|foo)", "[ -~]{0,10}")),
    ) {
        let mut s = format!("{ctx}/{ty}.{perms}");
        if let Some((p, v)) = q {
            s.push_str(&format!("?{p}={v}"));
        }
        targets::scope(s.as_bytes());
    }

    /// Response bodies: Bundles of resources with and without sensitive labels.
    #[test]
    fn responses(entries in prop::collection::vec((prop::bool::ANY, prop::bool::ANY, "[a-z0-9]{1,3}"), 0..5)) {
        let entry: Vec<Value> = entries.iter().map(|(labelled, own, id)| {
            let mut r = json!({"resourceType": "Observation", "id": id,
                               "subject": {"reference": if *own { "Patient/p1" } else { "Patient/p2" }}});
            if *labelled {
                r["meta"] = json!({"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]});
            }
            json!({"resource": r})
        }).collect();
        let body = json!({"resourceType": "Bundle", "type": "searchset", "entry": entry});
        targets::response(&serde_json::to_vec(&body).unwrap());
    }

    /// URIs for DPoP `htu`.
    #[test]
    fn htu_uris(s in "(https?|HTTP|ftp)://[a-zA-Z0-9.\\-]{1,10}(:[0-9]{0,5})?(/[a-zA-Z0-9%.~\\-]{0,6}){0,4}(\\?[a-z=]{0,4})?") {
        targets::htu_uri(s.as_bytes());
    }

    /// CEL rule sources from a small grammar, nested.
    #[test]
    fn rule_sources(s in rule_strategy()) {
        targets::rules(s.as_bytes());
    }
}

fn json_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        "[ -~\u{e9}]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]{1,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn rule_strategy() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("true".to_string()),
        Just("token.subject == 'u1'".to_string()),
        Just("'doctor' in token.claims.roles".to_string()),
        Just("fhir.resourceType.startsWith('Obs')".to_string()),
        Just("size(request.headers) > 0".to_string()),
    ];
    leaf.prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || !({b})")),
            inner
                .clone()
                .prop_map(|a| format!("token.scopes.exists(s, {a})")),
            inner.prop_map(|a| format!("[1, 2].all(x, {a})")),
        ]
    })
}

/// Writes the seed corpora (`tests/fuzz/corpus/<target>/seed-*`): run once with
/// `FHIRGATE_WRITE_SEEDS=1 cargo test --test fuzz_corpus write_seeds -- --ignored`; the output is
/// checked in, so CI never runs this.
#[test]
#[ignore = "writes the checked-in seed corpora"]
fn write_seeds() {
    if std::env::var_os("FHIRGATE_WRITE_SEEDS").is_none() {
        return;
    }
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    let claims = json!({
        "iss": targets::ISSUER, "aud": targets::AUDIENCE, "sub": "u1", "exp": targets::NOW + 600,
        "iat": targets::NOW - 10, "scope": "patient/Observation.rs openid", "patient": "p1",
        "cnf": {"jkt": targets::dpop_jkt()}, "ratio": 0.1
    });
    let hs = sign_hs(&json!({"alg": "HS256", "typ": "at+jwt"}), &claims);
    let es = sign_es(
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec-1"}),
        &claims,
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let dup = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"at+jwt","alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        hs.rsplit('.').next().unwrap()
    );
    for (name, t) in [
        ("hs256", &hs),
        ("es256", &es),
        ("none", &none),
        ("dup-alg", &dup),
    ] {
        write("jwt", name, t.as_bytes());
    }
    write("jwt", "jwe", b"eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d");
    for (name, v) in [
        ("bearer", format!("Bearer {hs}")),
        ("dpop", format!("DPoP {es}")),
        ("two", format!("Bearer {hs}\nDPoP {es}")),
        ("tab", "bearer\tabc".to_string()),
        ("basic", "Basic dXNlcjpwYXNz".to_string()),
        ("padded", "  BEARER   abc.def.ghi==  ".to_string()),
    ] {
        write("authorization", name, v.as_bytes());
    }
    let jwks = json!({"keys": [targets::ec_jwk(),
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "oct", "k": "c2VjcmV0"}, 17
    ]});
    write("jwks", "mixed", &serde_json::to_vec(&jwks).unwrap());
    write(
        "jwks",
        "dup-kid-member",
        br#"{"keys":[{"kty":"EC","kid":"a","kid":"b","crv":"P-256","x":"","y":""}]}"#,
    );
    write("jwks", "empty", br#"{"keys":[]}"#);
    for (name, v) in [
        (
            "active",
            json!({"active": true, "scope": "patient/*.rs", "exp": targets::NOW + 60, "aud": ["fhir"], "patient": "p1", "client_id": "app", "sub": "u1", "ratio": 0.30000000000000004, "big": 1e300, "neg": -0.0}),
        ),
        ("inactive", json!({"active": false})),
        ("active-string", json!({"active": "true"})),
        (
            "cnf",
            json!({"active": true, "cnf": {"x5t#S256": "abc"}, "scope": ["user/Patient.read"], "exp": targets::NOW + 5}),
        ),
    ] {
        write("introspection", name, &serde_json::to_vec(&v).unwrap());
    }
    write(
        "introspection",
        "dup-active",
        br#"{"active":false,"active":true}"#,
    );
    for (name, m, p) in [
        ("read", 0u8, "/fhir/Patient/p1"),
        ("search", 0, "/fhir/Observation?patient=p1&code=http://loinc.org|1234-5,abc\\,d&_include=Observation:subject"),
        ("compartment", 0, "/fhir/Patient/p1/Observation?_count=10"),
        ("vread", 0, "/fhir/Patient/p1/_history/2"),
        ("op", 1, "/fhir/Patient/p1/$everything"),
        ("cond-put", 2, "/fhir/Patient?identifier=a%7Cb"),
        ("traversal", 0, "/fhir/Patient/%2e%2e/x"),
        ("system", 0, "/fhir?_type=Patient,Observation"),
        ("search-post", 1, "/fhir/Observation/_search?patient=p1"),
        ("root", 4, "/Patient/1"),
    ] {
        let mut d = vec![m];
        d.extend_from_slice(p.as_bytes());
        write("fhir_request", name, &d);
    }
    for (name, f) in [
        ("simple", "patient=p1&code=a,b"),
        ("escapes", "name=J%C3%BCrgen+M&x=%5C%2C&y=a\\,b&z=\\\\,q"),
        ("empty", "a&&b=&c"),
        ("bad", "=x&%zz"),
        ("matrix", "a=1;b=2"),
    ] {
        write("form", name, f.as_bytes());
    }
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"request": {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=x"},
         "resource": {"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}},
        {"request": {"method": "PUT", "url": "https://host/fhir/Patient/p1"}, "resource": {"resourceType": "Patient", "id": "p1"}},
        {"request": {"method": "DELETE", "url": "Observation?patient=p1"}},
        {"request": {"method": "GET", "url": "/fhir/Observation?code=a,b"}}
    ]});
    write("bundle", "transaction", &serde_json::to_vec(&tx).unwrap());
    write("bundle", "batch-nested", br#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"POST","url":""},"resource":{"resourceType":"Bundle","type":"batch"}}]}"#);
    write(
        "bundle",
        "searchset",
        br#"{"resourceType":"Bundle","type":"searchset"}"#,
    );
    let psy =
        json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]);
    let search = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}}},
        {"resource": {"resourceType": "Observation", "id": "o2", "subject": {"reference": "Patient/p1"}, "meta": {"security": psy}}},
        {"resource": {"resourceType": "Observation", "id": "o3", "subject": {"reference": "Patient/p2"}}},
        {"resource": {"resourceType": "Observation", "id": "o4", "subject": {"reference": "Patient/p1"},
                      "contained": [{"resourceType": "Condition", "meta": {"security": psy}}]}},
        {"resource": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "meta": {"security": psy}}}]}}
    ]});
    write("response", "search", &serde_json::to_vec(&search).unwrap());
    write("response", "patient", br#"{"resourceType":"Patient","id":"p1","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}"#);
    write(
        "response",
        "other-patient",
        br#"{"resourceType":"Patient","id":"p2"}"#,
    );
    write(
        "response",
        "outcome",
        br#"{"resourceType":"OperationOutcome","issue":[]}"#,
    );
    write("response", "security-not-array", br#"{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"meta":{"security":{"code":"PSY"}}}"#);
    for (name, s) in [
        ("v1", "patient/Observation.read user/*.write openid fhirUser launch/patient"),
        ("v2", "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
        ("v2-multi", "user/Condition.cruds?clinical-status=active&category=a%20b system/*.*"),
        ("bad", "patient/Foo.read patient/Observation.sr patient/*.rs?category=x"),
    ] {
        write("scope", name, s.as_bytes());
    }
    for file in files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")) {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".json") && !name.ends_with(".cases.json") {
            let text = std::fs::read(&file).unwrap();
            write("config", name.trim_end_matches(".json"), &text);
            let v: Value = serde_json::from_slice(&text).unwrap();
            for (i, rule) in v
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let phase = if rule.get("phase").and_then(Value::as_str) == Some("response") {
                    ">"
                } else {
                    ""
                };
                let expr = rule["expression"].as_str().unwrap();
                let src = match rule.get("match").and_then(Value::as_str) {
                    Some(m) => format!("{phase}{m}\n{expr}"),
                    None => format!("{phase}{expr}"),
                };
                write(
                    "rules",
                    &format!("{}-{i}", name.trim_end_matches(".json")),
                    src.as_bytes(),
                );
            }
        }
    }
    write("config", "minimal", br#"{"providers":[{"name":"a","issuer":"https://i","audiences":["fhir"],"jwks":{"inline":{"keys":[]}}}]}"#);
    write("config", "dup", br#"{"providers":[],"providers":[]}"#);
    for (name, r) in [
        ("macro", "token.scopes.exists(s, s.startsWith('patient/'))"),
        ("nested", "[1,2].all(x, [3].exists(y, x < y))"),
        ("matches", "request.headers['user-agent'].matches('^fuzz$')"),
        ("ip", "ip(source.address).inCidr('10.0.0.0/8')"),
        ("deep", &format!("{}true{}", "[1].all(x, ".repeat(40), ")".repeat(40))),
        ("response", ">resource.resourceType == 'Observation'\nresource.subject.reference == 'Patient/' + token.patient"),
    ] {
        write("rules", name, r.as_bytes());
    }
    let ath = URL_SAFE_NO_PAD.encode(fhirgate_core::token::token_hash(targets::DPOP_ACCESS_TOKEN));
    let proof_claims = json!({"htm": "GET", "htu": targets::DPOP_HTU, "iat": targets::DPOP_NOW_MS / 1000, "jti": "j-1", "ath": ath});
    let proof = sign_es(
        &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": targets::ec_jwk()}),
        &proof_claims,
    );
    write("dpop", "valid", proof.as_bytes());
    let mut other = proof_claims.clone();
    other["htu"] = json!("HTTPS://FHIR.example:443/fhir/./Patient/%70%31?q=1#f");
    write(
        "dpop",
        "htu-variant",
        sign_es(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": targets::ec_jwk()}),
            &other,
        )
        .as_bytes(),
    );
    write(
        "dpop",
        "hmac",
        sign_hs(
            &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": targets::ec_jwk()}),
            &proof_claims,
        )
        .as_bytes(),
    );
    for (name, u) in [
        ("plain", "https://fhir.example/fhir/Patient/p1"),
        ("variant", "HTTPS://Fhir.Example:443/a/./b/../c/%7e%41?x#y"),
        ("port", "http://h:8080"),
        ("ipv6", "https://[::1]:443/x"),
        ("userinfo", "https://u@h/x"),
        ("pct", "https://h/%2f%2F%zz"),
    ] {
        write("htu", name, u.as_bytes());
    }
    for (name, j) in [
        (
            "object",
            r#"{"a":[1,2.5,-0.0,1e400,"\u00e9"],"b":{"c":null}}"#,
        ),
        ("dup", r#"{"a":1,"a":2}"#),
        ("nested-dup", r#"[{"x":{"y":1,"y":1}}]"#),
        ("escaped-dup", r#"{"a":1,"\u0061":2}"#),
        ("trailing", r#"{"a":1} x"#),
        ("deep", &"[".repeat(200)),
        (
            "numbers",
            "[18446744073709551616, 9007199254740993, 0.1, 1E-400]",
        ),
    ] {
        write("strict_json", name, j.as_bytes());
    }
}

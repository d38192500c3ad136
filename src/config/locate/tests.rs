//! The locator against serde_path_to_error (the oracle it replaces, kept as a dev-dependency):
//! a table of bad configurations with the key recorded from the oracle, and every truncation and
//! single-byte edit of a full configuration.

use super::*;
use crate::config::raw::RawConfig;
use crate::config::{strip_position, Config};

/// A configuration using every block, spread over several lines.
const BASE: &str = r#"{
  "fhir": {"basePath": "/fhir", "maxBodyBytes": 2048},
  "providers": [
    {
      "name": "main",
      "issuer": "https://idp.example.org",
      "audiences": ["https://fhir.example.org/fhir"],
      "jwks": {"inline": {"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"}]}},
      "clockSkew": "30s"
    },
    {
      "name": "second",
      "issuer": "https://other.example",
      "audiences": ["a", "b"],
      "jwks": {"remote": {"cluster": "idp", "authority": "idp", "path": "/jwks", "refresh": "5m"}},
      "introspection": {"cluster": "idp", "authority": "idp", "path": "/i", "clientId": "c", "clientSecret": "s", "mode": "opaque"}
    }
  ],
  "claims": {"scope": ["scope", "scp"], "patient": "patient"},
  "smart": {"enforce": true},
  "rules": [
    {"name": "r1", "expression": "true", "effect": "flag", "phase": "request"},
    {"name": "r2", "match": "true", "expression": "true", "stepUp": {"acrValues": "urn:x", "maxAge": 300}}
  ],
  "forward": {"removeAuthorization": false, "headers": {"x-sub": "subject"}},
  "realm": "fhirgate",
  "cache": {"maxEntries": 100},
  "retryAfter": "5s",
  "audit": {"subject": "plain", "breakTheGlassPurposes": ["BTG"], "collector": {"cluster": "c", "authority": "a", "path": "/p", "batchSize": 10}}
}"#;

type Outcome = Result<(), (String, String)>;

/// What serde_path_to_error named (path, message without position).
fn oracle(json: &[u8]) -> Outcome {
    let mut de = serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize::<_, RawConfig>(&mut de)
        .map(|_| ())
        .map_err(|e| (e.path().to_string(), strip_position(&e.inner().to_string())))
}

/// What the locator names, deserializing the way `Config::from_json` does.
fn ours(json: &[u8]) -> Outcome {
    let mut de = serde_json::Deserializer::from_slice(json);
    <RawConfig as serde::Deserialize>::deserialize(&mut de)
        .map(|_| ())
        .map_err(|e| (error_path(json, &e), strip_position(&e.to_string())))
}

/// BASE with `from` (which must occur exactly once) replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from} must occur once");
    BASE.replace(from, to)
}

#[test]
fn the_base_configuration_deserializes() {
    assert_eq!(oracle(BASE.as_bytes()), Ok(()));
    assert_eq!(ours(BASE.as_bytes()), Ok(()));
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// (configuration, key recorded from serde_path_to_error 0.1.20 before it was replaced).
fn table() -> Vec<(String, String)> {
    let s = |t: &str| t.to_string();
    let cases = vec![
        // unknown fields name the unknown key
        (
            edit(
                r#""realm": "fhirgate""#,
                r#""realm": "fhirgate", "extra": 1"#,
            ),
            "extra",
        ),
        (
            edit(r#""clockSkew""#, r#""clockskew""#),
            "providers[0].clockskew",
        ),
        (
            edit(r#""refresh""#, r#""refesh""#),
            "providers[1].jwks.remote.refesh",
        ),
        (
            edit(r#""mode""#, r#""mod""#),
            "providers[1].introspection.mod",
        ),
        (edit(r#""maxAge""#, r#""maxage""#), "rules[1].stepUp.maxage"),
        (
            edit(r#""batchSize""#, r#""batch""#),
            "audit.collector.batch",
        ),
        (edit(r#""basePath""#, r#""base""#), "fhir.base"),
        (
            edit(r#""clockSkew""#, r#""clock\u0073kew""#),
            "providers[0].clockskew",
        ),
        (
            edit(r#""clockSkew""#, r#""cl\u00e9""#),
            "providers[0].cl\u{e9}",
        ),
        (
            edit(r#""clockSkew""#, r#""\ud83d\ude00""#),
            "providers[0].\u{1f600}",
        ),
        (
            edit(r#""clockSkew""#, "\"cl\u{e9}\""),
            "providers[0].cl\u{e9}",
        ),
        (edit(r#""realm""#, r#""a.b[0]""#), "a.b[0]"),
        (edit(r#""realm""#, r#""""#), ""),
        (s("{\r\n\"providers\": [],\r\n  \"bogus\": 1}"), "bogus"),
        // invalid types and values name the value
        (
            edit(
                r#""cluster": "idp", "authority": "idp", "path": "/jwks""#,
                r#""cluster": 5, "authority": "idp", "path": "/jwks""#,
            ),
            "providers[1].jwks.remote.cluster",
        ),
        (
            edit(
                r#""cluster": "idp", "authority": "idp", "path": "/jwks""#,
                r#""cluster": null, "authority": "idp", "path": "/jwks""#,
            ),
            "providers[1].jwks.remote.cluster",
        ),
        (
            edit(
                r#""cluster": "idp", "authority": "idp", "path": "/jwks""#,
                r#""cluster": {"a": 1}, "authority": "idp", "path": "/jwks""#,
            ),
            "providers[1].jwks.remote.cluster",
        ),
        (
            edit(
                r#""cluster": "idp", "authority": "idp", "path": "/jwks""#,
                r#""cluster":  [1], "authority": "idp", "path": "/jwks""#,
            ),
            "providers[1].jwks.remote.cluster",
        ),
        (
            edit(r#"["a", "b"]"#, r#"["a", 2]"#),
            "providers[1].audiences[1]",
        ),
        (
            edit(r#"["a", "b"]"#, r#"["a", {}]"#),
            "providers[1].audiences[1]",
        ),
        (edit(r#"["a", "b"]"#, r#""a""#), "providers[1].audiences"),
        (edit("2048", "-1"), "fhir.maxBodyBytes"),
        (edit("2048", "1.5"), "fhir.maxBodyBytes"),
        (edit("2048", "1e999"), "fhir.maxBodyBytes"),
        (edit("2048", "99999999999999999999999"), "fhir.maxBodyBytes"),
        (
            edit(r#""enforce": true"#, r#""enforce": "yes""#),
            "smart.enforce",
        ),
        (
            edit(r#""effect": "flag""#, r#""effect": "warn""#),
            "rules[0].effect",
        ),
        (
            edit(r#""phase": "request""#, r#""phase": 5"#),
            "rules[0].phase",
        ),
        (
            edit(r#""effect": "flag""#, r#""effect": {"nope": null}"#),
            "rules[0].effect",
        ),
        (
            edit(r#""effect": "flag""#, r#""effect": {"flag": 5}"#),
            "rules[0].effect.flag",
        ),
        (
            edit(r#""effect": "flag""#, r#""effect": {}"#),
            "rules[0].effect",
        ),
        (edit("300", "-1"), "rules[1].stepUp.maxAge"),
        (
            edit(r#"{"x-sub": "subject"}"#, r#"{"x-sub": 5}"#),
            "forward.headers.x-sub",
        ),
        (
            edit(r#""providers": ["#, r#""providers": [5, "#),
            "providers[0]",
        ),
        (edit(r#""rules": ["#, r#""rules": {}, "r": ["#), "rules"),
        (s(r#"{"providers": {}}"#), "providers"),
        // an untagged enum is checked after its object closed, yet named
        (
            edit(
                r#""scope": ["scope", "scp"], "patient": "patient""#,
                r#""patient": "patient", "scope": 5"#,
            ),
            "claims.scope",
        ),
        (
            edit(r#""scope": ["scope", "scp"]"#, r#""scope": [1]"#),
            "claims.scope",
        ),
        // missing fields name the object; duplicate fields too
        (edit(r#""name": "second","#, ""), "providers[1]"),
        (
            edit(
                r#""cluster": "idp", "authority": "idp", "path": "/jwks""#,
                r#""authority": "idp", "path": "/jwks""#,
            ),
            "providers[1].jwks.remote",
        ),
        (
            edit(r#""name": "r1", "expression": "true","#, r#""name": "r1","#),
            "rules[0]",
        ),
        (edit(r#""path": "/p","#, ""), "audit.collector"),
        (s("{}"), "."),
        (s("  {\n}\n"), "."),
        (
            edit(r#""name": "main","#, r#""name": "main", "name": "x","#),
            "providers[0]",
        ),
        (
            edit(
                r#""realm": "fhirgate""#,
                r#""realm": "fhirgate", "realm" : "x""#,
            ),
            ".",
        ),
        // a struct given as an array
        (edit(r#"{"enforce": true}"#, "[true, 1]"), "smart"),
        (edit(r#"{"enforce": true}"#, "[]"), "smart"),
        (edit(r#"{"enforce": true}"#, "[5]"), "smart[0]"),
        // syntax errors: a separator belongs to the container, `?` for an object's unread key
        (
            edit(r#""name": "main","#, r#""name": "main""#),
            "providers[0].?",
        ),
        (
            edit(r#"["a", "b"]"#, r#"["a" "b"]"#),
            "providers[1].audiences",
        ),
        (
            edit(r#""clockSkew": "30s""#, r#""clockSkew": "30s","#),
            "providers[0].?",
        ),
        (
            edit(r#"["a", "b"]"#, r#"["a", "b",]"#),
            "providers[1].audiences",
        ),
        (edit(r#""realm": "fhirgate""#, r#""realm" "fhirgate""#), "."),
        (
            edit(r#""enforce": true"#, r#""enforce": tru"#),
            "smart.enforce",
        ),
        (
            edit(r#""enforce": true"#, r#""enforce": trux"#),
            "smart.enforce",
        ),
        (
            edit(r#""enforce": true"#, r#""enforce": true x"#),
            "smart.?",
        ),
        (
            edit(r#""realm": "fhirgate""#, r#""realm": "fh\qirgate""#),
            "realm",
        ),
        (
            edit(r#""realm": "fhirgate""#, r#""re\qalm": "fhirgate""#),
            "?",
        ),
        (
            edit(r#""realm": "fhirgate""#, r#""realm": "fh\u12x4""#),
            "realm",
        ),
        (
            edit(r#""realm": "fhirgate""#, "\"realm\": \"fh\tirgate\""),
            "realm",
        ),
        (
            edit(r#""realm": "fhirgate""#, r#""\ud800": "fhirgate""#),
            "?",
        ),
        (edit("2048", "02048"), "fhir.maxBodyBytes"),
        (edit("2048", "-"), "fhir.maxBodyBytes"),
        (edit("2048", "2."), "fhir.maxBodyBytes"),
        (edit(r#""enforce": true"#, "enforce: true"), "smart.?"),
        (
            edit(r#""enforce": true"#, r#""enforce": }"#),
            "smart.enforce",
        ),
        (
            edit(r#""kid": "k1""#, r#""kid": k1"#),
            "providers[0].jwks.inline.keys[0].kid",
        ),
        (
            edit(r#""kid": "k1""#, r#""kid": "k1" "n2": 1"#),
            "providers[0].jwks.inline.keys[0].?",
        ),
        (
            edit(r#""effect": "flag""#, r#""effect": {"flag" 5}"#),
            "rules[0].effect",
        ),
        // truncated input
        (s(""), "."),
        (s("   "), "."),
        (s("{"), "?"),
        (s(r#"{"providers""#), "."),
        (s(r#"{"providers":"#), "providers"),
        (s(r#"{"providers": ["#), "providers"),
        (s(r#"{"providers": [{"name": "ma"#), "providers[0].name"),
        (s(r#"{"providers": [{"name": "main", "#), "providers[0].?"),
        (s(r#"{"providers": [{"name": "main"}, "#), "providers[0]"),
        (
            s(r#"{"providers": [{"name": "m", "audiences": ["a", "#),
            "providers[0].audiences",
        ),
        (s(r#"{"fhir": {"maxBodyBytes": 20"#), "fhir.?"),
        // the top level is not an object
        (s("[]"), "."),
        (s(r#""config""#), "."),
        (s("nul"), "."),
        (s("}"), "."),
    ];
    let mut table: Vec<(String, String)> = cases
        .into_iter()
        .map(|(json, key)| (json, key.to_string()))
        .collect();
    // serde_json's recursion limit (128 levels, the configuration's own included) names the
    // array whose bracket exceeded it.
    table.push((
        edit(r#""kid": "k1""#, &format!(r#""kid": {}"#, nested(140))),
        format!("providers[0].jwks.inline.keys[0].kid{}", "[0]".repeat(120)),
    ));
    table
}

#[test]
fn the_table_names_the_same_key_and_message_as_serde_path_to_error() {
    let table = table();
    assert!(table.len() >= 40);
    for (json, recorded) in &table {
        let old = oracle(json.as_bytes());
        let (old_key, _) = old.clone().expect_err(json);
        assert_eq!(old_key, *recorded, "recorded key of {json}");
        assert_eq!(ours(json.as_bytes()), old, "{json}");
    }
}

/// Where the locator cannot match serde_path_to_error: both need to know that the value is an
/// enum, which only the Deserialize impls know. The key then names a member inside the right key.
/// (configuration, old key, new key)
fn divergences() -> Vec<(String, &'static str, &'static str)> {
    vec![
        // A unit enum written as an object whose first key is not a string: the enum's variant
        // was being read (old), but it looks like a struct's key (`?`) in the JSON.
        (
            edit(r#""effect": "flag""#, r#""effect": {flag: null}"#),
            "rules[0].effect",
            "rules[0].effect.?",
        ),
        // A unit enum written as `{"variant": null, ...}`: serde_json wants `}` after the
        // variant's value; the error comes after the member `flag` was read.
        (
            edit(r#""effect": "flag""#, r#""effect": {"flag": null, "x": 1}"#),
            "rules[0].effect",
            "rules[0].effect.flag",
        ),
    ]
}

#[test]
fn known_divergences_still_name_the_right_key() {
    for (json, old_key, new_key) in divergences() {
        let (old, old_message) = oracle(json.as_bytes()).expect_err(&json);
        let (new, new_message) = ours(json.as_bytes()).expect_err(&json);
        assert_eq!((old.as_str(), new.as_str()), (old_key, new_key), "{json}");
        assert_eq!(old_message, new_message);
        assert!(new.starts_with(old_key), "{json}");
    }
}

#[test]
fn from_json_reports_the_located_key() {
    let e = Config::from_json(edit(r#""refresh""#, r#""refesh""#).as_bytes()).unwrap_err();
    assert_eq!(e.key, "providers[1].jwks.remote.refesh");
    assert!(e.reason.starts_with("unknown field `refesh`"), "{e}");
    assert!(!e.reason.contains(" at line "), "{e}");
    let e = Config::from_json(b"{}").unwrap_err();
    assert_eq!(e.key, "(root)");
    assert_eq!(e.reason, "missing field `providers`");
    let e = Config::from_json(format!("{BASE} x").as_bytes()).unwrap_err();
    assert_eq!(e.key, "(root)");
}

/// Every truncation, deletion, replacement and insertion of one byte in BASE.
fn mutations() -> Vec<Vec<u8>> {
    let base = BASE.as_bytes();
    let bytes = b"x}],:\"1 {[\\-";
    let mut out = Vec::new();
    for i in 0..=base.len() {
        let (head, tail) = base.split_at(i);
        out.push(head.to_vec());
        if let Some((_, rest)) = tail.split_first() {
            out.push([head, rest].concat());
            for b in bytes {
                out.push([head, &[*b], rest].concat());
            }
        }
        for b in bytes {
            out.push([head, &[*b], tail].concat());
        }
    }
    out
}

#[test]
fn every_single_byte_edit_names_the_same_key_as_serde_path_to_error() {
    let mut divergent = Vec::new();
    let cases = mutations();
    for json in &cases {
        let old = oracle(json);
        let new = ours(json);
        if old != new {
            divergent.push((String::from_utf8_lossy(json).into_owned(), old, new));
        }
    }
    // Only the first documented divergence is reachable by a one-byte edit of BASE.
    divergent.retain(|(_, old, new)| match (old, new) {
        (Err((old_key, message)), Err((new_key, _))) => {
            !(message == "key must be a string" && *new_key == format!("{old_key}.?"))
        }
        _ => true,
    });
    for (json, old, new) in divergent.iter().take(40) {
        let at = json
            .bytes()
            .zip(BASE.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let near: String = json.chars().skip(at.saturating_sub(30)).take(50).collect();
        eprintln!("{near:?}: {old:?} {new:?}");
    }
    assert!(
        divergent.is_empty(),
        "{} of {} differ",
        divergent.len(),
        cases.len()
    );
}

#[test]
fn offsets_follow_serde_json_lines_and_byte_columns() {
    let json = b"ab\ncd\r\nef";
    assert_eq!(offset_of(json, 0, 0), None);
    assert_eq!(offset_of(json, 1, 0), Some(0));
    assert_eq!(offset_of(json, 1, 2), Some(2));
    assert_eq!(offset_of(json, 2, 1), Some(4));
    assert_eq!(offset_of(json, 3, 2), Some(9));
    assert_eq!(offset_of(json, 3, 99), Some(9));
    assert_eq!(offset_of(json, 4, 0), None);
    assert_eq!(offset_of(json, usize::MAX, usize::MAX), None);
}

#[test]
fn renders_like_serde_path_to_error() {
    assert_eq!(render(&[]), ".");
    assert_eq!(
        render(&[Segment::Index(0), Segment::Key("a".into())]),
        "[0].a"
    );
    assert_eq!(
        render(&[
            Segment::Key("a".into()),
            Segment::Index(2),
            Segment::Index(3),
            Segment::Unknown
        ]),
        "a[2][3].?"
    );
}

#[test]
fn arbitrary_bytes_and_offsets_never_panic() {
    // xorshift: deterministic pseudo-random inputs biased towards JSON punctuation.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"{}[],:\"\\ \nu0123456789abcdefntrl-+.eE\x00\xff\xc3";
    let kinds = [
        Kind {
            eof: false,
            data: false,
            unknown_field: false,
            untagged: false,
            trailing: false,
        },
        Kind {
            eof: true,
            data: false,
            unknown_field: false,
            untagged: false,
            trailing: false,
        },
        Kind {
            eof: false,
            data: true,
            unknown_field: true,
            untagged: true,
            trailing: false,
        },
        Kind {
            eof: false,
            data: false,
            unknown_field: false,
            untagged: false,
            trailing: true,
        },
    ];
    for _ in 0..20_000 {
        let len = (next() % 40) as usize;
        let json: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() as usize) % alphabet.len()])
            .collect();
        let offset = (next() % 50) as usize;
        for kind in kinds {
            let path = path_at(&json, offset, kind);
            let _ = render(&path);
        }
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&json) {
            let _ = error_path(&json, &e);
        }
    }
}

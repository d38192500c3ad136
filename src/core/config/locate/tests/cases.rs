//! Bad configurations for the differential tests, with the key serde_path_to_error named.

/// A configuration using every block, spread over several lines.
pub(super) const BASE: &str = r#"{
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

/// BASE with `from` (which must occur exactly once) replaced by `to`.
pub(super) fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from} must occur once");
    BASE.replace(from, to)
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// (configuration, key recorded from serde_path_to_error 0.1.20 before it was replaced).
pub(super) fn table() -> Vec<(String, String)> {
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
        (edit(r#"{"enforce": true}"#, "[true, 1]"), "smart[1]"),
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

/// Where the locator cannot match serde_path_to_error: both need to know that the value is an
/// enum, which only the Deserialize impls know. The key then names a member inside the right key.
/// (configuration, old key, new key)
pub(super) fn divergences() -> Vec<(String, &'static str, &'static str)> {
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

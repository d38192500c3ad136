//! The strict scanner: one reading or none.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn err(text: &str) -> TapeError {
    Tape::parse(text.as_bytes()).unwrap_err()
}

#[test]
fn reads_what_serde_json_reads_with_spans() {
    let text = r#" {"a": [1, -2.5e3, true, null, "x\"y"], "b": {"c": "\u00e9"}} "#;
    let tape = Tape::parse(text.as_bytes()).unwrap();
    let root = tape.root();
    assert_eq!(root.kind(), Kind::Object);
    let a = root.member("a").unwrap();
    let items: Vec<&str> = a.elements().map(|v| v.raw()).collect();
    assert_eq!(items, ["1", "-2.5e3", "true", "null", r#""x\"y""#]);
    assert_eq!(a.elements().nth(4).unwrap().string().unwrap(), "x\"y");
    assert_eq!(
        root.member("b")
            .unwrap()
            .member("c")
            .unwrap()
            .string()
            .unwrap(),
        "é"
    );
    let spans: Vec<&str> = root.members().map(|(_, _, s)| &text[s]).collect();
    assert_eq!(spans[1], r#""b": {"c": "\u00e9"}"#);
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(root.to_value().unwrap(), v);
}

#[test]
fn duplicate_members_at_any_depth_are_refused() {
    assert_eq!(err(r#"{"id": "1", "id": "2"}"#), TapeError::Duplicate);
    assert_eq!(
        err(r#"{"a": [{"b": {"x": 1, "x": 1}}]}"#),
        TapeError::Duplicate
    );
    // the same name spelled with an escape
    assert_eq!(err(r#"{"id": "1", "\u0069d": "2"}"#), TapeError::Duplicate);
    // many members: the sorted path
    let mut many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
    many.push("\"k7\": 0".to_string());
    assert_eq!(
        err(&format!("{{{}}}", many.join(","))),
        TapeError::Duplicate
    );
    many.pop();
    assert!(Tape::parse(format!("{{{}}}", many.join(",")).as_bytes()).is_ok());
    // the same name in sibling objects is fine
    assert!(Tape::parse(br#"[{"id": 1}, {"id": 2}]"#).is_ok());
}

#[test]
fn ambiguous_or_lenient_json_is_refused() {
    for bad in [
        "",
        "{",
        "{\"a\":1,}",
        "[1,]",
        "{'a':1}",
        "NaN",
        "[01]",
        "[1.]",
        "[.5]",
        "[1e]",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "// c\n{}",
        "\u{feff}{}",
        "\"a\tb\"",
        "[\"\\x\"]",
        "[tru]",
        "{\"a\" 1}",
    ] {
        assert!(matches!(err(bad), TapeError::Syntax(_)), "{bad:?}");
    }
    assert_eq!(err(r#"["\ud800"]"#), TapeError::Surrogate);
    assert_eq!(err(r#"["\udc00"]"#), TapeError::Surrogate);
    assert_eq!(err(r#"["\ud800\u0041"]"#), TapeError::Surrogate);
    assert!(Tape::parse(r#"["\ud83d\ude00"]"#.as_bytes()).is_ok());
    assert!(matches!(
        Tape::parse(b"[\"\xff\"]"),
        Err(TapeError::Syntax(_))
    ));
    let deep = format!(
        "{}{}",
        "[".repeat(MAX_NESTING + 1),
        "]".repeat(MAX_NESTING + 1)
    );
    assert_eq!(err(&deep), TapeError::TooDeep);
    let ok = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
    assert!(Tape::parse(ok.as_bytes()).is_ok());
}

#[test]
fn escaped_strings_decode_like_serde_json() {
    let text = r#"["a\\b\/c\n\u20ac\ud83d\ude00"]"#;
    let tape = Tape::parse(text.as_bytes()).unwrap();
    let s = tape
        .root()
        .elements()
        .next()
        .unwrap()
        .string()
        .unwrap()
        .into_owned();
    let v: Vec<String> = serde_json::from_str(text).unwrap();
    assert_eq!(s, v[0]);
}

#[test]
fn shapes_are_read_strictly() {
    let tape =
        Tape::parse(br#"{"one": {"a": 1}, "many": [{"a": 1}, {"a": 2}], "bad": [1], "s": 5}"#)
            .unwrap();
    let r = tape.root();
    assert_eq!(r.objects("one", "one").unwrap().len(), 1);
    assert_eq!(r.objects("many", "many").unwrap().len(), 2);
    assert_eq!(r.objects("none", "none").unwrap().len(), 0);
    assert!(matches!(r.objects("bad", "bad"), Err(Malformed("bad"))));
    assert!(r.list("one", "one").is_err());
    assert!(r.opt_text("s", "s").is_err());
}

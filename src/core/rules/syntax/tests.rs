#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::check;

const DEPTH: usize = 96;

/// What the recognizer accepts must parse with cel-parser without errors (and without panics).
fn parses_cleanly(src: &str) -> bool {
    let owned = src.to_string();
    let result = std::panic::catch_unwind(move || cel_parser::Parser::new().parse(&owned).is_ok());
    matches!(result, Ok(true))
}

#[test]
fn accepts_the_supported_subset() {
    for src in [
        "true",
        "request.method == 'GET' && fhir.resourceType in ['Observation', \"Condition\"]",
        "!has(fhir.params.category) || !('sensitive' in fhir.params.category)",
        "token.scopes.exists(s, s.startsWith('system/')) ? inCidr(source.address, '10.0.0.0/8') : true",
        "size(x) >= 2u && -1 < 0 && 1.5e3 > .5 && 0x1F == 31 && 3 % 2 == 1",
        "{'a': 1, 'b': [1, 2,],}['a'] == 1",
        "r'^[a-z]+\\d$' != '' // trailing comment",
        "'esc \\' \\\" \\n \\x41 \\u00e9 \\U0001F600 \\101'",
        "a.b.c[0].d(1, 2).e",
        "[] == [] && {} == {}",
        "-x.y == 1",
        "!x",
    ] {
        assert_eq!(check(src, DEPTH), Ok(()), "{src}");
        assert!(parses_cleanly(src), "{src}");
    }
}

#[test]
fn rejects_what_would_panic_the_parser() {
    for src in [
        "a ==",
        "((",
        "fhir.id ==",
        "a &&",
        "[1,",
        "{'a':",
        "f(",
        "a.",
        "a[1",
        "?",
        ")",
        "a b",
        "1 2",
    ] {
        assert!(check(src, DEPTH).is_err(), "{src}");
    }
}

#[test]
fn rejects_unsupported_or_misparsed_syntax() {
    for src in [
        "!!x",      // cel-parser reads this as !x
        "--1 == 1", // and this as -1
        "!-x",
        "-!x",
        "a.?b",
        "a[?0]",
        "{?'a': 1}",
        "[?a]",
        "Foo{a: 1}",
        ".a",
        "b'abc' == b'abc'",
        "'''triple'''",
        "`a.b`",
        "a = 1",
        "a & b",
        "'unterminated",
        "'bad \\q escape'",
        "'line\nbreak'",
        "f(a,)",
        "[,]",
        "a ? b",
        "#",
    ] {
        assert!(check(src, DEPTH).is_err(), "{src}");
    }
}

#[test]
fn bounds_depth() {
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert!(check(&deep, DEPTH).is_err());
    let chain = vec!["1"; 200].join(" + ");
    assert!(check(&chain, DEPTH).is_err());
    let members = format!("a{}", ".b".repeat(200));
    assert!(check(&members, DEPTH).is_err());
    let ternaries = format!("{}true", "true ? true : ".repeat(200));
    assert!(check(&ternaries, DEPTH).is_err());
    // balanced && / || chains stay shallow
    let ands = vec!["true"; 300].join(" && ");
    assert_eq!(check(&ands, DEPTH), Ok(()));
    assert!(parses_cleanly(&ands));
}

/// A small deterministic fuzzer: random token soups; everything accepted must parse cleanly.
#[test]
fn accepted_soups_always_parse() {
    const PIECES: [&str; 40] = [
        "a", "b", "x.y", "f", "has", "(", ")", "[", "]", "{", "}", ",", ":", "?", ".", "!", "-",
        "+", "*", "/", "%", "==", "!=", "<", ">=", "&&", "||", "in", "1", "2u", "1.5", "'s'",
        "\"t\"", "true", "null", "e", ".all", ".exists", "(x, x)", "size",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let len = (next() % 9 + 1) as usize;
        let src: Vec<&str> = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let src = src.join(" ");
        if check(&src, DEPTH).is_ok() {
            accepted += 1;
            assert!(parses_cleanly(&src), "accepted but cel-parser fails: {src}");
        }
    }
    assert!(
        accepted > 100,
        "the soup should hit valid expressions ({accepted})"
    );
}

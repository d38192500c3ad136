//! The locator against serde_path_to_error (the oracle it replaces, kept as a dev-dependency):
//! a table of bad configurations with the key recorded from the oracle, and every truncation and
//! single-byte edit of a full configuration.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

mod cases;

use super::*;
use crate::config::raw::RawConfig;
use crate::config::{strip_position, Config};
use cases::{divergences, edit, table, BASE};

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

#[test]
fn the_base_configuration_deserializes() {
    assert_eq!(oracle(BASE.as_bytes()), Ok(()));
    assert_eq!(ours(BASE.as_bytes()), Ok(()));
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

/// Every truncation, deletion, replacement and insertion of one byte in `base`.
fn mutations(base: &[u8]) -> Vec<Vec<u8>> {
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
    // BASE as written, and minified with its keys sorted (other neighbours for every byte).
    let value: serde_json::Value = serde_json::from_str(BASE).unwrap();
    let minified = value.to_string();
    let mut cases = mutations(BASE.as_bytes());
    cases.extend(mutations(minified.as_bytes()));
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
            .zip(BASE.bytes().chain(std::iter::repeat(0)))
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

//! The JWS compact serialization and its JSON: segments, canonical base64url, strict JSON
//! (duplicate members at any depth), header member types, size limits, JWE and `crit`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::strict_json::{self, StrictJsonError};
use super::super::*;
use super::*;

use serde_json::json;

#[test]
fn strict_json_refuses_duplicates_at_any_depth() {
    assert_eq!(
        strict_json::parse(br#"{"a":1,"a":2}"#),
        Err(StrictJsonError::Duplicate)
    );
    assert_eq!(
        strict_json::parse(br#"{"x":{"b":[{"c":1,"c":1}]}}"#),
        Err(StrictJsonError::Duplicate)
    );
    assert_eq!(
        strict_json::parse(br#"{"a":1} x"#),
        Err(StrictJsonError::Syntax)
    );
    assert_eq!(
        strict_json::parse(b"{\"a\":1,}"),
        Err(StrictJsonError::Syntax)
    );
    assert_eq!(
        strict_json::parse(br#"{"a":[1,2.5,"s",null,true],"b":{"c":-1}}"#).unwrap(),
        json!({"a":[1,2.5,"s",null,true],"b":{"c":-1}})
    );
    assert_eq!(strict_json::parse_object(b"[1]"), Ok(None));
}

#[test]
fn strict_json_handles_deep_nesting_without_panic() {
    let deep = "[".repeat(10_000);
    assert_eq!(
        strict_json::parse(deep.as_bytes()),
        Err(StrictJsonError::Syntax)
    );
}

#[test]
fn crit_is_refused() {
    for crit in [
        r#","crit":["exp"]"#,
        r#","crit":[]"#,
        r#","crit":["b64"],"b64":false"#,
    ] {
        let token = craft(&ed_header(crit), &payload(), Sig::Ed);
        assert_eq!(
            check(&token, &ed_keys()).unwrap_err(),
            TokenError::CritUnsupported,
            "{crit}"
        );
    }
}

#[test]
fn segment_count() {
    assert_eq!(
        check("a.b.c.d.e", &ed_keys()).unwrap_err(),
        TokenError::JweUnsupported
    );
    for t in ["abc", "a.b", "a.b.c.d", "a.b.c.d.e.f", "", ".."] {
        assert_eq!(
            check(t, &ed_keys()).unwrap_err(),
            malformed(MalformedReason::Segments),
            "{t}"
        );
    }
}

#[test]
fn base64_must_be_canonical_unpadded_base64url() {
    let h = b64(ed_header(""));
    let p = b64(payload());
    let cases = [
        // Padding.
        format!("{h}=.{p}"),
        format!("{h}.{p}=="),
        // Standard alphabet characters.
        format!("{}.{p}", h.replacen('e', "+", 1)),
        format!("{h}.{}/", &p[..p.len() - 1]),
    ];
    for input in cases {
        let token = format!("{input}.{}", sign_input(&input, Sig::Ed));
        assert_eq!(
            check(&token, &ed_keys()).unwrap_err(),
            malformed(MalformedReason::Base64),
            "{input}"
        );
    }
    // "e30" is `{}`; "e31" decodes to the same byte with non-zero trailing bits.
    let input = format!("{h}.e31");
    let token = format!("{input}.{}", sign_input(&input, Sig::Ed));
    assert_eq!(
        check(&token, &ed_keys()).unwrap_err(),
        malformed(MalformedReason::Base64)
    );
}

#[test]
fn json_shape() {
    let cases = [
        (
            r#"{"alg":"EdDSA""#.to_owned(),
            payload(),
            MalformedReason::Json,
        ),
        (ed_header(""), "{\"iss\":".to_owned(), MalformedReason::Json),
        (ed_header(""), "not json".to_owned(), MalformedReason::Json),
        (
            ed_header(""),
            format!("{} ", payload()) + "{}",
            MalformedReason::Json,
        ),
        (
            ed_header(""),
            "[1,2]".to_owned(),
            MalformedReason::NotObject,
        ),
        (
            ed_header(""),
            "\"a string\"".to_owned(),
            MalformedReason::NotObject,
        ),
        (ed_header(""), "42".to_owned(), MalformedReason::NotObject),
        (
            "[\"EdDSA\"]".to_owned(),
            payload(),
            MalformedReason::NotObject,
        ),
    ];
    for (header, body, reason) in cases {
        let token = craft(&header, &body, Sig::Ed);
        assert_eq!(
            check(&token, &ed_keys()).unwrap_err(),
            malformed(reason),
            "{header} {body}"
        );
    }
    let invalid_utf8 = format!("{}.{}.AAAA", b64(ed_header("")), b64([0xff, 0xfe, b'{']));
    assert_eq!(
        check(&invalid_utf8, &ed_keys()).unwrap_err(),
        malformed(MalformedReason::Json)
    );
}

#[test]
fn duplicate_members_are_refused() {
    let dup = MalformedReason::DuplicateMember;
    let evil_first = format!(
        r#"{{"iss":"https://evil","iss":"{ISS}","aud":"{AUD}","exp":{}}}"#,
        NOW + 300
    );
    let token = craft(&ed_header(""), &evil_first, Sig::Ed);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), malformed(dup));
    let dup_exp = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"exp":{}}}"#,
        NOW - 100,
        NOW + 300
    );
    let token = craft(&ed_header(""), &dup_exp, Sig::Ed);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), malformed(dup));
    let nested = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"ext":{{"a":1,"a":2}}}}"#,
        NOW + 300
    );
    let token = craft(&ed_header(""), &nested, Sig::Ed);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), malformed(dup));
    let header = r#"{"alg":"HS256","alg":"EdDSA","kid":"ed-1","typ":"at+jwt"}"#;
    let token = craft(header, &payload(), Sig::Ed);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), malformed(dup));
}

#[test]
fn oversized_token_is_refused() {
    let big = json!({"iss": ISS, "aud": AUD, "exp": NOW + 300, "pad": "x".repeat(MAX_TOKEN_LEN)});
    let token = ed_token("ed-1", big);
    assert!(token.len() > MAX_TOKEN_LEN);
    assert_eq!(check(&token, &ed_keys()).unwrap_err(), TokenError::TooLong);
    assert_eq!(peek(&token).unwrap_err(), TokenError::TooLong);
    let fits =
        json!({"iss": ISS, "aud": AUD, "exp": NOW + 300, "pad": "x".repeat(MAX_TOKEN_LEN / 2)});
    assert!(check(&ed_token("ed-1", fits), &ed_keys()).is_ok());
}

#[test]
fn header_member_types_are_checked() {
    for extra in [
        r#","kid":1"#,
        r#","jku":{}"#,
        r#","x5c":"abc""#,
        r#","x5c":[1]"#,
        r#","cty":[]"#,
    ] {
        let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt"{extra}}}"#);
        let token = craft(&header, &payload(), Sig::Ed);
        assert_eq!(
            check(&token, &ed_keys()).unwrap_err(),
            malformed(MalformedReason::HeaderField),
            "{extra}"
        );
    }
}

#[test]
fn jwe_shaped_token_is_reported_as_unsupported() {
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
        "a",
        "b",
        "c",
        "d"
    );
    assert_eq!(classify(&jwe), TokenShape::Jwe);
    assert_eq!(
        check(&jwe, &rsa_keys()).unwrap_err(),
        TokenError::JweUnsupported
    );
}

#[test]
fn signature_segment_must_be_canonical_unpadded_base64url() {
    let keys = ec_keys();
    let token = es256_token("ec-256", claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    // 64 bytes are 86 characters whose last one carries 4 unused bits.
    assert_eq!(sig.len(), 86);
    let last = sig.as_bytes()[85];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let pos = alphabet.iter().position(|c| *c == last).unwrap();
    let non_canonical = alphabet[(pos & !3) | ((pos & 3) ^ 1)] as char;
    let cases = [
        format!("{input}.{sig}=="),
        format!("{input}.{}{non_canonical}", &sig[..85]),
        format!("{input}.{}", sig.replace('-', "+").replace('_', "/")),
        format!("{input}.{sig} "),
    ];
    for bad in &cases {
        if bad != &token {
            assert_eq!(
                check(bad, &keys).unwrap_err(),
                TokenError::BadSignature,
                "{bad}"
            );
        }
    }
    assert!(check(&token, &keys).is_ok());
}

#[test]
fn classify_and_peek() {
    let token = rs256_token(claims());
    assert_eq!(classify(&token), TokenShape::Jws);
    assert_eq!(classify("a.b.c.d.e"), TokenShape::Jwe);
    assert_eq!(classify("opaque-token_123"), TokenShape::Opaque);
    assert_eq!(classify("a.b."), TokenShape::Opaque);
    assert_eq!(classify("a.b+c.d"), TokenShape::Opaque);
    assert_eq!(classify("a.b"), TokenShape::Opaque);
    let p = peek(&token).unwrap();
    assert_eq!(p.issuer.as_deref(), Some(ISS));
    assert_eq!(p.kid.as_deref(), Some("rsa-1"));
    assert_eq!(p.alg.as_deref(), Some("RS256"));
    assert_eq!(p.typ.as_deref(), Some("at+jwt"));
    assert_eq!(peek("a.b.c.d.e").unwrap_err(), TokenError::JweUnsupported);
    assert!(matches!(peek("nope"), Err(TokenError::Malformed(_))));
}

/// A token of exactly `MAX_TOKEN_LEN` bytes is verified; the bound refuses only longer ones.
#[test]
fn a_token_of_exactly_the_length_bound_is_verified() {
    let make = |pad: usize, spaces: usize| {
        let header = format!(
            r#"{{"alg":"EdDSA",{}"kid":"ed-1","typ":"at+jwt"}}"#,
            " ".repeat(spaces)
        );
        let mut c = claims();
        c["pad"] = json!("x".repeat(pad));
        craft(&header, &c.to_string(), Sig::Ed)
    };
    let exact = of_exact_length(MAX_TOKEN_LEN, make);
    assert!(check(&exact, &ed_keys()).is_ok());
    assert_eq!(peek(&format!("{exact}A")).unwrap_err(), TokenError::TooLong);
}

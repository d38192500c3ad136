//! Tests of bearer extraction from `Authorization` values.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::*;
use super::*;

fn one(v: &str) -> Result<Option<&str>, ExtractError> {
    extract_bearer(&[v])
}

#[test]
fn no_header_is_no_credentials() {
    assert_eq!(extract_bearer(&[]), Ok(None));
}

#[test]
fn plain_bearer_token() {
    assert_eq!(one("Bearer abc.def-ghi_jkl"), Ok(Some("abc.def-ghi_jkl")));
}

#[test]
fn scheme_is_case_insensitive() {
    assert_eq!(one("bearer tok"), Ok(Some("tok")));
    assert_eq!(one("BEARER tok"), Ok(Some("tok")));
    assert_eq!(one("bEaReR tok"), Ok(Some("tok")));
}

#[test]
fn all_b64token_characters_and_trailing_padding() {
    assert_eq!(one("Bearer aZ09-._~+/=="), Ok(Some("aZ09-._~+/==")));
}

#[test]
fn other_schemes_count_as_no_credentials() {
    assert_eq!(one("Basic dXNlcjpwYXNz"), Ok(None));
    assert_eq!(one("Negotiate"), Ok(None));
    assert_eq!(one("DPoP abc"), Ok(None));
    assert_eq!(one("Bearerx abc"), Ok(None));
}

#[test]
fn duplicate_headers_are_refused_even_with_other_schemes() {
    assert_eq!(
        extract_bearer(&["Bearer a", "Bearer a"]),
        Err(ExtractError::Duplicate)
    );
    assert_eq!(
        extract_bearer(&["Basic x", "Bearer a"]),
        Err(ExtractError::Duplicate)
    );
    assert_eq!(
        extract_bearer(&["Basic x", "Basic y"]),
        Err(ExtractError::Duplicate)
    );
    assert_eq!(ExtractError::Duplicate.code(), "duplicate_authorization");
}

#[test]
fn empty_token() {
    assert_eq!(one("Bearer"), Err(ExtractError::Empty));
    assert_eq!(one("Bearer "), Err(ExtractError::Empty));
    assert_eq!(one("bearer    "), Err(ExtractError::Empty));
    assert_eq!(ExtractError::Empty.code(), "empty_token");
}

#[test]
fn empty_header_value_is_malformed() {
    assert_eq!(one(""), Err(ExtractError::Malformed));
    assert_eq!(one("   "), Err(ExtractError::Malformed));
}

#[test]
fn surrounding_whitespace_and_multiple_spaces_are_tolerated() {
    assert_eq!(one("  Bearer tok \t"), Ok(Some("tok")));
    assert_eq!(one("Bearer    tok"), Ok(Some("tok")));
}

#[test]
fn tab_separator_is_malformed() {
    assert_eq!(one("Bearer\ttok"), Err(ExtractError::Malformed));
    assert_eq!(one("Bearer \ttok"), Err(ExtractError::Malformed));
}

#[test]
fn trailing_junk_is_malformed() {
    for v in [
        "Bearer a b",
        "Bearer a,b",
        "Bearer a, Basic x",
        "Bearer a\tb",
        "Bearer a=b",
        "Bearer =",
        "Bearer a;b",
        "Bearer \"a\"",
        "Bearer a\u{0}",
        "Bearer a\r\nX-Injected: 1",
        "Bearer \u{7f}abc",
        "Bearer tökén",
    ] {
        assert_eq!(one(v), Err(ExtractError::Malformed), "{v:?}");
    }
    assert_eq!(ExtractError::Malformed.code(), "malformed_authorization");
}

#[test]
fn token_length_limit() {
    let max = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN));
    assert_eq!(one(&max).map(|t| t.map(str::len)), Ok(Some(MAX_TOKEN_LEN)));
    let over = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
    assert_eq!(one(&over), Err(ExtractError::TooLong));
    assert_eq!(ExtractError::TooLong.code(), "token_too_long");
}

fn cred(values: &[&'static str]) -> Result<Option<(AuthScheme, &'static str)>, ExtractError> {
    extract_credential(values).map(|c| c.map(|c| (c.scheme, c.token)))
}

#[test]
fn the_dpop_scheme_is_a_credential() {
    assert_eq!(
        cred(&["DPoP abc.def"]),
        Ok(Some((AuthScheme::Dpop, "abc.def")))
    );
    assert_eq!(cred(&["dpop abc"]), Ok(Some((AuthScheme::Dpop, "abc"))));
    assert_eq!(cred(&["DPOP  abc"]), Ok(Some((AuthScheme::Dpop, "abc"))));
    assert_eq!(cred(&["Bearer abc"]), Ok(Some((AuthScheme::Bearer, "abc"))));
    assert_eq!(cred(&["Basic abc"]), Ok(None));
    assert_eq!(cred(&[]), Ok(None));
    assert_eq!(AuthScheme::Dpop.as_str(), "DPoP");
}

#[test]
fn one_credential_only() {
    // Bearer and DPoP together, or two DPoP credentials, are malformed requests.
    assert_eq!(
        cred(&["Bearer abc", "DPoP abc"]),
        Err(ExtractError::Duplicate)
    );
    assert_eq!(
        cred(&["DPoP abc", "DPoP abc"]),
        Err(ExtractError::Duplicate)
    );
    assert_eq!(
        cred(&["DPoP abc, Bearer abc"]),
        Err(ExtractError::Malformed)
    );
    assert_eq!(cred(&["DPoP abc DPoP abc"]), Err(ExtractError::Malformed));
}

#[test]
fn dpop_credentials_follow_the_token68_syntax() {
    assert_eq!(cred(&["DPoP"]), Err(ExtractError::Empty));
    assert_eq!(cred(&["DPoP\tabc"]), Err(ExtractError::Malformed));
    assert_eq!(cred(&["DPoP a\"b"]), Err(ExtractError::Malformed));
    let long: &'static str =
        Box::leak(format!("DPoP {}", "a".repeat(MAX_TOKEN_LEN + 1)).into_boxed_str());
    assert_eq!(cred(&[long]), Err(ExtractError::TooLong));
}

#[test]
fn extract_bearer_leaves_dpop_credentials_alone() {
    assert_eq!(extract_bearer(&["DPoP abc"]), Ok(None));
    assert_eq!(
        extract_bearer(&["Bearer abc", "DPoP abc"]),
        Err(ExtractError::Duplicate)
    );
}

//! Query and form-body decoding.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::super::query::{parse_form, split_or, Params};
use super::*;

fn form(input: &str) -> Result<Params, FhirError> {
    let mut p = Params::new();
    parse_form(input, &mut p).map(|_| p)
}

#[test]
fn plus_is_space_and_percent_decodes() {
    let p = form("name=John+Smith&code=a%2Bb&x=%C3%A9").unwrap();
    assert_eq!(p["name"], ["John Smith"]);
    assert_eq!(p["code"], ["a+b"]);
    assert_eq!(p["x"], ["é"]);
}

#[test]
fn repeated_parameters_append() {
    let p = form("patient=1&code=x&patient=2").unwrap();
    assert_eq!(p["patient"], ["1", "2"]);
    assert_eq!(p["code"], ["x"]);
}

#[test]
fn commas_split_values() {
    assert_eq!(form("category=a,b").unwrap()["category"], ["a", "b"]);
    assert_eq!(
        form("category=a,,b,").unwrap()["category"],
        ["a", "", "b", ""]
    );
    // `\,` (sent as %5C,) is a literal comma.
    assert_eq!(form("name=a%5C,b").unwrap()["name"], ["a,b"]);
    assert_eq!(form("name=a%5C%2Cb").unwrap()["name"], ["a,b"]);
    // `\\,`: the backslash is escaped, the comma separates.
    assert_eq!(form("name=a%5C%5C,b").unwrap()["name"], ["a\\\\", "b"]);
    // Other escapes stay as given.
    assert_eq!(form("code=a%5C|b").unwrap()["code"], ["a\\|b"]);
    assert_eq!(split_or("x\\"), ["x\\"]);
}

#[test]
fn names_keep_modifiers_and_are_decoded() {
    let p = form("subject:Patient=1&subject%3Amissing=true&code:not=x").unwrap();
    assert_eq!(p["subject:Patient"], ["1"]);
    assert_eq!(p["subject:missing"], ["true"]);
    assert_eq!(p["code:not"], ["x"]);
}

#[test]
fn bare_names_and_empty_pairs() {
    let p = form("_summary&&a=&b=1").unwrap();
    assert_eq!(p["_summary"], [""]);
    assert_eq!(p["a"], [""]);
    assert_eq!(p["b"], ["1"]);
    assert!(form("").unwrap().is_empty());
    assert_eq!(form("a=b=c").unwrap()["a"], ["b=c"]);
}

#[test]
fn rejects_bad_encodings() {
    assert_eq!(form("=x"), Err(FhirError::EmptyParamName));
    assert_eq!(form("%3D=x").unwrap()["="], ["x"]);
    assert_eq!(form("a=%zz"), Err(FhirError::BadPercentEncoding));
    assert_eq!(form("a=%4"), Err(FhirError::BadPercentEncoding));
    assert_eq!(form("a=%"), Err(FhirError::BadPercentEncoding));
    assert_eq!(form("a%g0=1"), Err(FhirError::BadPercentEncoding));
    assert_eq!(form("a=%FF"), Err(FhirError::NonUtf8));
    assert_eq!(form("a=%C3"), Err(FhirError::NonUtf8));
    assert_eq!(form("a=%00"), Err(FhirError::ControlCharInQuery));
    assert_eq!(form("a=x%0Ay"), Err(FhirError::ControlCharInQuery));
    assert_eq!(form("a%00b=1"), Err(FhirError::ControlCharInQuery));
    assert_eq!(form("a=%7F"), Err(FhirError::ControlCharInQuery));
    assert_eq!(form("a=1;b=2"), Err(FhirError::MatrixParam));
}

#[test]
fn bad_query_in_request_is_an_error() {
    assert_eq!(
        err("GET", "/fhir/Observation?code=%zz"),
        FhirError::BadPercentEncoding
    );
    assert_eq!(err("GET", "/fhir/Observation?code=%FF"), FhirError::NonUtf8);
    assert_eq!(
        err("GET", "/fhir/Observation?code=%00"),
        FhirError::ControlCharInQuery
    );
    assert_eq!(
        err("GET", "/fhir/Observation?=1"),
        FhirError::EmptyParamName
    );
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

#[test]
fn post_search_merges_form_body_with_query() {
    let r = parse_request(
        "POST",
        "/fhir/Observation/_search?patient=1",
        BASE,
        FORM,
        Some(b"code=x&patient=2"),
    )
    .unwrap();
    assert_eq!(r.interaction, Interaction::SearchType);
    assert_eq!(values(&r, "patient"), ["1", "2"]);
    assert_eq!(values(&r, "code"), ["x"]);

    let r = parse_request(
        "POST",
        "/fhir/_search",
        BASE,
        Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        Some(b"_type=Observation"),
    )
    .unwrap();
    assert_eq!(r.interaction, Interaction::SearchSystem);
    assert_eq!(values(&r, "_type"), ["Observation"]);

    let r = parse_request(
        "POST",
        "/fhir/Patient/1/Observation/_search",
        BASE,
        FORM,
        Some(b"code=a,b"),
    )
    .unwrap();
    assert_eq!(r.interaction, Interaction::SearchCompartment);
    assert_eq!(values(&r, "code"), ["a", "b"]);
}

#[test]
fn post_search_body_rules() {
    let path = "/fhir/Observation/_search?patient=1";
    // Empty body: nothing added, content type irrelevant.
    let r = parse_request("POST", path, BASE, None, Some(b"")).unwrap();
    assert_eq!(values(&r, "patient"), ["1"]);
    // Body required when the route needs it.
    assert_eq!(
        parse_request("POST", path, BASE, FORM, None),
        Err(FhirError::BodyRequired)
    );
    // A body that is not a form is not understood: 415.
    for ct in [None, Some("application/json"), Some("multipart/form-data")] {
        let e = parse_request("POST", path, BASE, ct, Some(b"patient=2")).unwrap_err();
        assert_eq!(e, FhirError::UnsupportedMediaType, "{ct:?}");
        assert_eq!(e.status(), 415);
    }
    assert_eq!(
        parse_request("POST", path, BASE, FORM, Some(b"code=\xff")),
        Err(FhirError::NonUtf8)
    );
    assert_eq!(
        parse_request("POST", path, BASE, FORM, Some(b"code=%zz")),
        Err(FhirError::BadPercentEncoding)
    );
    assert_eq!(
        parse_request("POST", path, BASE, FORM, Some(b"patient=2;patient=3")),
        Err(FhirError::MatrixParam)
    );
    assert_eq!(
        parse_request("POST", path, BASE, FORM, Some(b"code=x\n")),
        Err(FhirError::ControlCharInQuery)
    );
}

#[test]
fn get_search_ignores_body() {
    let r = parse_request(
        "GET",
        "/fhir/Observation/_search?patient=1",
        BASE,
        FORM,
        Some(b"patient=2"),
    )
    .unwrap();
    assert_eq!(values(&r, "patient"), ["1"]);
}

//! `htu` normalisation (RFC 3986 §6.2.2, §6.2.3) and the URI a request is expected to name.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[test]
fn equivalent_uris_normalize_to_the_same_text() {
    let canonical = "https://fhir.example.org/fhir/Patient/123";
    for uri in [
        "https://fhir.example.org/fhir/Patient/123",
        "HTTPS://FHIR.Example.ORG/fhir/Patient/123",
        "https://fhir.example.org:443/fhir/Patient/123",
        "https://fhir.example.org:/fhir/Patient/123",
        "https://fhir.example.org:0443/fhir/Patient/123",
        "https://fhir.example.org/fhir/Patient/123?_format=json",
        "https://fhir.example.org/fhir/Patient/123#section",
        "https://fhir.example.org/fhir/Patient/%31%32%33",
        "https://fhir.example.org/fhir/./Patient/x/../123",
        "https://fhir.example.org/%66hir/Patient/123",
    ] {
        assert_eq!(normalize(uri).as_deref(), Some(canonical), "{uri}");
    }
}

#[test]
fn default_ports_are_per_scheme() {
    assert_eq!(normalize("http://h:80/a").as_deref(), Some("http://h/a"));
    assert_eq!(
        normalize("http://h:443/a").as_deref(),
        Some("http://h:443/a")
    );
    assert_eq!(
        normalize("https://h:80/a").as_deref(),
        Some("https://h:80/a")
    );
    assert_eq!(
        normalize("https://h:8443/a").as_deref(),
        Some("https://h:8443/a")
    );
}

#[test]
fn percent_encodings_are_upper_case_and_reserved_ones_stay_encoded() {
    assert_eq!(
        normalize("https://h/a%2fb%3a").as_deref(),
        Some("https://h/a%2Fb%3A")
    );
    // A raw character outside the path set and its encoding are the same URI.
    assert_eq!(normalize("https://h/a|b"), normalize("https://h/a%7Cb"));
    assert_eq!(
        normalize("https://h/a|b").as_deref(),
        Some("https://h/a%7Cb")
    );
}

#[test]
fn empty_paths_and_dot_segments() {
    assert_eq!(normalize("https://h").as_deref(), Some("https://h/"));
    assert_eq!(normalize("https://h?q").as_deref(), Some("https://h/"));
    assert_eq!(normalize("https://h/a/..").as_deref(), Some("https://h/"));
    assert_eq!(normalize("https://h/..").as_deref(), Some("https://h/"));
    assert_eq!(normalize("https://h/a/./").as_deref(), Some("https://h/a/"));
    assert_eq!(
        normalize("https://h/a/b/../../c").as_deref(),
        Some("https://h/c")
    );
    assert_eq!(normalize("https://h/a/").as_deref(), Some("https://h/a/"));
    assert_ne!(normalize("https://h/a/"), normalize("https://h/a"));
}

#[test]
fn ipv6_literals_keep_their_brackets() {
    assert_eq!(
        normalize("https://[::1]:443/a").as_deref(),
        Some("https://[::1]/a")
    );
    assert_eq!(
        normalize("http://[FE80::1]:8080/a").as_deref(),
        Some("http://[fe80::1]:8080/a")
    );
}

#[test]
fn what_is_not_an_http_uri_never_matches() {
    for bad in [
        "",
        "/fhir/Patient/123",
        "fhir.example.org/fhir",
        "ftp://h/a",
        "https:/h/a",
        "https://user@h/a",
        "https://user:pw@h/a",
        "https:///a",
        "https://h:99999/a",
        "https://h:12a/a",
        "https://h:1:2/a",
        "https://h/a%2",
        "https://h/a%zz",
        "https://h/a b",
        "https://h/a\tb",
        "https://h/\u{e9}",
        "https://[::1/a",
        "https://[xyz]/a",
        "https://h[1]/a",
    ] {
        assert_eq!(normalize(bad), None, "{bad:?}");
    }
    let long = format!("https://h/{}", "a".repeat(MAX_URI_LEN));
    assert_eq!(normalize(&long), None);
}

#[test]
fn the_public_base_url_is_normalized_without_a_trailing_slash() {
    assert_eq!(
        normalize_base("HTTPS://Fhir.Example.org:443/fhir/").as_deref(),
        Some("https://fhir.example.org/fhir")
    );
    assert_eq!(
        normalize_base("https://fhir.example.org").as_deref(),
        Some("https://fhir.example.org")
    );
    for bad in [
        "https://fhir.example.org/fhir?x=1",
        "https://fhir.example.org/fhir#x",
        "fhir.example.org/fhir",
        "https://u@fhir.example.org/fhir",
    ] {
        assert_eq!(normalize_base(bad), None, "{bad}");
    }
}

#[test]
fn expected_uri_from_the_connection_and_the_authority() {
    assert_eq!(
        expected(
            None,
            "/fhir",
            true,
            "fhir.example.org",
            "/fhir/Patient/1?_elements=id"
        )
        .as_deref(),
        Some("https://fhir.example.org/fhir/Patient/1")
    );
    assert_eq!(
        expected(None, "/fhir", false, "127.0.0.1:8080", "/fhir/Patient/1").as_deref(),
        Some("http://127.0.0.1:8080/fhir/Patient/1")
    );
    assert_eq!(
        expected(None, "/fhir", false, "h:80", "/fhir").as_deref(),
        Some("http://h/fhir")
    );
    assert_eq!(expected(None, "/fhir", true, "", "/fhir/x"), None);
    assert_eq!(expected(None, "/fhir", true, "h", "*"), None);
    assert_eq!(expected(None, "/fhir", true, "u@h", "/fhir/x"), None);
}

#[test]
fn expected_uri_under_the_public_base_replaces_scheme_authority_and_base_path() {
    let base = Some("https://api.example.org/r4");
    assert_eq!(
        expected(base, "/fhir", false, "10.0.0.5:8080", "/fhir/Patient/1?x=y").as_deref(),
        Some("https://api.example.org/r4/Patient/1")
    );
    assert_eq!(
        expected(base, "/fhir", false, "internal", "/fhir").as_deref(),
        Some("https://api.example.org/r4")
    );
    // Outside the base path there is no public URI to name.
    assert_eq!(expected(base, "/fhir", false, "h", "/fhirx/Patient"), None);
    assert_eq!(expected(base, "/fhir", false, "h", "/other"), None);
    // A root base path appends the whole path.
    assert_eq!(
        expected(Some("https://api.example.org"), "", true, "h", "/Patient/1").as_deref(),
        Some("https://api.example.org/Patient/1")
    );
}

#[test]
fn ports_are_at_most_five_decimal_digits_up_to_65535() {
    for (uri, want) in [
        ("https://h:00443/a", Some("https://h/a")),
        ("https://h:65535/a", Some("https://h:65535/a")),
        ("https://h:08080/a", Some("https://h:8080/a")),
        ("https://h:000443/a", None),
        ("https://h:65536/a", None),
        ("https://h:+443/a", None),
        ("https://h:-1/a", None),
        ("https://h: 443/a", None),
    ] {
        assert_eq!(normalize(uri).as_deref(), want, "{uri}");
    }
}

#[test]
fn a_uri_of_exactly_the_length_bound_is_compared() {
    let exact = format!("https://h/{}", "a".repeat(MAX_URI_LEN - "https://h/".len()));
    assert_eq!(exact.len(), MAX_URI_LEN);
    assert_eq!(normalize(&exact).as_deref(), Some(exact.as_str()));
    assert_eq!(normalize(&format!("{exact}a")), None);
}

#[test]
fn user_information_and_empty_hosts_are_refused_in_every_form() {
    for bad in [
        "https://@h/a",
        "https://u@[::1]/a",
        "https://:443/a",
        "https://:/a",
        "http://?q",
        "https://#f",
    ] {
        assert_eq!(normalize(bad), None, "{bad:?}");
    }
}

#[test]
fn without_a_public_base_the_request_needs_an_authority_and_an_absolute_path() {
    assert_eq!(
        expected(None, "/fhir", true, "h", "/fhir/a").as_deref(),
        Some("https://h/fhir/a")
    );
    assert_eq!(expected(None, "/fhir", true, "", "/fhir/a"), None);
    assert_eq!(expected(None, "/fhir", true, "h", "fhir/a"), None);
    assert_eq!(expected(None, "/fhir", true, "h", "*"), None);
}

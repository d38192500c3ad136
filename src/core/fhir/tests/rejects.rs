//! Every malformed or ambiguous path is rejected with a specific error (bypass attempts).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

#[track_caller]
fn rejects(path: &str, want: FhirError) {
    for method in ["GET", "PUT", "DELETE"] {
        let e = err(method, path);
        assert_eq!(e, want, "{method} {path}");
        assert_eq!(e.status(), 400, "{method} {path}");
    }
}

#[test]
fn dot_segments() {
    rejects("/fhir/Patient/../Observation", FhirError::DotSegment);
    rejects("/fhir/./Patient/1", FhirError::DotSegment);
    rejects("/fhir/Patient/1/..", FhirError::DotSegment);
    rejects("/fhir/..", FhirError::DotSegment);
    rejects("/fhir/Patient/123/../../admin", FhirError::DotSegment);
}

#[test]
fn any_percent_in_the_path_part() {
    for path in [
        "/fhir/Patient%2F123",
        "/fhir/Patient/1%2F..%2F2",
        "/fhir/Patient/%2e%2e/Observation",
        "/fhir/Patient/%2E%2E",
        "/fhir/Patient%5C1",
        "/fhir/Pat%69ent/1",
        "/fhir/Patient/1/%5Fhistory",
        "/fhir/Patient/1/$every%74hing",
        "/fhir/%",
    ] {
        rejects(path, FhirError::PercentInPath);
    }
    // ... but percent-encoding in the query is decoded.
    let r = ok("GET", "/fhir/Observation?subject=Patient%2F123");
    assert_eq!(values(&r, "subject"), ["Patient/123"]);
}

#[test]
fn backslashes() {
    rejects("/fhir/Patient\\1", FhirError::Backslash);
    rejects("/fhir\\Patient/1", FhirError::Backslash);
    rejects("/fhir/Observation?code=a\\,b", FhirError::Backslash);
}

#[test]
fn empty_segments_and_trailing_slashes() {
    rejects("/fhir//Patient/1", FhirError::EmptySegment);
    rejects("/fhir/Patient//1", FhirError::EmptySegment);
    rejects("/fhir/Patient/", FhirError::EmptySegment);
    rejects("/fhir/Patient/1/", FhirError::EmptySegment);
    rejects("/fhir/Patient/1/_history/", FhirError::EmptySegment);
}

#[test]
fn query_may_contain_slashes() {
    let r = ok("GET", "/fhir/Patient/1?x=/a/b");
    assert_eq!(values(&r, "x"), ["/a/b"]);
}

#[test]
fn matrix_params_and_semicolons() {
    rejects("/fhir/Patient;jsessionid=1/1", FhirError::MatrixParam);
    rejects("/fhir/Patient/1;x=y", FhirError::MatrixParam);
    rejects("/fhir;v=1/Patient/1", FhirError::MatrixParam);
    // A `;` in the query could split pairs on some servers: rejected too.
    rejects(
        "/fhir/Observation?patient=1;patient=2",
        FhirError::MatrixParam,
    );
}

#[test]
fn fragments() {
    rejects("/fhir/Patient/1#x", FhirError::Fragment);
    rejects("/fhir/Observation?patient=1#/../2", FhirError::Fragment);
}

#[test]
fn control_space_and_non_ascii() {
    for path in [
        "/fhir/Patient/1\0",
        "/fhir/Patient/\x001",
        "/fhir/Patient/1\t",
        "/fhir/Patient/1\r\nX-Injected: 1",
        "/fhir/Patient/1 HTTP/1.1",
        "/fhir/Patient/1\u{7f}",
        "/fhir/Patient/é",
        "/fhir/Observation?code=é",
        "/fhir/Patient/1\u{200b}",
    ] {
        rejects(path, FhirError::ControlChar);
    }
}

#[test]
fn overlong_paths() {
    assert_eq!(MAX_PATH_LEN, 8192, "the README's 8 KiB");
    let long_query = format!("/fhir/Observation?code={}", "a".repeat(MAX_PATH_LEN));
    rejects(&long_query, FhirError::PathTooLong);
    let exact = "/fhir/Observation?code=";
    let fill = MAX_PATH_LEN - exact.len();
    let at_limit = format!("{exact}{}", "a".repeat(fill));
    assert_eq!(at_limit.len(), MAX_PATH_LEN);
    assert_eq!(ok("GET", &at_limit).interaction, Interaction::SearchType);
    assert_eq!(err("GET", &format!("{at_limit}a")), FhirError::PathTooLong);
}

#[test]
fn not_absolute() {
    rejects("fhir/Patient/1", FhirError::NotAbsolutePath);
    rejects("*", FhirError::NotAbsolutePath);
    rejects("http://evil/fhir/Patient/1", FhirError::NotAbsolutePath);
    rejects("", FhirError::NotAbsolutePath);
}

#[test]
fn case_tricks_on_keywords_and_types() {
    rejects("/fhir/Metadata", FhirError::UnknownResourceType);
    rejects("/fhir/METADATA", FhirError::UnknownResourceType);
    rejects("/fhir/_History", FhirError::UnknownResourceType);
    rejects("/fhir/_SEARCH", FhirError::UnknownResourceType);
    rejects("/fhir/patient/1", FhirError::UnknownResourceType);
    rejects("/fhir/PATIENT/1", FhirError::UnknownResourceType);
    rejects("/fhir/Patients/1", FhirError::UnknownResourceType);
    rejects("/fhir/Resource/1", FhirError::UnknownResourceType);
    rejects("/fhir/DomainResource", FhirError::UnknownResourceType);
    rejects("/fhir/Patient/_History", FhirError::InvalidId);
    rejects("/fhir/Patient/_Search", FhirError::InvalidId);
    rejects("/fhir/Patient/1/_HISTORY", FhirError::UnknownResourceType);
    rejects("/fhir/Patient/1/_History/2", FhirError::UnsupportedPath);
    rejects(
        "/fhir/Patient/1/Observation/_Search",
        FhirError::UnsupportedPath,
    );
}

#[test]
fn ids_and_versions() {
    rejects("/fhir/Patient/a_b", FhirError::InvalidId);
    rejects("/fhir/Patient/a:b", FhirError::InvalidSegment);
    rejects("/fhir/Patient/a@b", FhirError::InvalidSegment);
    rejects("/fhir/Patient/a~b", FhirError::InvalidSegment);
    rejects("/fhir/Patient/a,b", FhirError::InvalidSegment);
    rejects("/fhir/Patient/a+b", FhirError::InvalidSegment);
    rejects(
        &format!("/fhir/Patient/{}", "a".repeat(65)),
        FhirError::InvalidId,
    );
    assert_eq!(
        ok("GET", &format!("/fhir/Patient/{}", "a".repeat(64))).interaction,
        Interaction::Read
    );
    rejects("/fhir/Patient/1/_history/a_b", FhirError::InvalidVersionId);
    rejects(
        &format!("/fhir/Patient/1/_history/{}", "1".repeat(65)),
        FhirError::InvalidVersionId,
    );
    rejects("/fhir/Patient/*", FhirError::InvalidId);
    rejects("/fhir/*", FhirError::UnknownResourceType);
}

#[test]
fn operation_names() {
    rejects("/fhir/$", FhirError::InvalidOperation);
    rejects("/fhir/Patient/$", FhirError::InvalidOperation);
    rejects("/fhir/Patient/1/$1abc", FhirError::InvalidOperation);
    rejects("/fhir/$a$b", FhirError::InvalidOperation);
    rejects("/fhir/Patient/$every.thing", FhirError::InvalidOperation);
}

#[test]
fn extra_segments() {
    rejects("/fhir/Patient/1/_history/2/x", FhirError::UnsupportedPath);
    rejects("/fhir/Patient/1/Observation/2", FhirError::UnsupportedPath);
    rejects(
        "/fhir/Patient/1/Observation/_search/x",
        FhirError::UnsupportedPath,
    );
    rejects("/fhir/metadata/x", FhirError::UnknownResourceType);
}

#[test]
fn error_codes_are_stable_and_statuses_documented() {
    assert_eq!(FhirError::DotSegment.code(), "path_dot_segment");
    assert_eq!(FhirError::PercentInPath.code(), "path_percent_encoding");
    assert_eq!(FhirError::MethodNotAllowed.status(), 405);
    assert_eq!(FhirError::TooManyEntries.status(), 413);
    assert_eq!(FhirError::UnsupportedMediaType.status(), 415);
    assert_eq!(FhirError::NotFhir.status(), 404);
    let nested = FhirError::Entry {
        index: 3,
        source: Box::new(FhirError::DotSegment),
    };
    assert_eq!(nested.status(), 400);
    assert_eq!(nested.code(), "path_dot_segment");
    assert_eq!(nested.entry_index(), Some(3));
    assert_eq!(
        nested.to_string(),
        "bundle entry 3: dot segment in request path"
    );
}

#[test]
fn an_entry_error_has_the_status_of_its_cause() {
    let entry = |source: FhirError| FhirError::Entry {
        index: 2,
        source: Box::new(source),
    };
    assert_eq!(entry(FhirError::UnsupportedMediaType).status(), 415);
    assert_eq!(entry(FhirError::MethodNotAllowed).status(), 405);
    assert_eq!(entry(FhirError::NotFhir).status(), 404);
    assert_eq!(entry(FhirError::TooManyEntries).status(), 413);
}

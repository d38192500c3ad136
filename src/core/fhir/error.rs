//! Errors of the FHIR request model.
//!
//! Messages are static on purpose: they never repeat ids, parameter values or other request data,
//! which may be PHI.

use thiserror::Error;

/// Why a request could not be understood as exactly one FHIR interaction.
///
/// Every variant is a denial: the filter never forwards a request it could not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FhirError {
    /// The path is not under the configured base path (the engine answers 404).
    #[error("path is not under the FHIR base path")]
    NotFhir,
    /// The `:path` is longer than [`crate::fhir::MAX_PATH_LEN`].
    #[error("request path too long")]
    PathTooLong,
    /// The `:path` does not start with `/`.
    #[error("request path must start with '/'")]
    NotAbsolutePath,
    /// A control character, space, DEL or non-ASCII byte in the raw `:path`.
    #[error("control, space or non-ASCII character in request path")]
    ControlChar,
    /// A `#` fragment in the `:path`.
    #[error("fragment in request path")]
    Fragment,
    /// A backslash in the `:path`.
    #[error("backslash in request path")]
    Backslash,
    /// A `;` (matrix parameter or alternative query separator) in the `:path`.
    #[error("';' in request path")]
    MatrixParam,
    /// A `%` in the path part (before `?`): percent-encoding is never needed in FHIR path segments.
    #[error("percent-encoding in path segment")]
    PercentInPath,
    /// A `.` or `..` segment.
    #[error("dot segment in request path")]
    DotSegment,
    /// An empty segment (`//`, or a trailing `/` other than right after the base).
    #[error("empty segment in request path")]
    EmptySegment,
    /// A path segment with a character that no FHIR segment may contain.
    #[error("invalid character in path segment")]
    InvalidSegment,
    /// A segment in a resource type position that is not a known FHIR resource type (exact case).
    #[error("unknown resource type")]
    UnknownResourceType,
    /// An id that does not match `[A-Za-z0-9\-\.]{1,64}`.
    #[error("invalid resource id")]
    InvalidId,
    /// A version id that does not match `[A-Za-z0-9\-\.]{1,64}`.
    #[error("invalid version id")]
    InvalidVersionId,
    /// An operation name (`$name`) that is empty or has invalid characters.
    #[error("invalid operation name")]
    InvalidOperation,
    /// A path shape that is not a FHIR RESTful interaction (extra segments, `[type]/[id]/[x]` where
    /// `[type]` is not a compartment, a misspelt `_history`/`_search`/`metadata`, ...).
    #[error("unsupported FHIR path")]
    UnsupportedPath,
    /// A method that the path does not support (405).
    #[error("method not allowed for this FHIR path")]
    MethodNotAllowed,
    /// Invalid percent-encoding in the query or a form body.
    #[error("invalid percent-encoding in query")]
    BadPercentEncoding,
    /// Query, form body or bundle text that is not UTF-8 after decoding.
    #[error("query or body is not valid UTF-8")]
    NonUtf8,
    /// A decoded query parameter name or value holds a control character.
    #[error("control character in query parameter")]
    ControlCharInQuery,
    /// A query parameter without a name (`?=x`).
    #[error("query parameter without a name")]
    EmptyParamName,
    /// The decision needs the body (bundle or `_search` form) but none was given.
    #[error("request body required")]
    BodyRequired,
    /// A body whose content type cannot be parsed here (415).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A `POST [base]` body or bundle that is not a batch/transaction Bundle (reason is static text).
    #[error("invalid bundle: {0}")]
    InvalidBundle(&'static str),
    /// A JSON body (write or bundle) that is not exactly one JSON value.
    #[error("body is not JSON")]
    InvalidJson,
    /// A JSON body in which an object repeats a member name (at any depth): two parsers could
    /// read two different requests from it.
    #[error("body repeats a JSON member name")]
    DuplicateMember,
    /// A create or update whose body is not a resource of the URL's type.
    #[error("body resourceType does not match the URL")]
    BodyTypeMismatch,
    /// An update whose body `id` is missing or not the URL's id.
    #[error("body id does not match the URL")]
    BodyIdMismatch,
    /// More bundle entries than [`crate::fhir::MAX_BUNDLE_ENTRIES`] (413).
    #[error("too many bundle entries")]
    TooManyEntries,
    /// A batch/transaction entry that cannot be authorized (index into `entry[]`).
    #[error("bundle entry {index}: {source}")]
    Entry {
        /// Position of the entry in `entry[]`.
        index: usize,
        /// What is wrong with it.
        source: Box<FhirError>,
    },
}

impl FhirError {
    /// HTTP status the filter answers with: 404 for [`FhirError::NotFhir`], 405 for a wrong method,
    /// 413 for too many bundle entries, 415 for an unparseable body type, 400 otherwise.
    /// An [`FhirError::Entry`] has the status of its cause.
    pub fn status(&self) -> u16 {
        match self {
            FhirError::NotFhir => 404,
            FhirError::MethodNotAllowed => 405,
            FhirError::TooManyEntries => 413,
            FhirError::UnsupportedMediaType => 415,
            FhirError::Entry { source, .. } => source.status(),
            _ => 400,
        }
    }

    /// Stable code for audit records and metrics. An [`FhirError::Entry`] has the code of its cause.
    pub fn code(&self) -> &'static str {
        match self {
            FhirError::NotFhir => "not_fhir",
            FhirError::PathTooLong => "path_too_long",
            FhirError::NotAbsolutePath => "path_not_absolute",
            FhirError::ControlChar => "path_control_char",
            FhirError::Fragment => "path_fragment",
            FhirError::Backslash => "path_backslash",
            FhirError::MatrixParam => "path_matrix_param",
            FhirError::PercentInPath => "path_percent_encoding",
            FhirError::DotSegment => "path_dot_segment",
            FhirError::EmptySegment => "path_empty_segment",
            FhirError::InvalidSegment => "path_invalid_segment",
            FhirError::UnknownResourceType => "unknown_resource_type",
            FhirError::InvalidId => "invalid_id",
            FhirError::InvalidVersionId => "invalid_version_id",
            FhirError::InvalidOperation => "invalid_operation",
            FhirError::UnsupportedPath => "unsupported_path",
            FhirError::MethodNotAllowed => "method_not_allowed",
            FhirError::BadPercentEncoding => "bad_percent_encoding",
            FhirError::NonUtf8 => "non_utf8",
            FhirError::ControlCharInQuery => "query_control_char",
            FhirError::EmptyParamName => "query_empty_name",
            FhirError::BodyRequired => "body_required",
            FhirError::UnsupportedMediaType => "unsupported_media_type",
            FhirError::InvalidBundle(_) => "invalid_bundle",
            FhirError::TooManyEntries => "too_many_entries",
            FhirError::InvalidJson => "invalid_json",
            FhirError::DuplicateMember => "duplicate_member",
            FhirError::BodyTypeMismatch => "body_type_mismatch",
            FhirError::BodyIdMismatch => "body_id_mismatch",
            FhirError::Entry { source, .. } => source.code(),
        }
    }

    /// Index of the offending bundle entry, when the error is about one.
    pub fn entry_index(&self) -> Option<usize> {
        match self {
            FhirError::Entry { index, .. } => Some(*index),
            _ => None,
        }
    }
}

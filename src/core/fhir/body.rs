//! The one reading of a write's body (create, update, patch, operation): strict JSON, and the
//! resource it names must be the one the URL names.
//!
//! The decision reads the body once, with the strict parser that refuses duplicate member
//! names at any depth; the bytes forwarded are the bytes read. A server that kept another
//! reading of an ambiguous body (first member wins where the filter's parser kept the last)
//! would write another patient's data, so ambiguous bodies never go upstream.

use serde_json::Value;

use super::path::media_type;
use super::{FhirError, FhirRequest, Interaction};
use crate::token::strict_json::{self, StrictJsonError};

/// Whether a media type is JSON (`application/json`, `application/fhir+json`,
/// `application/json-patch+json`, `application/merge-patch+json`, ...).
fn is_json(media: &str) -> bool {
    media == "application/json"
        || media.ends_with("+json")
        || media.starts_with("application/json+")
}

/// Parses a JSON body strictly: duplicate member names anywhere are
/// [`FhirError::DuplicateMember`], anything else that is not exactly one JSON value is
/// [`FhirError::InvalidJson`].
pub(crate) fn strict(body: &[u8]) -> Result<Value, FhirError> {
    strict_json::parse(body).map_err(|e| match e {
        StrictJsonError::Duplicate => FhirError::DuplicateMember,
        StrictJsonError::Syntax => FhirError::InvalidJson,
    })
}

/// Reads the body of a write (`POST`/`PUT`/`PATCH` other than `_search` forms and bundles).
///
/// - empty: `Ok(None)`;
/// - JSON (by `Content-Type`, or no `Content-Type`): parsed strictly (see [`strict`]);
///   other media types (XML, binary) are not read: `Ok(None)`;
/// - a create or update must carry a JSON object whose `resourceType` is the URL's type, and
///   an update of `[type]/[id]` one whose `id` is the URL's id (FHIR: 400 otherwise, also for a
///   missing `id`); a conditional update's body `id`, when present, must be a string.
pub fn read_write_body(
    fhir: &FhirRequest,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Option<Value>, FhirError> {
    if body.is_empty() {
        return Ok(None);
    }
    if content_type.is_some_and(|ct| !is_json(&media_type(ct))) {
        return Ok(None);
    }
    let value = strict(body)?;
    if matches!(fhir.interaction, Interaction::Create | Interaction::Update) {
        check_resource(fhir, &value)?;
    }
    Ok(Some(value))
}

/// The resource written must be the one the URL names.
pub(crate) fn check_resource(fhir: &FhirRequest, resource: &Value) -> Result<(), FhirError> {
    let Some(object) = resource.as_object() else {
        return Err(FhirError::BodyTypeMismatch);
    };
    let rt = object.get("resourceType").and_then(Value::as_str);
    if rt.is_none() || rt != fhir.resource_type.as_deref() {
        return Err(FhirError::BodyTypeMismatch);
    }
    let body_id = object.get("id");
    if body_id.is_some_and(|id| !id.is_string()) {
        return Err(FhirError::BodyIdMismatch);
    }
    if fhir.interaction == Interaction::Update
        && !fhir.conditional
        && body_id.and_then(Value::as_str) != fhir.id.as_deref()
    {
        return Err(FhirError::BodyIdMismatch);
    }
    Ok(())
}

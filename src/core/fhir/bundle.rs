//! Batch and transaction Bundles (`POST [base]`): the container and its entries.

use serde_json::{Map, Value};

use super::path::{media_type, route_target, Body};
use super::{FhirError, FhirRequest, Interaction};

/// Most entries a batch/transaction may hold; more is [`FhirError::TooManyEntries`] (413).
pub const MAX_BUNDLE_ENTRIES: usize = 1000;

/// Methods an entry's `request.method` may have.
const ENTRY_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Checks the content type of a bundle body: JSON (`application/fhir+json`, `application/json`,
/// `application/json+fhir`) or absent. XML and everything else is 415.
pub(crate) fn check_bundle_media_type(content_type: Option<&str>) -> Result<(), FhirError> {
    match content_type.map(media_type) {
        None => Ok(()),
        Some(m)
            if m == "application/fhir+json"
                || m == "application/json"
                || m == "application/json+fhir" =>
        {
            Ok(())
        }
        Some(_) => Err(FhirError::UnsupportedMediaType),
    }
}

fn parse_bundle(json: &[u8]) -> Result<(Map<String, Value>, Interaction), FhirError> {
    std::str::from_utf8(json).map_err(|_| FhirError::NonUtf8)?;
    let value = match super::body::strict(json) {
        Ok(v) => v,
        Err(FhirError::InvalidJson) => return Err(FhirError::InvalidBundle("body is not JSON")),
        Err(e) => return Err(e),
    };
    let Value::Object(map) = value else {
        return Err(FhirError::InvalidBundle("body is not a JSON object"));
    };
    if map.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(FhirError::InvalidBundle("resourceType is not Bundle"));
    }
    let interaction = match map.get("type").and_then(Value::as_str) {
        Some("batch") => Interaction::Batch,
        Some("transaction") => Interaction::Transaction,
        _ => {
            return Err(FhirError::InvalidBundle(
                "Bundle.type is not batch or transaction",
            ))
        }
    };
    Ok((map, interaction))
}

/// Reads `Bundle.type` of a `POST [base]` body: [`Interaction::Batch`] or
/// [`Interaction::Transaction`].
pub(crate) fn bundle_interaction(json: &[u8]) -> Result<Interaction, FhirError> {
    parse_bundle(json).map(|(_, i)| i)
}

/// Whether a JSON resource is itself a batch or transaction Bundle.
fn is_batch_bundle(resource: &Value) -> bool {
    resource.get("resourceType").and_then(Value::as_str) == Some("Bundle")
        && matches!(
            resource.get("type").and_then(Value::as_str),
            Some("batch" | "transaction" | "batch-response" | "transaction-response")
        )
}

/// Turns an entry's `request.url` into a `:path`: relative (`Patient/1`, `Patient?x=y`) is taken
/// relative to the base; `/...` is a path from the server root; `http(s)://host/...` keeps its path
/// (the host is not compared; the path must still be under the base).
fn entry_path(url: &str, base_path: &str) -> Result<String, FhirError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
        return match after_scheme.find(['/', '?']) {
            Some(i) => {
                let rest = after_scheme.get(i..).unwrap_or_default();
                if rest.starts_with('?') {
                    Ok(format!("/{rest}"))
                } else {
                    Ok(rest.to_string())
                }
            }
            None => Ok("/".to_string()),
        };
    }
    if url.starts_with('/') {
        return Ok(url.to_string());
    }
    if url.contains("://") {
        return Err(FhirError::InvalidBundle(
            "entry.request.url has an unsupported scheme",
        ));
    }
    let base = base_path.trim_matches('/');
    if base.is_empty() {
        Ok(format!("/{url}"))
    } else {
        Ok(format!("/{base}/{url}"))
    }
}

fn entry_request(entry: &Value, base_path: &str) -> Result<FhirRequest, FhirError> {
    let request = entry
        .get("request")
        .and_then(Value::as_object)
        .ok_or(FhirError::InvalidBundle("entry.request is missing"))?;
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .ok_or(FhirError::InvalidBundle("entry.request.method is missing"))?;
    if !ENTRY_METHODS.contains(&method) {
        return Err(FhirError::MethodNotAllowed);
    }
    let url = request
        .get("url")
        .and_then(Value::as_str)
        .ok_or(FhirError::InvalidBundle("entry.request.url is missing"))?;
    let path = entry_path(url, base_path)?;
    let route = route_target(method, &path, base_path).map_err(|e| match e {
        FhirError::NotFhir => {
            FhirError::InvalidBundle("entry.request.url is not under the FHIR base")
        }
        other => other,
    })?;
    match route.body {
        Body::Ignored => {}
        Body::Bundle => {
            return Err(FhirError::InvalidBundle(
                "nested batch/transaction in an entry",
            ))
        }
        Body::FormSearch => {
            return Err(FhirError::InvalidBundle(
                "POST _search is not supported in an entry",
            ))
        }
    }
    let mut req = route.request;
    let resource = entry.get("resource");
    if resource.is_some_and(is_batch_bundle) {
        return Err(FhirError::InvalidBundle(
            "nested batch/transaction in an entry",
        ));
    }
    if matches!(req.interaction, Interaction::Create | Interaction::Update) {
        let resource = resource
            .and_then(Value::as_object)
            .ok_or(FhirError::InvalidBundle("entry.resource is missing"))?;
        let rt = resource.get("resourceType").and_then(Value::as_str);
        if rt.is_none() || rt != req.resource_type.as_deref() {
            return Err(FhirError::InvalidBundle(
                "entry.resource type does not match entry.request.url",
            ));
        }
        let body_id = resource.get("id");
        let id_fits = match (req.interaction, req.conditional) {
            // An update of `[type]/[id]` names its resource twice: both must agree.
            (Interaction::Update, false) => body_id.and_then(Value::as_str) == req.id.as_deref(),
            _ => body_id.is_none_or(Value::is_string),
        };
        if !id_fits {
            return Err(FhirError::InvalidBundle(
                "entry.resource id does not match entry.request.url",
            ));
        }
    }
    match request.get("ifNoneExist") {
        None | Some(Value::Null) => {}
        Some(Value::String(criteria)) => req.apply_if_none_exist(criteria)?,
        Some(_) => {
            return Err(FhirError::InvalidBundle(
                "entry.request.ifNoneExist is not a string",
            ))
        }
    }
    Ok(req)
}

/// Each entry of a batch/transaction Bundle as its own request (see [`super::bundle_entries`]).
pub(crate) fn entries(
    json: &[u8],
    base_path: &str,
) -> Result<Vec<(usize, FhirRequest)>, FhirError> {
    let (map, _) = parse_bundle(json)?;
    let list = match map.get("entry") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(FhirError::InvalidBundle("Bundle.entry is not an array")),
    };
    if list.len() > MAX_BUNDLE_ENTRIES {
        return Err(FhirError::TooManyEntries);
    }
    list.iter()
        .enumerate()
        .map(|(index, entry)| {
            entry_request(entry, base_path)
                .map(|req| (index, req))
                .map_err(|e| FhirError::Entry {
                    index,
                    source: Box::new(e),
                })
        })
        .collect()
}

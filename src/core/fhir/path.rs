//! From method and `:path` to one FHIR interaction.
//!
//! Strictness is deliberate: a request that the filter and the FHIR server could read differently
//! is an error, never a guess.

use super::query::{parse_form, Params};
use super::types::{is_compartment_type, is_resource_type, is_valid_id, is_valid_operation};
use super::{Compartment, FhirError, FhirRequest, Interaction};

/// Longest `:path` (with its query) accepted, in bytes.
pub const MAX_PATH_LEN: usize = 8 * 1024;

/// A `:path` split at the base: the segments after it and the raw query.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub segments: Vec<&'a str>,
    /// Text after the first `?`; `None` when there is no `?`.
    pub query: Option<&'a str>,
}

/// Splits and checks a raw `:path` (see the module docs of `fhir` for the rules).
pub(crate) fn split_target<'a>(path: &'a str, base_path: &str) -> Result<Target<'a>, FhirError> {
    if path.len() > MAX_PATH_LEN {
        return Err(FhirError::PathTooLong);
    }
    for b in path.bytes() {
        match b {
            b'#' => return Err(FhirError::Fragment),
            b'\\' => return Err(FhirError::Backslash),
            b';' => return Err(FhirError::MatrixParam),
            0x21..=0x7e => {}
            _ => return Err(FhirError::ControlChar),
        }
    }
    if !path.starts_with('/') {
        return Err(FhirError::NotAbsolutePath);
    }
    let (path_part, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let base = base_path.trim_matches('/');
    let after_base = if base.is_empty() {
        path_part
    } else {
        let rest = path_part
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(base))
            .ok_or(FhirError::NotFhir)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Err(FhirError::NotFhir);
        }
        rest
    };
    if after_base.contains('%') {
        return Err(FhirError::PercentInPath);
    }
    // `[base]` and `[base]/` both mean the base; any other empty segment is an error.
    let segments: Vec<&str> = match after_base {
        "" | "/" => Vec::new(),
        rest => rest.get(1..).unwrap_or_default().split('/').collect(),
    };
    for seg in &segments {
        check_segment(seg)?;
    }
    Ok(Target { segments, query })
}

fn check_segment(seg: &str) -> Result<(), FhirError> {
    if seg.is_empty() {
        return Err(FhirError::EmptySegment);
    }
    if seg == "." || seg == ".." {
        return Err(FhirError::DotSegment);
    }
    let ok = seg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'$' | b'*'));
    if ok {
        Ok(())
    } else {
        Err(FhirError::InvalidSegment)
    }
}

/// Where the parameters of a search come from besides the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// The body does not matter for the decision.
    Ignored,
    /// `POST .../_search`: the form body holds search parameters.
    FormSearch,
    /// `POST [base]`: the body is a batch or transaction Bundle.
    Bundle,
}

/// The interaction a path and method denote, before parameters are attached.
#[derive(Debug)]
pub(crate) struct Route {
    pub request: FhirRequest,
    pub body: Body,
}

fn resource_type(seg: &str) -> Result<String, FhirError> {
    if is_resource_type(seg) {
        Ok(seg.to_string())
    } else {
        Err(FhirError::UnknownResourceType)
    }
}

fn id(seg: &str) -> Result<String, FhirError> {
    if is_valid_id(seg) {
        Ok(seg.to_string())
    } else {
        Err(FhirError::InvalidId)
    }
}

fn operation(seg: &str) -> Option<Result<String, FhirError>> {
    let name = seg.strip_prefix('$')?;
    Some(if is_valid_operation(name) {
        Ok(name.to_string())
    } else {
        Err(FhirError::InvalidOperation)
    })
}

fn base_request(interaction: Interaction) -> FhirRequest {
    FhirRequest {
        interaction,
        resource_type: None,
        id: None,
        version_id: None,
        operation: None,
        compartment: None,
        params: Params::new(),
        conditional: false,
    }
}

/// Maps method and segments to an interaction (HEAD is treated like GET).
///
/// A method the path does not support is [`FhirError::MethodNotAllowed`] (405); a path shape that is
/// no FHIR interaction is [`FhirError::UnsupportedPath`] or a more specific 400 error.
pub(crate) fn route(method: &str, segments: &[&str], has_query: bool) -> Result<Route, FhirError> {
    use Interaction as I;
    let method = if method == "HEAD" { "GET" } else { method };
    let mut body = Body::Ignored;
    let mut req = match segments {
        [] => match method {
            "GET" => base_request(I::SearchSystem),
            "POST" => {
                body = Body::Bundle;
                // Batch or transaction: decided from Bundle.type by the caller.
                base_request(I::Batch)
            }
            _ => return Err(FhirError::MethodNotAllowed),
        },
        ["metadata"] => match method {
            "GET" => base_request(I::Capabilities),
            _ => return Err(FhirError::MethodNotAllowed),
        },
        ["_history"] => match method {
            "GET" => base_request(I::HistorySystem),
            _ => return Err(FhirError::MethodNotAllowed),
        },
        ["_search"] => {
            body = search_body(method)?;
            base_request(I::SearchSystem)
        }
        [seg] if seg.starts_with('$') => {
            let op = operation(seg).unwrap_or(Err(FhirError::InvalidOperation))?;
            op_method(method)?;
            let mut r = base_request(I::Operation);
            r.operation = Some(op);
            r
        }
        [ty] => {
            let ty = resource_type(ty)?;
            let mut r = match method {
                "GET" => base_request(I::SearchType),
                "POST" => base_request(I::Create),
                "PUT" | "PATCH" | "DELETE" if has_query => {
                    let mut r = base_request(match method {
                        "PUT" => I::Update,
                        "PATCH" => I::Patch,
                        _ => I::Delete,
                    });
                    r.conditional = true;
                    r
                }
                _ => return Err(FhirError::MethodNotAllowed),
            };
            r.resource_type = Some(ty);
            r
        }
        [ty, second] => {
            let ty = resource_type(ty)?;
            let mut r = if *second == "_search" {
                body = search_body(method)?;
                base_request(I::SearchType)
            } else if *second == "_history" {
                get_only(method)?;
                base_request(I::HistoryType)
            } else if let Some(op) = operation(second) {
                let op = op?;
                op_method(method)?;
                let mut r = base_request(I::Operation);
                r.operation = Some(op);
                r
            } else {
                let id = id(second)?;
                let mut r = base_request(match method {
                    "GET" => I::Read,
                    "PUT" => I::Update,
                    "PATCH" => I::Patch,
                    "DELETE" => I::Delete,
                    _ => return Err(FhirError::MethodNotAllowed),
                });
                r.id = Some(id);
                r
            };
            r.resource_type = Some(ty);
            r
        }
        [ty, instance, third] => {
            let ty = resource_type(ty)?;
            let instance = id(instance)?;
            if *third == "_history" {
                get_only(method)?;
                let mut r = base_request(I::HistoryInstance);
                r.resource_type = Some(ty);
                r.id = Some(instance);
                r
            } else if let Some(op) = operation(third) {
                let op = op?;
                op_method(method)?;
                let mut r = base_request(I::Operation);
                r.operation = Some(op);
                r.resource_type = Some(ty);
                r.id = Some(instance);
                r
            } else {
                let r = compartment_search(ty, instance, third)?;
                get_only(method)?;
                r
            }
        }
        [ty, instance, "_history", vid] => {
            let ty = resource_type(ty)?;
            let instance = id(instance)?;
            if !is_valid_id(vid) {
                return Err(FhirError::InvalidVersionId);
            }
            get_only(method)?;
            let mut r = base_request(I::Vread);
            r.resource_type = Some(ty);
            r.id = Some(instance);
            r.version_id = Some((*vid).to_string());
            r
        }
        [ty, instance, target, "_search"] => {
            let ty = resource_type(ty)?;
            let instance = id(instance)?;
            if *target == "*" {
                return Err(FhirError::UnsupportedPath);
            }
            let r = compartment_search(ty, instance, target)?;
            body = search_body(method)?;
            r
        }
        _ => return Err(FhirError::UnsupportedPath),
    };
    if body == Body::Bundle {
        req.resource_type = None;
    }
    Ok(Route { request: req, body })
}

fn compartment_search(kind: String, id: String, target: &str) -> Result<FhirRequest, FhirError> {
    if !is_compartment_type(&kind) {
        return Err(FhirError::UnsupportedPath);
    }
    let mut r = base_request(Interaction::SearchCompartment);
    r.resource_type = if target == "*" {
        None
    } else {
        Some(resource_type(target)?)
    };
    r.compartment = Some(Compartment { kind, id });
    Ok(r)
}

fn search_body(method: &str) -> Result<Body, FhirError> {
    match method {
        "GET" => Ok(Body::Ignored),
        "POST" => Ok(Body::FormSearch),
        _ => Err(FhirError::MethodNotAllowed),
    }
}

fn get_only(method: &str) -> Result<(), FhirError> {
    if method == "GET" {
        Ok(())
    } else {
        Err(FhirError::MethodNotAllowed)
    }
}

fn op_method(method: &str) -> Result<(), FhirError> {
    if method == "GET" || method == "POST" {
        Ok(())
    } else {
        Err(FhirError::MethodNotAllowed)
    }
}

/// Parses the target, routes it and attaches the query parameters.
pub(crate) fn route_target(method: &str, path: &str, base_path: &str) -> Result<Route, FhirError> {
    let target = split_target(path, base_path)?;
    let has_query = target
        .query
        .is_some_and(|q| q.split('&').any(|p| !p.is_empty()));
    let mut route = route(method, &target.segments, has_query)?;
    if let Some(q) = target.query {
        parse_form(q, &mut route.request.params)?;
    }
    Ok(route)
}

/// Reads the media type of a `content-type` value: lowercased, without parameters.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Appends the parameters of a `POST _search` form body.
pub(crate) fn add_form_body(
    params: &mut Params,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), FhirError> {
    if body.is_empty() {
        return Ok(());
    }
    match content_type.map(media_type) {
        Some(m) if m == "application/x-www-form-urlencoded" => {}
        _ => return Err(FhirError::UnsupportedMediaType),
    }
    let text = std::str::from_utf8(body).map_err(|_| FhirError::NonUtf8)?;
    parse_form(text, params)
}

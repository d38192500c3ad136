//! Requests refused on their headers before anything else, whatever the token: the shapes a
//! FHIR server (or a framework in front of it) reads differently from the filter.
//!
//! - `access_token` in the query, in any case or percent-encoding (RFC 6750 §3.1: one method
//!   only; the second token would reach the upstream unchecked): 400 `invalid_request`;
//! - a method override header (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`,
//!   any case, `_` for `-`): servers honouring them turn an allowed read into a delete: 400;
//! - two `Content-Type` headers, or one listing several types: 400;
//! - a body on `GET`, `HEAD` or `DELETE` (the headers do not end the stream, a
//!   `Transfer-Encoding`, a non-zero `Content-Length`): the decision never reads it, a server
//!   might: 400.

use crate::outcome::{Denial, DenyKind};
use crate::token::is_token_param;

/// Override headers, normalised (lowercase, `-`).
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// A header name as CGI-style servers read it: lowercase, `_` taken for `-`.
pub fn normalised_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// The denial for a request refused on its headers, if any.
pub fn refused_on_headers(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    end_of_stream: bool,
) -> Option<Denial> {
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let token_in_query = crate::percent::form_pairs(query)
        .flatten()
        .any(|(name, _)| is_token_param(&name));
    if token_in_query {
        return Some(Denial::new(
            DenyKind::InvalidRequest,
            "request.token_in_query",
            "an access token is accepted in the Authorization header only",
        ));
    }
    let mut content_types = 0;
    let mut body_declared = !end_of_stream;
    for (name, value) in headers {
        let name = normalised_name(name);
        if METHOD_OVERRIDES.contains(&name.as_str()) {
            return Some(bad_request(
                "request.method_override",
                "method override headers are not accepted",
            ));
        }
        match name.as_str() {
            "content-type" => {
                content_types += 1;
                if value.contains(',') {
                    content_types += 1;
                }
            }
            "transfer-encoding" => body_declared = true,
            "content-length" => body_declared |= value.trim() != "0",
            _ => {}
        }
    }
    if content_types > 1 {
        return Some(bad_request(
            "request.duplicate_content_type",
            "the request has more than one content type",
        ));
    }
    if body_declared && matches!(method, "GET" | "HEAD" | "DELETE") {
        return Some(bad_request(
            "request.unexpected_body",
            "this method takes no request body",
        ));
    }
    None
}

fn bad_request(reason: &str, description: &str) -> Denial {
    Denial::new(DenyKind::BadRequest, reason, description)
}

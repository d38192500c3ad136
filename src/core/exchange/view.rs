//! What the decision sees of a request, and what never reaches the upstream from the client:
//! the visible headers, the owned headers removed, public discovery.

use std::collections::BTreeMap;

use super::hygiene::normalised_name;
use crate::config::{Config, OWNED_HEADER_PREFIX};
use crate::decision::RequestInfo;

/// Request headers the decision (and the rules) never see: credentials (the token, cookies, the
/// DPoP proof), which fhirgate reads itself. Pseudo-headers and fhirgate's own `x-fhirgate-*` headers are not visible either.
pub const HIDDEN_HEADERS: [&str; 3] = ["authorization", "cookie", "dpop"];

/// The request as the decision sees it: method, path, authority, the visible headers (repeated
/// ones joined with `,`), the peer address and `x-request-id`.
pub fn request_info(headers: &[(String, String)], source: &str) -> RequestInfo {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut method = String::new();
    let mut path = String::new();
    let mut authority = String::new();
    for (name, value) in headers {
        match name.as_str() {
            ":method" => method.clone_from(value),
            ":path" => path.clone_from(value),
            ":authority" => authority.clone_from(value),
            n if n.starts_with(':') || HIDDEN_HEADERS.contains(&n) => {}
            n if normalised_name(n).starts_with(OWNED_HEADER_PREFIX) => {}
            n => {
                map.entry(n.to_string())
                    .and_modify(|v| {
                        v.push(',');
                        v.push_str(value);
                    })
                    .or_insert_with(|| value.clone());
            }
        }
    }
    RequestInfo {
        method,
        path,
        host: authority,
        request_id: map.get("x-request-id").cloned(),
        headers: map,
        source_address: source.to_string(),
    }
}

/// The incoming headers that never reach the upstream: fhirgate's own `x-fhirgate-*` and the
/// configured identity headers (`forward.headers`), whatever happens next, in any case and
/// with `_` for `-` (`x_fhirgate_patient`).
pub fn spoofable_headers<'a>(
    config: &Config,
    headers: &'a [(String, String)],
) -> impl Iterator<Item = &'a str> + 'a {
    let configured: Vec<String> = config
        .forward
        .headers
        .iter()
        .map(|(h, _)| normalised_name(h))
        .collect();
    let mut seen: Vec<&'a str> = Vec::new();
    headers.iter().filter_map(move |(name, _)| {
        // `x_fhirgate_patient` and `X-FhirGate-Patient` are the owned header to a CGI-style server.
        let norm = normalised_name(name);
        let owned = norm.starts_with(OWNED_HEADER_PREFIX) || configured.contains(&norm);
        if owned && !seen.contains(&name.as_str()) {
            seen.push(name.as_str());
            Some(name.as_str())
        } else {
            None
        }
    })
}

/// `GET`/`HEAD` of exactly `[base]/metadata` or `[base]/.well-known/smart-configuration`, when
/// `fhir.publicDiscovery` is on: served without a token.
pub fn is_public_discovery(config: &Config, info: &RequestInfo) -> bool {
    if !config.public_discovery || !(info.method == "GET" || info.method == "HEAD") {
        return false;
    }
    let path = info.path.split('?').next().unwrap_or_default();
    path.strip_prefix(config.base_path.as_str())
        .is_some_and(|rest| rest == "/metadata" || rest == "/.well-known/smart-configuration")
}

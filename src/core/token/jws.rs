//! Structural parsing of a JWS compact serialization (no signature check here).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::error::{MalformedReason, TokenError};
use super::extract::MAX_TOKEN_LEN;
use super::strict_json::{self, StrictJsonError};

/// The decoded, untrusted parts of a compact JWS.
pub(crate) struct Parts {
    /// Header members.
    pub header: Map<String, Value>,
    /// Payload members.
    pub payload: Map<String, Value>,
}

/// Header members that fhirgate reads (all untrusted until the signature verifies).
pub(crate) struct Header<'a> {
    pub alg: &'a str,
    pub kid: Option<&'a str>,
    pub typ: Option<&'a str>,
    pub has_crit: bool,
}

/// Header members whose value must be a string (as strict as jwt-simple's header parsing was:
/// `jwk` in its RFC 7515 object form is refused, failing closed).
const STRING_HEADER_MEMBERS: &[&str] = &[
    "alg", "kid", "typ", "cty", "jku", "jwk", "x5u", "x5t", "x5t#S256", "salt",
];

/// Splits and decodes a compact JWS. The signature segment may be empty here (so that
/// `alg: none` is refused by name later); JWE (5 segments) is reported as such.
pub(crate) fn split(token: &str) -> Result<Parts, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let segments: Vec<&str> = token.split('.').collect();
    let (h, p) = match segments.as_slice() {
        [h, p, _sig] => (*h, *p),
        [_, _, _, _, _] => return Err(TokenError::JweUnsupported),
        _ => return Err(TokenError::Malformed(MalformedReason::Segments)),
    };
    let header = decode_object(h)?;
    let payload = decode_object(p)?;
    Ok(Parts { header, payload })
}

/// Decodes one segment: canonical unpadded base64url, then a strict JSON object.
fn decode_object(segment: &str) -> Result<Map<String, Value>, TokenError> {
    if segment.is_empty() {
        return Err(TokenError::Malformed(MalformedReason::Segments));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed(MalformedReason::Base64))?;
    match strict_json::parse_object(&bytes) {
        Ok(Some(map)) => Ok(map),
        Ok(None) => Err(TokenError::Malformed(MalformedReason::NotObject)),
        Err(StrictJsonError::Duplicate) => {
            Err(TokenError::Malformed(MalformedReason::DuplicateMember))
        }
        Err(StrictJsonError::Syntax) => Err(TokenError::Malformed(MalformedReason::Json)),
    }
}

/// Reads the header members fhirgate uses; checks member types.
/// `jwk`, `jku`, `x5u`, `x5c` are never used to find a key.
pub(crate) fn header(map: &Map<String, Value>) -> Result<Header<'_>, TokenError> {
    let bad = TokenError::Malformed(MalformedReason::HeaderField);
    for name in STRING_HEADER_MEMBERS {
        if let Some(v) = map.get(*name) {
            if !v.is_string() {
                return Err(bad);
            }
        }
    }
    if let Some(x5c) = map.get("x5c") {
        let ok = x5c
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string));
        if !ok {
            return Err(bad);
        }
    }
    let alg = map
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed(MalformedReason::HeaderField))?;
    Ok(Header {
        alg,
        kid: map.get("kid").and_then(Value::as_str),
        typ: map.get("typ").and_then(Value::as_str),
        has_crit: map.contains_key("crit"),
    })
}

/// Reads an optional NumericDate claim: a non-negative JSON number (fractions are truncated).
pub(crate) fn numeric_date(
    map: &Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, TokenError> {
    let Some(v) = map.get(name) else {
        return Ok(None);
    };
    let bad = TokenError::Malformed(MalformedReason::ClaimType);
    let n = v.as_number().ok_or(bad.clone())?;
    if let Some(u) = n.as_u64() {
        return Ok(Some(u));
    }
    match n.as_f64() {
        // Fractions are truncated; the range keeps the cast exact and far from overflow.
        Some(f) if (0.0..1.0e15).contains(&f) => Ok(Some(f as u64)),
        _ => Err(bad),
    }
}

/// Checks that registered claims have the JSON types RFC 7519 gives them (and `nonce` is a
/// string).
pub(crate) fn check_claim_types(payload: &Map<String, Value>) -> Result<(), TokenError> {
    let bad = TokenError::Malformed(MalformedReason::ClaimType);
    for name in ["iss", "sub", "jti", "nonce"] {
        if payload.get(name).is_some_and(|v| !v.is_string()) {
            return Err(bad);
        }
    }
    if let Some(aud) = payload.get("aud") {
        let ok = match aud {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok {
            return Err(bad);
        }
    }
    for name in ["exp", "nbf", "iat"] {
        numeric_date(payload, name)?;
    }
    Ok(())
}

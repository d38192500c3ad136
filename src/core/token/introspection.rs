//! OAuth 2.0 token introspection (RFC 7662): request pieces and response checking.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use super::claims::{ClaimNames, TokenKind, VerifiedToken};
use super::error::TokenError;
use super::jws::numeric_date;
use super::strict_json;
use super::verify::audience_matches;

/// Largest introspection response accepted (bytes).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What a provider accepts from its introspection endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntrospectionPolicy {
    /// When set, a response `iss` must equal it (and it becomes the token's issuer).
    pub issuer: Option<String>,
    /// When non-empty, a response `aud` must contain one of them.
    pub audiences: Vec<String>,
    /// Tolerated clock difference for `exp` and `nbf` (seconds).
    pub clock_skew_secs: u64,
}

/// The form body of the introspection request:
/// `token=<form-urlencoded token>&token_type_hint=access_token`.
pub fn request_body(token: &str) -> String {
    format!(
        "token={}&token_type_hint=access_token",
        form_urlencode(token)
    )
}

/// The `Authorization` value for client authentication (RFC 6749 §2.3.1):
/// `Basic base64(form-urlencode(client_id) ":" form-urlencode(secret))`.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form_urlencode(client_id), form_urlencode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// `application/x-www-form-urlencoded` encoding (WHATWG URL, byte serializer).
pub fn form_urlencode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0x0f));
            }
        }
    }
    out
}

/// Upper-case hex digit of a nibble.
fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16)
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or('0')
}

/// Whether an introspection `token_type` names an access token: absent (RFC 7662 makes it
/// optional), or, in any case, an access token's type (`Bearer`, `DPoP`) or name (`access_token`,
/// `urn:ietf:params:oauth:token-type:access_token`). Anything else (`refresh_token`, `id_token`,
/// `N_A`, a non-string) is not an access token.
fn is_access_token_type(value: Option<&Value>) -> bool {
    const ACCESS: [&str; 4] = [
        "bearer",
        "dpop",
        "access_token",
        "urn:ietf:params:oauth:token-type:access_token",
    ];
    match value {
        None => true,
        Some(Value::String(t)) => ACCESS.iter().any(|a| t.eq_ignore_ascii_case(a)),
        Some(_) => false,
    }
}

/// Checks an introspection response body at time `now` (unix seconds).
///
/// A body that is too large or not a JSON object (or repeats a member) is
/// `IntrospectionBadResponse` (the engine answers 503). `active` must be literally `true`
/// (else `Inactive`); `token_type` when present must be an access token's (else
/// `NotAccessToken`); `exp`/`nbf` when present must hold; `iss` when present must equal the
/// policy issuer (if set); `aud` when present must contain an accepted audience (if any).
pub fn parse_response(
    body: &[u8],
    policy: &IntrospectionPolicy,
    names: &ClaimNames,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(TokenError::IntrospectionBadResponse);
    }
    let members = strict_json::parse_object(body)
        .ok()
        .flatten()
        .ok_or(TokenError::IntrospectionBadResponse)?;
    if members.get("active") != Some(&Value::Bool(true)) {
        return Err(TokenError::Inactive);
    }
    if !is_access_token_type(members.get("token_type")) {
        return Err(TokenError::NotAccessToken);
    }
    let skew = policy.clock_skew_secs;
    let exp = numeric_date(&members, "exp")?;
    if exp.is_some_and(|exp| now >= exp.saturating_add(skew)) {
        return Err(TokenError::Expired);
    }
    if numeric_date(&members, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(TokenError::NotYetValid);
    }
    let issuer = match (members.get("iss"), &policy.issuer) {
        (None, Some(expected)) => expected.clone(),
        (None, None) => String::new(),
        (Some(Value::String(iss)), Some(expected)) if iss != expected => {
            return Err(TokenError::WrongIssuer)
        }
        (Some(Value::String(iss)), _) => iss.clone(),
        (Some(_), _) => return Err(TokenError::WrongIssuer),
    };
    if let Some(aud) = members.get("aud") {
        if !policy.audiences.is_empty() && !audience_matches(aud, &policy.audiences) {
            return Err(TokenError::WrongAudience);
        }
    }
    VerifiedToken::from_checked_claims(
        TokenKind::Opaque,
        issuer,
        exp.unwrap_or(u64::MAX),
        members,
        names,
    )
}

//! Extraction of the access token from `Authorization` header values: `Bearer` (RFC 6750 §2.1)
//! or `DPoP` (RFC 9449 §7.1), one credential per request.

use thiserror::Error;

/// Longest accepted token (bytes): 16 KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why the `Authorization` header cannot be used (the engine answers 400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ExtractError {
    /// Two or more `Authorization` header values.
    #[error("duplicate authorization header")]
    Duplicate,
    /// `Bearer` (or `DPoP`) without a token.
    #[error("empty bearer token")]
    Empty,
    /// The header or the token does not follow RFC 6750 syntax.
    #[error("malformed authorization header")]
    Malformed,
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("bearer token too long")]
    TooLong,
}

impl ExtractError {
    /// Stable machine code for audit records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Duplicate => "duplicate_authorization",
            ExtractError::Empty => "empty_token",
            ExtractError::Malformed => "malformed_authorization",
            ExtractError::TooLong => "token_too_long",
        }
    }
}

/// The authorization scheme a token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP <token>` (RFC 9449), with a `DPoP` proof header.
    Dpop,
}

impl AuthScheme {
    /// `Bearer` or `DPoP`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScheme::Bearer => "Bearer",
            AuthScheme::Dpop => "DPoP",
        }
    }
}

/// An access token and the scheme it was presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    /// `Bearer` or `DPoP`.
    pub scheme: AuthScheme,
    /// The token (never logged).
    pub token: &'a str,
}

/// Returns the access token and its scheme from the values of the `Authorization` header.
///
/// `Ok(None)`: no header, or a scheme other than `Bearer` and `DPoP` (treated as no
/// credentials). Exactly one credential is accepted: two header values (`Bearer` and `DPoP`
/// together, or two of either) are `Duplicate`. The scheme is case-insensitive; one or more
/// spaces separate it from the token; leading and trailing spaces/tabs of the value are ignored.
/// The token must match `b64token` (RFC 6750) / `token68` (RFC 9110), the same syntax:
/// `[A-Za-z0-9-._~+/]+=*`, and nothing may follow it.
pub fn extract_credential<'a>(
    authorization: &[&'a str],
) -> Result<Option<Credential<'a>>, ExtractError> {
    let value = match authorization {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(ExtractError::Duplicate),
    };
    let value = value.trim_matches(is_ows);
    if value.is_empty() {
        return Err(ExtractError::Malformed);
    }
    let (scheme, rest) = match value.find(is_ows) {
        Some(pos) => value.split_at(pos),
        None => (value, ""),
    };
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        AuthScheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        AuthScheme::Dpop
    } else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Err(ExtractError::Empty);
    }
    // "Bearer" / "DPoP" 1*SP token. A tab separator is not allowed.
    let token = rest.trim_start_matches(' ');
    if token.len() == rest.len() || token.starts_with('\t') {
        return Err(ExtractError::Malformed);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(ExtractError::TooLong);
    }
    if !is_b64token(token) {
        return Err(ExtractError::Malformed);
    }
    Ok(Some(Credential { scheme, token }))
}

/// Returns the bearer token from the values of the `Authorization` header: like
/// [`extract_credential`], but a `DPoP` credential gives `Ok(None)` (for callers that only
/// handle bearer tokens).
pub fn extract_bearer<'a>(authorization: &[&'a str]) -> Result<Option<&'a str>, ExtractError> {
    Ok(extract_credential(authorization)?
        .filter(|c| c.scheme == AuthScheme::Bearer)
        .map(|c| c.token))
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Whether a query or form parameter name (decoded, modifiers kept) is `access_token`, in any
/// case and with any modifier or surrounding blanks: the RFC 6750 §2.2/§2.3 ways to present a
/// token, which this gateway refuses (§3.1: one method only; a second token would go upstream
/// unchecked).
pub fn is_token_param(name: &str) -> bool {
    let bare = name.split(':').next().unwrap_or_default().trim();
    bare.eq_ignore_ascii_case("access_token")
}

//! JWS access-token verification: header policy, key selection, signature (`verifier.rs`),
//! then strict claim checks.

use serde_json::{Map, Value};

use super::alg::Algorithm;
use super::claims::{ClaimNames, TokenKind, VerifiedToken};
use super::error::TokenError;
use super::extract::MAX_TOKEN_LEN;
use super::jwks::KeySet;
use super::jws;
use super::verifier::{SigOutcome, Signatures};

/// What a provider accepts in a JWT access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPolicy {
    /// Exact expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values; the token's `aud` must contain one.
    pub audiences: Vec<String>,
    /// Accepted header `alg` values (HMAC additionally needs a secret in the key set).
    pub algorithms: Vec<Algorithm>,
    /// Accepted header `typ` values, compared case-insensitively; `application/` may be
    /// omitted on either side (RFC 7515 §4.1.9). Empty: every token is refused.
    pub accepted_types: Vec<String>,
    /// Tolerated clock difference for `exp`, `nbf` and `iat` (seconds).
    pub clock_skew_secs: u64,
    /// Longest accepted `exp - (iat | nbf | now)` (seconds); `None`: no limit.
    pub max_lifetime_secs: Option<u64>,
}

/// The shape of a bearer token, for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenShape {
    /// Three non-empty base64url segments: a JWS compact serialization.
    Jws,
    /// Five segments: a JWE compact serialization.
    Jwe,
    /// Anything else: introspected.
    Opaque,
}

/// Unverified header and issuer of a JWS, for choosing the provider. Never trust it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwtPeek {
    /// Payload `iss`, when a string.
    pub issuer: Option<String>,
    /// Header `kid`.
    pub kid: Option<String>,
    /// Header `alg`.
    pub alg: Option<String>,
    /// Header `typ`.
    pub typ: Option<String>,
}

/// Classifies a token by its segments (no decoding beyond the alphabet).
pub fn classify(token: &str) -> TokenShape {
    let segments: Vec<&str> = token.split('.').collect();
    match segments.len() {
        3 if segments.iter().all(|s| is_b64url(s)) => TokenShape::Jws,
        5 => TokenShape::Jwe,
        _ => TokenShape::Opaque,
    }
}

pub(crate) fn is_b64url(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Decodes header and payload WITHOUT verifying anything, to route the token by `iss`.
pub fn peek(token: &str) -> Result<JwtPeek, TokenError> {
    let parts = jws::split(token)?;
    let string =
        |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(JwtPeek {
        issuer: string(&parts.payload, "iss"),
        kid: string(&parts.header, "kid"),
        alg: string(&parts.header, "alg"),
        typ: string(&parts.header, "typ"),
    })
}

/// Verifies a JWS access token at time `now` (unix seconds) and returns the proof of it.
///
/// Order: size and structure; header (`crit`, `alg`, `typ`); claim types; key by `kid`;
/// signature; then `iss`, `aud`, `exp`, `nbf`, `iat`, lifetime.
pub fn verify_jwt(
    token: &str,
    policy: &JwtPolicy,
    keys: &KeySet,
    names: &ClaimNames,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    verify_jwt_with(token, policy, keys, names, now, &Signatures::in_wasm())
}

/// [`verify_jwt`] with the signature checked where `sigs` says (the host's crypto for RS*/ES*
/// when it has one: `verifier.rs`). Everything else is the same code.
pub fn verify_jwt_with(
    token: &str,
    policy: &JwtPolicy,
    keys: &KeySet,
    names: &ClaimNames,
    now: u64,
    sigs: &Signatures<'_>,
) -> Result<VerifiedToken, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let parts = jws::split(token)?;
    let header = jws::header(&parts.header)?;
    if header.has_crit {
        return Err(TokenError::CritUnsupported);
    }
    let alg = Algorithm::from_name(header.alg).ok_or(TokenError::AlgNotAllowed)?;
    if !policy.algorithms.contains(&alg) || (alg.is_hmac() && !keys.has_hmac()) {
        return Err(TokenError::AlgNotAllowed);
    }
    let typ = header.typ.ok_or(TokenError::BadType)?;
    if !policy.accepted_types.iter().any(|t| same_type(t, typ)) {
        return Err(TokenError::BadType);
    }
    jws::check_claim_types(&parts.payload)?;

    let mut outcome = SigOutcome::Invalid;
    for verifier in keys.candidates(header.kid, alg)? {
        outcome = verifier.check_with(token, sigs);
        if outcome == SigOutcome::Valid {
            break;
        }
    }
    if outcome != SigOutcome::Valid {
        return Err(TokenError::BadSignature);
    }

    let payload = parts.payload;
    let expires_at = check_claims(&payload, policy, now)?;
    VerifiedToken::from_checked_claims(
        TokenKind::Jwt,
        policy.issuer.clone(),
        expires_at,
        payload,
        names,
    )
}

/// Checks registered claims; returns `exp`.
fn check_claims(
    payload: &Map<String, Value>,
    policy: &JwtPolicy,
    now: u64,
) -> Result<u64, TokenError> {
    let skew = policy.clock_skew_secs;
    let iss = payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(TokenError::MissingClaim("iss"))?;
    if iss != policy.issuer {
        return Err(TokenError::WrongIssuer);
    }
    match payload.get("aud") {
        None => return Err(TokenError::MissingClaim("aud")),
        Some(aud) if !audience_matches(aud, &policy.audiences) => {
            return Err(TokenError::WrongAudience)
        }
        Some(_) => {}
    }
    let exp = jws::numeric_date(payload, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(skew) {
        return Err(TokenError::Expired);
    }
    let nbf = jws::numeric_date(payload, "nbf")?;
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(TokenError::NotYetValid);
    }
    let iat = jws::numeric_date(payload, "iat")?;
    if iat.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(max) = policy.max_lifetime_secs {
        let start = iat.or(nbf).unwrap_or(now);
        if exp.saturating_sub(start) > max {
            return Err(TokenError::LifetimeTooLong);
        }
    }
    Ok(exp)
}

/// True when `aud` (a string or an array of strings) contains one of `accepted`.
pub(crate) fn audience_matches(aud: &Value, accepted: &[String]) -> bool {
    match aud {
        Value::String(a) => accepted.iter().any(|x| x == a),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.iter().any(|x| x == a)),
        _ => false,
    }
}

/// Media-type comparison for `typ`: case-insensitive, `application/` optional when the rest
/// has no `/`.
pub(crate) fn same_type(accepted: &str, typ: &str) -> bool {
    normalize_type(accepted).eq_ignore_ascii_case(normalize_type(typ))
}

fn normalize_type(t: &str) -> &str {
    match t.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => {
            let rest = t.get(12..).unwrap_or_default();
            if rest.contains('/') {
                t
            } else {
                rest
            }
        }
        _ => t,
    }
}

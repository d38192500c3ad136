//! Errors of token verification and introspection.

use thiserror::Error;

/// Why a token was judged structurally malformed (all map to the code `malformed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedReason {
    /// Not three dot-separated segments.
    Segments,
    /// A segment is not canonical unpadded base64url.
    Base64,
    /// A segment is not valid JSON.
    Json,
    /// The header or payload is not a JSON object.
    NotObject,
    /// A JSON object repeats a member name.
    DuplicateMember,
    /// A header member has the wrong type (e.g. `alg` not a string).
    HeaderField,
    /// A claim has the wrong type (e.g. `exp` as a string).
    ClaimType,
}

impl MalformedReason {
    /// Stable name of the reason, for audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            MalformedReason::Segments => "segments",
            MalformedReason::Base64 => "base64",
            MalformedReason::Json => "json",
            MalformedReason::NotObject => "not_object",
            MalformedReason::DuplicateMember => "duplicate_member",
            MalformedReason::HeaderField => "header_field",
            MalformedReason::ClaimType => "claim_type",
        }
    }
}

/// Why a bearer token was refused. Never carries token content or claim values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// The token is longer than [`crate::token::MAX_TOKEN_LEN`].
    #[error("token too long")]
    TooLong,
    /// The token is not a well-formed JWS compact serialization.
    #[error("malformed token ({})", .0.as_str())]
    Malformed(MalformedReason),
    /// The token is a JWE (five segments); encrypted tokens are not supported.
    #[error("encrypted tokens are not supported")]
    JweUnsupported,
    /// The header `alg` is unknown, `none`, not allowed by the policy, or HMAC without a secret.
    #[error("algorithm not allowed")]
    AlgNotAllowed,
    /// The key selected by `kid` cannot verify the header `alg`.
    #[error("algorithm does not match the key")]
    AlgKeyMismatch,
    /// The header carries `crit`; no extension is implemented.
    #[error("critical header extension not supported")]
    CritUnsupported,
    /// The header `typ` is missing or not accepted.
    #[error("token type not accepted")]
    BadType,
    /// No trusted key matches the `kid` (or no `kid` and not exactly one candidate key).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify with any candidate key.
    #[error("bad signature")]
    BadSignature,
    /// A required claim is absent (the claim name is fixed, not token content).
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// `iss` differs from the provider's issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain an accepted audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` has passed (beyond the clock skew).
    #[error("token expired")]
    Expired,
    /// `nbf` lies in the future (beyond the clock skew).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` lies in the future (beyond the clock skew).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `exp` minus `iat` (or `nbf`, or now) exceeds the maximum lifetime.
    #[error("token lifetime too long")]
    LifetimeTooLong,
    /// Introspection says the token is not active.
    #[error("token inactive")]
    Inactive,
    /// Introspection says the token is active but not an access token (a `token_type` such as
    /// `refresh_token`): RFC 6749 §1.5, refresh tokens never go to resource servers.
    #[error("not an access token")]
    NotAccessToken,
    /// The `cnf` claim is malformed or names a confirmation method fhirgate cannot enforce
    /// (only `jkt` and `x5t#S256` are): refused rather than accepted as a bearer token.
    #[error("unsupported token confirmation")]
    BadConfirmation,
    /// The introspection response itself is unusable (not a JSON object, too large);
    /// the engine answers 503, not 401.
    #[error("bad introspection response")]
    IntrospectionBadResponse,
}

impl TokenError {
    /// Stable machine code for audit records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLong => "token_too_long",
            TokenError::Malformed(_) => "malformed",
            TokenError::JweUnsupported => "jwe_unsupported",
            TokenError::AlgNotAllowed => "alg_not_allowed",
            TokenError::AlgKeyMismatch => "alg_key_mismatch",
            TokenError::CritUnsupported => "crit_unsupported",
            TokenError::BadType => "bad_type",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::LifetimeTooLong => "lifetime_too_long",
            TokenError::Inactive => "inactive",
            TokenError::NotAccessToken => "not_access_token",
            TokenError::BadConfirmation => "bad_cnf",
            TokenError::IntrospectionBadResponse => "introspection_bad_response",
        }
    }

    /// Fixed English text safe for `WWW-Authenticate: Bearer error_description="…"`
    /// (no token content, no claim values, no quotes or backslashes).
    pub fn description(&self) -> &'static str {
        match self {
            TokenError::TooLong => "The access token is too long",
            TokenError::Malformed(_) => "The access token is malformed",
            TokenError::JweUnsupported => "Encrypted access tokens are not supported",
            TokenError::AlgNotAllowed => "The token signing algorithm is not allowed",
            TokenError::AlgKeyMismatch => "The token signing algorithm does not match the key",
            TokenError::CritUnsupported => "The token uses an unsupported critical header",
            TokenError::BadType => "The token type is not accepted",
            TokenError::UnknownKey => "The token signing key is unknown",
            TokenError::BadSignature => "The token signature is invalid",
            TokenError::MissingClaim(_) => "The access token lacks a required claim",
            TokenError::WrongIssuer => "The token issuer is not accepted",
            TokenError::WrongAudience => "The token audience is not accepted",
            TokenError::Expired => "The access token expired",
            TokenError::NotYetValid => "The access token is not yet valid",
            TokenError::IssuedInFuture => "The access token is issued in the future",
            TokenError::LifetimeTooLong => "The access token lifetime is too long",
            TokenError::Inactive => "The access token is not active",
            TokenError::NotAccessToken => "The token is not an access token",
            TokenError::BadConfirmation => "The token confirmation (cnf) is not supported",
            TokenError::IntrospectionBadResponse => "The token could not be checked",
        }
    }

    /// True for an expired token (the OperationOutcome code is then `expired`, not `login`).
    pub fn is_expired(&self) -> bool {
        matches!(self, TokenError::Expired)
    }
}

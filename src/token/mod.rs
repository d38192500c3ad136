//! Bearer token layer: extraction from the `Authorization` header, JWKS loading, JWS verification
//! (via jwt-simple) with strict claim checks, RFC 7662 introspection parsing, and a per-worker cache
//! of verified tokens.
//!
//! Pure logic: no `proxy_wasm`, no clock (the caller passes `now` in unix seconds), no I/O.

pub mod alg;
pub mod claims;
pub mod error;
pub mod extract;
mod jws;
mod strict_json;

pub use alg::Algorithm;
pub use claims::{ClaimNames, TokenKind, VerifiedToken};
pub use error::{MalformedReason, TokenError};
pub use extract::{extract_bearer, ExtractError, MAX_TOKEN_LEN};

#[cfg(test)]
mod tests_extract;

//! Token layer: extraction from the `Authorization` header (`Bearer` or `DPoP`), JWKS loading, JWS
//! verification (`verifier.rs`) with strict claim checks, RFC 7662 introspection parsing, a
//! per-worker cache of verified tokens, and sender constraints: the token binding (`cnf`,
//! `binding.rs`), DPoP proofs (`dpop.rs`) and the binding decision (`sender.rs`).
//!
//! Pure logic: no `proxy_wasm`, no clock (the caller passes `now` in unix seconds), no I/O.
//! The only way to obtain a [`VerifiedToken`] is through [`verify_jwt`],
//! [`introspection::parse_response`], the shared-cache form ([`VerifiedToken::from_cache_bytes`])
//! or the clearly marked policy-tooling constructor ([`VerifiedToken::for_policy_test`]).

pub mod alg;
pub mod binding;
pub mod cache;
pub mod claims;
pub mod dpop;
pub mod error;
pub mod extract;
pub mod introspection;
pub mod jwks;
mod jws;
pub mod sender;
pub mod strict_json;
mod verifier;
pub mod verify;

pub use alg::Algorithm;
pub use binding::{BindingKind, Confirmation};
pub use cache::{token_hash, TokenCache};
pub use claims::{ClaimNames, TokenKind, VerifiedToken};
pub use error::{MalformedReason, TokenError};
pub use extract::{
    extract_bearer, extract_credential, is_token_param, AuthScheme, Credential, ExtractError,
    MAX_TOKEN_LEN,
};
pub use introspection::IntrospectionPolicy;
pub use jwks::{JwksError, KeySet};
pub use sender::{
    check_sender, ConnectionFacts, ConstraintMode, SenderError, SenderPolicy, SenderRequest,
    UriPolicy,
};
pub use verifier::Signatures;
pub use verify::{classify, peek, verify_jwt, verify_jwt_with, JwtPeek, JwtPolicy, TokenShape};

#[cfg(test)]
mod tests;

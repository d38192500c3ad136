//! One trusted key bound to one algorithm, wrapping jwt-simple's key types.

use jwt_simple::algorithms::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256PublicKey, ES384PublicKey,
    Ed25519PublicKey, EdDSAPublicKeyLike, HS256Key, HS384Key, HS512Key, MACLike, PS256PublicKey,
    PS384PublicKey, PS512PublicKey, RS256PublicKey, RS384PublicKey, RS512PublicKey,
    RSAPublicKeyLike,
};
use jwt_simple::claims::{JWTClaims, NoCustomClaims};
use jwt_simple::common::VerificationOptions;
use jwt_simple::JWTError;

use super::alg::Algorithm;

/// A public key (or HMAC secret) usable with exactly one algorithm.
#[derive(Clone)]
pub(crate) enum Verifier {
    Rs256(RS256PublicKey),
    Rs384(RS384PublicKey),
    Rs512(RS512PublicKey),
    Ps256(PS256PublicKey),
    Ps384(PS384PublicKey),
    Ps512(PS512PublicKey),
    Es256(ES256PublicKey),
    Es384(ES384PublicKey),
    EdDsa(Ed25519PublicKey),
    Hs256(HS256Key),
    Hs384(HS384Key),
    Hs512(HS512Key),
}

/// What jwt-simple reported, reduced to what the caller needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigOutcome {
    /// The signature (or MAC) verified with this key.
    Valid,
    /// Signature (or MAC) invalid, or the token could not be checked with this key.
    Invalid,
}

impl Verifier {
    /// Builds an RSA verifier for `alg` from big-endian modulus and exponent.
    pub(crate) fn rsa(alg: Algorithm, n: &[u8], e: &[u8]) -> Option<Self> {
        Some(match alg {
            Algorithm::RS256 => Verifier::Rs256(RS256PublicKey::from_components(n, e).ok()?),
            Algorithm::RS384 => Verifier::Rs384(RS384PublicKey::from_components(n, e).ok()?),
            Algorithm::RS512 => Verifier::Rs512(RS512PublicKey::from_components(n, e).ok()?),
            Algorithm::PS256 => Verifier::Ps256(PS256PublicKey::from_components(n, e).ok()?),
            Algorithm::PS384 => Verifier::Ps384(PS384PublicKey::from_components(n, e).ok()?),
            Algorithm::PS512 => Verifier::Ps512(PS512PublicKey::from_components(n, e).ok()?),
            _ => return None,
        })
    }

    /// Builds an HMAC verifier for `alg` from the secret bytes.
    pub(crate) fn hmac(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        Some(match alg {
            Algorithm::HS256 => Verifier::Hs256(HS256Key::from_bytes(secret)),
            Algorithm::HS384 => Verifier::Hs384(HS384Key::from_bytes(secret)),
            Algorithm::HS512 => Verifier::Hs512(HS512Key::from_bytes(secret)),
            _ => return None,
        })
    }

    /// The one algorithm this verifier accepts.
    pub(crate) fn alg(&self) -> Algorithm {
        match self {
            Verifier::Rs256(_) => Algorithm::RS256,
            Verifier::Rs384(_) => Algorithm::RS384,
            Verifier::Rs512(_) => Algorithm::RS512,
            Verifier::Ps256(_) => Algorithm::PS256,
            Verifier::Ps384(_) => Algorithm::PS384,
            Verifier::Ps512(_) => Algorithm::PS512,
            Verifier::Es256(_) => Algorithm::ES256,
            Verifier::Es384(_) => Algorithm::ES384,
            Verifier::EdDsa(_) => Algorithm::EdDSA,
            Verifier::Hs256(_) => Algorithm::HS256,
            Verifier::Hs384(_) => Algorithm::HS384,
            Verifier::Hs512(_) => Algorithm::HS512,
        }
    }

    /// Verifies the compact JWS with jwt-simple. jwt-simple checks that the header `alg` equals
    /// this verifier's algorithm, then the signature; its own `exp`/`nbf`/`iat` checks (run at
    /// `now`, never the real clock) are not relied upon.
    pub(crate) fn check(&self, token: &str, typ: &str, now: u64, skew: u64) -> SigOutcome {
        let options = VerificationOptions {
            artificial_time: Some(jwt_simple::prelude::UnixTimeStamp::from_secs(now)),
            // Bounded so that jwt-simple's fixed-point time arithmetic cannot overflow.
            time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(skew.min(MAX_SKEW))),
            // Our own check of `typ` already ran; this makes jwt-simple accept that same value.
            required_signature_type: Some(typ.to_owned()),
            max_token_length: Some(super::extract::MAX_TOKEN_LEN),
            ..VerificationOptions::default()
        };
        let opts = Some(options);
        let result: Result<JWTClaims<NoCustomClaims>, jwt_simple::Error> = match self {
            Verifier::Rs256(k) => k.verify_token(token, opts),
            Verifier::Rs384(k) => k.verify_token(token, opts),
            Verifier::Rs512(k) => k.verify_token(token, opts),
            Verifier::Ps256(k) => k.verify_token(token, opts),
            Verifier::Ps384(k) => k.verify_token(token, opts),
            Verifier::Ps512(k) => k.verify_token(token, opts),
            Verifier::Es256(k) => k.verify_token(token, opts),
            Verifier::Es384(k) => k.verify_token(token, opts),
            Verifier::EdDsa(k) => k.verify_token(token, opts),
            Verifier::Hs256(k) => k.verify_token(token, opts),
            Verifier::Hs384(k) => k.verify_token(token, opts),
            Verifier::Hs512(k) => k.verify_token(token, opts),
        };
        match result {
            Ok(_) => SigOutcome::Valid,
            Err(e) => match e.downcast_ref::<JWTError>() {
                // jwt-simple checks time only after the signature verified. Time is judged by
                // our own checks (always run afterwards); these errors only prove the signature.
                Some(
                    JWTError::TokenHasExpired | JWTError::TokenNotValidYet | JWTError::ClockDrift,
                ) => SigOutcome::Valid,
                // Header/payload shapes were checked before, so anything else means this key
                // did not verify the token.
                _ => SigOutcome::Invalid,
            },
        }
    }
}

/// Largest clock skew handed to jwt-simple (ten years).
const MAX_SKEW: u64 = 10 * 365 * 24 * 3600;

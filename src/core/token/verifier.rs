//! One trusted key bound to one algorithm, and the JWS signature check with it.
//!
//! Only the signature is checked here: header, claims and time were checked by the caller
//! (`verify.rs`), which also picked this verifier for the header `alg` (`KeySet::candidates`).
//! Primitives: `crate::crypto::rsa` (RS*/PS*), `p256`/`p384` (ES256/ES384, raw `r || s`),
//! `ed25519-compact` (EdDSA with Ed25519), `hmac` + `sha2` (HS*).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier as _;
use sha2::{Sha256, Sha384, Sha512};

use super::alg::Algorithm;
use crate::crypto::{RsaHash, RsaPadding, RsaPublicKey};

/// A public key (or HMAC secret) usable with exactly one algorithm.
#[derive(Clone)]
pub(crate) enum Verifier {
    /// RS*/PS* through `crate::crypto::rsa` (2048-4096 bits, odd e < 2^64).
    Rsa(Algorithm, RsaPublicKey),
    /// ES256: ECDSA on P-256 with SHA-256.
    Es256(Box<p256::ecdsa::VerifyingKey>),
    /// ES384: ECDSA on P-384 with SHA-384.
    Es384(Box<p384::ecdsa::VerifyingKey>),
    /// EdDSA with an Ed25519 key (checked canonical and not of small order at load).
    EdDsa(ed25519_compact::PublicKey),
    /// HS256, keyed once.
    Hs256(Box<Hmac<Sha256>>),
    /// HS384, keyed once.
    Hs384(Box<Hmac<Sha384>>),
    /// HS512, keyed once.
    Hs512(Box<Hmac<Sha512>>),
}

/// Whether a token's signature verified with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigOutcome {
    /// The signature (or MAC) verified with this key.
    Valid,
    /// Signature (or MAC) invalid, or the token could not be checked with this key.
    Invalid,
}

impl Verifier {
    /// Binds a prepared RSA key (2048-4096 bits, odd e < 2^64: see [`RsaPublicKey::new`]) to
    /// `alg`. `None` when `alg` is not RS*/PS*.
    pub(crate) fn rsa(alg: Algorithm, key: RsaPublicKey) -> Option<Self> {
        rsa_scheme(alg)?;
        Some(Verifier::Rsa(alg, key))
    }

    /// Builds an ES256 (`P-256`) or ES384 (`P-384`) verifier from a SEC1 uncompressed point.
    /// `None` when the bytes are not a point on the curve (or the identity).
    pub(crate) fn ecdsa(alg: Algorithm, sec1: &[u8]) -> Option<Self> {
        if sec1.first() != Some(&0x04) {
            return None;
        }
        match alg {
            Algorithm::ES256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
                .ok()
                .map(|k| Verifier::Es256(Box::new(k))),
            Algorithm::ES384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
                .ok()
                .map(|k| Verifier::Es384(Box::new(k))),
            _ => None,
        }
    }

    /// Builds an EdDSA verifier from a 32-byte Ed25519 public key. `None` when the encoding
    /// is not canonical, not a point, or a point of small order (including the identity).
    pub(crate) fn ed25519(x: &[u8]) -> Option<Self> {
        let key = ed25519_compact::PublicKey::from_slice(x).ok()?;
        key.validate().ok()?;
        Some(Verifier::EdDsa(key))
    }

    /// Builds an HMAC verifier for `alg` from the secret bytes.
    pub(crate) fn hmac(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        Some(match alg {
            Algorithm::HS256 => {
                Verifier::Hs256(Box::new(Hmac::<Sha256>::new_from_slice(secret).ok()?))
            }
            Algorithm::HS384 => {
                Verifier::Hs384(Box::new(Hmac::<Sha384>::new_from_slice(secret).ok()?))
            }
            Algorithm::HS512 => {
                Verifier::Hs512(Box::new(Hmac::<Sha512>::new_from_slice(secret).ok()?))
            }
            _ => return None,
        })
    }

    /// The one algorithm this verifier accepts.
    pub(crate) fn alg(&self) -> Algorithm {
        match self {
            Verifier::Rsa(alg, _) => *alg,
            Verifier::Es256(_) => Algorithm::ES256,
            Verifier::Es384(_) => Algorithm::ES384,
            Verifier::EdDsa(_) => Algorithm::EdDSA,
            Verifier::Hs256(_) => Algorithm::HS256,
            Verifier::Hs384(_) => Algorithm::HS384,
            Verifier::Hs512(_) => Algorithm::HS512,
        }
    }

    /// Verifies the signature of a compact JWS whose header and payload the caller already
    /// checked (three segments, header `alg` equal to [`Verifier::alg`]). The signing input
    /// is everything before the last `.`; the signature must be canonical unpadded base64url.
    /// ECDSA signatures are the fixed-size `r || s` of RFC 7518 §3.4 (64 or 96 bytes; DER is
    /// refused); high-S values are accepted, as in RFC 7518 and every common signer.
    pub(crate) fn check(&self, token: &str) -> SigOutcome {
        let Some((signing_input, sig_b64)) = token.rsplit_once('.') else {
            return SigOutcome::Invalid;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(sig_b64) else {
            return SigOutcome::Invalid;
        };
        let message = signing_input.as_bytes();
        let valid = match self {
            Verifier::Rsa(alg, key) => match rsa_scheme(*alg) {
                Some((padding, hash)) => key.verify(padding, hash, message, &signature),
                None => false,
            },
            Verifier::Es256(key) => p256::ecdsa::Signature::from_slice(&signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            Verifier::Es384(key) => p384::ecdsa::Signature::from_slice(&signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            Verifier::EdDsa(key) => ed25519_compact::Signature::from_slice(&signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            Verifier::Hs256(mac) => mac_matches(mac.as_ref(), message, &signature),
            Verifier::Hs384(mac) => mac_matches(mac.as_ref(), message, &signature),
            Verifier::Hs512(mac) => mac_matches(mac.as_ref(), message, &signature),
        };
        if valid {
            SigOutcome::Valid
        } else {
            SigOutcome::Invalid
        }
    }
}

/// Constant-time comparison of the full-length MAC of `message` with `tag`.
fn mac_matches<M: Mac + Clone>(keyed: &M, message: &[u8], tag: &[u8]) -> bool {
    let mut mac = keyed.clone();
    mac.update(message);
    mac.verify_slice(tag).is_ok()
}

/// Padding and hash of an RSA JWS algorithm.
fn rsa_scheme(alg: Algorithm) -> Option<(RsaPadding, RsaHash)> {
    Some(match alg {
        Algorithm::RS256 => (RsaPadding::Pkcs1v15, RsaHash::Sha256),
        Algorithm::RS384 => (RsaPadding::Pkcs1v15, RsaHash::Sha384),
        Algorithm::RS512 => (RsaPadding::Pkcs1v15, RsaHash::Sha512),
        Algorithm::PS256 => (RsaPadding::Pss, RsaHash::Sha256),
        Algorithm::PS384 => (RsaPadding::Pss, RsaHash::Sha384),
        Algorithm::PS512 => (RsaPadding::Pss, RsaHash::Sha512),
        _ => return None,
    })
}

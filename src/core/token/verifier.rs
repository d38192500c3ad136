//! One trusted key bound to one algorithm, and the JWS signature check with it.
//!
//! Only the signature is checked here: header, claims and time were checked by the caller
//! (`verify.rs`), which also picked this verifier for the header `alg` (`KeySet::candidates`).
//! Primitives: `crate::crypto::rsa` (RS*/PS*), `p256`/`p384` (ES256/ES384, raw `r || s`),
//! `ed25519-compact` (EdDSA with Ed25519), `hmac` + `sha2` (HS*).
//!
//! With [`Signatures::with_host`], RS256/RS384/RS512 and ES256/ES384 signatures go to the host's
//! own crypto first (Envoy's `verify_signature`, BoringSSL): the key is the DER of the key this
//! verifier was built from (checked at load exactly as for the Wasm path: sizes, exponent, point
//! on the curve), the hash is the one of the verifier's algorithm (never the token's header),
//! and an ECDSA signature is range-checked here before its `r || s` becomes DER. A host verdict
//! is final; only a host that cannot answer (`HostSignature::Unavailable`) falls back to Wasm.
//! PS* (the host would apply PKCS #1 v1.5), EdDSA and HS* (a secret never leaves the module)
//! are always checked in Wasm.

use std::cell::Cell;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Verifier as _;
use sha2::{Sha256, Sha384, Sha512};

use super::alg::Algorithm;
use crate::crypto::host_sig::{self, Curve};
use crate::crypto::{RsaHash, RsaPadding, RsaPublicKey};
use crate::host::{HostSignature, SignatureCheck};

/// Largest RSA public exponent whose keys go to the host (BoringSSL refuses exponents above 33
/// bits; such keys, which nobody uses, stay in Wasm).
const HOST_MAX_RSA_EXPONENT: u64 = u32::MAX as u64;

/// Where signatures are checked, and how many were checked where.
pub struct Signatures<'a> {
    host: Option<&'a dyn Fn(&SignatureCheck<'_>) -> HostSignature>,
    host_checks: Cell<u32>,
    wasm_checks: Cell<u32>,
}

impl<'a> Signatures<'a> {
    /// Every signature in Wasm.
    pub fn in_wasm() -> Self {
        Signatures {
            host: None,
            host_checks: Cell::new(0),
            wasm_checks: Cell::new(0),
        }
    }

    /// RS*/ES* signatures by `host` first (see the module documentation), the rest in Wasm.
    pub fn with_host(host: &'a dyn Fn(&SignatureCheck<'_>) -> HostSignature) -> Self {
        Signatures {
            host: Some(host),
            ..Signatures::in_wasm()
        }
    }

    /// Signatures the host answered for.
    pub fn host_checks(&self) -> u32 {
        self.host_checks.get()
    }

    /// Signatures checked in Wasm (including fallbacks from a host that could not answer).
    pub fn wasm_checks(&self) -> u32 {
        self.wasm_checks.get()
    }
}

/// A public key (or HMAC secret) usable with exactly one algorithm.
#[derive(Clone)]
pub(crate) enum Verifier {
    /// RS*/PS* through `crate::crypto::rsa` (2048-4096 bits, odd e < 2^64), with the key's DER
    /// for the host (RS* only, e < 2^32).
    Rsa(Algorithm, RsaPublicKey, Option<Arc<[u8]>>),
    /// ES256: ECDSA on P-256 with SHA-256, and the key's DER for the host.
    Es256(Box<p256::ecdsa::VerifyingKey>, Arc<[u8]>),
    /// ES384: ECDSA on P-384 with SHA-384, and the key's DER for the host.
    Es384(Box<p384::ecdsa::VerifyingKey>, Arc<[u8]>),
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
    /// `alg`. `spki` is the key's DER ([`host_sig::rsa_spki`] of the same `n` and `e`), kept for
    /// the host when `alg` is RS* and e < 2^32. `None` when `alg` is not RS*/PS*.
    pub(crate) fn rsa(alg: Algorithm, key: RsaPublicKey, spki: &Arc<[u8]>) -> Option<Self> {
        let (padding, _) = rsa_scheme(alg)?;
        let host = (padding == RsaPadding::Pkcs1v15 && key.exponent() <= HOST_MAX_RSA_EXPONENT)
            .then(|| Arc::clone(spki));
        Some(Verifier::Rsa(alg, key, host))
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
                .map(|k| Verifier::Es256(Box::new(k), host_sig::ec_spki(Curve::P256, sec1).into())),
            Algorithm::ES384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
                .ok()
                .map(|k| Verifier::Es384(Box::new(k), host_sig::ec_spki(Curve::P384, sec1).into())),
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
            Verifier::Rsa(alg, _, _) => *alg,
            Verifier::Es256(..) => Algorithm::ES256,
            Verifier::Es384(..) => Algorithm::ES384,
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
        self.check_with(token, &Signatures::in_wasm())
    }

    /// [`Verifier::check`], by the host of `sigs` first when it has one and this algorithm goes
    /// there (module documentation).
    pub(crate) fn check_with(&self, token: &str, sigs: &Signatures<'_>) -> SigOutcome {
        let Some((signing_input, sig_b64)) = token.rsplit_once('.') else {
            return SigOutcome::Invalid;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(sig_b64) else {
            return SigOutcome::Invalid;
        };
        let message = signing_input.as_bytes();
        if let Some(host) = sigs.host {
            if let Some(outcome) = self.check_by_host(host, sigs, message, &signature) {
                return outcome;
            }
        }
        sigs.wasm_checks
            .set(sigs.wasm_checks.get().saturating_add(1));
        let valid = match self {
            Verifier::Rsa(alg, key, _) => match rsa_scheme(*alg) {
                Some((padding, hash)) => key.verify(padding, hash, message, &signature),
                None => false,
            },
            Verifier::Es256(key, _) => p256::ecdsa::Signature::from_slice(&signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            Verifier::Es384(key, _) => p384::ecdsa::Signature::from_slice(&signature)
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

impl Verifier {
    /// The host's verdict on `signature`, `Some(Invalid)` for a signature refused before any
    /// arithmetic (wrong length, ECDSA scalars out of range), `None` when this verifier's
    /// algorithm does not go to the host or the host could not answer.
    fn check_by_host(
        &self,
        host: &dyn Fn(&SignatureCheck<'_>) -> HostSignature,
        sigs: &Signatures<'_>,
        message: &[u8],
        signature: &[u8],
    ) -> Option<SigOutcome> {
        let der_sig;
        let (hash, key, sig): (&'static str, &[u8], &[u8]) = match self {
            Verifier::Rsa(alg, rsa, Some(der)) => {
                if signature.len() != rsa.len_bytes() {
                    return Some(SigOutcome::Invalid);
                }
                let hash = match alg {
                    Algorithm::RS256 => "sha256",
                    Algorithm::RS384 => "sha384",
                    Algorithm::RS512 => "sha512",
                    _ => return None,
                };
                (hash, der, signature)
            }
            Verifier::Es256(_, der) => {
                // The same range checks as the Wasm path (0 < r, s < n), then DER.
                if p256::ecdsa::Signature::from_slice(signature).is_err() {
                    return Some(SigOutcome::Invalid);
                }
                der_sig = host_sig::ecdsa_sig_der(Curve::P256, signature)?;
                ("sha256", der, &der_sig)
            }
            Verifier::Es384(_, der) => {
                if p384::ecdsa::Signature::from_slice(signature).is_err() {
                    return Some(SigOutcome::Invalid);
                }
                der_sig = host_sig::ecdsa_sig_der(Curve::P384, signature)?;
                ("sha384", der, &der_sig)
            }
            _ => return None,
        };
        let verdict = host(&SignatureCheck {
            hash,
            public_key_der: key,
            signature: sig,
            text: message,
        });
        let outcome = match verdict {
            HostSignature::Valid => SigOutcome::Valid,
            HostSignature::Invalid => SigOutcome::Invalid,
            HostSignature::Unavailable => return None,
        };
        sigs.host_checks
            .set(sigs.host_checks.get().saturating_add(1));
        Some(outcome)
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

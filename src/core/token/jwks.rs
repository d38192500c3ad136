//! Trusted key sets: JWKS loading (RFC 7517/7518/8037) and key selection for a token.
//!
//! The algorithm a key verifies comes from the JWK, never from a token header: its `alg`, else
//! the one algorithm its type implies (RFC 8725 §3.1: one algorithm per key): RSA → RS256, EC
//! P-256 → ES256, EC P-384 → ES384, OKP Ed25519 → EdDSA. An RSA key meant for PS256/PS384/
//! PS512/RS384/RS512 must say so in its `alg`. Unusable keys are skipped with a warning naming the key, never its material.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use thiserror::Error;

use super::alg::Algorithm;
use super::error::TokenError;
use super::strict_json;
use super::verifier::Verifier;
use crate::crypto::{RsaError, RsaPublicKey};

/// Most keys accepted in one JWKS document.
pub const MAX_KEYS: usize = 64;
/// Largest JWKS document accepted (bytes).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Smallest RSA modulus accepted (bits).
pub const MIN_RSA_BITS: usize = crate::crypto::rsa::MIN_MODULUS_BITS;
/// Largest RSA modulus accepted (bits).
pub const MAX_RSA_BITS: usize = crate::crypto::rsa::MAX_MODULUS_BITS;
/// Most keys tried for one token (several keys sharing a `kid`).
const MAX_CANDIDATES: usize = 4;

/// Why a JWKS document or an HMAC secret was refused as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JwksError {
    /// The document is larger than [`MAX_JWKS_BYTES`].
    #[error("JWKS document too large")]
    TooLarge,
    /// Not a JSON object (or it repeats a member name).
    #[error("JWKS document is not a JSON object")]
    NotJson,
    /// No `keys` array.
    #[error("JWKS document has no keys array")]
    MissingKeys,
    /// More than [`MAX_KEYS`] keys.
    #[error("JWKS document has too many keys")]
    TooManyKeys,
    /// The HMAC secret is shorter than the hash output of a requested algorithm.
    #[error("HMAC secret too short")]
    WeakHmacSecret,
    /// No HMAC algorithm was given with the HMAC secret.
    #[error("no HMAC algorithm for the HMAC secret")]
    NoHmacAlgorithm,
}

impl JwksError {
    /// Stable machine code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            JwksError::TooLarge => "jwks_too_large",
            JwksError::NotJson => "jwks_not_json",
            JwksError::MissingKeys => "jwks_missing_keys",
            JwksError::TooManyKeys => "jwks_too_many_keys",
            JwksError::WeakHmacSecret => "hmac_secret_too_short",
            JwksError::NoHmacAlgorithm => "hmac_no_algorithm",
        }
    }
}

/// One trusted key with the verifiers (one per algorithm) it may be used with.
#[derive(Clone)]
struct TrustedKey {
    kid: Option<String>,
    verifiers: Vec<Verifier>,
    hmac: bool,
}

impl TrustedKey {
    fn verifier_for(&self, alg: Algorithm) -> Option<&Verifier> {
        self.verifiers.iter().find(|v| v.alg() == alg)
    }
}

/// The keys trusted for one provider.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<TrustedKey>,
}

impl std::fmt::Debug for KeySet {
    /// Lists kids and algorithms only, never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for k in &self.keys {
            let algs: Vec<&str> = k.verifiers.iter().map(|v| v.alg().name()).collect();
            list.entry(&(k.kid.as_deref(), algs));
        }
        list.finish()
    }
}

impl KeySet {
    /// A set without keys (every JWS then fails with `UnknownKey`).
    pub fn empty() -> Self {
        KeySet::default()
    }

    /// Loads a JWKS document, keeping the keys usable with `allowed` algorithms.
    ///
    /// Returns the set and warnings (one per skipped or downgraded key) for the log. A document
    /// without usable keys gives an empty set, not an error.
    pub fn from_jwks(
        json: &[u8],
        allowed: &[Algorithm],
    ) -> Result<(KeySet, Vec<String>), JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let doc = strict_json::parse_object(json)
            .ok()
            .flatten()
            .ok_or(JwksError::NotJson)?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::MissingKeys)?;
        if entries.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut keys = Vec::new();
        let mut warnings = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let Some(jwk) = entry.as_object() else {
                warnings.push(format!("JWKS key #{index}: skipped, not a JSON object"));
                continue;
            };
            let label = key_label(jwk, index);
            match parse_jwk(jwk, allowed, Unlabelled::Bound) {
                Ok(key) => {
                    if jwk.contains_key("d") {
                        warnings.push(format!(
                            "JWKS key {label}: contains private key members; only its public part is used"
                        ));
                    }
                    keys.push(key);
                }
                Err(reason) => warnings.push(format!("JWKS key {label}: skipped, {reason}")),
            }
        }
        Ok((KeySet { keys }, warnings))
    }

    /// Adds an explicitly configured HMAC secret usable with the HMAC algorithms in `algs`
    /// (others are ignored). The secret has no `kid`: it verifies HMAC tokens whatever
    /// their `kid`. The secret must be at least as long as the longest requested hash output.
    pub fn with_hmac_secret(
        mut self,
        secret: &[u8],
        algs: &[Algorithm],
    ) -> Result<Self, JwksError> {
        let hmac_algs: Vec<Algorithm> = algs.iter().copied().filter(|a| a.is_hmac()).collect();
        let min_len = hmac_algs
            .iter()
            .map(|a| match a {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            })
            .max()
            .ok_or(JwksError::NoHmacAlgorithm)?;
        if secret.len() < min_len {
            return Err(JwksError::WeakHmacSecret);
        }
        let verifiers = hmac_algs
            .iter()
            .filter_map(|a| Verifier::hmac(*a, secret))
            .collect();
        self.keys.push(TrustedKey {
            kid: None,
            verifiers,
            hmac: true,
        });
        Ok(self)
    }

    /// Number of usable keys (an HMAC secret counts as one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys (keys without `kid` are not listed).
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref()).collect()
    }

    /// True when an explicit HMAC secret was added.
    pub fn has_hmac(&self) -> bool {
        self.keys.iter().any(|k| k.hmac)
    }

    /// True when some key can verify `alg`.
    pub fn supports(&self, alg: Algorithm) -> bool {
        self.keys.iter().any(|k| k.verifier_for(alg).is_some())
    }

    /// The verifiers to try for a token with header `kid` and `alg` (at most four).
    ///
    /// With a `kid`: the keys with that `kid` (plus a kid-less HMAC secret for HMAC tokens);
    /// none gives `UnknownKey`, none able to verify `alg` gives `AlgKeyMismatch`.
    /// Without a `kid`: exactly one key must be able to verify `alg`, else `UnknownKey`.
    pub(crate) fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<&Verifier>, TokenError> {
        match kid {
            Some(kid) => {
                let matching: Vec<&TrustedKey> = self
                    .keys
                    .iter()
                    .filter(|k| match &k.kid {
                        Some(k_kid) => k_kid == kid,
                        None => k.hmac && alg.is_hmac(),
                    })
                    .collect();
                if matching.is_empty() {
                    return Err(TokenError::UnknownKey);
                }
                let found: Vec<&Verifier> = matching
                    .iter()
                    .filter_map(|k| k.verifier_for(alg))
                    .take(MAX_CANDIDATES)
                    .collect();
                if found.is_empty() {
                    Err(TokenError::AlgKeyMismatch)
                } else {
                    Ok(found)
                }
            }
            None => {
                let found: Vec<&Verifier> = self
                    .keys
                    .iter()
                    .filter_map(|k| k.verifier_for(alg))
                    .take(2)
                    .collect();
                if found.len() == 1 {
                    Ok(found)
                } else {
                    Err(TokenError::UnknownKey)
                }
            }
        }
    }
}

/// The verifier of a DPoP proof's `jwk` header for `alg` (RFC 9449 §4.2), with the same rules
/// as a JWKS key (sizes, curves, points on the curve, a JWK `alg` or `use` that does not fit).
/// The caller refuses private members first. `Err` says why, without key material.
pub(crate) fn proof_verifier(jwk: &Map<String, Value>, alg: Algorithm) -> Result<Verifier, String> {
    parse_jwk(jwk, &[alg], Unlabelled::Proof)?
        .verifiers
        .into_iter()
        .find(|v| v.alg() == alg)
        .ok_or_else(|| format!("the key cannot verify {alg}"))
}

/// A printable name for a key: its `kid` (sanitized, truncated) or its index.
fn key_label(jwk: &Map<String, Value>, index: usize) -> String {
    match jwk.get("kid").and_then(Value::as_str) {
        Some(kid) => {
            let clean: String = kid
                .chars()
                .take(64)
                .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                .collect();
            format!("kid={clean:?}")
        }
        None => format!("#{index} (no kid)"),
    }
}

/// What an RSA JWK without `alg` verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unlabelled {
    /// A JWKS key: RS256 only (one algorithm per key, RFC 8725 §3.1).
    Bound,
    /// A DPoP proof's own key: the proof's algorithm (the only one `allowed` holds).
    Proof,
}

/// Builds a trusted key from one JWK, or says why it is skipped (no key material in the text).
fn parse_jwk(
    jwk: &Map<String, Value>,
    allowed: &[Algorithm],
    unlabelled: Unlabelled,
) -> Result<TrustedKey, String> {
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("kid is not a string".into()),
    };
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(_)) => return Err("use is not sig".into()),
        Some(_) => return Err("use is not a string".into()),
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops is not an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("key_ops lacks verify".into());
        }
    }
    let jwk_alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            let alg = Algorithm::from_name(name).ok_or("alg is not supported")?;
            if !allowed.contains(&alg) {
                return Err(format!("alg {alg} is not allowed"));
            }
            Some(alg)
        }
        Some(_) => return Err("alg is not a string".into()),
    };
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .ok_or("kty missing or not a string")?;
    let verifiers = match kty {
        "RSA" => rsa_verifiers(jwk, jwk_alg, allowed, unlabelled)?,
        "EC" => vec![ec_verifier(jwk, jwk_alg, allowed)?],
        "OKP" => vec![okp_verifier(jwk, jwk_alg, allowed)?],
        _ => return Err("kty is not supported".into()),
    };
    Ok(TrustedKey {
        kid,
        verifiers,
        hmac: false,
    })
}

/// Decodes a base64url member (padding tolerated).
fn member_bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name} missing or not a string"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("{name} is not base64url"))
}

fn rsa_verifiers(
    jwk: &Map<String, Value>,
    jwk_alg: Option<Algorithm>,
    allowed: &[Algorithm],
    unlabelled: Unlabelled,
) -> Result<Vec<Verifier>, String> {
    let algs: Vec<Algorithm> = match (jwk_alg, unlabelled) {
        (Some(a), _) if a.is_rsa() => vec![a],
        (Some(a), _) => return Err(format!("alg {a} does not fit kty RSA")),
        (None, Unlabelled::Bound) if allowed.contains(&Algorithm::RS256) => vec![Algorithm::RS256],
        (None, Unlabelled::Bound) => {
            return Err(
                "no alg: an RSA key without alg verifies RS256 only, which is not allowed".into(),
            )
        }
        (None, Unlabelled::Proof) => allowed.iter().copied().filter(|a| a.is_rsa()).collect(),
    };
    if algs.is_empty() {
        return Err("no allowed RSA algorithm".into());
    }
    let n = member_bytes(jwk, "n")?;
    let e = member_bytes(jwk, "e")?;
    let n_start = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    let n = n.get(n_start..).unwrap_or_default();
    let bits = match n.first() {
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits is below {MIN_RSA_BITS}"
        ));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!(
            "RSA modulus of {bits} bits is above {MAX_RSA_BITS} (not supported)"
        ));
    }
    let key = RsaPublicKey::new(n, &e).map_err(|err| match err {
        RsaError::Exponent => {
            "RSA exponent is not supported (must be odd, at least 3, below 2^64)".to_owned()
        }
        RsaError::EvenModulus | RsaError::ModulusSize => "RSA modulus is invalid".to_owned(),
    })?;
    let spki: std::sync::Arc<[u8]> = crate::crypto::host_sig::rsa_spki(n, &e).into();
    algs.iter()
        .map(|a| {
            Verifier::rsa(*a, key.clone(), &spki)
                .ok_or_else(|| format!("alg {a} does not fit kty RSA"))
        })
        .collect()
}

fn ec_verifier(
    jwk: &Map<String, Value>,
    jwk_alg: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<Verifier, String> {
    let crv = jwk
        .get("crv")
        .and_then(Value::as_str)
        .ok_or("crv missing")?;
    let (alg, len) = match crv {
        "P-256" => (Algorithm::ES256, 32),
        "P-384" => (Algorithm::ES384, 48),
        _ => return Err("crv is not supported".into()),
    };
    check_alg(alg, jwk_alg, allowed)?;
    let x = member_bytes(jwk, "x")?;
    let y = member_bytes(jwk, "y")?;
    if x.len() != len || y.len() != len {
        return Err("EC coordinates have the wrong length".into());
    }
    let mut sec1 = Vec::with_capacity(1 + 2 * len);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    Verifier::ecdsa(alg, &sec1).ok_or_else(|| "EC point is not on the curve".to_owned())
}

fn okp_verifier(
    jwk: &Map<String, Value>,
    jwk_alg: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<Verifier, String> {
    let crv = jwk
        .get("crv")
        .and_then(Value::as_str)
        .ok_or("crv missing")?;
    if crv != "Ed25519" {
        return Err("crv is not supported".into());
    }
    check_alg(Algorithm::EdDSA, jwk_alg, allowed)?;
    let x = member_bytes(jwk, "x")?;
    if x.len() != 32 {
        return Err("Ed25519 key has the wrong length".into());
    }
    Verifier::ed25519(&x)
        .ok_or_else(|| "Ed25519 key is not a canonical point of large order".to_owned())
}

/// The curve's algorithm must be allowed and equal to the JWK `alg` when present.
fn check_alg(
    curve_alg: Algorithm,
    jwk_alg: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<(), String> {
    if let Some(a) = jwk_alg {
        if a != curve_alg {
            return Err(format!("alg {a} does not fit the curve"));
        }
    }
    if !allowed.contains(&curve_alg) {
        return Err(format!("alg {curve_alg} is not allowed"));
    }
    Ok(())
}

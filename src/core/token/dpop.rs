//! DPoP proofs (RFC 9449 §4.3): parsing and the full check of one proof against the request,
//! the access token it accompanies and the key that token is bound to.
//!
//! The cheap checks come first (structure, `typ`, `alg`, the public `jwk` and its thumbprint
//! against `cnf.jkt`, then `htm`, `htu`, `iat`, `jti`, `ath`), the key is parsed only once its
//! thumbprint matched, and the signature comes last, so that a flood of junk proofs costs no
//! public-key operation. The replay check (`jti` never seen before) needs state shared by the
//! proxy's workers and is the caller's: [`VerifiedProof::replay_key`] names the proof.
//! Nothing here logs or returns proof content.

pub mod htu;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::alg::Algorithm;
use super::jwks::proof_verifier;
use super::jws;
use super::verifier::SigOutcome;
use super::verify::{is_b64url, same_type};

/// Longest proof accepted (bytes): an RSA-4096 `jwk` and signature fit with room to spare.
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` accepted (bytes).
pub const MAX_JTI_LEN: usize = 256;
/// The `typ` a proof must carry.
pub const PROOF_TYPE: &str = "dpop+jwt";
/// How long past `iat + dpopMaxAge` a `jti` is remembered (rounding of the host clock).
pub const REPLAY_MARGIN_MS: u64 = 1000;

/// JWK members that carry private or symmetric key material: a proof carrying one is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof is not valid. Never carries proof content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProofError {
    /// Too long, not a compact JWS, not base64url/JSON objects, duplicate members, `crit`.
    #[error("malformed DPoP proof")]
    Malformed,
    /// `typ` is missing or not `dpop+jwt`.
    #[error("DPoP proof type not accepted")]
    Typ,
    /// `alg` is missing, `none`, HMAC, or not in `dpopAlgorithms`.
    #[error("DPoP proof algorithm not allowed")]
    Alg,
    /// `jwk` missing, not a usable public key for `alg`, symmetric, or with private members.
    #[error("DPoP proof key not accepted")]
    Jwk,
    /// The thumbprint of `jwk` is not the token's `cnf.jkt`.
    #[error("DPoP proof key does not match the token")]
    Jkt,
    /// `htm` is not the request method.
    #[error("DPoP proof method mismatch")]
    Htm,
    /// `htu` is not the request URI.
    #[error("DPoP proof URI mismatch")]
    Htu,
    /// `iat` missing, not a number, or farther than `dpopMaxAge` from now.
    #[error("DPoP proof too old or issued in the future")]
    Iat,
    /// `jti` missing, not a string, empty or too long.
    #[error("DPoP proof identifier missing")]
    Jti,
    /// `ath` missing or not the hash of the access token.
    #[error("DPoP proof access token hash mismatch")]
    Ath,
    /// The signature does not verify with `jwk`.
    #[error("DPoP proof signature invalid")]
    Signature,
}

impl ProofError {
    /// Stable machine code (the reason is `dpop.<code>`).
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::Malformed => "malformed",
            ProofError::Typ => "typ",
            ProofError::Alg => "alg",
            ProofError::Jwk => "jwk",
            ProofError::Jkt => "jkt",
            ProofError::Htm => "htm",
            ProofError::Htu => "htu",
            ProofError::Iat => "iat",
            ProofError::Jti => "jti",
            ProofError::Ath => "ath",
            ProofError::Signature => "signature",
        }
    }

    /// Fixed text safe for `error_description` (no proof content).
    pub fn description(&self) -> &'static str {
        match self {
            ProofError::Malformed => "The DPoP proof is malformed",
            ProofError::Typ => "The DPoP proof type must be dpop+jwt",
            ProofError::Alg => "The DPoP proof algorithm is not allowed",
            ProofError::Jwk => "The DPoP proof key is not an accepted public key",
            ProofError::Jkt => "The DPoP proof key is not the key the token is bound to",
            ProofError::Htm => "The DPoP proof is for another HTTP method",
            ProofError::Htu => "The DPoP proof is for another URI",
            ProofError::Iat => "The DPoP proof is too old or issued in the future",
            ProofError::Jti => "The DPoP proof lacks a valid jti",
            ProofError::Ath => "The DPoP proof is for another access token",
            ProofError::Signature => "The DPoP proof signature is invalid",
        }
    }
}

/// What one proof is checked against.
#[derive(Debug, Clone, Copy)]
pub struct ProofCheck<'a> {
    /// Accepted proof algorithms (`dpopAlgorithms`, asymmetric only).
    pub algorithms: &'a [Algorithm],
    /// How far `iat` may be from now, either way (ms).
    pub max_age_ms: u64,
    /// The request method (`htm` must equal it).
    pub method: &'a str,
    /// The normalized URI `htu` must name ([`htu::expected`]); `None` when the request has no
    /// nameable URI (then every proof fails with `Htu`).
    pub htu: Option<&'a str>,
    /// SHA-256 of the access token (`ath` must be its base64url).
    pub token_hash: &'a [u8; 32],
    /// The token's `cnf.jkt`.
    pub jkt: &'a str,
    /// Now, in ms since the epoch.
    pub now_ms: u64,
}

/// A proof that passed every check except the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// SHA-256 over the key thumbprint and the `jti`: names this proof in the replay cache.
    pub replay_key: [u8; 32],
    /// Until when (ms) a replay of this proof could still pass the `iat` check, plus
    /// [`REPLAY_MARGIN_MS`]: the replay cache must remember it that long.
    pub remember_until_ms: u64,
}

/// Checks one DPoP proof in full (RFC 9449 §4.3 steps 2-12, without the replay check).
pub fn verify_proof(proof: &str, check: &ProofCheck<'_>) -> Result<VerifiedProof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed);
    }
    let parts = jws::split(proof).map_err(|_| ProofError::Malformed)?;
    let header = &parts.header;
    if header.contains_key("crit") {
        return Err(ProofError::Malformed);
    }
    let typ = header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| same_type(PROOF_TYPE, t)) {
        return Err(ProofError::Typ);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Algorithm::from_name)
        .filter(|a| a.is_asymmetric() && check.algorithms.contains(a))
        .ok_or(ProofError::Alg)?;
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(ProofError::Jwk)?;
    let thumbprint = public_jwk_thumbprint(jwk).ok_or(ProofError::Jwk)?;
    if thumbprint != check.jkt {
        return Err(ProofError::Jkt);
    }
    let verifier = proof_verifier(jwk, alg).map_err(|_| ProofError::Jwk)?;

    let claims = &parts.payload;
    if claims.get("htm").and_then(Value::as_str) != Some(check.method) {
        return Err(ProofError::Htm);
    }
    let htu = claims
        .get("htu")
        .and_then(Value::as_str)
        .and_then(htu::normalize);
    match (htu, check.htu) {
        (Some(got), Some(want)) if got == want => {}
        _ => return Err(ProofError::Htu),
    }
    let iat_ms = claims.get("iat").and_then(millis).ok_or(ProofError::Iat)?;
    let oldest = check.now_ms.saturating_sub(check.max_age_ms);
    let newest = check.now_ms.saturating_add(check.max_age_ms);
    if iat_ms < oldest || iat_ms > newest {
        return Err(ProofError::Iat);
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or(ProofError::Jti)?;
    let ath = URL_SAFE_NO_PAD.encode(check.token_hash);
    if claims.get("ath").and_then(Value::as_str) != Some(ath.as_str()) {
        return Err(ProofError::Ath);
    }

    if verifier.check(proof) != SigOutcome::Valid {
        return Err(ProofError::Signature);
    }
    Ok(VerifiedProof {
        replay_key: replay_key(&thumbprint, jti),
        remember_until_ms: iat_ms
            .saturating_add(check.max_age_ms)
            .saturating_add(REPLAY_MARGIN_MS),
    })
}

/// The RFC 7638 SHA-256 thumbprint (base64url) of a public JWK, or `None` when the JWK is not
/// an `EC`, `RSA` or `OKP` public key with canonical base64url members, or carries private or
/// symmetric key material.
pub fn public_jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return None;
    }
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let b64 = |name: &str| member(name).filter(|v| is_b64url(v));
    // Required members in lexicographic order, no whitespace (RFC 7638 §3.2).
    let canonical = match member("kty")? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":"{}","y":"{}"}}"#,
            json_string(member("crv")?),
            b64("x")?,
            b64("y")?
        ),
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64("e")?, b64("n")?),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":"{}"}}"#,
            json_string(member("crv")?),
            b64("x")?
        ),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// A JSON string literal (escaped as RFC 8259 requires).
fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The replay-cache name of a proof: SHA-256 of a label, the key thumbprint and the `jti`.
fn replay_key(thumbprint: &str, jti: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fhirgate dpop jti\0");
    h.update(thumbprint.as_bytes());
    h.update([0u8]);
    h.update(jti.as_bytes());
    h.finalize().into()
}

/// A NumericDate in ms: a non-negative JSON number (fractions kept to the ms).
fn millis(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u.saturating_mul(1000));
    }
    match n.as_f64() {
        // The range keeps the cast exact and far from overflow.
        Some(f) if (0.0..1.0e12).contains(&f) => Some((f * 1000.0) as u64),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

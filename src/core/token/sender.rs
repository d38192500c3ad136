//! The sender-constraint decision (contract §5): may this verified token, presented with this
//! scheme, these `DPoP` headers, on this connection, be used for this request, and how is it
//! bound?
//!
//! - A token bound to a DPoP key (`cnf.jkt`) needs `Authorization: DPoP` and exactly one valid
//!   proof signed by that key; it is never accepted as a bearer token, in any mode. With
//!   `dpop: off` it is refused outright.
//! - A token bound to a certificate (`cnf["x5t#S256"]`) needs a downstream TLS connection whose
//!   client certificate (the one the proxy validated, never a forwarded header) has that
//!   SHA-256; with `mtls: off` it is refused.
//! - `required` refuses tokens without that binding.
//! - An unbound token sent with the `DPoP` scheme is refused (`dpop.unbound`): the scheme says the
//!   token is DPoP-bound, and it is not; accepting it would record a bearer token as bound.
//!
//! The replay check of a proof that passed here is the caller's (it needs the proxy's shared
//! data): see [`SenderOk::proof`].

use thiserror::Error;

use super::alg::Algorithm;
use super::binding::BindingKind;
use super::claims::VerifiedToken;
use super::dpop::{htu, verify_proof, ProofCheck, ProofError, VerifiedProof};
use super::extract::AuthScheme;

/// `senderConstraint.dpop` / `.mtls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintMode {
    /// Not accepted: tokens with this binding are refused.
    Off,
    /// Bound tokens must prove the binding; unbound tokens pass.
    Allowed,
    /// Every token must have this binding and prove it.
    Required,
}

/// The default `dpopAlgorithms` (contract §5).
pub const DEFAULT_DPOP_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// A provider's `senderConstraint`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderPolicy {
    /// DPoP-bound tokens.
    pub dpop: ConstraintMode,
    /// Accepted proof algorithms (asymmetric only).
    pub dpop_algorithms: Vec<Algorithm>,
    /// How far a proof's `iat` may be from now, either way (ms).
    pub dpop_max_age_ms: u64,
    /// Certificate-bound tokens.
    pub mtls: ConstraintMode,
}

impl Default for SenderPolicy {
    /// `allowed`, the default algorithms, 60 s, `allowed`.
    fn default() -> Self {
        SenderPolicy {
            dpop: ConstraintMode::Allowed,
            dpop_algorithms: DEFAULT_DPOP_ALGORITHMS.to_vec(),
            dpop_max_age_ms: 60_000,
            mtls: ConstraintMode::Allowed,
        }
    }
}

impl SenderPolicy {
    /// The `algs` attribute of a `DPoP` challenge: the accepted algorithms, space separated.
    pub fn algs_attribute(&self) -> String {
        let names: Vec<&str> = self.dpop_algorithms.iter().map(|a| a.name()).collect();
        names.join(" ")
    }
}

/// How the request URI a proof names is formed (`fhir.publicBaseUrl`, `fhir.basePath`).
#[derive(Debug, Clone, Copy)]
pub struct UriPolicy<'a> {
    /// The normalized public URL of the FHIR base, when configured.
    pub public_base_url: Option<&'a str>,
    /// The FHIR base path (`""` for the root).
    pub base_path: &'a str,
}

/// What the proxy knows about the downstream connection (never from request headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionFacts {
    /// The connection is TLS (the scheme of the request URI is then `https`).
    pub tls: bool,
    /// SHA-256 of the DER client certificate the proxy validated, if any.
    pub peer_certificate_sha256: Option<[u8; 32]>,
}

/// How the token was presented, and the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct SenderRequest<'a> {
    /// `Bearer` or `DPoP`.
    pub scheme: AuthScheme,
    /// SHA-256 of the access token (for `ath`).
    pub token_hash: &'a [u8; 32],
    /// Every `DPoP` header value, in order.
    pub proofs: &'a [&'a str],
    /// `:method`.
    pub method: &'a str,
    /// `:authority`.
    pub authority: &'a str,
    /// `:path` (query and fragment are ignored).
    pub path: &'a str,
    /// The downstream connection.
    pub connection: ConnectionFacts,
    /// Now, in ms since the epoch.
    pub now_ms: u64,
}

/// The token may be used; the caller still records [`SenderOk::proof`] in the replay cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderOk {
    /// How the token is bound (every binding it has was proven).
    pub binding: BindingKind,
    /// The DPoP proof that was checked, for the replay cache.
    pub proof: Option<VerifiedProof>,
}

/// How a sender-constraint failure is answered (contract §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderAnswer {
    /// 401 `WWW-Authenticate: DPoP error="invalid_dpop_proof", algs="…"`.
    InvalidDpopProof,
    /// 401 `WWW-Authenticate: DPoP error="invalid_token", algs="…"`.
    DpopInvalidToken,
    /// 401 `WWW-Authenticate: Bearer error="invalid_token"`.
    BearerInvalidToken,
    /// 503 with `Retry-After`.
    Unavailable,
}

/// Why the token may not be used this way. Never carries token, proof or certificate content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SenderError {
    /// The one proof is not valid (`dpop.<code>`).
    #[error("{0}")]
    Proof(ProofError),
    /// `DPoP` scheme without a `DPoP` header.
    #[error("DPoP proof missing")]
    DpopMissing,
    /// More than one `DPoP` header (or a comma-joined value).
    #[error("more than one DPoP proof")]
    DpopMultiple,
    /// The proof's `jti` was accepted before (by any worker of this proxy).
    #[error("DPoP proof replayed")]
    DpopReplay,
    /// The proof's replay-cache slot is full of live entries: refused rather than risk a replay.
    #[error("DPoP replay cache full")]
    DpopReplayCacheFull,
    /// The replay cache could not be updated (contention): refused rather than risk a replay.
    #[error("DPoP replay cache busy")]
    DpopReplayCacheBusy,
    /// A DPoP-bound token with the `Bearer` scheme.
    #[error("DPoP-bound token presented as a bearer token")]
    DpopBoundAsBearer,
    /// The `DPoP` scheme with a token that is not DPoP-bound.
    #[error("token is not DPoP-bound")]
    DpopUnbound,
    /// `dpop: required` and the token is not DPoP-bound.
    #[error("DPoP-bound token required")]
    DpopRequired,
    /// `dpop: off`: the `DPoP` scheme or a DPoP-bound token.
    #[error("DPoP not accepted")]
    DpopDisabled,
    /// A certificate-bound token without a client certificate on the connection.
    #[error("client certificate missing")]
    MtlsMissing,
    /// A certificate-bound token with another client certificate.
    #[error("client certificate mismatch")]
    MtlsMismatch,
    /// `mtls: required` and the token is not certificate-bound.
    #[error("certificate-bound token required")]
    MtlsRequired,
    /// `mtls: off` and the token is certificate-bound.
    #[error("certificate-bound tokens not accepted")]
    MtlsDisabled,
}

impl SenderError {
    /// Stable reason code for audit records and metrics (`dpop.replay`, `mtls.mismatch`, …).
    pub fn code(&self) -> String {
        let fixed = match self {
            SenderError::Proof(e) => return format!("dpop.{}", e.code()),
            SenderError::DpopMissing => "dpop.missing",
            SenderError::DpopMultiple => "dpop.multiple",
            SenderError::DpopReplay => "dpop.replay",
            SenderError::DpopReplayCacheFull => "dpop.replay_cache_full",
            SenderError::DpopReplayCacheBusy => "dpop.replay_cache_busy",
            SenderError::DpopBoundAsBearer => "dpop.bound_as_bearer",
            SenderError::DpopUnbound => "dpop.unbound",
            SenderError::DpopRequired => "dpop.required",
            SenderError::DpopDisabled => "dpop.disabled",
            SenderError::MtlsMissing => "mtls.missing",
            SenderError::MtlsMismatch => "mtls.mismatch",
            SenderError::MtlsRequired => "mtls.required",
            SenderError::MtlsDisabled => "mtls.disabled",
        };
        fixed.to_owned()
    }

    /// Fixed text safe for `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            SenderError::Proof(e) => e.description(),
            SenderError::DpopMissing => "A DPoP proof is required with the DPoP scheme",
            SenderError::DpopMultiple => "Exactly one DPoP proof is required",
            SenderError::DpopReplay => "The DPoP proof was used before",
            SenderError::DpopReplayCacheFull | SenderError::DpopReplayCacheBusy => {
                "The DPoP proof could not be checked; retry with a new proof"
            }
            SenderError::DpopBoundAsBearer => {
                "The access token is DPoP-bound: use the DPoP scheme with a proof"
            }
            SenderError::DpopUnbound => "The access token is not DPoP-bound",
            SenderError::DpopRequired => "A DPoP-bound access token is required",
            SenderError::DpopDisabled => "DPoP is not accepted here",
            SenderError::MtlsMissing => {
                "The access token is bound to a client certificate the connection lacks"
            }
            SenderError::MtlsMismatch => "The access token is bound to another client certificate",
            SenderError::MtlsRequired => "A certificate-bound access token is required",
            SenderError::MtlsDisabled => "Certificate-bound access tokens are not accepted here",
        }
    }

    /// The answer the client gets.
    pub fn answer(&self) -> SenderAnswer {
        match self {
            SenderError::Proof(ProofError::Jkt)
            | SenderError::DpopBoundAsBearer
            | SenderError::DpopUnbound
            | SenderError::DpopRequired => SenderAnswer::DpopInvalidToken,
            SenderError::Proof(_)
            | SenderError::DpopMissing
            | SenderError::DpopMultiple
            | SenderError::DpopReplay => SenderAnswer::InvalidDpopProof,
            SenderError::DpopReplayCacheFull | SenderError::DpopReplayCacheBusy => {
                SenderAnswer::Unavailable
            }
            SenderError::DpopDisabled
            | SenderError::MtlsMissing
            | SenderError::MtlsMismatch
            | SenderError::MtlsRequired
            | SenderError::MtlsDisabled => SenderAnswer::BearerInvalidToken,
        }
    }
}

/// Decides whether `token` may be used as presented in `req` under `policy` (contract §5).
///
/// Certificate checks come first (cheap), then the scheme, then the proof (a signature check).
/// On success, a checked proof is returned for the replay cache.
pub fn check_sender(
    token: &VerifiedToken,
    policy: &SenderPolicy,
    uris: &UriPolicy<'_>,
    req: &SenderRequest<'_>,
) -> Result<SenderOk, SenderError> {
    let cnf = token.confirmation();
    match cnf.x5t_s256() {
        Some(_) if policy.mtls == ConstraintMode::Off => return Err(SenderError::MtlsDisabled),
        Some(bound) => match &req.connection.peer_certificate_sha256 {
            None => return Err(SenderError::MtlsMissing),
            Some(presented) if !same_digest(presented, bound) => {
                return Err(SenderError::MtlsMismatch)
            }
            Some(_) => {}
        },
        None if policy.mtls == ConstraintMode::Required => return Err(SenderError::MtlsRequired),
        None => {}
    }
    let binding = token.binding_kind();
    let jkt = match (req.scheme, cnf.jkt()) {
        (AuthScheme::Dpop, _) | (_, Some(_)) if policy.dpop == ConstraintMode::Off => {
            return Err(SenderError::DpopDisabled)
        }
        (AuthScheme::Bearer, Some(_)) => return Err(SenderError::DpopBoundAsBearer),
        (AuthScheme::Bearer, None) if policy.dpop == ConstraintMode::Required => {
            return Err(SenderError::DpopRequired)
        }
        (AuthScheme::Bearer, None) => {
            return Ok(SenderOk {
                binding,
                proof: None,
            })
        }
        (AuthScheme::Dpop, None) => return Err(SenderError::DpopUnbound),
        (AuthScheme::Dpop, Some(jkt)) => jkt,
    };
    let proof = match req.proofs {
        [] => return Err(SenderError::DpopMissing),
        [one] if !one.contains(',') => *one,
        _ => return Err(SenderError::DpopMultiple),
    };
    let expected_htu = htu::expected(
        uris.public_base_url,
        uris.base_path,
        req.connection.tls,
        req.authority,
        req.path,
    );
    let check = ProofCheck {
        algorithms: &policy.dpop_algorithms,
        max_age_ms: policy.dpop_max_age_ms,
        method: req.method,
        htu: expected_htu.as_deref(),
        token_hash: req.token_hash,
        jkt,
        now_ms: req.now_ms,
    };
    let verified =
        verify_proof(proof.trim_matches([' ', '\t']), &check).map_err(SenderError::Proof)?;
    Ok(SenderOk {
        binding,
        proof: Some(verified),
    })
}

/// Compares two digests without an early exit (they are not secret; this keeps it simple to
/// reason about).
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests;

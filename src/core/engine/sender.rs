//! The sender-constraint check on the request path (contract §5): what the request presented
//! ([`SenderFacts`], captured with the headers), the connection facts read from the proxy, the
//! pure decision [`check_sender`], and the replay cache for an accepted DPoP proof. It runs for
//! every request once its token is known, token cache hits included: a cached token is bound
//! exactly like a freshly verified one.

use super::replay::{self, ReplayOutcome};
use super::Worker;
use crate::exchange::SenderCheck;
use crate::host::{Host, StreamId};
use crate::metrics::{self, Metric};
use crate::outcome::{Denial, DenyKind};
use crate::token::sender::SenderAnswer;
use crate::token::{
    check_sender, AuthScheme, BindingKind, ConnectionFacts, SenderError, SenderPolicy,
    SenderRequest, UriPolicy, VerifiedToken,
};

/// The property with the downstream TLS version (absent on a plaintext connection).
pub const TLS_VERSION_PROPERTY: [&str; 2] = ["connection", "tls_version"];
/// The property with the hex SHA-256 of the client certificate Envoy validated on the
/// downstream connection (absent without one).
pub const PEER_CERT_DIGEST_PROPERTY: [&str; 2] = ["connection", "sha256_peer_certificate_digest"];

/// Reads the connection facts the decision needs (only those: each is a hostcall).
fn connection_facts(
    host: &dyn Host,
    stream: StreamId,
    need_tls: bool,
    need_cert: bool,
) -> ConnectionFacts {
    let tls = need_tls
        && host
            .property(stream, &TLS_VERSION_PROPERTY)
            .is_some_and(|v| !v.is_empty());
    let peer_certificate_sha256 = if need_cert {
        host.property(stream, &PEER_CERT_DIGEST_PROPERTY)
            .and_then(|v| parse_hex_digest(&v))
    } else {
        None
    };
    ConnectionFacts {
        tls,
        peer_certificate_sha256,
    }
}

/// A 64-digit hex SHA-256 (either case); anything else reads as no certificate.
pub fn parse_hex_digest(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *byte = u8::try_from(hi << 4 | lo).ok()?;
    }
    Some(out)
}

/// The denial for a sender-constraint failure (contract §5).
pub fn sender_denial(err: &SenderError, policy: &SenderPolicy) -> Denial {
    let kind = match err.answer() {
        SenderAnswer::InvalidDpopProof => DenyKind::InvalidDpopProof {
            algs: policy.algs_attribute(),
        },
        SenderAnswer::DpopInvalidToken => DenyKind::DpopInvalidToken {
            algs: policy.algs_attribute(),
        },
        SenderAnswer::BearerInvalidToken => DenyKind::InvalidToken { expired: false },
        SenderAnswer::Unavailable => DenyKind::Unavailable,
    };
    Denial::new(kind, err.code(), err.description())
}

impl Worker {
    /// Checks how `token` was presented on `stream` and records an accepted DPoP proof in the
    /// replay cache. `Ok` carries the binding the request proved.
    pub(super) fn check_sender(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        token: &VerifiedToken,
        check: &SenderCheck,
    ) -> Result<BindingKind, Denial> {
        let facts = &check.facts;
        let default_policy;
        let policy = match self.config.provider_by_issuer(token.issuer()) {
            Some((_, provider)) => &provider.sender,
            // Cannot happen for a verified token; the default policy still enforces every
            // binding the token has.
            None => {
                default_policy = SenderPolicy::default();
                &default_policy
            }
        };
        let cnf = token.confirmation();
        let dpop = facts.scheme == AuthScheme::Dpop && cnf.jkt().is_some();
        let public_base_url = self.config.public_base_url.as_deref();
        let connection = connection_facts(
            host,
            stream,
            dpop && public_base_url.is_none(),
            cnf.x5t_s256().is_some(),
        );
        let proofs: Vec<&str> = facts.proofs.iter().map(String::as_str).collect();
        let no_hash = [0u8; 32];
        let now_ms = host.now_ms();
        let req = SenderRequest {
            scheme: facts.scheme,
            token_hash: facts.token_hash.as_ref().unwrap_or(&no_hash),
            proofs: &proofs,
            method: &check.method,
            authority: &check.authority,
            path: &check.path,
            connection,
            now_ms,
        };
        let uris = UriPolicy {
            public_base_url,
            base_path: &self.config.base_path,
        };
        let ok = check_sender(token, policy, &uris, &req).map_err(|e| sender_denial(&e, policy))?;
        if let Some(proof) = &ok.proof {
            let outcome = replay::check_and_record(
                host,
                self.config.replay_slots,
                &proof.replay_key,
                proof.remember_until_ms,
                now_ms,
            );
            let err = match outcome {
                ReplayOutcome::Fresh => None,
                ReplayOutcome::Replay => Some(SenderError::DpopReplay),
                ReplayOutcome::Full => Some(SenderError::DpopReplayCacheFull),
                ReplayOutcome::Busy => Some(SenderError::DpopReplayCacheBusy),
            };
            if let Some(err) = err {
                return Err(sender_denial(&err, policy));
            }
            self.metrics.add(Metric::inc(metrics::DPOP_PROOFS_ACCEPTED));
        }
        if cnf.x5t_s256().is_some() {
            self.metrics
                .add(Metric::inc(metrics::MTLS_BINDINGS_ACCEPTED));
        }
        Ok(ok.binding)
    }
}

#[cfg(test)]
mod tests;

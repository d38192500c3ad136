//! Turning a bearer token into a `VerifiedToken`: caches first, then the issuer's keys (fetching
//! them when missing or when the `kid` is unknown), then signature and claims.

use sha2::{Digest, Sha256};
use std::rc::Rc;

use super::{shared_cache, Callout, FetchReason, FetchStart, Worker};
use crate::config::KeySource;
use crate::host::{Host, SignatureCheck};
use crate::metrics::{self, Metric};
use crate::outcome::{Denial, DenyKind};
use crate::token::{
    classify, peek, token_hash, verify_jwt_with, KeySet, Signatures, TokenError, TokenShape,
    VerifiedToken,
};

/// Where authentication of a stream stands.
pub(super) enum AuthStep {
    /// The token is verified.
    Ready(Rc<VerifiedToken>),
    /// The request must be refused.
    Deny(Denial),
    /// Waiting for the keys of this provider.
    WaitKeys(usize),
    /// Waiting for the introspection of the token with this SHA-256.
    WaitIntrospection([u8; 32]),
}

/// The 401 for a token error.
pub(super) fn token_denial(err: &TokenError) -> Denial {
    Denial::new(
        DenyKind::InvalidToken {
            expired: err.is_expired(),
        },
        format!("token.{}", err.code()),
        err.description(),
    )
}

fn unavailable(reason: &str, description: &str) -> Denial {
    Denial::new(DenyKind::Unavailable, reason, description)
}

impl Worker {
    /// Counts where the signatures of one verification were checked.
    fn count_signatures(&mut self, sigs: &Signatures<'_>) {
        if sigs.host_checks() > 0 {
            self.metrics.add(Metric::count(
                metrics::SIGNATURES_HOST,
                i64::from(sigs.host_checks()),
            ));
        }
        if sigs.wasm_checks() > 0 {
            self.metrics.add(Metric::count(
                metrics::SIGNATURES_WASM,
                i64::from(sigs.wasm_checks()),
            ));
        }
    }

    /// Authenticates `bearer`; may start a JWKS fetch or an introspection and ask the stream to
    /// wait. Caches are keyed by the token's SHA-256, never the token.
    pub(super) fn authenticate(&mut self, host: &dyn Host, bearer: &str) -> AuthStep {
        let now_s = host.now_ms() / 1000;
        let hash = token_hash(bearer);
        // A key set the IdP replaced (a key withdrawn) ends the cached verifications at once.
        if !self.remote_keys.is_empty() {
            for keys in self.remote_keys.iter_mut().flatten() {
                keys.sync(host);
            }
            self.note_key_epoch();
        }
        let shared = self.shared_key(&hash);
        if let Some(token) = self.cache.get(&hash, now_s) {
            self.metrics.add(Metric::inc(metrics::TOKEN_CACHE_HITS));
            return AuthStep::Ready(token);
        }
        if self.config.introspection_provider().is_some() {
            if let Some(step) = self.introspection_cached(host, &hash) {
                return step;
            }
        }
        if let Some(token) = shared_cache::get(
            host,
            &self.config_id,
            self.config.shared_cache_slots,
            &shared,
            now_s,
        ) {
            self.metrics
                .add(Metric::inc(metrics::TOKEN_SHARED_CACHE_HITS));
            let token = Rc::new(token);
            let expires_at = token.expires_at();
            self.cache
                .insert(hash, Rc::clone(&token), expires_at, now_s);
            return AuthStep::Ready(token);
        }
        self.metrics.add(Metric::inc(metrics::TOKEN_CACHE_MISSES));
        match classify(bearer) {
            TokenShape::Jwe => AuthStep::Deny(token_denial(&TokenError::JweUnsupported)),
            TokenShape::Opaque => match self.config.introspection_provider() {
                Some((index, _)) => self.introspect(host, bearer, &hash, index, None),
                None => AuthStep::Deny(Denial::new(
                    DenyKind::InvalidToken { expired: false },
                    "token.opaque_not_accepted",
                    "the token is not a signed JWT and no introspection is configured",
                )),
            },
            TokenShape::Jws => self.authenticate_jwt(host, bearer, &hash, now_s),
        }
    }

    fn authenticate_jwt(
        &mut self,
        host: &dyn Host,
        bearer: &str,
        hash: &[u8; 32],
        now_s: u64,
    ) -> AuthStep {
        let peeked = match peek(bearer) {
            Ok(p) => p,
            Err(e) => return AuthStep::Deny(token_denial(&e)),
        };
        let Some(iss) = peeked.issuer.as_deref() else {
            return AuthStep::Deny(token_denial(&TokenError::MissingClaim("iss")));
        };
        let Some((index, provider)) = self.config.provider_by_issuer(iss) else {
            return AuthStep::Deny(token_denial(&TokenError::WrongIssuer));
        };
        let is_remote = matches!(provider.keys, Some(KeySource::Remote(_)));
        let config = Rc::clone(&self.config);
        let Some(provider) = config.providers.get(index) else {
            return AuthStep::Deny(token_denial(&TokenError::WrongIssuer));
        };
        // Two rounds at most: the second after picking up a newer key set another worker stored.
        for round in 0..2 {
            let keys: Rc<KeySet> = match &provider.keys {
                None => {
                    return AuthStep::Deny(Denial::new(
                        DenyKind::InvalidToken { expired: false },
                        "token.jwt_not_accepted",
                        "this issuer's tokens are checked by introspection only",
                    ))
                }
                Some(KeySource::Inline(set)) => Rc::clone(set),
                Some(KeySource::Remote(_)) => match self.remote_usable(host, index) {
                    Ok(set) => set,
                    Err(step) => return step,
                },
            };
            let by_host = |check: &SignatureCheck<'_>| host.verify_signature(check);
            let sigs = Signatures::with_host(&by_host);
            let verified = verify_jwt_with(
                bearer,
                &provider.policy,
                &keys,
                &config.claim_names,
                now_s,
                &sigs,
            );
            self.count_signatures(&sigs);
            match verified {
                Ok(token) => {
                    let token = Rc::new(token);
                    if provider.introspects_jwts() {
                        // Revocation check; only the introspection cache (capped at cacheTtl)
                        // holds this token, so a revoked JWT stops working within cacheTtl.
                        return self.introspect(host, bearer, hash, index, Some(token));
                    }
                    self.cache
                        .insert(*hash, Rc::clone(&token), token.expires_at(), now_s);
                    shared_cache::put(
                        host,
                        &self.config_id,
                        config.shared_cache_slots,
                        &self.shared_key(hash),
                        &token,
                    );
                    return AuthStep::Ready(token);
                }
                Err(TokenError::UnknownKey) if is_remote => {
                    let synced = match self.remote_keys.get_mut(index) {
                        Some(Some(keys)) => keys.sync(host),
                        _ => false,
                    };
                    if !synced || round == 1 {
                        return self.unknown_kid(host, index);
                    }
                }
                Err(e) => return AuthStep::Deny(token_denial(&e)),
            }
        }
        self.unknown_kid(host, index)
    }

    /// Clears the verified-token cache when a remote key set changed since it was filled.
    pub(super) fn note_key_epoch(&mut self) {
        let epoch = self
            .remote_keys
            .iter()
            .flatten()
            .fold(0u64, |acc, k| acc.rotate_left(17) ^ k.content_id());
        if epoch != self.key_epoch {
            self.key_epoch = epoch;
            self.cache.clear();
        }
    }

    /// The shared-cache key of a token: its hash bound to the key sets' documents, so a token
    /// verified with keys since withdrawn is a miss on every worker.
    fn shared_key(&self, hash: &[u8; 32]) -> [u8; 32] {
        if self.key_epoch == 0 {
            return *hash;
        }
        let mut d = Sha256::new();
        d.update(hash);
        d.update(self.key_epoch.to_be_bytes());
        d.finalize().into()
    }

    /// The provider's remote key set, or the step to take when there is none.
    fn remote_usable(&mut self, host: &dyn Host, index: usize) -> Result<Rc<KeySet>, AuthStep> {
        let now = host.now_ms();
        let Some(Some(keys)) = self.remote_keys.get_mut(index) else {
            return Err(AuthStep::Deny(unavailable(
                "jwks.unavailable",
                "signing keys are unavailable",
            )));
        };
        if let Some(set) = keys.usable(now) {
            return Ok(set);
        }
        keys.sync(host);
        if let Some(set) = keys.usable(now) {
            return Ok(set);
        }
        match keys.start_fetch(host, FetchReason::Missing) {
            FetchStart::Started(token) => {
                self.callouts.insert(token, Callout::Jwks(index));
                Err(AuthStep::WaitKeys(index))
            }
            FetchStart::InFlight => Err(AuthStep::WaitKeys(index)),
            FetchStart::NotNow => Err(AuthStep::Deny(unavailable(
                "jwks.unavailable",
                "signing keys are unavailable; retry later",
            ))),
        }
    }

    /// A token named a `kid` we do not know (also after syncing): refetch, rate limited, and wait;
    /// 401 when the IdP's current key set lacks it, 503 while the JWKS endpoint fails.
    fn unknown_kid(&mut self, host: &dyn Host, index: usize) -> AuthStep {
        let Some(Some(keys)) = self.remote_keys.get_mut(index) else {
            return AuthStep::Deny(token_denial(&TokenError::UnknownKey));
        };
        match keys.start_fetch(host, FetchReason::UnknownKid) {
            FetchStart::Started(token) => {
                self.callouts.insert(token, Callout::Jwks(index));
                AuthStep::WaitKeys(index)
            }
            FetchStart::InFlight => AuthStep::WaitKeys(index),
            // The endpoint is failing: whether the kid is genuine (a rotation) cannot be known,
            // so this is an IdP outage (503 + Retry-After), never a 401.
            FetchStart::NotNow if keys.failing(host) => AuthStep::Deny(unavailable(
                "jwks.unavailable",
                "the signing key is unknown and the key set cannot be refreshed; retry later",
            )),
            FetchStart::NotNow => AuthStep::Deny(token_denial(&TokenError::UnknownKey)),
        }
    }
}

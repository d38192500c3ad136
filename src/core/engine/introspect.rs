//! RFC 7662 introspection in the engine: cache lookups, one callout per uncached token per
//! worker (single flight), and the answer handed to every stream waiting on it.
//!
//! Failures of the introspection endpoint (timeout, connection failure, non-2xx, a body that is
//! not a JSON object or too large) answer 503 `transient`, never 401: a 401 during an IdP blip
//! would sign every user out at once. Inactive answers are cached briefly so a flood of one bad
//! token costs one call. The token only ever travels in the callout body; it is never logged and
//! never a cache key (the SHA-256 of the token is).

use std::rc::Rc;

use super::auth::{token_denial, AuthStep};
use super::intro_cache::{self, SharedAnswer};
use super::{Callout, Worker};
use crate::config::{ClientAuth, Introspection, Provider};
use crate::host::{CalloutResult, Host, LogLevel};
use crate::metrics::{self, Metric};
use crate::outcome::{Denial, DenyKind};
use crate::token::introspection::{basic_auth, form_urlencode, parse_response, request_body};
use crate::token::{IntrospectionPolicy, TokenError, VerifiedToken};

/// Time past a callout's own timeout after which a callout that never answered is abandoned.
pub(super) const CALLOUT_GRACE_MS: u64 = 5_000;

/// One introspection callout in flight on this worker.
pub(super) struct Inflight {
    /// The callout token.
    callout: u32,
    /// Index of the provider introspecting.
    provider: usize,
    /// For `mode: always`: the verified JWT whose claims are used when the answer is active.
    jwt: Option<Rc<VerifiedToken>>,
    /// When the callout was dispatched (ms).
    started_ms: u64,
    /// The callout's timeout (ms).
    timeout_ms: u64,
}

/// The 503 for an introspection endpoint that failed.
pub(super) fn introspection_unavailable() -> Denial {
    Denial::new(
        DenyKind::Unavailable,
        "introspection.unavailable",
        "the token could not be checked; retry later",
    )
}

fn policy_of(provider: &Provider) -> IntrospectionPolicy {
    IntrospectionPolicy {
        issuer: Some(provider.policy.issuer.clone()),
        audiences: provider.policy.audiences.clone(),
        clock_skew_secs: provider.policy.clock_skew_secs,
    }
}

/// The callout's headers (pseudo-headers first) and form body.
fn callout_request(intro: &Introspection, bearer: &str) -> (Vec<(&'static str, String)>, String) {
    let mut headers = vec![
        (":method", "POST".to_string()),
        (":path", intro.path.clone()),
        (":authority", intro.authority.clone()),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept", "application/json".to_string()),
    ];
    let mut body = request_body(bearer);
    match intro.auth {
        ClientAuth::Basic => headers.push((
            "authorization",
            basic_auth(&intro.client_id, &intro.client_secret),
        )),
        ClientAuth::Post => {
            body.push_str("&client_id=");
            body.push_str(&form_urlencode(&intro.client_id));
            body.push_str("&client_secret=");
            body.push_str(&form_urlencode(&intro.client_secret));
        }
    }
    (headers, body)
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Worker {
    /// A cached introspection answer for `hash` (this worker's caches, then shared data).
    pub(super) fn introspection_cached(
        &mut self,
        host: &dyn Host,
        hash: &[u8; 32],
    ) -> Option<AuthStep> {
        let now_ms = host.now_ms();
        let now_s = now_ms / 1000;
        if let Some(token) = self.intro_cache.get(hash, now_s) {
            self.metrics
                .add(Metric::inc(metrics::INTROSPECTION_CACHE_HITS));
            return Some(AuthStep::Ready(token));
        }
        if let Some(err) = self.intro_negative.get(hash, now_ms) {
            self.metrics
                .add(Metric::inc(metrics::INTROSPECTION_CACHE_HITS));
            self.metrics
                .add(Metric::inc(metrics::INTROSPECTION_NEGATIVE_CACHE_HITS));
            return Some(AuthStep::Deny(token_denial(&err)));
        }
        let slots = self.config.shared_cache_slots;
        match intro_cache::get(host, &self.config_id, slots, hash, now_ms)? {
            SharedAnswer::Active(token, until_ms) => {
                self.metrics
                    .add(Metric::inc(metrics::INTROSPECTION_CACHE_HITS));
                let token = Rc::new(token);
                self.intro_cache
                    .insert(*hash, Rc::clone(&token), until_ms / 1000, now_s);
                Some(AuthStep::Ready(token))
            }
            SharedAnswer::Refused(err, until_ms) => {
                self.metrics
                    .add(Metric::inc(metrics::INTROSPECTION_CACHE_HITS));
                self.metrics
                    .add(Metric::inc(metrics::INTROSPECTION_NEGATIVE_CACHE_HITS));
                let denial = token_denial(&err);
                self.intro_negative.insert(*hash, err, until_ms, now_ms);
                Some(AuthStep::Deny(denial))
            }
        }
    }

    /// Introspects `bearer` at provider `index` (caches already missed): joins the callout in
    /// flight for the same token on this worker, or starts one. `jwt` is the verified JWT in
    /// `mode: always`.
    pub(super) fn introspect(
        &mut self,
        host: &dyn Host,
        bearer: &str,
        hash: &[u8; 32],
        index: usize,
        jwt: Option<Rc<VerifiedToken>>,
    ) -> AuthStep {
        let now = host.now_ms();
        if let Some(f) = self.intro_inflight.get(hash) {
            if now <= f.started_ms + f.timeout_ms + CALLOUT_GRACE_MS {
                return AuthStep::WaitIntrospection(*hash);
            }
        }
        if let Some(stale) = self.intro_inflight.remove(hash) {
            self.callouts.remove(&stale.callout);
        }
        let config = Rc::clone(&self.config);
        let Some(intro) = config
            .providers
            .get(index)
            .and_then(|p| p.introspection.as_ref())
        else {
            return AuthStep::Deny(introspection_unavailable());
        };
        let (headers, body) = callout_request(intro, bearer);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        match host.http_call(
            &intro.cluster,
            &headers,
            Some(body.as_bytes()),
            intro.timeout_ms,
        ) {
            Some(callout) => {
                self.metrics.add(Metric::inc(metrics::INTROSPECTION_CALLS));
                self.callouts.insert(callout, Callout::Introspection(*hash));
                self.intro_inflight.insert(
                    *hash,
                    Inflight {
                        callout,
                        provider: index,
                        jwt,
                        started_ms: now,
                        timeout_ms: intro.timeout_ms,
                    },
                );
                AuthStep::WaitIntrospection(*hash)
            }
            None => {
                self.metrics
                    .add(Metric::inc(metrics::INTROSPECTION_FAILURES));
                host.log(
                    LogLevel::Error,
                    &format!(
                        "introspection callout to cluster {} refused by the proxy",
                        intro.cluster
                    ),
                );
                AuthStep::Deny(introspection_unavailable())
            }
        }
    }

    /// Handles the answer to introspection callout `callout` for `hash`.
    pub(super) fn on_introspection_response(
        &mut self,
        host: &dyn Host,
        callout: u32,
        hash: [u8; 32],
        result: CalloutResult,
    ) {
        let inflight = match self.intro_inflight.remove(&hash) {
            Some(f) if f.callout == callout => f,
            Some(other) => {
                // An abandoned callout answered after a newer one started: ignore it.
                self.intro_inflight.insert(hash, other);
                return;
            }
            None => return,
        };
        let now_ms = host.now_ms();
        self.metrics.add(Metric::sample(
            metrics::INTROSPECTION_MS,
            ms(now_ms.saturating_sub(inflight.started_ms)),
        ));
        let config = Rc::clone(&self.config);
        let Some(provider) = config.providers.get(inflight.provider) else {
            return;
        };
        let Some(intro) = provider.introspection.as_ref() else {
            return;
        };
        let body = match result {
            CalloutResult::Response { status, body } if (200..300).contains(&status) => body,
            CalloutResult::Response { status, .. } => {
                self.introspection_failed(host, provider, &format!("status {status}"), hash);
                return;
            }
            CalloutResult::Failed => {
                self.introspection_failed(host, provider, "no answer", hash);
                return;
            }
        };
        let policy = policy_of(provider);
        let outcome = match parse_response(&body, &policy, &config.claim_names, now_ms / 1000) {
            Ok(answer) => {
                let token = inflight.jwt.unwrap_or_else(|| Rc::new(answer.clone()));
                let exp_ms = token
                    .expires_at()
                    .min(answer.expires_at())
                    .saturating_mul(1000);
                let until_ms = exp_ms.min(now_ms.saturating_add(intro.cache_ttl_ms));
                self.intro_negative.remove(&hash);
                self.intro_cache
                    .insert(hash, Rc::clone(&token), until_ms / 1000, now_ms / 1000);
                if until_ms > now_ms {
                    intro_cache::put_active(
                        host,
                        &self.config_id,
                        config.shared_cache_slots,
                        &hash,
                        &token,
                        until_ms,
                    );
                }
                Ok(token)
            }
            Err(TokenError::IntrospectionBadResponse) => {
                self.introspection_failed(host, provider, "unusable body", hash);
                return;
            }
            Err(err) => {
                let denial = token_denial(&err);
                // A token that is not valid *yet* may become valid: not cached.
                if err != TokenError::NotYetValid {
                    let until_ms = now_ms.saturating_add(intro.negative_cache_ttl_ms);
                    self.intro_cache.remove(&hash);
                    if until_ms > now_ms {
                        intro_cache::put_refused(
                            host,
                            &self.config_id,
                            config.shared_cache_slots,
                            &hash,
                            &err,
                            until_ms,
                        );
                    }
                    self.intro_negative.insert(hash, err, until_ms, now_ms);
                }
                Err(denial)
            }
        };
        self.finish_introspection_waiters(host, &hash, outcome);
    }

    /// Counts and logs a failed introspection, then answers 503 to every stream waiting on it.
    fn introspection_failed(
        &mut self,
        host: &dyn Host,
        provider: &Provider,
        what: &str,
        hash: [u8; 32],
    ) {
        self.metrics
            .add(Metric::inc(metrics::INTROSPECTION_FAILURES));
        host.log(
            LogLevel::Warn,
            &format!(
                "introspection for provider {} failed ({what}); answering 503",
                provider.name
            ),
        );
        self.finish_introspection_waiters(host, &hash, Err(introspection_unavailable()));
    }

    /// Abandons introspection callouts that outlived their timeout (the proxy should have failed
    /// them) and answers 503 to their waiters and to streams that waited too long.
    pub(super) fn expire_introspections(&mut self, host: &dyn Host) {
        let now = host.now_ms();
        let stale: Vec<[u8; 32]> = self
            .intro_inflight
            .iter()
            .filter(|(_, f)| now > f.started_ms + f.timeout_ms + CALLOUT_GRACE_MS)
            .map(|(h, _)| *h)
            .collect();
        for hash in stale {
            if let Some(f) = self.intro_inflight.remove(&hash) {
                self.callouts.remove(&f.callout);
                self.metrics
                    .add(Metric::inc(metrics::INTROSPECTION_FAILURES));
            }
            self.finish_introspection_waiters(host, &hash, Err(introspection_unavailable()));
        }
        self.fail_orphan_introspection_waiters(host);
    }
}

#[cfg(test)]
mod tests;

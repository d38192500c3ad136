//! Remote JWKS: one fetcher across all worker VMs, coordinated through shared data.
//!
//! Two shared-data entries per key source: `…meta`, a small JSON record (version, schedule, a
//! fetch lock with an expiry, failure count) updated with compare-and-swap, and `…keys`, the last
//! good JWKS document with its version. A worker that wins the lock fetches; every worker notices
//! a new version on its next tick or request and parses the document once. A fetch lock that
//! outlives its callout (worker gone) simply expires.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::RemoteJwks;
use crate::host::{CalloutResult, Host, LogLevel, MetricKind};
use crate::metrics;
use crate::token::{Algorithm, KeySet};

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why a fetch is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReason {
    /// The refresh period passed (or the last attempt failed and its backoff passed).
    Scheduled,
    /// A token named a `kid` the key set does not have.
    UnknownKid,
    /// There is no usable key set at all.
    Missing,
}

/// What an attempt to start a fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchStart {
    /// This worker dispatched the callout with this token.
    Started(u32),
    /// A fetch is already running (here or on another worker).
    InFlight,
    /// Rate limits forbid a fetch now.
    NotNow,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    version: u64,
    last_ok_ms: u64,
    next_fetch_ms: u64,
    lock_until_ms: u64,
    last_attempt_ms: u64,
    last_kid_refetch_ms: u64,
    failures: u32,
}

#[derive(Serialize, Deserialize)]
struct Content {
    version: u64,
    jwks: String,
}

/// One worker's view of a remote key source.
#[derive(Debug)]
pub struct RemoteKeys {
    source: RemoteJwks,
    algorithms: Vec<Algorithm>,
    meta_key: String,
    keys_key: String,
    provider: String,
    keys: Option<Rc<KeySet>>,
    /// Digest of the JWKS document `keys` came from (0 before any): the same on every worker
    /// holding the same document, whatever its version.
    content_id: u64,
    version: u64,
    last_ok_ms: u64,
    /// Token of this worker's fetch in flight, with its start time.
    inflight: Option<(u32, u64)>,
}

impl RemoteKeys {
    /// A view with no keys yet; shared-data keys derive from the source, so every worker (and
    /// every filter chain using the same JWKS endpoint) shares one fetcher.
    pub fn new(provider: &str, source: &RemoteJwks, algorithms: &[Algorithm]) -> Self {
        let digest = Sha256::digest(
            format!(
                "{}\n{}\n{}\n{:?}",
                source.cluster, source.authority, source.path, algorithms
            )
            .as_bytes(),
        );
        let id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        RemoteKeys {
            source: source.clone(),
            algorithms: algorithms.to_vec(),
            meta_key: format!("fhirgate.jwks.{id}.meta"),
            keys_key: format!("fhirgate.jwks.{id}.keys"),
            provider: provider.to_string(),
            keys: None,
            content_id: 0,
            version: 0,
            last_ok_ms: 0,
            inflight: None,
        }
    }

    /// The key set if one was loaded and is not older than `maxStaleness`.
    pub fn usable(&self, now_ms: u64) -> Option<Rc<KeySet>> {
        let fresh = now_ms.saturating_sub(self.last_ok_ms) <= self.source.max_staleness_ms;
        self.keys.clone().filter(|_| fresh)
    }

    /// Identifies the key set in use by its document (0 before any): tokens verified with
    /// another document are not reused from caches once this changes (a withdrawn key stops
    /// verifying at once, not when the cached tokens expire).
    pub fn content_id(&self) -> u64 {
        self.content_id
    }

    /// Whether this worker has a fetch in flight with this token.
    pub fn owns_callout(&self, token: u32) -> bool {
        self.inflight.map(|(t, _)| t) == Some(token)
    }

    /// Whether a fetch is running on this worker.
    pub fn fetching_here(&self) -> bool {
        self.inflight.is_some()
    }

    /// Age in seconds of the current key set (for the gauge), if any.
    pub fn age_secs(&self, now_ms: u64) -> Option<u64> {
        self.keys
            .as_ref()
            .map(|_| now_ms.saturating_sub(self.last_ok_ms) / 1000)
    }

    /// Whether the last fetch (by any worker) failed: the endpoint is failing now.
    pub fn failing(&self, host: &dyn Host) -> bool {
        self.read_meta(host).0.failures > 0
    }

    fn read_meta(&self, host: &dyn Host) -> (Meta, Option<u32>) {
        match host.shared_get(&self.meta_key) {
            Some((bytes, cas)) => (
                serde_json::from_slice(&bytes).unwrap_or_default(),
                Some(cas),
            ),
            None => (Meta::default(), None),
        }
    }

    /// Picks up a newer key set another worker stored. Returns true when the keys changed.
    pub fn sync(&mut self, host: &dyn Host) -> bool {
        let (meta, _) = self.read_meta(host);
        self.last_ok_ms = self.last_ok_ms.max(meta.last_ok_ms);
        if meta.version == self.version || meta.version == 0 {
            return false;
        }
        let Some((bytes, _)) = host.shared_get(&self.keys_key) else {
            return false;
        };
        let Ok(content) = serde_json::from_slice::<Content>(&bytes) else {
            return false;
        };
        if content.version <= self.version {
            return false;
        }
        match self.parse(content.jwks.as_bytes()) {
            Ok((set, _)) => {
                self.keys = Some(Rc::new(set));
                self.content_id = content_digest(&content.jwks);
                self.version = content.version;
                true
            }
            Err(_) => false,
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<(KeySet, Vec<String>), String> {
        let (mut set, warnings) =
            KeySet::from_jwks(bytes, &self.algorithms).map_err(|e| e.to_string())?;
        if let Some(secret) = &self.source.hmac_secret {
            set = set
                .with_hmac_secret(secret, &self.algorithms)
                .map_err(|e| e.to_string())?;
        }
        // An empty (or wholly unusable) set the IdP served is its statement, not an outage: it
        // replaces the last keys (a key compromise is answered by withdrawing the key).
        Ok((set, warnings))
    }

    /// Whether a scheduled refresh is due (and nobody holds the lock).
    pub fn due(&self, host: &dyn Host) -> bool {
        let now = host.now_ms();
        let (meta, _) = self.read_meta(host);
        now >= meta.next_fetch_ms && now >= meta.lock_until_ms && self.inflight.is_none()
    }

    /// Tries to become the fetcher and dispatch the callout.
    pub fn start_fetch(&mut self, host: &dyn Host, reason: FetchReason) -> FetchStart {
        let now = host.now_ms();
        if let Some((_, since)) = self.inflight {
            if now < since + self.source.timeout_ms + 1000 {
                return FetchStart::InFlight;
            }
            self.inflight = None;
        }
        for _ in 0..4 {
            let (mut meta, cas) = self.read_meta(host);
            if now < meta.lock_until_ms {
                return FetchStart::InFlight;
            }
            let allowed = match reason {
                FetchReason::Scheduled => now >= meta.next_fetch_ms,
                // While the endpoint fails, the failure backoff paces retries instead: a failed
                // attempt did not tell whether the kid exists, so it must not cost a rotated
                // key `minRefetchInterval` once the IdP is back.
                FetchReason::UnknownKid => {
                    now.saturating_sub(meta.last_kid_refetch_ms)
                        >= self.source.min_refetch_interval_ms
                        || meta.last_kid_refetch_ms == 0
                        || (meta.failures > 0 && now >= meta.next_fetch_ms)
                }
                FetchReason::Missing => {
                    now.saturating_sub(meta.last_attempt_ms) >= 1000 || meta.last_attempt_ms == 0
                }
            };
            if !allowed {
                return FetchStart::NotNow;
            }
            meta.lock_until_ms = now + self.source.timeout_ms + 1000;
            meta.last_attempt_ms = now;
            if reason == FetchReason::UnknownKid {
                meta.last_kid_refetch_ms = now;
            }
            let Ok(bytes) = serde_json::to_vec(&meta) else {
                return FetchStart::NotNow;
            };
            if !host.shared_set(&self.meta_key, &bytes, cas) {
                continue;
            }
            let headers = [
                (":method", "GET"),
                (":path", self.source.path.as_str()),
                (":authority", self.source.authority.as_str()),
                ("accept", "application/jwk-set+json, application/json"),
            ];
            return match host.http_call(
                &self.source.cluster,
                &headers,
                None,
                self.source.timeout_ms,
            ) {
                Some(token) => {
                    self.inflight = Some((token, now));
                    host.metric(MetricKind::Counter, metrics::JWKS_FETCHES, 1);
                    FetchStart::Started(token)
                }
                None => {
                    host.log(
                        LogLevel::Error,
                        &format!(
                            "provider {}: cannot call cluster `{}` for the JWKS",
                            self.provider, self.source.cluster
                        ),
                    );
                    self.record_failure(host);
                    FetchStart::NotNow
                }
            };
        }
        FetchStart::InFlight
    }

    /// Handles the answer to this worker's fetch. Returns true when a new key set is in place.
    pub fn on_fetch_result(&mut self, host: &dyn Host, result: CalloutResult) -> bool {
        self.inflight = None;
        let parsed = match result {
            CalloutResult::Response { status: 200, body } if body.len() <= MAX_JWKS_BYTES => {
                match std::str::from_utf8(&body) {
                    Ok(text) => self.parse(text.as_bytes()).map(|p| (text.to_string(), p)),
                    Err(_) => Err("the JWKS is not UTF-8".to_string()),
                }
            }
            CalloutResult::Response { status: 200, .. } => Err("the JWKS is too large".to_string()),
            CalloutResult::Response { status, .. } => {
                Err(format!("the IdP answered HTTP {status}"))
            }
            CalloutResult::Failed => Err("the callout failed or timed out".to_string()),
        };
        match parsed {
            Ok((text, (set, warnings))) => {
                for w in warnings {
                    host.log(
                        LogLevel::Warn,
                        &format!("provider {}: JWKS: {w}", self.provider),
                    );
                }
                if set.is_empty() {
                    host.log(
                        LogLevel::Error,
                        &format!(
                            "provider {}: the JWKS answer has no usable key: it replaces the last key set, and this provider's tokens are refused until the IdP publishes one",
                            self.provider
                        ),
                    );
                }
                self.store(host, text, set);
                true
            }
            Err(why) => {
                let stale = if self.keys.is_some() {
                    "; the last good key set keeps serving"
                } else {
                    ""
                };
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "provider {}: JWKS fetch failed: {why}{stale}",
                        self.provider
                    ),
                );
                host.metric(MetricKind::Counter, metrics::JWKS_FETCH_FAILURES, 1);
                self.record_failure(host);
                false
            }
        }
    }

    fn store(&mut self, host: &dyn Host, jwks: String, set: KeySet) {
        let now = host.now_ms();
        for _ in 0..8 {
            let (mut meta, cas) = self.read_meta(host);
            let version = meta.version.max(self.version) + 1;
            let content = Content {
                version,
                jwks: jwks.clone(),
            };
            let Ok(content_bytes) = serde_json::to_vec(&content) else {
                return;
            };
            meta.version = version;
            meta.last_ok_ms = now;
            meta.next_fetch_ms = now + self.source.refresh_ms;
            meta.lock_until_ms = 0;
            meta.failures = 0;
            let Ok(meta_bytes) = serde_json::to_vec(&meta) else {
                return;
            };
            // The content goes first: a worker seeing the new version must find the document.
            host.shared_set(&self.keys_key, &content_bytes, None);
            if host.shared_set(&self.meta_key, &meta_bytes, cas) {
                self.keys = Some(Rc::new(set));
                self.content_id = content_digest(&jwks);
                self.version = version;
                self.last_ok_ms = now;
                host.log(
                    LogLevel::Info,
                    &format!(
                        "provider {}: JWKS loaded (version {version})",
                        self.provider
                    ),
                );
                return;
            }
        }
        // Could not publish (contention); keep the keys locally anyway.
        self.keys = Some(Rc::new(set));
        self.content_id = content_digest(&jwks);
        self.last_ok_ms = now;
    }

    fn record_failure(&mut self, host: &dyn Host) {
        let now = host.now_ms();
        for _ in 0..8 {
            let (mut meta, cas) = self.read_meta(host);
            meta.failures = meta.failures.saturating_add(1);
            let backoff = 1000u64
                .saturating_mul(1 << meta.failures.min(5))
                .min(30_000)
                .min(self.source.refresh_ms);
            meta.next_fetch_ms = now + backoff;
            meta.lock_until_ms = 0;
            let Ok(bytes) = serde_json::to_vec(&meta) else {
                return;
            };
            if host.shared_set(&self.meta_key, &bytes, cas) {
                return;
            }
        }
    }
}

/// The first 8 bytes of the document's SHA-256.
fn content_digest(jwks: &str) -> u64 {
    let d = Sha256::digest(jwks.as_bytes());
    let mut first = [0u8; 8];
    for (slot, byte) in first.iter_mut().zip(d.iter()) {
        *slot = *byte;
    }
    u64::from_be_bytes(first)
}

//! The request state machine: everything between the proxy's callbacks and the pure decision.
//!
//! A [`Worker`] lives in each worker VM (one per Envoy worker thread). The glue forwards each
//! proxy callback to it with a [`Host`]; the worker authenticates the token (cache, JWKS,
//! callouts), waits for a body when the decision needs one, asks [`crate::decision`] what to do
//! and carries it out: continue, answer locally, or pause until a callout answers. A stream
//! parked on a callout is finished by whichever callback brings the answer.

mod audit;
mod auth;
mod intro_cache;
mod introspect;
mod keys;
mod response;
mod shared_cache;
mod stream;

use std::collections::HashMap;
use std::rc::Rc;

use crate::audit::ship::ShipQueue;
use crate::config::{Config, KeySource};
use crate::host::{CalloutResult, Host, LogLevel, MetricKind, StreamId};
use crate::token::TokenCache;

pub use keys::{FetchReason, FetchStart, RemoteKeys};
use stream::Stream;

/// What the glue tells the proxy after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let the request go on.
    Continue,
    /// Hold the request (waiting for a body or a callout, or answered locally).
    Pause,
}

/// What a callout this worker started was for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Callout {
    /// JWKS fetch for provider index.
    Jwks(usize),
    /// Introspection of the token with this SHA-256.
    Introspection([u8; 32]),
    /// A batch of audit records to the collector.
    AuditBatch,
}

/// One worker VM's state: compiled configuration, key sets, token cache, streams in flight.
pub struct Worker {
    config: Rc<Config>,
    config_id: String,
    remote_keys: Vec<Option<RemoteKeys>>,
    cache: TokenCache,
    /// Active introspection answers (capped at `cacheTtl` and the token's `exp`).
    intro_cache: TokenCache,
    /// Inactive introspection answers (for `negativeCacheTtl`).
    intro_negative: intro_cache::NegativeCache,
    /// Introspection callouts in flight, by token hash (single flight per worker).
    intro_inflight: HashMap<[u8; 32], introspect::Inflight>,
    callouts: HashMap<u32, Callout>,
    streams: HashMap<StreamId, Stream>,
    responses: HashMap<StreamId, response::PendingResponse>,
    /// Audit records waiting for the collector, when one is configured.
    shipper: Option<ShipQueue>,
    /// The collector is failing (logged once per episode).
    ship_failing: bool,
}

impl Worker {
    /// Builds a worker from a validated configuration. `config_id` distinguishes shared-data
    /// entries of different configurations (e.g. a hash of the configuration bytes).
    pub fn new(config: Config, config_id: &str) -> Worker {
        let remote_keys = config
            .providers
            .iter()
            .map(|p| match &p.keys {
                Some(KeySource::Remote(r)) => {
                    Some(RemoteKeys::new(&p.name, r, &p.policy.algorithms))
                }
                _ => None,
            })
            .collect();
        Worker {
            shipper: config.audit.collector.as_ref().map(ShipQueue::new),
            ship_failing: false,
            cache: TokenCache::new(config.cache_max_entries),
            intro_cache: TokenCache::new(config.cache_max_entries),
            intro_negative: intro_cache::NegativeCache::new(config.cache_max_entries),
            intro_inflight: HashMap::new(),
            config: Rc::new(config),
            config_id: config_id.to_string(),
            remote_keys,
            callouts: HashMap::new(),
            streams: HashMap::new(),
            responses: HashMap::new(),
        }
    }

    /// The configuration this worker runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Periodic work: pick up key sets other workers fetched, start due refreshes, finish streams
    /// that waited on another worker's fetch, and give up on streams whose wait expired (key
    /// fetches and introspection callouts that never answered), and send the audit batches due.
    pub fn on_tick(&mut self, host: &dyn Host) {
        // First, while the tick's own (root) context is the one in effect: a callout dispatched
        // after a stream was finished here would belong to that stream, and end with it.
        self.flush_audit(host);
        let now = host.now_ms();
        for i in 0..self.remote_keys.len() {
            let Some(Some(keys)) = self.remote_keys.get_mut(i) else {
                continue;
            };
            let changed = keys.sync(host);
            if keys.due(host) {
                if let FetchStart::Started(token) = keys.start_fetch(host, FetchReason::Scheduled) {
                    self.callouts.insert(token, Callout::Jwks(i));
                }
            }
            if let Some(age) = keys.age_secs(now) {
                host.metric(
                    MetricKind::Gauge,
                    "jwks_age_seconds",
                    i64::try_from(age).unwrap_or(i64::MAX),
                );
            }
            let fetching = keys.fetching_here();
            if changed || !fetching {
                self.wake_key_waiters(host, i, !fetching);
            }
        }
        self.expire_introspections(host);
    }

    /// Handles the answer to a callout this worker started (on any of its contexts).
    pub fn on_callout_response(&mut self, host: &dyn Host, token: u32, result: CalloutResult) {
        match self.callouts.remove(&token) {
            Some(Callout::Jwks(i)) => {
                let mut usable = false;
                if let Some(Some(keys)) = self.remote_keys.get_mut(i) {
                    if keys.owns_callout(token) {
                        keys.on_fetch_result(host, result);
                    }
                    usable = keys.usable(host.now_ms()).is_some();
                }
                if usable {
                    self.wake_key_waiters(host, i, true);
                } else {
                    // The fetch failed and there is nothing to serve with: waiters get 503
                    // now rather than starting fetch after fetch.
                    self.fail_key_waiters(host, i);
                }
            }
            Some(Callout::Introspection(hash)) => {
                self.on_introspection_response(host, token, hash, result);
            }
            Some(Callout::AuditBatch) => self.on_audit_response(host, token, result),
            None => host.log(
                LogLevel::Debug,
                "callout answer for an unknown token ignored",
            ),
        }
    }

    /// Forgets a finished stream. A request that was allowed but whose response never came
    /// (upstream reset, client gone) still gets its audit record.
    pub fn on_stream_done(&mut self, host: &dyn Host, stream: StreamId) {
        self.streams.remove(&stream);
        if let Some(p) = self.responses.remove(&stream) {
            let record = crate::audit::AuditRecord::new(
                host.now_ms(),
                &p.info,
                Some(&p.token),
                &p.decision,
                0,
            );
            self.write_audit(host, stream, record, Some(&p.token), p.started_ms);
        }
    }

    /// Number of streams this worker is tracking (paused or waiting for a body).
    pub fn streams_in_flight(&self) -> usize {
        self.streams.len()
    }
}

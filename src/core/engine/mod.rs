//! The engine: the executor of each request's [`Exchange`], plus everything shared between
//! requests — verified-token caches, JWKS key sets fetched for all workers, introspection with
//! single flight, and the audit shipper.
//!
//! A [`Worker`] lives in each worker VM (one per Envoy worker thread). The glue forwards each
//! proxy callback to it with a [`Host`]; the worker turns the callback into an event of the
//! stream's exchange, carries out the effects the exchange answers with (hostcalls, cache
//! lookups, callouts) and feeds their results back as events, and returns the exchange's verdict
//! to the proxy. A callout is tied to the streams it resumes: when it answers, exactly those
//! streams get their event.

mod audit;
mod auth;
mod exec;
mod intro_cache;
mod introspect;
mod keys;
mod replay;
mod sender;
mod shared_cache;
#[cfg(test)]
mod test_host;

use std::collections::HashMap;
use std::rc::Rc;

use crate::audit::ship::ShipQueue;
use crate::config::{Config, KeySource};
use crate::exchange::{Direction, Exchange, HoldMode};
use crate::host::{CalloutResult, Host, LogLevel, OneClock, StreamId};
use crate::metrics::{self, Metric, MetricBuffer};
use crate::token::TokenCache;

pub use keys::{FetchReason, FetchStart, RemoteKeys};
pub use replay::{SLOT_BYTES as REPLAY_SLOT_BYTES, WAYS as REPLAY_SLOT_PROOFS};

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

/// One stream in flight: its exchange and what the proxy was last told.
struct Slot {
    exchange: Exchange,
    /// The direction the last callback held (answered `Pause`), if any: an event that comes
    /// from elsewhere (a callout, the timer) and lets the stream go on must resume it.
    held: Option<Direction>,
    /// When the stream began to wait for the engine (keys or introspection), if it waits.
    waiting_since_ms: Option<u64>,
}

/// One worker VM's state: compiled configuration, key sets, token cache, streams in flight.
pub struct Worker {
    config: Rc<Config>,
    config_id: String,
    remote_keys: Vec<Option<RemoteKeys>>,
    /// The remote key sets' documents the cached tokens were verified with (see
    /// [`Worker::note_key_epoch`]).
    key_epoch: u64,
    cache: TokenCache,
    /// Active introspection answers (capped at `cacheTtl` and the token's `exp`).
    intro_cache: TokenCache,
    /// Inactive introspection answers (for `negativeCacheTtl`).
    intro_negative: intro_cache::NegativeCache,
    /// Introspection callouts in flight, by token hash (single flight per worker).
    intro_inflight: HashMap<[u8; 32], introspect::Inflight>,
    callouts: HashMap<u32, Callout>,
    streams: HashMap<StreamId, Slot>,
    /// Streams waiting for provider `i`'s keys.
    key_waiters: HashMap<usize, Vec<StreamId>>,
    /// Streams waiting for the introspection of a token (by its SHA-256).
    intro_waiters: HashMap<[u8; 32], Vec<StreamId>>,
    /// Audit records waiting for the collector, when one is configured.
    shipper: Option<ShipQueue>,
    /// The collector is failing (logged once per episode).
    ship_failing: bool,
    /// How the proxy treats held headers callbacks, as learned so far.
    mode: HoldMode,
    /// Metric updates waiting for the next flush.
    metrics: MetricBuffer,
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
            key_epoch: 0,
            callouts: HashMap::new(),
            streams: HashMap::new(),
            key_waiters: HashMap::new(),
            intro_waiters: HashMap::new(),
            mode: HoldMode::Unknown,
            metrics: MetricBuffer::default(),
        }
    }

    /// The configuration this worker runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration, shared (the glue keeps it to answer when the worker is busy).
    pub fn shared_config(&self) -> Rc<Config> {
        Rc::clone(&self.config)
    }

    /// What this worker knows about the proxy's handling of held headers.
    pub fn hold_mode(&self) -> HoldMode {
        self.mode
    }

    /// Periodic work: pick up key sets other workers fetched, start due refreshes, finish streams
    /// that waited on another worker's fetch, give up on waits that outlived their bound, probe
    /// holds (see [`HoldMode`]), and send the audit batches due.
    pub fn on_tick(&mut self, host: &dyn Host) {
        let host = &OneClock::new(host);
        // First, while the tick's own (root) context is the one in effect: a callout dispatched
        // after a stream was finished here would belong to that stream, and end with it.
        self.flush_audit(host);
        self.sync_mode(host);
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
                self.metrics.add(Metric::gauge(
                    metrics::JWKS_AGE_SECONDS,
                    i64::try_from(age).unwrap_or(i64::MAX),
                ));
            }
            let fetching = keys.fetching_here();
            if changed || !fetching {
                self.wake_key_waiters(host, i, !fetching);
            }
        }
        self.note_key_epoch();
        self.expire_introspections(host);
        self.timer_streams(host);
        self.flush_metrics(host);
    }

    /// Hands the metric updates accumulated since the last flush to the host (the tick does
    /// this every period; tests call it before reading metrics).
    pub fn flush_metrics(&mut self, host: &dyn Host) {
        for m in self.metrics.drain() {
            host.metric(m.kind, &m.name, m.value);
        }
    }

    /// Handles the answer to a callout this worker started (on any of its contexts).
    pub fn on_callout_response(&mut self, host: &dyn Host, token: u32, result: CalloutResult) {
        let host = &OneClock::new(host);
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

    /// Number of streams whose request is still undecided (waiting for a token or a body).
    pub fn streams_in_flight(&self) -> usize {
        self.streams
            .values()
            .filter(|s| s.exchange.is_undecided())
            .count()
    }
}

//! The glue: the only code that imports `proxy_wasm`. The SDK dispatches the proxy's callbacks
//! to the contexts here; each is forwarded to the [`Worker`] with a [`WasmHost`], whose hostcalls
//! go through [`abi`] (every status handled, none panics). Nothing here decides anything.

mod abi;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::traits::{Context as ProxyContext, HttpContext, RootContext};
use proxy_wasm::types::{Action as ProxyAction, ContextType, LogLevel as ProxyLevel};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::crypto::host_sig;
use crate::engine::{Action, Worker};
use crate::exchange::{busy_reply, Direction};
use crate::host::{
    CalloutResult, Host, HostSignature, LogLevel, MetricKind, SignatureCheck, StreamId,
};
use crate::outcome::LocalReply;

/// Largest callout response body read (JWKS, introspection); larger ones count as failures.
const MAX_CALLOUT_BODY: usize = 512 * 1024;

/// proxy-wasm's numeric log levels.
fn level_number(level: LogLevel) -> u32 {
    match level {
        LogLevel::Debug => 1,
        LogLevel::Info => 2,
        LogLevel::Warn => 3,
        LogLevel::Error => 4,
        LogLevel::Critical => 5,
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(ProxyLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = abi::log(5, &format!("fhirgate: internal error, worker VM lost: {info}"));
    }));
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
        Box::new(Root { id, worker: None, config: None })
    });
}}

thread_local! {
    /// Metric ids by full name (`fhirgate.<name>`), defined once per VM.
    static METRICS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    /// The proxy's log level, read on each tick (Envoy can change it at run time).
    static LOG_LEVEL: Cell<u32> = const { Cell::new(2) };
    /// Set once the host answered that it has no `verify_signature` (then every signature is
    /// checked in Wasm without asking again).
    static NO_HOST_SIGNATURES: Cell<bool> = const { Cell::new(false) };
}

/// Reads the proxy's log level into the cache.
fn refresh_log_level() {
    if let Ok(level) = abi::log_level() {
        LOG_LEVEL.with(|l| l.set(level));
    }
}

/// The real host: proxy-wasm hostcalls.
pub struct WasmHost {
    /// The context whose callback is running. Callouts are dispatched on its behalf: Envoy ties a
    /// callout to the effective context (and cancels it when that stream ends) while the SDK
    /// routes the answer to the running one, so the two must be the same (a JWKS refresh
    /// dispatched on the tick after resuming streams belongs to the root context, not to the
    /// last stream resumed).
    context: u32,
    /// The context later hostcalls act on; switched only when a call concerns another stream.
    effective: Cell<u32>,
}

impl WasmHost {
    fn new(context: u32) -> WasmHost {
        WasmHost {
            context,
            effective: Cell::new(context),
        }
    }

    /// Makes `context` the effective one (one hostcall, only when it is not already).
    fn on(&self, context: u32) -> bool {
        if self.effective.get() == context {
            return true;
        }
        let ok = abi::set_effective_context(context).is_ok();
        if ok {
            self.effective.set(context);
        }
        ok
    }
}

fn metric_id(kind: MetricKind, name: &str) -> Option<u32> {
    let full = format!("fhirgate.{name}");
    METRICS.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(id) = m.get(&full) {
            return Some(*id);
        }
        let t = match kind {
            MetricKind::Counter => 0,
            MetricKind::Gauge | MetricKind::GaugeAdd => 1,
            MetricKind::Histogram => 2,
        };
        let id = abi::define_metric(t, &full).ok()?;
        m.insert(full, id);
        Some(id)
    })
}

/// A header map with lowercase names; values that are not UTF-8 are converted lossily.
fn header_map(map: abi::Map) -> Vec<(String, String)> {
    abi::get_map(map)
        .map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(&k).to_ascii_lowercase(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_header(map: abi::Map, name: &str, value: Option<&str>) {
    let _ = match value {
        Some(v) => abi::replace_header(map, name, v),
        None => abi::remove_header(map, name),
    };
}

impl Host for WasmHost {
    fn now_ms(&self) -> u64 {
        abi::now_nanos().map(|n| n / 1_000_000).unwrap_or(0)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let _ = abi::log(level_number(level), message);
    }

    fn log_enabled(&self, level: LogLevel) -> bool {
        LOG_LEVEL.with(|l| l.get()) <= level_number(level)
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        abi::get_shared(key).ok().flatten()
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        abi::set_shared(key, value, cas.unwrap_or(0)).is_ok()
    }

    fn http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Option<u32> {
        if !self.on(self.context) {
            return None;
        }
        // The SDK's call, not `abi`: its dispatcher routes the answer by the token it records
        // here. It panics only on a status Envoy's `httpCall` never returns (Envoy answers Ok,
        // BadArgument for an unknown cluster or missing pseudo-headers, InternalFailure).
        proxy_wasm::hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            body,
            Vec::new(),
            std::time::Duration::from_millis(timeout_ms),
        )
        .ok()
    }

    fn request_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        if !self.on(stream) {
            return Vec::new();
        }
        header_map(abi::Map::Request)
    }

    fn set_request_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        if self.on(stream) {
            set_header(abi::Map::Request, name, value);
        }
    }

    fn request_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        if !self.on(stream) {
            return None;
        }
        abi::get_buffer(abi::Buffer::RequestBody, 0, size)
            .ok()
            .flatten()
    }

    fn property(&self, stream: StreamId, path: &[&str]) -> Option<Vec<u8>> {
        if !self.on(stream) {
            return None;
        }
        abi::get_property(path).ok().flatten()
    }

    fn set_filter_state(&self, stream: StreamId, key: &str, value: &str) {
        if self.on(stream) {
            let _ = abi::set_property(key, value);
        }
    }

    fn send_reply(&self, stream: StreamId, reply: &LocalReply) {
        if !self.on(stream) {
            return;
        }
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if abi::send_local_response(u32::from(reply.status), &headers, &reply.body, "fhirgate")
            .is_err()
        {
            let _ = abi::log(4, "fhirgate: could not send the local reply; resetting");
            let _ = abi::close_stream(abi::Stream::Request);
        }
    }

    fn resume(&self, stream: StreamId) {
        if self.on(stream) {
            let _ = abi::continue_stream(abi::Stream::Request);
        }
    }

    fn resume_response(&self, stream: StreamId) {
        if self.on(stream) {
            let _ = abi::continue_stream(abi::Stream::Response);
        }
    }

    fn reset_response(&self, stream: StreamId) {
        if self.on(stream) {
            let _ = abi::close_stream(abi::Stream::Response);
        }
    }

    fn response_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        if !self.on(stream) {
            return Vec::new();
        }
        header_map(abi::Map::Response)
    }

    fn set_response_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        if self.on(stream) {
            set_header(abi::Map::Response, name, value);
        }
    }

    fn response_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        if !self.on(stream) {
            return None;
        }
        abi::get_buffer(abi::Buffer::ResponseBody, 0, size)
            .ok()
            .flatten()
    }

    fn set_response_body(&self, stream: StreamId, body: &[u8]) {
        if self.on(stream)
            && abi::set_buffer(abi::Buffer::ResponseBody, 0, usize::MAX, body).is_err()
        {
            // The body could not be replaced: never let the unchecked one through.
            let _ = abi::close_stream(abi::Stream::Response);
        }
    }

    fn verify_signature(&self, check: &SignatureCheck<'_>) -> HostSignature {
        if NO_HOST_SIGNATURES.with(Cell::get) {
            return HostSignature::Unavailable;
        }
        let arguments = host_sig::verify_arguments(
            check.hash,
            check.public_key_der,
            check.signature,
            check.text,
        );
        match abi::call_foreign_function("verify_signature", &arguments) {
            Ok(Some(answer)) => match host_sig::verify_result(&answer) {
                Some(true) => HostSignature::Valid,
                Some(false) => HostSignature::Invalid,
                None => HostSignature::Unavailable,
            },
            // An empty message is a valid VerifySignatureResult: result = false.
            Ok(None) => HostSignature::Invalid,
            Err(abi::Status(abi::NOT_FOUND)) => {
                NO_HOST_SIGNATURES.with(|c| c.set(true));
                let _ = abi::log(
                    2,
                    "fhirgate: the host has no verify_signature; signatures are checked in Wasm",
                );
                HostSignature::Unavailable
            }
            // BadArgument (a key or hash it does not take) and failures: checked in Wasm.
            Err(_) => HostSignature::Unavailable,
        }
    }

    fn metric(&self, kind: MetricKind, name: &str, value: i64) {
        let Some(id) = metric_id(kind, name) else {
            return;
        };
        let _ = match kind {
            MetricKind::Counter | MetricKind::GaugeAdd => abi::increment_metric(id, value),
            MetricKind::Gauge | MetricKind::Histogram => {
                abi::record_metric(id, u64::try_from(value).unwrap_or(0))
            }
        };
    }
}

/// The answer to a callout, read from the host (`Failed` when it did not answer).
fn callout_result(num_headers: usize, body_size: usize) -> CalloutResult {
    if num_headers == 0 {
        return CalloutResult::Failed;
    }
    let status = abi::get_map(abi::Map::CalloutResponse)
        .ok()
        .and_then(|h| h.into_iter().find(|(k, _)| k == b":status"))
        .and_then(|(_, v)| {
            std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
        });
    let Some(status) = status else {
        return CalloutResult::Failed;
    };
    if body_size > MAX_CALLOUT_BODY {
        return CalloutResult::Failed;
    }
    let body = abi::get_buffer(abi::Buffer::CalloutResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    CalloutResult::Response { status, body }
}

type SharedWorker = Rc<RefCell<Worker>>;

struct Root {
    id: u32,
    worker: Option<SharedWorker>,
    /// The configuration, also held apart from the worker: a busy answer needs its realm.
    config: Option<Rc<Config>>,
}

impl ProxyContext for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let result = callout_result(num_headers, body_size);
        if let Some(worker) = &self.worker {
            if let Ok(mut w) = worker.try_borrow_mut() {
                w.on_callout_response(&WasmHost::new(self.id), token, result);
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = abi::get_buffer(abi::Buffer::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        refresh_log_level();
        match Config::from_json(&bytes) {
            Ok(config) => {
                let digest = Sha256::digest(&bytes);
                let id: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
                let worker = Worker::new(config, &id);
                let tick = u32::try_from(worker.tick_period_ms()).unwrap_or(1000);
                self.config = Some(worker.shared_config());
                self.worker = Some(Rc::new(RefCell::new(worker)));
                let _ = abi::set_tick_period(tick);
                let _ = abi::log(2, "fhirgate: configuration loaded");
                true
            }
            Err(e) => {
                let _ = abi::log(5, &e.to_string());
                false
            }
        }
    }

    fn on_tick(&mut self) {
        refresh_log_level();
        if let Some(worker) = &self.worker {
            if let Ok(mut w) = worker.try_borrow_mut() {
                w.on_tick(&WasmHost::new(self.id));
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let worker = self.worker.clone()?;
        let config = self.config.clone()?;
        Some(Box::new(Http {
            id: context_id,
            worker,
            config,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    id: StreamId,
    worker: SharedWorker,
    config: Rc<Config>,
}

fn to_proxy(action: Action) -> ProxyAction {
    match action {
        Action::Continue => ProxyAction::Continue,
        Action::Pause => ProxyAction::Pause,
    }
}

impl ProxyContext for Http {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let result = callout_result(num_headers, body_size);
        if let Ok(mut w) = self.worker.try_borrow_mut() {
            w.on_callout_response(&WasmHost::new(self.id), token, result);
        }
    }

    fn on_done(&mut self) -> bool {
        if let Ok(mut w) = self.worker.try_borrow_mut() {
            w.on_stream_done(&WasmHost::new(self.id), self.id);
        }
        true
    }
}

impl Http {
    /// Runs one stream callback on the worker; when the worker is already borrowed
    /// (re-entrancy, which should not happen) the stream is answered busy: fail closed.
    fn run(
        &self,
        direction: Direction,
        f: impl FnOnce(&mut Worker, &WasmHost, StreamId) -> Action,
    ) -> ProxyAction {
        let host = WasmHost::new(self.id);
        match self.worker.try_borrow_mut() {
            Ok(mut w) => to_proxy(f(&mut w, &host, self.id)),
            Err(_) => {
                host.send_reply(self.id, &busy_reply(&self.config, direction));
                ProxyAction::Pause
            }
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> ProxyAction {
        self.run(Direction::Request, |w, host, id| {
            w.on_request_headers(host, id, end_of_stream)
        })
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> ProxyAction {
        self.run(Direction::Request, |w, host, id| {
            w.on_request_body(host, id, body_size, end_of_stream)
        })
    }

    fn on_http_response_headers(
        &mut self,
        _num_headers: usize,
        end_of_stream: bool,
    ) -> ProxyAction {
        self.run(Direction::Response, |w, host, id| {
            w.on_response_headers(host, id, end_of_stream)
        })
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> ProxyAction {
        self.run(Direction::Response, |w, host, id| {
            w.on_response_body(host, id, body_size, end_of_stream)
        })
    }
}

//! The glue: the only module that imports `proxy_wasm`. Each proxy callback is forwarded to the
//! [`Worker`] with a [`WasmHost`]; the worker's answer is returned to the proxy. Hostcalls are
//! made through `proxy_wasm::hostcalls` and their errors handled (the SDK's trait helpers unwrap).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context as ProxyContext, HttpContext, RootContext};
use proxy_wasm::types::{
    Action as ProxyAction, BufferType, ContextType, LogLevel as ProxyLevel, MapType, MetricType,
};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::engine::{Action, Worker};
use crate::host::{CalloutResult, Host, LogLevel, MetricKind, StreamId};
use crate::outcome::LocalReply;

/// Largest callout response body read (JWKS, introspection); larger ones count as failures.
const MAX_CALLOUT_BODY: usize = 512 * 1024;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(ProxyLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(ProxyLevel::Critical, &format!("internal error, worker VM lost: {info}"));
    }));
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> { Box::new(Root { id, worker: None }) });
}}

/// The real host: proxy-wasm hostcalls.
pub struct WasmHost {
    /// The context whose callback is running. Callouts are dispatched on its behalf: Envoy ties a
    /// callout to the effective context (and cancels it when that stream ends) while the SDK
    /// routes the answer to the running one, so the two must be the same (a JWKS refresh
    /// dispatched on the tick after resuming streams belongs to the root context, not to the
    /// last stream resumed).
    context: u32,
}

thread_local! {
    static METRICS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn level(level: LogLevel) -> ProxyLevel {
    match level {
        LogLevel::Debug => ProxyLevel::Debug,
        LogLevel::Info => ProxyLevel::Info,
        LogLevel::Warn => ProxyLevel::Warn,
        LogLevel::Error => ProxyLevel::Error,
        LogLevel::Critical => ProxyLevel::Critical,
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
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge | MetricKind::GaugeAdd => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        let id = hostcalls::define_metric(t, &full).ok()?;
        m.insert(full, id);
        Some(id)
    })
}

/// A stream's header map with lowercase names; values that are not UTF-8 are converted lossily
/// (the SDK's `get_map` would panic on them).
fn header_map(stream: StreamId, map: MapType) -> Vec<(String, String)> {
    let _ = hostcalls::set_effective_context(stream);
    hostcalls::get_map_bytes(map)
        .map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sets or removes one header of a stream's map.
fn set_header(stream: StreamId, map: MapType, name: &str, value: Option<&str>) {
    let _ = hostcalls::set_effective_context(stream);
    let _ = hostcalls::set_map_value(map, name, value);
}

/// The first `size` bytes of a stream's buffered body.
fn read_buffer(stream: StreamId, buffer: BufferType, size: usize) -> Option<Vec<u8>> {
    let _ = hostcalls::set_effective_context(stream);
    hostcalls::get_buffer(buffer, 0, size).ok().flatten()
}

impl Host for WasmHost {
    fn now_ms(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn log(&self, l: LogLevel, message: &str) {
        let _ = hostcalls::log(level(l), message);
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), Some(cas))) => Some((value, cas)),
            _ => None,
        }
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }

    fn http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Option<u32> {
        let _ = hostcalls::set_effective_context(self.context);
        hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            body,
            Vec::new(),
            Duration::from_millis(timeout_ms),
        )
        .ok()
    }

    fn request_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        header_map(stream, MapType::HttpRequestHeaders)
    }

    fn set_request_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        set_header(stream, MapType::HttpRequestHeaders, name, value);
    }

    fn request_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        read_buffer(stream, BufferType::HttpRequestBody, size)
    }

    fn property(&self, stream: StreamId, path: &[&str]) -> Option<Vec<u8>> {
        let _ = hostcalls::set_effective_context(stream);
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn set_filter_state(&self, stream: StreamId, key: &str, value: &str) {
        if hostcalls::set_effective_context(stream).is_ok() {
            set_property(key, value);
        }
    }

    fn send_reply(&self, stream: StreamId, reply: &LocalReply) {
        let _ = hostcalls::set_effective_context(stream);
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body))
            .is_err()
        {
            let _ = hostcalls::log(ProxyLevel::Error, "could not send the local reply");
        }
    }

    fn resume(&self, stream: StreamId) {
        let _ = hostcalls::set_effective_context(stream);
        let _ = hostcalls::resume_http_request();
    }

    fn response_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        header_map(stream, MapType::HttpResponseHeaders)
    }

    fn set_response_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        set_header(stream, MapType::HttpResponseHeaders, name, value);
    }

    fn response_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        read_buffer(stream, BufferType::HttpResponseBody, size)
    }

    fn set_response_body(&self, stream: StreamId, body: &[u8]) {
        let _ = hostcalls::set_effective_context(stream);
        let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, usize::MAX, body);
    }

    fn metric(&self, kind: MetricKind, name: &str, value: i64) {
        let Some(id) = metric_id(kind, name) else {
            return;
        };
        let _ = match kind {
            MetricKind::Counter | MetricKind::GaugeAdd => hostcalls::increment_metric(id, value),
            MetricKind::Gauge | MetricKind::Histogram => {
                hostcalls::record_metric(id, u64::try_from(value).unwrap_or(0))
            }
        };
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    /// The ABI call behind `hostcalls::set_property`, which panics on any status but `Ok`
    /// (e.g. `NotFound` outside a stream): fhirgate calls it directly and ignores the status.
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
}

/// Sets the one-segment property `key` of the current stream (Envoy: filter state `wasm.<key>`).
fn set_property(key: &str, value: &str) {
    // SAFETY: both pointers and lengths come from live `&str`s the host only reads during the call.
    let _status =
        unsafe { proxy_set_property(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
}

fn callout_result(num_headers: usize, body_size: usize) -> CalloutResult {
    if num_headers == 0 {
        return CalloutResult::Failed;
    }
    let status = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders)
        .ok()
        .and_then(|h| h.into_iter().find(|(k, _)| k == ":status"))
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
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    CalloutResult::Response { status, body }
}

type SharedWorker = Rc<RefCell<Worker>>;

struct Root {
    id: u32,
    worker: Option<SharedWorker>,
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
                w.on_callout_response(&WasmHost { context: self.id }, token, result);
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        match Config::from_json(&bytes) {
            Ok(config) => {
                let digest = Sha256::digest(&bytes);
                let id: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
                let worker = Worker::new(config, &id);
                let tick = Duration::from_millis(worker.tick_period_ms());
                self.worker = Some(Rc::new(RefCell::new(worker)));
                let _ = hostcalls::set_tick_period(tick);
                let _ = hostcalls::log(ProxyLevel::Info, "configuration loaded");
                true
            }
            Err(e) => {
                let _ = hostcalls::log(ProxyLevel::Critical, &e.to_string());
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(worker) = &self.worker {
            if let Ok(mut w) = worker.try_borrow_mut() {
                w.on_tick(&WasmHost { context: self.id });
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let worker = self.worker.clone()?;
        Some(Box::new(Http {
            id: context_id,
            worker,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    id: StreamId,
    worker: SharedWorker,
}

fn to_proxy(action: Action) -> ProxyAction {
    match action {
        Action::Continue => ProxyAction::Continue,
        Action::Pause => ProxyAction::Pause,
    }
}

/// Answers 503 when the worker is busy (re-entrancy should not happen; fail closed if it does).
fn busy(stream: StreamId) -> ProxyAction {
    let reply = crate::outcome::Denial::new(
        crate::outcome::DenyKind::Unavailable,
        "internal.busy",
        "the gateway is busy; retry later",
    )
    .to_reply("fhirgate", 1);
    WasmHost { context: stream }.send_reply(stream, &reply);
    ProxyAction::Pause
}

/// Replaces a response with 502 when the worker is busy: it might have needed a check.
fn busy_response(stream: StreamId) -> ProxyAction {
    let reply = crate::outcome::Denial::new(
        crate::outcome::DenyKind::BadGateway,
        "internal.busy",
        "the gateway could not check the response",
    )
    .to_reply("fhirgate", 1);
    let host = WasmHost { context: stream };
    host.set_response_header(stream, ":status", Some("502"));
    host.set_response_header(stream, "content-length", None);
    for (name, value) in &reply.headers {
        host.set_response_header(stream, name, Some(value));
    }
    host.set_response_body(stream, &reply.body);
    ProxyAction::Continue
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
            w.on_callout_response(&WasmHost { context: self.id }, token, result);
        }
    }

    fn on_done(&mut self) -> bool {
        if let Ok(mut w) = self.worker.try_borrow_mut() {
            w.on_stream_done(&WasmHost { context: self.id }, self.id);
        }
        true
    }
}

impl Http {
    /// Runs one stream callback on the worker, or answers `busy` when the worker is already
    /// borrowed (fail closed).
    fn run(
        &self,
        busy: fn(StreamId) -> ProxyAction,
        f: impl FnOnce(&mut Worker, &WasmHost, StreamId) -> Action,
    ) -> ProxyAction {
        match self.worker.try_borrow_mut() {
            Ok(mut w) => to_proxy(f(&mut w, &WasmHost { context: self.id }, self.id)),
            Err(_) => busy(self.id),
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> ProxyAction {
        self.run(busy, |w, host, id| {
            w.on_request_headers(host, id, end_of_stream)
        })
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> ProxyAction {
        self.run(busy, |w, host, id| {
            w.on_request_body(host, id, body_size, end_of_stream)
        })
    }

    fn on_http_response_headers(
        &mut self,
        _num_headers: usize,
        end_of_stream: bool,
    ) -> ProxyAction {
        self.run(busy_response, |w, host, id| {
            w.on_response_headers(host, id, end_of_stream)
        })
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> ProxyAction {
        self.run(busy_response, |w, host, id| {
            w.on_response_body(host, id, body_size, end_of_stream)
        })
    }
}

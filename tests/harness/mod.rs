//! A simulated proxy-wasm host for driving the real filter logic natively.
//!
//! It has a clock moved by hand, shared data with CAS versions shared by several simulated
//! worker VMs (with Envoy's rule: a CAS version is ignored for a key that does not exist yet),
//! the downstream connection's TLS properties (`connection.tls_version`,
//! `connection.sha256_peer_certificate_digest`), HTTP callouts that a test answers, fails, or lets time out (moving the clock past
//! a callout's timeout fails it, as Envoy does), request headers and bodies, properties, and
//! captures local replies, forwarded requests, logs and metrics. Tests assert outcomes, not
//! the order of hostcalls.
#![allow(dead_code)]

pub mod dpop;
#[path = "../../src/core/token/tests/native_host.rs"]
pub mod host_sig;
pub mod tokens;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use fhirgate::config::Config;
use fhirgate::engine::{Action, Worker};
use fhirgate::host::{
    CalloutResult, Host, HostSignature, LogLevel, MetricKind, SignatureCheck, StreamId,
};
use fhirgate::outcome::LocalReply;

/// A callout the filter dispatched and nobody answered yet.
#[derive(Debug, Clone)]
pub struct Callout {
    pub token: u32,
    pub worker: usize,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
    pub dispatched_ms: u64,
}

impl Callout {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where a simulated request ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still paused inside the filter.
    Pending,
    /// Went upstream with these headers.
    Forwarded(Vec<(String, String)>),
    /// Answered by the filter.
    Replied(LocalReply),
}

/// How the simulated Envoy treats a headers callback that pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvoyMode {
    /// `allow_on_headers_stop_iteration: true`: the body still reaches the filter (full mode).
    StopIteration,
    /// Envoy's default: a paused headers callback stops the body too, until resumed (safe mode).
    StopAll,
}

/// What the upstream (the FHIR server) saw of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamSaw {
    /// The request headers reached it.
    pub headers: bool,
    /// The whole request (its body included) reached it.
    pub complete: bool,
    /// The upstream request was reset (the filter answered after the headers had gone on).
    pub reset: bool,
}

/// What the client received of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    /// Status of the response headers the client got (0 when none).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The response was cut off after its headers (a reset): the client never got a whole answer.
    pub reset: bool,
}

#[derive(Debug, Default)]
struct SimStream {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    source: String,
    /// `connection.tls_version` (a TLS connection when set).
    tls_version: Option<String>,
    /// `connection.sha256_peer_certificate_digest` (hex), the client certificate Envoy validated.
    peer_cert_digest: Option<String>,
    reply: Option<LocalReply>,
    /// The filter asked to resume the request.
    resumed: bool,
    /// The request completed upstream.
    continued: bool,
    /// The body waits for the paused headers to be resumed (Envoy's default, `StopAll`).
    body_pending: bool,
    /// The filter's body callback answered pause: the body waits for a resume.
    body_held: bool,
    has_body: bool,
    /// The request headers reached the upstream.
    headers_up: bool,
    /// The upstream request was reset.
    upstream_reset: bool,
    response_headers: Vec<(String, String)>,
    response_body: Vec<u8>,
    /// The response phase began (a local reply now replaces or resets the response).
    responding: bool,
    /// The response headers reached the client.
    response_headers_sent: bool,
    /// The filter asked to resume the response.
    response_resumed: bool,
    /// The filter reset the response.
    response_reset: bool,
    /// A local reply sent during the response phase.
    response_reply: Option<LocalReply>,
    /// Access-log values the filter set (`set_filter_state`).
    filter_state: BTreeMap<String, String>,
}

/// The simulated proxy process: state every worker VM sees.
#[derive(Default)]
pub struct Sim {
    now_ms: Cell<u64>,
    shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_token: Cell<u32>,
    callouts: RefCell<Vec<Callout>>,
    streams: RefCell<HashMap<StreamId, SimStream>>,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    pub metrics: RefCell<BTreeMap<String, i64>>,
    /// When set, `http_call` refuses (as with an unknown cluster).
    pub refuse_callouts: Cell<bool>,
    /// Hostcalls made through the `Host` trait, by method name.
    pub hostcalls: RefCell<BTreeMap<&'static str, u64>>,
    /// How a paused headers callback is treated.
    pub mode: Cell<Option<EnvoyMode>>,
    /// When set, the host offers `verify_signature` (as Envoy does: [`host_sig`]); by default
    /// it has none, and every signature is checked in Wasm.
    pub host_signatures: Cell<bool>,
}

impl Sim {
    /// Reads one simulated stream (`None` when it is unknown).
    fn stream<T>(&self, id: StreamId, f: impl FnOnce(&SimStream) -> T) -> Option<T> {
        self.streams.borrow().get(&id).map(f)
    }

    /// Changes one simulated stream (nothing when it is unknown).
    fn stream_mut(&self, id: StreamId, f: impl FnOnce(&mut SimStream)) {
        if let Some(s) = self.streams.borrow_mut().get_mut(&id) {
            f(s);
        }
    }

    fn count(&self, call: &'static str) {
        *self.hostcalls.borrow_mut().entry(call).or_insert(0) += 1;
    }

    fn mode(&self) -> EnvoyMode {
        self.mode.get().unwrap_or(EnvoyMode::StopIteration)
    }
}

/// Replaces every value of `name` with `value` (or removes it).
fn replace_header(headers: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    headers.retain(|(n, _)| n != name);
    if let Some(v) = value {
        headers.push((name.to_string(), v.to_string()));
    }
}

/// The host as one worker VM sees it.
pub struct SimHost<'a> {
    sim: &'a Sim,
    worker: usize,
}

impl SimHost<'_> {
    fn stream<T>(&self, stream: StreamId, f: impl FnOnce(&SimStream) -> T) -> Option<T> {
        self.sim.stream(stream, f)
    }

    fn stream_mut(&self, stream: StreamId, f: impl FnOnce(&mut SimStream)) {
        self.sim.stream_mut(stream, f)
    }
}

impl Host for SimHost<'_> {
    fn now_ms(&self) -> u64 {
        self.sim.count("now_ms");
        self.sim.now_ms.get()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.sim.count("log");
        self.sim
            .logs
            .borrow_mut()
            .push((level, message.to_string()));
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.sim.count("shared_get");
        self.sim.shared.borrow().get(key).cloned()
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.sim.count("shared_set");
        let mut shared = self.sim.shared.borrow_mut();
        let current = shared.get(key).map(|(_, v)| *v);
        // As in Envoy (proxy-wasm-cpp-host SharedData::set): the version only counts when the
        // key exists.
        if let (Some(cas), Some(current)) = (cas, current) {
            if current != cas {
                return false;
            }
        }
        shared.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
        true
    }

    fn http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Option<u32> {
        if self.sim.refuse_callouts.get() {
            return None;
        }
        let token = self.sim.next_token.get() + 1;
        self.sim.next_token.set(token);
        self.sim.callouts.borrow_mut().push(Callout {
            token,
            worker: self.worker,
            cluster: cluster.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
            timeout_ms,
            dispatched_ms: self.sim.now_ms.get(),
        });
        Some(token)
    }

    fn request_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        self.sim.count("request_headers");
        self.stream(stream, |s| s.headers.clone())
            .unwrap_or_default()
    }

    fn set_request_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        self.sim.count("set_request_header");
        self.stream_mut(stream, |s| {
            replace_header(&mut s.headers, name, value);
        });
    }

    fn request_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        self.sim.count("request_body");
        self.stream(stream, |s| s.body.iter().take(size).copied().collect())
    }

    fn property(&self, stream: StreamId, path: &[&str]) -> Option<Vec<u8>> {
        self.sim.count("property");
        match path {
            ["source", "address"] => self.stream(stream, |s| s.source.clone().into_bytes()),
            ["connection", "tls_version"] => self
                .stream(stream, |s| s.tls_version.clone().map(String::into_bytes))
                .flatten(),
            ["connection", "sha256_peer_certificate_digest"] => self
                .stream(stream, |s| {
                    s.peer_cert_digest.clone().map(String::into_bytes)
                })
                .flatten(),
            _ => None,
        }
    }

    fn set_filter_state(&self, stream: StreamId, key: &str, value: &str) {
        self.sim.count("set_filter_state");
        self.stream_mut(stream, |s| {
            s.filter_state.insert(key.to_string(), value.to_string());
        });
    }

    fn send_reply(&self, stream: StreamId, reply: &LocalReply) {
        self.sim.count("send_reply");
        self.stream_mut(stream, |s| {
            if s.responding {
                // Envoy: a local reply before the response headers went out replaces the
                // response; after, it can only reset the stream.
                assert!(
                    s.response_reply.is_none(),
                    "two local replies on one response"
                );
                if s.response_headers_sent {
                    s.response_reset = true;
                } else {
                    s.response_reply = Some(reply.clone());
                }
                return;
            }
            assert!(s.reply.is_none(), "two local replies on one stream");
            s.reply = Some(reply.clone());
            if s.headers_up {
                s.upstream_reset = true;
            }
        });
    }

    fn resume(&self, stream: StreamId) {
        self.sim.count("resume");
        self.stream_mut(stream, |s| {
            s.resumed = true;
        });
    }

    fn resume_response(&self, stream: StreamId) {
        self.sim.count("resume_response");
        self.stream_mut(stream, |s| {
            s.response_resumed = true;
        });
    }

    fn reset_response(&self, stream: StreamId) {
        self.sim.count("reset_response");
        self.stream_mut(stream, |s| {
            s.response_reset = true;
        });
    }

    fn response_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        self.sim.count("response_headers");
        self.stream(stream, |s| s.response_headers.clone())
            .unwrap_or_default()
    }

    fn set_response_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        self.sim.count("set_response_header");
        self.stream_mut(stream, |s| {
            replace_header(&mut s.response_headers, name, value);
        });
    }

    fn response_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        self.sim.count("response_body");
        self.stream(stream, |s| {
            s.response_body.iter().take(size).copied().collect()
        })
    }

    fn set_response_body(&self, stream: StreamId, body: &[u8]) {
        self.sim.count("set_response_body");
        self.stream_mut(stream, |s| {
            s.response_body = body.to_vec();
        });
    }

    fn verify_signature(&self, check: &SignatureCheck<'_>) -> HostSignature {
        self.sim.count("verify_signature");
        if self.sim.host_signatures.get() {
            host_sig::verify(check)
        } else {
            HostSignature::Unavailable
        }
    }

    fn metric(&self, kind: MetricKind, name: &str, value: i64) {
        self.sim.count("metric");
        let mut m = self.sim.metrics.borrow_mut();
        let e = m.entry(name.to_string()).or_insert(0);
        match kind {
            MetricKind::Counter | MetricKind::GaugeAdd => *e += value,
            MetricKind::Gauge | MetricKind::Histogram => *e = value,
        }
    }
}

/// A request to send through the filter.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub source: String,
    /// `connection.tls_version` of the simulated downstream connection.
    pub tls_version: Option<String>,
    /// Hex SHA-256 of the client certificate on the simulated connection.
    pub peer_cert_digest: Option<String>,
}

impl Req {
    pub fn get(path: &str) -> Req {
        Req {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
            source: "10.0.0.7:40000".into(),
            tls_version: None,
            peer_cert_digest: None,
        }
    }

    pub fn method(mut self, method: &str) -> Req {
        self.method = method.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Req {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn body(mut self, body: &[u8]) -> Req {
        self.body = Some(body.to_vec());
        self
    }

    pub fn source(mut self, source: &str) -> Req {
        self.source = source.into();
        self
    }

    /// `Authorization: DPoP <token>` and one `DPoP` proof header.
    pub fn dpop(self, token: &str, proof: &str) -> Req {
        self.header("authorization", &format!("DPoP {token}"))
            .header("dpop", proof)
    }

    /// Arrives on a TLS connection (TLSv1.3), without a client certificate.
    pub fn tls(mut self) -> Req {
        self.tls_version = Some("TLSv1.3".into());
        self
    }

    /// Arrives on a TLS connection whose client certificate (validated by the proxy) has this
    /// DER encoding.
    pub fn client_cert(mut self, der: &[u8]) -> Req {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(der);
        self.tls_version = Some("TLSv1.3".into());
        self.peer_cert_digest = Some(digest.iter().map(|b| format!("{b:02x}")).collect());
        self
    }
}

/// The simulated proxy with its worker VMs.
pub struct Harness {
    pub sim: Sim,
    pub workers: Vec<Worker>,
    next_stream: StreamId,
}

impl Harness {
    /// Loads `config` into `workers` simulated worker VMs at a fixed start time.
    pub fn new(config: &str, workers: usize) -> Harness {
        Harness::try_new(config, workers).unwrap_or_else(|e| panic!("configuration rejected: {e}"))
    }

    /// The same in an Envoy with the given handling of paused headers callbacks.
    pub fn with_mode(config: &str, workers: usize, mode: EnvoyMode) -> Harness {
        let h = Harness::new(config, workers);
        h.sim.mode.set(Some(mode));
        h
    }

    pub fn try_new(config: &str, workers: usize) -> Result<Harness, fhirgate::config::ConfigError> {
        let sim = Sim::default();
        sim.now_ms.set(1_790_000_000_000);
        let mut list = Vec::new();
        for _ in 0..workers {
            list.push(Worker::new(Config::from_json(config.as_bytes())?, "test"));
        }
        Ok(Harness {
            sim,
            workers: list,
            next_stream: 100,
        })
    }

    pub fn host(&self, worker: usize) -> SimHost<'_> {
        SimHost {
            sim: &self.sim,
            worker,
        }
    }

    pub fn now_s(&self) -> u64 {
        self.sim.now_ms.get() / 1000
    }

    /// Moves the clock; callouts whose timeout passed fail, as Envoy would report them.
    pub fn advance(&mut self, ms: u64) {
        self.sim.now_ms.set(self.sim.now_ms.get() + ms);
        let now = self.sim.now_ms.get();
        let expired: Vec<Callout> = self
            .sim
            .callouts
            .borrow()
            .iter()
            .filter(|c| c.dispatched_ms + c.timeout_ms <= now)
            .cloned()
            .collect();
        for c in expired {
            self.answer(c.token, CalloutResult::Failed);
        }
    }

    /// Runs every worker's tick.
    pub fn tick(&mut self) {
        for i in 0..self.workers.len() {
            let host = SimHost {
                sim: &self.sim,
                worker: i,
            };
            if let Some(w) = self.workers.get_mut(i) {
                w.on_tick(&host);
            }
            self.pump(i);
        }
    }

    pub fn callouts(&self) -> Vec<Callout> {
        self.sim.callouts.borrow().clone()
    }

    /// Forgets every pending callout without answering it (a proxy that lost them): no answer
    /// and no timeout will ever reach the filter.
    pub fn lose_callouts(&mut self) {
        self.sim.callouts.borrow_mut().clear();
    }

    /// Answers a pending callout on the worker that made it.
    pub fn answer(&mut self, token: u32, result: CalloutResult) {
        let callout = {
            let mut list = self.sim.callouts.borrow_mut();
            let Some(pos) = list.iter().position(|c| c.token == token) else {
                panic!("no pending callout {token}");
            };
            list.remove(pos)
        };
        let host = SimHost {
            sim: &self.sim,
            worker: callout.worker,
        };
        self.workers[callout.worker].on_callout_response(&host, token, result);
        self.pump(callout.worker);
    }

    /// Answers every pending callout to `cluster` with `status` and `body`.
    pub fn answer_all(&mut self, cluster: &str, status: u16, body: &str) -> usize {
        let tokens: Vec<u32> = self
            .callouts()
            .iter()
            .filter(|c| c.cluster == cluster)
            .map(|c| c.token)
            .collect();
        for t in &tokens {
            self.answer(
                *t,
                CalloutResult::Response {
                    status,
                    body: body.as_bytes().to_vec(),
                },
            );
        }
        tokens.len()
    }

    /// Sends a request through worker `worker`, the way Envoy delivers headers then the body.
    pub fn send(&mut self, worker: usize, req: Req) -> StreamId {
        self.next_stream += 1;
        let id = self.next_stream;
        let mut headers = vec![
            (":method".to_string(), req.method.clone()),
            (":path".to_string(), req.path.clone()),
            (":authority".to_string(), "fhir.example.org".to_string()),
            ("x-request-id".to_string(), format!("req-{id}")),
        ];
        headers.extend(req.headers.iter().cloned());
        if let Some(body) = &req.body {
            headers.push(("content-length".to_string(), body.len().to_string()));
        }
        self.sim.streams.borrow_mut().insert(
            id,
            SimStream {
                headers,
                body: req.body.clone().unwrap_or_default(),
                has_body: req.body.is_some(),
                source: req.source.clone(),
                tls_version: req.tls_version.clone(),
                peer_cert_digest: req.peer_cert_digest.clone(),
                ..SimStream::default()
            },
        );
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        let action = self.workers[worker].on_request_headers(&host, id, req.body.is_none());
        if !self.replied(id) {
            match (req.body.is_some(), action) {
                (false, Action::Continue) => self.mark(id, |s| {
                    s.headers_up = true;
                    s.continued = true;
                }),
                (false, Action::Pause) => {}
                (true, Action::Continue) => {
                    self.mark(id, |s| s.headers_up = true);
                    self.deliver_body(worker, id);
                }
                (true, Action::Pause) => match self.sim.mode() {
                    // The body still reaches the filter while the headers wait.
                    EnvoyMode::StopIteration => self.deliver_body(worker, id),
                    // A paused headers callback stops all iteration: the body comes after a
                    // resume.
                    EnvoyMode::StopAll => self.mark(id, |s| s.body_pending = true),
                },
            }
        }
        self.pump(worker);
        id
    }

    fn replied(&self, id: StreamId) -> bool {
        self.sim.stream(id, |s| s.reply.is_some()).unwrap_or(false)
    }

    fn mark(&self, id: StreamId, f: impl FnOnce(&mut SimStream)) {
        self.sim.stream_mut(id, f)
    }

    fn deliver_body(&mut self, worker: usize, id: StreamId) {
        let len = self.sim.stream(id, |s| s.body.len()).unwrap_or(0);
        self.mark(id, |s| s.body_pending = false);
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        let action = self.workers[worker].on_request_body(&host, id, len, true);
        if self.replied(id) {
            return;
        }
        match action {
            Action::Continue => self.mark(id, |s| {
                s.headers_up = true;
                s.continued = true;
            }),
            Action::Pause => self.mark(id, |s| s.body_held = true),
        }
    }

    /// Carries out the resumes the filter asked for: held headers go on (with the body behind
    /// them), held bodies complete upstream.
    fn pump(&mut self, worker: usize) {
        loop {
            let ready: Vec<(StreamId, bool)> = self
                .sim
                .streams
                .borrow()
                .iter()
                .filter(|(_, s)| s.resumed && s.reply.is_none())
                .map(|(id, s)| (*id, s.body_pending))
                .collect();
            if ready.is_empty() {
                return;
            }
            for (id, body_pending) in ready {
                self.mark(id, |s| {
                    s.resumed = false;
                    s.headers_up = true;
                });
                if body_pending {
                    self.deliver_body(worker, id);
                } else {
                    self.mark(id, |s| {
                        if !s.has_body || s.body_held {
                            s.body_held = false;
                            s.continued = true;
                        }
                    });
                }
            }
        }
    }

    /// Sends a request and returns where it ended up.
    pub fn run(&mut self, req: Req) -> Outcome {
        let id = self.send(0, req);
        self.outcome(id)
    }

    pub fn outcome(&self, stream: StreamId) -> Outcome {
        let streams = self.sim.streams.borrow();
        let Some(s) = streams.get(&stream) else {
            return Outcome::Pending;
        };
        if let Some(r) = &s.reply {
            assert!(!s.continued, "a stream was both answered and forwarded");
            return Outcome::Replied(r.clone());
        }
        if s.continued {
            return Outcome::Forwarded(s.headers.clone());
        }
        Outcome::Pending
    }

    /// What the upstream saw of a request: its headers, the whole request, a reset.
    pub fn upstream_saw(&self, stream: StreamId) -> UpstreamSaw {
        let streams = self.sim.streams.borrow();
        let Some(s) = streams.get(&stream) else {
            return UpstreamSaw::default();
        };
        UpstreamSaw {
            headers: s.headers_up,
            complete: s.continued,
            reset: s.upstream_reset,
        }
    }

    /// Delivers an upstream response for a forwarded stream, headers then the whole body, and
    /// returns what the client receives: status, headers and body (status 0 and an empty body
    /// when the response was cut off).
    pub fn respond(
        &mut self,
        worker: usize,
        stream: StreamId,
        status: u16,
        body: &str,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let headers = vec![
            (":status".into(), status.to_string()),
            ("content-type".into(), "application/fhir+json".into()),
            ("content-length".into(), body.len().to_string()),
        ];
        let view = self.respond_with(worker, stream, headers, body.as_bytes());
        if view.reset {
            return (0, view.headers, Vec::new());
        }
        (view.status, view.headers, view.body)
    }

    /// Delivers an upstream response with the given headers and body and returns what the
    /// client receives. In `StopAll` mode a held response stays held until the filter resumes
    /// it: call [`Harness::release_response`] after moving the clock and ticking.
    pub fn respond_with(
        &mut self,
        worker: usize,
        stream: StreamId,
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> ClientView {
        self.mark(stream, |s| {
            s.response_headers = headers;
            s.response_body = body.to_vec();
            s.responding = true;
        });
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        let a = self.workers[worker].on_response_headers(&host, stream, body.is_empty());
        let replaced = self
            .sim
            .stream(stream, |s| s.response_reply.is_some() || s.response_reset)
            .unwrap_or(false);
        if !replaced {
            match a {
                Action::Continue => {
                    self.mark(stream, |s| s.response_headers_sent = true);
                    if !body.is_empty() {
                        self.deliver_response_body(worker, stream);
                    }
                }
                Action::Pause => {
                    assert!(!body.is_empty(), "an empty response is never held");
                    if self.sim.mode() == EnvoyMode::StopIteration {
                        self.deliver_response_body(worker, stream);
                    }
                }
            }
        }
        self.client_view(stream)
    }

    fn deliver_response_body(&mut self, worker: usize, stream: StreamId) {
        let len = self
            .sim
            .stream(stream, |s| s.response_body.len())
            .unwrap_or(0);
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        let b = self.workers[worker].on_response_body(&host, stream, len, true);
        let (reset, replied) = self
            .sim
            .stream(stream, |s| (s.response_reset, s.response_reply.is_some()))
            .unwrap_or_default();
        assert!(
            b == Action::Continue || reset || replied,
            "the response body is never held forever"
        );
        self.mark(stream, |s| s.response_headers_sent = true);
    }

    /// Delivers an upstream response whose body comes in `chunks` (one body callback each,
    /// the last with end of stream; `end: false` leaves the stream open, as an upstream that
    /// stops sending mid-body), in `StopIteration` mode. Returns what the client has so far.
    pub fn respond_chunked(
        &mut self,
        worker: usize,
        stream: StreamId,
        headers: Vec<(String, String)>,
        chunks: &[&[u8]],
        end: bool,
    ) -> ClientView {
        self.mark(stream, |s| {
            s.response_headers = headers;
            s.response_body = Vec::new();
            s.responding = true;
        });
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        let a = self.workers[worker].on_response_headers(&host, stream, chunks.is_empty());
        if a == Action::Continue {
            self.mark(stream, |s| s.response_headers_sent = true);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            let replaced = self
                .sim
                .stream(stream, |s| s.response_reply.is_some() || s.response_reset)
                .unwrap_or(false);
            if replaced {
                break;
            }
            self.mark(stream, |s| s.response_body.extend_from_slice(chunk));
            let len = self
                .sim
                .stream(stream, |s| s.response_body.len())
                .unwrap_or(0);
            let host = SimHost {
                sim: &self.sim,
                worker,
            };
            let last = end && i + 1 == chunks.len();
            if self.workers[worker].on_response_body(&host, stream, len, last) == Action::Continue
                && last
            {
                self.mark(stream, |s| s.response_headers_sent = true);
            }
        }
        self.client_view(stream)
    }

    /// A held response that the filter resumed (from the timer) goes on: its headers to the
    /// client, then its body through the filter (`StopAll`: Envoy had it buffered).
    pub fn release_response(&mut self, worker: usize, stream: StreamId) -> ClientView {
        let resumed = self
            .sim
            .stream(stream, |s| s.response_resumed)
            .unwrap_or(false);
        if resumed {
            self.mark(stream, |s| {
                s.response_resumed = false;
                s.response_headers_sent = true;
            });
            self.deliver_response_body(worker, stream);
        }
        self.client_view(stream)
    }

    /// What the client has of the response so far.
    pub fn client_view(&self, stream: StreamId) -> ClientView {
        let streams = self.sim.streams.borrow();
        let s = &streams[&stream];
        if let Some(r) = &s.response_reply {
            return ClientView {
                status: r.status,
                headers: r.headers.clone(),
                body: r.body.clone(),
                reset: false,
            };
        }
        let status = if s.response_headers_sent {
            s.response_headers
                .iter()
                .find(|(n, _)| n == ":status")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        ClientView {
            status,
            headers: s.response_headers.clone(),
            body: if s.response_reset {
                Vec::new()
            } else {
                s.response_body.clone()
            },
            reset: s.response_reset,
        }
    }

    /// Hostcalls made so far, by `Host` method.
    pub fn hostcalls(&self) -> BTreeMap<&'static str, u64> {
        self.sim.hostcalls.borrow().clone()
    }

    /// Forgets the hostcall counts.
    pub fn reset_hostcalls(&self) {
        self.sim.hostcalls.borrow_mut().clear();
    }

    /// Ends a stream (client went away or the proxy finished it).
    pub fn done(&mut self, worker: usize, stream: StreamId) {
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        self.workers[worker].on_stream_done(&host, stream);
    }

    /// The access-log values the filter set on a stream.
    pub fn filter_state(&self, stream: StreamId) -> BTreeMap<String, String> {
        self.sim
            .stream(stream, |s| s.filter_state.clone())
            .unwrap_or_default()
    }

    /// The audit records logged so far, parsed.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        self.logs_containing(fhirgate::audit::AUDIT_PREFIX)
            .iter()
            .filter_map(|l| l.strip_prefix(fhirgate::audit::AUDIT_PREFIX))
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect()
    }

    pub fn logs_containing(&self, needle: &str) -> Vec<String> {
        self.sim
            .logs
            .borrow()
            .iter()
            .filter(|(_, m)| m.contains(needle))
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// A metric's value, after the workers flushed what they accumulated (the tick does that
    /// in Envoy).
    pub fn metric(&mut self, name: &str) -> i64 {
        self.flush_metrics();
        self.sim.metrics.borrow().get(name).copied().unwrap_or(0)
    }

    /// Every worker hands its accumulated metrics to the host.
    pub fn flush_metrics(&mut self) {
        for i in 0..self.workers.len() {
            let host = SimHost {
                sim: &self.sim,
                worker: i,
            };
            self.workers[i].flush_metrics(&host);
        }
    }

    pub fn all_logs(&self) -> String {
        self.sim
            .logs
            .borrow()
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Helpers on outcomes.
impl Outcome {
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Replied(r) => r.status,
            Outcome::Forwarded(_) => 200,
            Outcome::Pending => 0,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        match self {
            Outcome::Replied(r) => r
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
            Outcome::Forwarded(h) => h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
            Outcome::Pending => None,
        }
    }

    pub fn body_json(&self) -> serde_json::Value {
        match self {
            Outcome::Replied(r) => serde_json::from_slice(&r.body).expect("reply body is JSON"),
            _ => serde_json::Value::Null,
        }
    }

    pub fn issue_code(&self) -> String {
        self.body_json()["issue"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn text(&self) -> String {
        match self {
            Outcome::Replied(r) => format!(
                "{} {:?} {}",
                r.status,
                r.headers,
                String::from_utf8_lossy(&r.body)
            ),
            Outcome::Forwarded(h) => format!("forwarded {h:?}"),
            Outcome::Pending => "pending".into(),
        }
    }
}

//! A simulated proxy-wasm host for driving the real filter logic natively.
//!
//! It has a clock moved by hand, shared data with CAS versions shared by several simulated
//! worker VMs, HTTP callouts that a test answers, fails, or lets time out (moving the clock past
//! a callout's timeout fails it, as Envoy does), request headers and bodies, properties, and
//! captures local replies, forwarded requests, logs and metrics. Tests assert outcomes, not
//! the order of hostcalls.
#![allow(dead_code)]

pub mod tokens;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use fhirgate::config::Config;
use fhirgate::engine::{Action, Worker};
use fhirgate::host::{CalloutResult, Host, LogLevel, MetricKind, StreamId};
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

#[derive(Debug, Default)]
struct SimStream {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    source: String,
    reply: Option<LocalReply>,
    resumed: bool,
    continued: bool,
    /// The body waits for the paused headers to be resumed (as in Envoy's proxy-wasm host).
    body_pending: bool,
    has_body: bool,
    response_headers: Vec<(String, String)>,
    response_body: Vec<u8>,
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
    /// Reads one simulated stream (`None` when it is unknown).
    fn stream<T>(&self, stream: StreamId, f: impl FnOnce(&SimStream) -> T) -> Option<T> {
        self.sim.streams.borrow().get(&stream).map(f)
    }

    /// Changes one simulated stream (nothing when it is unknown).
    fn stream_mut(&self, stream: StreamId, f: impl FnOnce(&mut SimStream)) {
        if let Some(s) = self.sim.streams.borrow_mut().get_mut(&stream) {
            f(s);
        }
    }
}

impl Host for SimHost<'_> {
    fn now_ms(&self) -> u64 {
        self.sim.now_ms.get()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.sim
            .logs
            .borrow_mut()
            .push((level, message.to_string()));
    }

    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.sim.shared.borrow().get(key).cloned()
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let mut shared = self.sim.shared.borrow_mut();
        let current = shared.get(key).map(|(_, v)| *v);
        if let Some(cas) = cas {
            if current != Some(cas) {
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
        self.stream(stream, |s| s.headers.clone())
            .unwrap_or_default()
    }

    fn set_request_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        self.stream_mut(stream, |s| {
            replace_header(&mut s.headers, name, value);
        });
    }

    fn request_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        self.stream(stream, |s| s.body.iter().take(size).copied().collect())
    }

    fn property(&self, stream: StreamId, path: &[&str]) -> Option<Vec<u8>> {
        match path {
            ["source", "address"] => self.stream(stream, |s| s.source.clone().into_bytes()),
            _ => None,
        }
    }

    fn set_filter_state(&self, stream: StreamId, key: &str, value: &str) {
        self.stream_mut(stream, |s| {
            s.filter_state.insert(key.to_string(), value.to_string());
        });
    }

    fn send_reply(&self, stream: StreamId, reply: &LocalReply) {
        self.stream_mut(stream, |s| {
            assert!(s.reply.is_none(), "two local replies on one stream");
            s.reply = Some(reply.clone());
        });
    }

    fn resume(&self, stream: StreamId) {
        self.stream_mut(stream, |s| {
            s.resumed = true;
        });
    }

    fn response_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        self.stream(stream, |s| s.response_headers.clone())
            .unwrap_or_default()
    }

    fn set_response_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        self.stream_mut(stream, |s| {
            replace_header(&mut s.response_headers, name, value);
        });
    }

    fn response_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        self.stream(stream, |s| {
            s.response_body.iter().take(size).copied().collect()
        })
    }

    fn set_response_body(&self, stream: StreamId, body: &[u8]) {
        self.stream_mut(stream, |s| {
            s.response_body = body.to_vec();
        });
    }

    fn metric(&self, kind: MetricKind, name: &str, value: i64) {
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
}

impl Req {
    pub fn get(path: &str) -> Req {
        Req {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
            source: "10.0.0.7:40000".into(),
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
                source: req.source.clone(),
                ..SimStream::default()
            },
        );
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        let w = &mut self.workers[worker];
        let action = w.on_request_headers(&host, id, req.body.is_none());
        let replied = self
            .sim
            .streams
            .borrow()
            .get(&id)
            .is_some_and(|s| s.reply.is_some());
        match (&req.body, action, replied) {
            (_, _, true) => {}
            (None, Action::Continue, _) => self.mark(id, |s| s.continued = true),
            (None, Action::Pause, _) => {}
            (Some(_), Action::Continue, _) => self.deliver_body(worker, id),
            // A paused headers callback stops all iteration: the body comes after a resume.
            (Some(_), Action::Pause, _) => self.mark(id, |s| s.body_pending = true),
        }
        self.pump(worker);
        id
    }

    fn mark(&self, id: StreamId, f: impl FnOnce(&mut SimStream)) {
        if let Some(s) = self.sim.streams.borrow_mut().get_mut(&id) {
            f(s);
        }
    }

    fn deliver_body(&mut self, worker: usize, id: StreamId) {
        let len = self
            .sim
            .streams
            .borrow()
            .get(&id)
            .map(|s| s.body.len())
            .unwrap_or(0);
        self.mark(id, |s| {
            s.body_pending = false;
            s.has_body = true;
        });
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        let action = self.workers[worker].on_request_body(&host, id, len, true);
        let replied = self
            .sim
            .streams
            .borrow()
            .get(&id)
            .is_some_and(|s| s.reply.is_some());
        if action == Action::Continue && !replied {
            self.mark(id, |s| s.continued = true);
        }
    }

    /// Delivers bodies held behind headers that were resumed since.
    fn pump(&mut self, worker: usize) {
        let ready: Vec<StreamId> = self
            .sim
            .streams
            .borrow()
            .iter()
            .filter(|(_, s)| s.body_pending && s.resumed && s.reply.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.mark(id, |s| s.resumed = false);
            self.deliver_body(worker, id);
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
            assert!(
                !s.continued && !s.resumed,
                "a stream was both answered and forwarded"
            );
            return Outcome::Replied(r.clone());
        }
        if s.continued || (s.resumed && !s.has_body && !s.body_pending) {
            return Outcome::Forwarded(s.headers.clone());
        }
        Outcome::Pending
    }

    /// Delivers an upstream response for a forwarded stream, headers then the whole body, and
    /// returns what the client receives: status, headers and body.
    pub fn respond(
        &mut self,
        worker: usize,
        stream: StreamId,
        status: u16,
        body: &str,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        {
            let mut streams = self.sim.streams.borrow_mut();
            let s = streams.get_mut(&stream).expect("known stream");
            s.response_headers = vec![
                (":status".into(), status.to_string()),
                ("content-type".into(), "application/fhir+json".into()),
                ("content-length".into(), body.len().to_string()),
            ];
            s.response_body = body.as_bytes().to_vec();
        }
        let host = SimHost {
            sim: &self.sim,
            worker,
        };
        let w = &mut self.workers[worker];
        let a = w.on_response_headers(&host, stream, body.is_empty());
        if !body.is_empty() {
            let b = w.on_response_body(&host, stream, body.len(), true);
            assert_eq!(
                b,
                Action::Continue,
                "the response body is never held forever"
            );
        } else {
            assert_eq!(a, Action::Continue);
        }
        let streams = self.sim.streams.borrow();
        let s = &streams[&stream];
        let status = s
            .response_headers
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        (status, s.response_headers.clone(), s.response_body.clone())
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
            .streams
            .borrow()
            .get(&stream)
            .map(|s| s.filter_state.clone())
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

    pub fn metric(&self, name: &str) -> i64 {
        self.sim.metrics.borrow().get(name).copied().unwrap_or(0)
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

//! The host boundary: everything fhirgate needs from the proxy, as one small trait.
//!
//! The engine only talks to a [`Host`]. The wasm glue implements it with proxy-wasm hostcalls;
//! the native test harness implements it with a simulated clock, shared data, callouts and
//! captured replies. Stream operations take the stream id explicitly, so the engine can finish a
//! request that was parked while another stream's callout was in flight.

use crate::outcome::LocalReply;

/// Identifies one HTTP stream (the proxy-wasm context id).
pub type StreamId = u32;

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Diagnostics.
    Debug,
    /// Normal operation (audit records are written at this level).
    Info,
    /// Something degraded, e.g. a JWKS fetch failed but stale keys still serve.
    Warn,
    /// Something failed.
    Error,
    /// The filter itself is broken (e.g. a panic was caught).
    Critical,
}

/// The answer to an HTTP callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalloutResult {
    /// The upstream answered (any status).
    Response {
        /// HTTP status.
        status: u16,
        /// Response body (possibly truncated by the host to what the filter asked for).
        body: Vec<u8>,
    },
    /// Connection failure, reset or timeout: no HTTP answer.
    Failed,
}

/// A metric kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down, set to the given value.
    Gauge,
    /// The same kind of gauge, moved by the given (signed) amount: workers that each add their
    /// own share make one total.
    GaugeAdd,
    /// Distribution (e.g. latency in microseconds).
    Histogram,
}

/// A signature for the host's own crypto to check (Envoy: the foreign function
/// `verify_signature`, BoringSSL). Everything in it is public.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    /// `"sha256"`, `"sha384"` or `"sha512"`.
    pub hash: &'static str,
    /// The DER SubjectPublicKeyInfo of the key (RSA or EC on a named curve).
    pub public_key_der: &'a [u8],
    /// RSA: the signature as sent; ECDSA: its DER `Ecdsa-Sig-Value`.
    pub signature: &'a [u8],
    /// The signed bytes (the host hashes them).
    pub text: &'a [u8],
}

/// What the host said about a [`SignatureCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSignature {
    /// The host checked it: the signature is valid.
    Valid,
    /// The host checked it: the signature is not valid (never retried in Wasm).
    Invalid,
    /// The host cannot check it (no such function, refused the arguments, an answer that is not
    /// one): the caller verifies in Wasm.
    Unavailable,
}

/// What fhirgate needs from the proxy.
pub trait Host {
    /// Wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Writes a log line. Callers never pass tokens, secrets or PHI.
    fn log(&self, level: LogLevel, message: &str);
    /// Whether a line at `level` would be written (so callers can skip formatting it).
    fn log_enabled(&self, level: LogLevel) -> bool {
        let _ = level;
        true
    }

    /// Reads a shared-data value and its CAS version (shared by all worker VMs).
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes a shared-data value; with `cas`, only if the version still matches. Returns success.
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;

    /// Starts an HTTP callout through an Envoy cluster; returns its token, or `None` if the host
    /// refused it (unknown cluster, bad headers).
    fn http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Option<u32>;

    /// All request headers of a stream (names lowercase, pseudo-headers included).
    fn request_headers(&self, stream: StreamId) -> Vec<(String, String)>;
    /// Sets (replacing every existing value) or, with `None`, removes a request header.
    fn set_request_header(&self, stream: StreamId, name: &str, value: Option<&str>);
    /// The buffered request body, up to `size` bytes.
    fn request_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>>;
    /// A proxy property such as `["source", "address"]`.
    fn property(&self, stream: StreamId, path: &[&str]) -> Option<Vec<u8>>;
    /// Stores a per-request value for the access log: Envoy's filter state `wasm.<key>`, read
    /// with `%FILTER_STATE(wasm.<key>:PLAIN)%`. Operators see these values: no token, no PHI.
    fn set_filter_state(&self, stream: StreamId, key: &str, value: &str);
    /// Answers the request locally (the request never reaches upstream).
    fn send_reply(&self, stream: StreamId, reply: &LocalReply);
    /// Resumes the request of a stream that was paused (waiting for a callout, or held).
    fn resume(&self, stream: StreamId);
    /// Resumes the response of a stream whose response headers or body were held.
    fn resume_response(&self, stream: StreamId);
    /// Resets a stream whose response is under way: its response headers already went to the
    /// client, so a refusal can only cut it off.
    fn reset_response(&self, stream: StreamId);

    /// All response headers of a stream (names lowercase, `:status` included).
    fn response_headers(&self, stream: StreamId) -> Vec<(String, String)>;
    /// Sets or, with `None`, removes a response header.
    fn set_response_header(&self, stream: StreamId, name: &str, value: Option<&str>);
    /// The buffered response body, up to `size` bytes.
    fn response_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>>;
    /// Replaces the whole buffered response body.
    fn set_response_body(&self, stream: StreamId, body: &[u8]);

    /// Adds `value` to a counter, sets (or with `GaugeAdd` moves) a gauge, or records a histogram
    /// sample.
    fn metric(&self, kind: MetricKind, name: &str, value: i64);

    /// Checks a signature with the host's own crypto; `Unavailable` (the default) when the host
    /// has none, so the caller verifies in Wasm.
    fn verify_signature(&self, check: &SignatureCheck<'_>) -> HostSignature {
        let _ = check;
        HostSignature::Unavailable
    }
}

/// A host whose clock is read once: within one proxy callback time does not move, so the
/// engine wraps the host it is given in this and every `now_ms` after the first costs no
/// hostcall. Everything else goes straight through.
pub struct OneClock<'a> {
    inner: &'a dyn Host,
    now: std::cell::Cell<Option<u64>>,
}

impl<'a> OneClock<'a> {
    /// Wraps `inner` for the length of one callback.
    pub fn new(inner: &'a dyn Host) -> OneClock<'a> {
        OneClock {
            inner,
            now: std::cell::Cell::new(None),
        }
    }
}

impl Host for OneClock<'_> {
    fn now_ms(&self) -> u64 {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.inner.now_ms();
        self.now.set(Some(now));
        now
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.inner.log(level, message);
    }
    fn log_enabled(&self, level: LogLevel) -> bool {
        self.inner.log_enabled(level)
    }
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.inner.shared_get(key)
    }
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.inner.shared_set(key, value, cas)
    }
    fn http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout_ms: u64,
    ) -> Option<u32> {
        self.inner.http_call(cluster, headers, body, timeout_ms)
    }
    fn request_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        self.inner.request_headers(stream)
    }
    fn set_request_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        self.inner.set_request_header(stream, name, value);
    }
    fn request_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        self.inner.request_body(stream, size)
    }
    fn property(&self, stream: StreamId, path: &[&str]) -> Option<Vec<u8>> {
        self.inner.property(stream, path)
    }
    fn set_filter_state(&self, stream: StreamId, key: &str, value: &str) {
        self.inner.set_filter_state(stream, key, value);
    }
    fn send_reply(&self, stream: StreamId, reply: &LocalReply) {
        self.inner.send_reply(stream, reply);
    }
    fn resume(&self, stream: StreamId) {
        self.inner.resume(stream);
    }
    fn resume_response(&self, stream: StreamId) {
        self.inner.resume_response(stream);
    }
    fn reset_response(&self, stream: StreamId) {
        self.inner.reset_response(stream);
    }
    fn response_headers(&self, stream: StreamId) -> Vec<(String, String)> {
        self.inner.response_headers(stream)
    }
    fn set_response_header(&self, stream: StreamId, name: &str, value: Option<&str>) {
        self.inner.set_response_header(stream, name, value);
    }
    fn response_body(&self, stream: StreamId, size: usize) -> Option<Vec<u8>> {
        self.inner.response_body(stream, size)
    }
    fn set_response_body(&self, stream: StreamId, body: &[u8]) {
        self.inner.set_response_body(stream, body);
    }
    fn metric(&self, kind: MetricKind, name: &str, value: i64) {
        self.inner.metric(kind, name, value);
    }
    fn verify_signature(&self, check: &SignatureCheck<'_>) -> HostSignature {
        self.inner.verify_signature(check)
    }
}

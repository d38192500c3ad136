//! A minimal [`Host`] for engine unit tests: a clock, shared data with the proxy's CAS rules
//! (a version is ignored when the key does not exist yet, as in Envoy), properties, metrics.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use crate::host::{Host, LogLevel, MetricKind, StreamId};
use crate::outcome::LocalReply;

#[derive(Default)]
pub(super) struct TestHost {
    pub now_ms: Cell<u64>,
    pub shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: Cell<u32>,
    /// Refuse every shared-data write (a proxy in trouble).
    pub refuse_writes: Cell<bool>,
    /// Before each write, bump the version of the written key this many times (a concurrent
    /// writer winning every race).
    pub steal_writes: Cell<u32>,
    pub properties: RefCell<HashMap<String, Vec<u8>>>,
    pub metrics: RefCell<BTreeMap<String, i64>>,
    pub property_reads: Cell<u32>,
}

impl TestHost {
    fn bump(&self) -> u32 {
        let next = self.next_cas.get().wrapping_add(1).max(1);
        self.next_cas.set(next);
        next
    }

    /// Total bytes of shared-data values whose key starts with `prefix`, and their count.
    pub fn shared_usage(&self, prefix: &str) -> (usize, usize) {
        let shared = self.shared.borrow();
        let values: Vec<usize> = shared
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, (v, _))| v.len())
            .collect();
        (values.iter().sum(), values.len())
    }
}

impl Host for TestHost {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
    fn log(&self, _level: LogLevel, _message: &str) {}
    fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared.borrow().get(key).cloned()
    }
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        if self.refuse_writes.get() {
            return false;
        }
        if self.steal_writes.get() > 0 {
            self.steal_writes.set(self.steal_writes.get() - 1);
            let cas = self.bump();
            if let Some(entry) = self.shared.borrow_mut().get_mut(key) {
                entry.1 = cas;
            }
        }
        let current = self.shared.borrow().get(key).map(|(_, c)| *c);
        if let (Some(want), Some(have)) = (cas, current) {
            if want != have {
                return false;
            }
        }
        let cas = self.bump();
        self.shared
            .borrow_mut()
            .insert(key.to_owned(), (value.to_vec(), cas));
        true
    }
    fn http_call(&self, _: &str, _: &[(&str, &str)], _: Option<&[u8]>, _: u64) -> Option<u32> {
        None
    }
    fn request_headers(&self, _: StreamId) -> Vec<(String, String)> {
        Vec::new()
    }
    fn set_request_header(&self, _: StreamId, _: &str, _: Option<&str>) {}
    fn request_body(&self, _: StreamId, _: usize) -> Option<Vec<u8>> {
        None
    }
    fn property(&self, _: StreamId, path: &[&str]) -> Option<Vec<u8>> {
        self.property_reads.set(self.property_reads.get() + 1);
        self.properties.borrow().get(&path.join(".")).cloned()
    }
    fn set_filter_state(&self, _: StreamId, _: &str, _: &str) {}
    fn send_reply(&self, _: StreamId, _: &LocalReply) {}
    fn resume(&self, _: StreamId) {}
    fn resume_response(&self, _: StreamId) {}
    fn reset_response(&self, _: StreamId) {}
    fn response_headers(&self, _: StreamId) -> Vec<(String, String)> {
        Vec::new()
    }
    fn set_response_header(&self, _: StreamId, _: &str, _: Option<&str>) {}
    fn response_body(&self, _: StreamId, _: usize) -> Option<Vec<u8>> {
        None
    }
    fn set_response_body(&self, _: StreamId, _: &[u8]) {}
    fn metric(&self, kind: MetricKind, name: &str, value: i64) {
        let mut m = self.metrics.borrow_mut();
        let e = m.entry(name.to_owned()).or_insert(0);
        match kind {
            MetricKind::Counter | MetricKind::GaugeAdd => *e += value,
            MetricKind::Gauge | MetricKind::Histogram => *e = value,
        }
    }
}

//! The per-worker queue of audit records waiting to be shipped to the collector, in batches.
//!
//! Pure bookkeeping, no I/O: the engine pushes each record's JSON at decision time (never
//! blocking: a full queue drops the new record and says so), asks on its tick for the batches
//! due, dispatches them as HTTP callouts, and reports each answer. Bounds: records and bytes
//! queued, batches in flight. The log line is the record of truth; this is a best-effort copy.

use std::collections::{HashMap, VecDeque};

use crate::config::audit::Collector;

/// Largest body of one batch; a batch closes earlier when the next record would pass it.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// Content type of a batch: one JSON record per line.
pub const BATCH_CONTENT_TYPE: &str = "application/x-ndjson";

/// What happened to a pushed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued for the next batch.
    Queued,
    /// Dropped: the queue is at its record or byte bound.
    Dropped,
}

/// A batch ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// NDJSON body.
    pub body: Vec<u8>,
    /// Records in it.
    pub records: usize,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    records: usize,
    started_ms: u64,
}

/// Records waiting for the collector and the batches in flight.
#[derive(Debug)]
pub struct ShipQueue {
    limits: Collector,
    queue: VecDeque<(u64, String)>,
    bytes: usize,
    in_flight: HashMap<u32, InFlight>,
}

impl ShipQueue {
    /// An empty queue bounded by `limits`.
    pub fn new(limits: &Collector) -> Self {
        ShipQueue {
            limits: limits.clone(),
            queue: VecDeque::new(),
            bytes: 0,
            in_flight: HashMap::new(),
        }
    }

    /// The collector this queue ships to.
    pub fn collector(&self) -> &Collector {
        &self.limits
    }

    /// Records queued (not in flight).
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Bytes queued (not in flight).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Batches in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Queues one record's JSON, or drops it when a bound would be passed (the newest record is
    /// the one dropped: what is queued keeps its order and nothing already counted is lost).
    pub fn push(&mut self, record: String, now_ms: u64) -> Push {
        let size = record.len() + 1;
        if self.queue.len() >= self.limits.max_queue
            || self.bytes + size > self.limits.max_queue_bytes
            || size > MAX_BATCH_BYTES
        {
            return Push::Dropped;
        }
        self.bytes += size;
        self.queue.push_back((now_ms, record));
        Push::Queued
    }

    /// The next batch to send now, if a slot is free and either a full batch is queued or the
    /// oldest record waited `flushInterval`. The caller dispatches it and reports
    /// [`ShipQueue::dispatched`] (or counts its records failed when the proxy refuses it).
    pub fn next_batch(&mut self, now_ms: u64) -> Option<Batch> {
        if self.in_flight.len() >= self.limits.max_in_flight {
            return None;
        }
        let oldest = self.queue.front().map(|(t, _)| *t)?;
        let full = self.queue.len() >= self.limits.batch_size;
        let waited = now_ms.saturating_sub(oldest) >= self.limits.flush_interval_ms;
        if !full && !waited {
            return None;
        }
        let mut body = Vec::new();
        let mut records = 0;
        while records < self.limits.batch_size {
            let Some((_, next)) = self.queue.front() else {
                break;
            };
            if records > 0 && body.len() + next.len() + 1 > MAX_BATCH_BYTES {
                break;
            }
            let Some((_, record)) = self.queue.pop_front() else {
                break;
            };
            self.bytes = self.bytes.saturating_sub(record.len() + 1);
            body.extend_from_slice(record.as_bytes());
            body.push(b'\n');
            records += 1;
        }
        Some(Batch { body, records })
    }

    /// The batch went out as callout `token`.
    pub fn dispatched(&mut self, token: u32, batch: &Batch, now_ms: u64) {
        self.in_flight.insert(
            token,
            InFlight {
                records: batch.records,
                started_ms: now_ms,
            },
        );
    }

    /// Whether `token` is one of this queue's batches.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight.contains_key(&token)
    }

    /// The answer to batch `token` arrived; returns its record count (`None` if unknown).
    pub fn answered(&mut self, token: u32) -> Option<usize> {
        self.in_flight.remove(&token).map(|f| f.records)
    }

    /// Forgets batches whose answer is overdue by `grace_ms` past the timeout (the proxy should
    /// have failed them); returns their tokens and record counts.
    pub fn expire(&mut self, now_ms: u64, grace_ms: u64) -> Vec<(u32, usize)> {
        let limit = self.limits.timeout_ms.saturating_add(grace_ms);
        let overdue: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, f)| now_ms.saturating_sub(f.started_ms) > limit)
            .map(|(t, _)| *t)
            .collect();
        overdue
            .into_iter()
            .filter_map(|t| self.in_flight.remove(&t).map(|f| (t, f.records)))
            .collect()
    }
}

#[cfg(test)]
mod tests;

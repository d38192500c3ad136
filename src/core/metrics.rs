//! Every metric fhirgate exports, named in one place. Envoy prefixes each name with
//! `fhirgate.` (Prometheus: `fhirgate_…`); the README's Metrics section lists them.

use std::borrow::Cow;

use crate::host::MetricKind;

/// One metric update: what kind, which name, by how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The name without the `fhirgate.` prefix.
    pub name: Cow<'static, str>,
    /// The amount added, the value set, or the sample.
    pub value: i64,
}

impl Metric {
    /// Adds `value` to a counter.
    pub fn count(name: &'static str, value: i64) -> Metric {
        Metric {
            kind: MetricKind::Counter,
            name: Cow::Borrowed(name),
            value,
        }
    }

    /// Adds one to a counter.
    pub fn inc(name: &'static str) -> Metric {
        Metric::count(name, 1)
    }

    /// Adds one to a counter whose name is built at run time (see the functions below).
    pub fn inc_named(name: String) -> Metric {
        Metric {
            kind: MetricKind::Counter,
            name: Cow::Owned(name),
            value: 1,
        }
    }

    /// Records a histogram sample.
    pub fn sample(name: &'static str, value: i64) -> Metric {
        Metric {
            kind: MetricKind::Histogram,
            name: Cow::Borrowed(name),
            value,
        }
    }

    /// Sets a gauge.
    pub fn gauge(name: &'static str, value: i64) -> Metric {
        Metric {
            kind: MetricKind::Gauge,
            name: Cow::Borrowed(name),
            value,
        }
    }

    /// Moves a gauge that several workers add their share to.
    pub fn gauge_add(name: &'static str, value: i64) -> Metric {
        Metric {
            kind: MetricKind::GaugeAdd,
            name: Cow::Borrowed(name),
            value,
        }
    }
}

/// Largest number of histogram samples kept between two flushes (the rest are dropped: a
/// histogram is a distribution, and memory stays bounded under any load).
pub const MAX_SAMPLES: usize = 4096;

/// Metric updates accumulated between flushes, so a request costs no metric hostcall: counters
/// and gauge moves are summed, gauges keep their last value, histogram samples are kept (at most
/// [`MAX_SAMPLES`]).
#[derive(Debug, Default)]
pub struct MetricBuffer {
    sums: std::collections::HashMap<Cow<'static, str>, (MetricKind, i64)>,
    samples: Vec<(Cow<'static, str>, i64)>,
}

impl MetricBuffer {
    /// Adds one update.
    pub fn add(&mut self, m: Metric) {
        match m.kind {
            MetricKind::Histogram => {
                if self.samples.len() < MAX_SAMPLES {
                    self.samples.push((m.name, m.value));
                }
            }
            MetricKind::Gauge => {
                self.sums.insert(m.name, (m.kind, m.value));
            }
            MetricKind::Counter | MetricKind::GaugeAdd => {
                let e = self.sums.entry(m.name).or_insert((m.kind, 0));
                e.1 = e.1.saturating_add(m.value);
            }
        }
    }

    /// Takes every accumulated update, leaving the buffer empty.
    pub fn drain(&mut self) -> Vec<Metric> {
        let mut out: Vec<Metric> = self
            .sums
            .drain()
            .map(|(name, (kind, value))| Metric { kind, name, value })
            .collect();
        out.extend(self.samples.drain(..).map(|(name, value)| Metric {
            kind: MetricKind::Histogram,
            name,
            value,
        }));
        out
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.sums.is_empty() && self.samples.is_empty()
    }
}

/// Verified tokens found in this worker's cache.
pub const TOKEN_CACHE_HITS: &str = "token_cache_hits_total";
/// Verified tokens found in the cross-worker shared cache.
pub const TOKEN_SHARED_CACHE_HITS: &str = "token_shared_cache_hits_total";
/// Tokens that had to be verified (or introspected).
pub const TOKEN_CACHE_MISSES: &str = "token_cache_misses_total";
/// JWS signatures checked by the host's own crypto (Envoy's `verify_signature`, BoringSSL).
pub const SIGNATURES_HOST: &str = "signatures_host_total";
/// JWS signatures checked in Wasm (algorithms the host does not take, or a host without it).
pub const SIGNATURES_WASM: &str = "signatures_wasm_total";
/// JWKS fetches started.
pub const JWKS_FETCHES: &str = "jwks_fetches_total";
/// JWKS fetches that failed (no answer, non-2xx, unusable document).
pub const JWKS_FETCH_FAILURES: &str = "jwks_fetch_failures_total";
/// Seconds since the key set in use was fetched.
pub const JWKS_AGE_SECONDS: &str = "jwks_age_seconds";
/// Introspection callouts started.
pub const INTROSPECTION_CALLS: &str = "introspection_calls_total";
/// Introspection callouts that failed (answered 503).
pub const INTROSPECTION_FAILURES: &str = "introspection_failures_total";
/// Introspection answers served from a cache.
pub const INTROSPECTION_CACHE_HITS: &str = "introspection_cache_hits_total";
/// Inactive introspection answers served from the negative cache.
pub const INTROSPECTION_NEGATIVE_CACHE_HITS: &str = "introspection_negative_cache_hits_total";
/// Introspection latency in milliseconds.
pub const INTROSPECTION_MS: &str = "introspection_ms";
/// Time from the request headers to the decision's audit record, in milliseconds.
pub const DECISION_MS: &str = "decision_ms";
/// Decisions that set `breakTheGlass`.
pub const BREAK_THE_GLASS: &str = "break_the_glass_total";
/// Responses whose body was rewritten (entries withheld, resources redacted).
pub const RESPONSES_REWRITTEN: &str = "responses_rewritten_total";
/// Responses replaced by a denial (403/502) or cut off.
pub const RESPONSES_DENIED: &str = "responses_denied_total";
/// Bundle entries withheld from responses.
pub const RESPONSE_ENTRIES_WITHHELD: &str = "response_entries_withheld_total";
/// Resources returned redacted.
pub const RESPONSE_RESOURCES_REDACTED: &str = "response_resources_redacted_total";
/// Audit records waiting for the collector (all workers).
pub const AUDIT_QUEUE_DEPTH: &str = "audit_queue_depth";
/// Audit records dropped because the queue was full.
pub const AUDIT_RECORDS_DROPPED: &str = "audit_records_dropped_total";
/// Audit batches sent to the collector.
pub const AUDIT_BATCHES_SENT: &str = "audit_batches_sent_total";
/// Audit batches that failed (refused, no answer, non-2xx).
pub const AUDIT_BATCHES_FAILED: &str = "audit_batches_failed_total";
/// Audit records in failed batches.
pub const AUDIT_RECORDS_FAILED: &str = "audit_records_failed_total";
/// Audit records the collector acknowledged.
pub const AUDIT_RECORDS_SHIPPED: &str = "audit_records_shipped_total";
/// Requests whose body decision ran with the headers already upstream (safe mode, see the
/// README's Envoy modes).
pub const HEADERS_RELEASED_EARLY: &str = "headers_released_early_total";
/// Checked responses cut off because their headers were already sent (safe mode).
pub const RESPONSES_RESET: &str = "responses_reset_total";

/// DPoP proofs accepted (valid, bound to the token, not replayed).
pub const DPOP_PROOFS_ACCEPTED: &str = "dpop_proofs_accepted_total";
/// Certificate-bound tokens accepted with the right client certificate.
pub const MTLS_BINDINGS_ACCEPTED: &str = "mtls_bindings_accepted_total";

/// A metric name segment: ASCII letters and digits kept, everything else `_`.
pub fn segment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `decisions.<outcome>.<reason>`: one counter per outcome and reason code.
pub fn decision(outcome: &str, reason: &str) -> String {
    format!("decisions.{outcome}.{}", segment(reason))
}

/// `rules.<name>.denied`: denials by one rule.
pub fn rule_denied(rule: &str) -> String {
    format!("rules.{}.denied", segment(rule))
}

/// `rules.<name>.flagged`: a flag rule fired.
pub fn rule_flagged(rule: &str) -> String {
    format!("rules.{}.flagged", segment(rule))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn the_buffer_sums_counters_keeps_last_gauges_and_every_sample() {
        let mut b = MetricBuffer::default();
        b.add(Metric::inc(TOKEN_CACHE_HITS));
        b.add(Metric::count(TOKEN_CACHE_HITS, 2));
        b.add(Metric::gauge(JWKS_AGE_SECONDS, 5));
        b.add(Metric::gauge(JWKS_AGE_SECONDS, 7));
        b.add(Metric::gauge_add(AUDIT_QUEUE_DEPTH, 3));
        b.add(Metric::gauge_add(AUDIT_QUEUE_DEPTH, -1));
        b.add(Metric::sample(DECISION_MS, 1));
        b.add(Metric::sample(DECISION_MS, 4));
        let mut got = b.drain();
        got.sort_by(|a, b| (&a.name, a.value).cmp(&(&b.name, b.value)));
        let got: Vec<(&str, i64)> = got.iter().map(|m| (&*m.name, m.value)).collect();
        assert_eq!(
            got,
            [
                (AUDIT_QUEUE_DEPTH, 2),
                (DECISION_MS, 1),
                (DECISION_MS, 4),
                (JWKS_AGE_SECONDS, 7),
                (TOKEN_CACHE_HITS, 3)
            ]
        );
        assert!(b.is_empty());
        for _ in 0..MAX_SAMPLES + 10 {
            b.add(Metric::sample(DECISION_MS, 1));
        }
        assert_eq!(b.drain().len(), MAX_SAMPLES);
    }

    #[test]
    fn dynamic_names_keep_only_letters_and_digits() {
        assert_eq!(
            decision("deny", "token.expired"),
            "decisions.deny.token_expired"
        );
        assert_eq!(rule_denied("step-up writes"), "rules.step_up_writes.denied");
        assert_eq!(rule_flagged("btg"), "rules.btg.flagged");
    }
}

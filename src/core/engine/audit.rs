//! Writing the audit record of a decision: the log line (the record of truth), the decision
//! metrics, the access-log values, and a copy queued for the collector. Shipping happens on the
//! tick only: a callout started from a request's context would be cancelled when that request
//! ends, and nothing on a request's path ever waits for the collector.

use super::introspect::CALLOUT_GRACE_MS;
use super::{Callout, Worker};
use crate::audit::ship::{Push, BATCH_CONTENT_TYPE};
use crate::audit::{AuditOutcome, AuditRecord, AUDIT_PREFIX};
use crate::host::{CalloutResult, Host, LogLevel, StreamId};
use crate::metrics::{self, Metric};
use crate::token::VerifiedToken;

/// Tick period without a collector (key refreshes, expiries).
pub const DEFAULT_TICK_MS: u64 = 1000;

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Worker {
    /// How often the proxy should call [`Worker::on_tick`]: every second, or every
    /// `audit.collector.flushInterval` when that is shorter.
    pub fn tick_period_ms(&self) -> u64 {
        self.config
            .audit
            .collector
            .as_ref()
            .map_or(DEFAULT_TICK_MS, |c| {
                c.flush_interval_ms.min(DEFAULT_TICK_MS)
            })
    }

    /// Writes the audit record of a decision on `stream`, after applying the `audit` options.
    pub(super) fn write_audit(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        mut record: AuditRecord,
        token: Option<&VerifiedToken>,
        started_ms: u64,
    ) {
        let audit = &self.config.audit;
        record.apply_policy(audit, token);
        let logged = host.log_enabled(LogLevel::Info);
        // Formatted only when it is written or shipped.
        let json = (logged || self.shipper.is_some()).then(|| record.to_json());
        if let (true, Some(json)) = (logged, &json) {
            host.log(LogLevel::Info, &format!("{AUDIT_PREFIX}{json}"));
        }
        self.metrics.add(Metric::inc_named(record.metric_name()));
        if record.outcome == AuditOutcome::Deny {
            if let Some(rule) = &record.rule {
                self.metrics
                    .add(Metric::inc_named(metrics::rule_denied(rule)));
            }
        }
        for flag in &record.flags {
            self.metrics
                .add(Metric::inc_named(metrics::rule_flagged(flag)));
        }
        if record.break_the_glass {
            self.metrics.add(Metric::inc(metrics::BREAK_THE_GLASS));
        }
        let elapsed = host.now_ms().saturating_sub(started_ms);
        let elapsed = i64::try_from(elapsed).unwrap_or(i64::MAX);
        self.metrics
            .add(Metric::sample(metrics::DECISION_MS, elapsed));
        if audit.access_log {
            set_access_log_values(host, stream, &record);
        }
        if let (Some(queue), Some(json)) = (self.shipper.as_mut(), json) {
            match queue.push(json, host.now_ms()) {
                Push::Queued => self
                    .metrics
                    .add(Metric::gauge_add(metrics::AUDIT_QUEUE_DEPTH, 1)),
                Push::Dropped => self
                    .metrics
                    .add(Metric::inc(metrics::AUDIT_RECORDS_DROPPED)),
            }
        }
    }

    /// Sends the batches that are due (full, or waited `flushInterval`), within `maxInFlight`,
    /// and gives up on batches whose answer is overdue.
    pub(super) fn flush_audit(&mut self, host: &dyn Host) {
        let Some(queue) = self.shipper.as_mut() else {
            return;
        };
        let now = host.now_ms();
        for (token, records) in queue.expire(now, CALLOUT_GRACE_MS) {
            self.callouts.remove(&token);
            self.metrics.add(Metric::inc(metrics::AUDIT_BATCHES_FAILED));
            self.metrics
                .add(Metric::count(metrics::AUDIT_RECORDS_FAILED, count(records)));
        }
        let target = queue.collector().clone();
        while let Some(batch) = queue.next_batch(now) {
            self.metrics.add(Metric::gauge_add(
                metrics::AUDIT_QUEUE_DEPTH,
                -count(batch.records),
            ));
            let headers = [
                (":method", "POST"),
                (":path", target.path.as_str()),
                (":authority", target.authority.as_str()),
                ("content-type", BATCH_CONTENT_TYPE),
            ];
            match host.http_call(
                &target.cluster,
                &headers,
                Some(&batch.body),
                target.timeout_ms,
            ) {
                Some(token) => {
                    queue.dispatched(token, &batch, now);
                    self.callouts.insert(token, Callout::AuditBatch);
                    self.metrics.add(Metric::inc(metrics::AUDIT_BATCHES_SENT));
                }
                None => {
                    self.metrics.add(Metric::inc(metrics::AUDIT_BATCHES_FAILED));
                    self.metrics.add(Metric::count(
                        metrics::AUDIT_RECORDS_FAILED,
                        count(batch.records),
                    ));
                    if !self.ship_failing {
                        self.ship_failing = true;
                        host.log(
                            LogLevel::Warn,
                            &format!(
                                "audit collector: the proxy refused a callout to cluster `{}`",
                                target.cluster
                            ),
                        );
                    }
                    break;
                }
            }
        }
    }

    /// The collector answered batch `token` (or the callout failed).
    pub(super) fn on_audit_response(&mut self, host: &dyn Host, token: u32, result: CalloutResult) {
        let Some(records) = self.shipper.as_mut().and_then(|q| q.answered(token)) else {
            return;
        };
        let ok = matches!(result, CalloutResult::Response { status, .. } if (200..300).contains(&status));
        if ok {
            self.metrics.add(Metric::count(
                metrics::AUDIT_RECORDS_SHIPPED,
                count(records),
            ));
            if self.ship_failing {
                self.ship_failing = false;
                host.log(
                    LogLevel::Info,
                    "audit collector: batches are delivered again",
                );
            }
            return;
        }
        self.metrics.add(Metric::inc(metrics::AUDIT_BATCHES_FAILED));
        self.metrics
            .add(Metric::count(metrics::AUDIT_RECORDS_FAILED, count(records)));
        if !self.ship_failing {
            self.ship_failing = true;
            let why = match result {
                CalloutResult::Response { status, .. } => format!("HTTP {status}"),
                CalloutResult::Failed => "no answer".to_string(),
            };
            host.log(
                LogLevel::Warn,
                &format!("audit collector: a batch failed ({why}); the log keeps every record"),
            );
        }
    }
}

/// The decision data for Envoy's access log (`%FILTER_STATE(wasm.fhirgate.<name>:PLAIN)%`):
/// outcome, reason, rule, client, subject as `audit.subject` shows it, interaction and
/// resource type. Never the resource id, the patient or search values.
fn set_access_log_values(host: &dyn Host, stream: StreamId, record: &AuditRecord) {
    let values = [
        ("fhirgate.outcome", Some(record.outcome.as_str())),
        ("fhirgate.reason", Some(record.reason.as_str())),
        ("fhirgate.rule", record.rule.as_deref()),
        ("fhirgate.client_id", record.client_id.as_deref()),
        ("fhirgate.subject", record.shown_subject()),
        ("fhirgate.interaction", record.interaction.as_deref()),
        ("fhirgate.resource_type", record.resource_type.as_deref()),
    ];
    for (key, value) in values {
        if let Some(value) = value {
            host.set_filter_state(stream, key, value);
        }
    }
}

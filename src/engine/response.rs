//! The response phase of requests whose decision needs the response checked: buffer the body
//! (bounded), then pass, rewrite (Bundle entries withheld) or replace it with a denial.

use std::rc::Rc;

use super::{Action, Worker};
use crate::audit::AuditRecord;
use crate::decision::{request_value, Decision, RequestInfo, ResponseCheck};
use crate::host::{Host, MetricKind, StreamId};
use crate::outcome::{Denial, DenyKind};
use crate::response::{check_response, ResponseVerdict};
use crate::rules::{RuleInput, RuleVerdict};
use crate::token::VerifiedToken;

/// A request that went upstream and whose response must be checked.
pub(super) struct PendingResponse {
    pub(super) check: ResponseCheck,
    pub(super) info: RequestInfo,
    pub(super) token: Rc<VerifiedToken>,
    pub(super) decision: Decision,
    pub(super) started_ms: u64,
    pub(super) stream: StreamId,
}

impl Worker {
    /// The response headers arrived.
    pub fn on_response_headers(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        end_of_stream: bool,
    ) -> Action {
        if !self.responses.contains_key(&stream) {
            return Action::Continue;
        }
        let headers = host.response_headers(stream);
        let status = headers
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse::<u16>().ok())
            .unwrap_or(0);
        if !(200..300).contains(&status) || end_of_stream {
            // Upstream errors (and empty answers) pass unchanged: they carry no resource.
            if let Some(p) = self.responses.remove(&stream) {
                self.audit_response(host, &p, None, 0);
            }
            return Action::Continue;
        }
        let encoded = headers
            .iter()
            .any(|(n, v)| n == "content-encoding" && !v.eq_ignore_ascii_case("identity"));
        if encoded {
            let denial = Denial::new(
                DenyKind::BadGateway,
                "response.encoded",
                "the upstream response is compressed and could not be checked",
            );
            return self.replace_response(host, stream, &denial);
        }
        // The body may change: its length is recomputed by the proxy.
        host.set_response_header(stream, "content-length", None);
        Action::Pause
    }

    /// A chunk of the response body arrived; `body_size` is everything buffered so far.
    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        if !self.responses.contains_key(&stream) {
            return Action::Continue;
        }
        if body_size > self.config.max_response_bytes {
            let denial = Denial::new(
                DenyKind::BadGateway,
                "response.too_large",
                "the upstream response is too large to be checked",
            );
            return self.replace_response(host, stream, &denial);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(pending) = self.responses.remove(&stream) else {
            return Action::Continue;
        };
        let mut pending = pending;
        let body = host.response_body(stream, body_size).unwrap_or_default();
        let (final_body, rewritten, withheld) = match check_response(&body, &pending.check) {
            ResponseVerdict::Pass => (body, false, 0),
            ResponseVerdict::Rewrite { body, withheld } => (body, true, withheld),
            ResponseVerdict::Deny(denial) => {
                self.write_response_denial(host, stream, &denial);
                self.audit_response(host, &pending, Some(&denial), 0);
                return Action::Continue;
            }
        };
        if pending.check.rules {
            if let Some(denial) = self.response_rules(&mut pending, &final_body) {
                self.write_response_denial(host, stream, &denial);
                self.audit_response(host, &pending, Some(&denial), withheld);
                return Action::Continue;
            }
        }
        if rewritten {
            host.set_response_body(stream, &final_body);
            host.metric(MetricKind::Counter, "responses_rewritten_total", 1);
            host.metric(
                MetricKind::Counter,
                "response_entries_withheld_total",
                i64::from(withheld),
            );
        }
        self.audit_response(host, &pending, None, withheld);
        Action::Continue
    }

    /// Runs the response-phase rules on the (possibly filtered) body; a denial replaces the
    /// whole response. Flags raised are added to the decision for the audit record.
    fn response_rules(&self, pending: &mut PendingResponse, body: &[u8]) -> Option<Denial> {
        let resource: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return Some(Denial::new(
                    DenyKind::BadGateway,
                    "response.not_fhir_json",
                    "the upstream response could not be checked",
                ))
            }
        };
        let input = RuleInput {
            request: request_value(&pending.info),
            source: serde_json::json!({ "address": pending.info.source_address }),
            token: pending.token.to_cel_value(),
            fhir: pending
                .decision
                .fhir
                .as_ref()
                .map(|f| f.to_cel_value())
                .unwrap_or_default(),
        };
        match self.config.rules.evaluate_response(&input, &resource) {
            RuleVerdict::Allow { flags, .. } => {
                for f in flags {
                    if !pending.decision.flags.contains(&f) {
                        pending.decision.flags.push(f);
                    }
                }
                None
            }
            RuleVerdict::Deny {
                rule,
                message,
                error,
                ..
            } => {
                let reason = if error { "rule.error" } else { "rule.denied" };
                let mut denial = Denial::new(DenyKind::Forbidden, reason, message);
                denial.rule = Some(rule);
                Some(denial)
            }
        }
    }

    fn replace_response(&mut self, host: &dyn Host, stream: StreamId, denial: &Denial) -> Action {
        self.write_response_denial(host, stream, denial);
        if let Some(p) = self.responses.remove(&stream) {
            self.audit_response(host, &p, Some(denial), 0);
        }
        Action::Continue
    }

    fn write_response_denial(&self, host: &dyn Host, stream: StreamId, denial: &Denial) {
        let reply = denial.to_reply(&self.config.realm, self.config.retry_after_secs);
        host.set_response_header(stream, ":status", Some(&reply.status.to_string()));
        host.set_response_header(stream, "content-length", None);
        host.set_response_header(stream, "content-encoding", None);
        for (name, value) in &reply.headers {
            host.set_response_header(stream, name, Some(value));
        }
        host.set_response_body(stream, &reply.body);
        host.metric(MetricKind::Counter, "responses_denied_total", 1);
    }

    fn audit_response(
        &mut self,
        host: &dyn Host,
        p: &PendingResponse,
        denial: Option<&Denial>,
        withheld: u32,
    ) {
        let mut decision = p.decision.clone();
        decision.denial = denial.cloned();
        let record = AuditRecord::new(host.now_ms(), &p.info, Some(&p.token), &decision, withheld);
        self.write_audit(host, p.stream, record, Some(&p.token), p.started_ms);
    }
}

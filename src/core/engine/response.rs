//! The response phase of requests whose decision needs the response checked: buffer the body
//! (bounded), then pass, rewrite (Bundle entries withheld, resources redacted) or replace it with
//! a denial (see [`crate::response`]).

use std::rc::Rc;

use super::{Action, Worker};
use crate::audit::AuditRecord;
use crate::decision::{request_value, Decision, RequestInfo, ResponseCheck};
use crate::host::{Host, MetricKind, StreamId};
use crate::outcome::{Denial, DenyKind};
use crate::response::{
    filter_response, Checked, LabelMode, ResponsePolicy, ResponseSummary, ResponseVerdict,
};
use crate::rules::RuleInput;
use crate::token::VerifiedToken;

/// Upstream response headers kept when a response is replaced by a denial.
const KEPT_ON_DENIAL: [&str; 3] = [":status", "date", "x-request-id"];

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
                self.audit_response(host, &p, None, &ResponseSummary::default());
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
        let checked = self.check_body(&pending, &body);
        for f in checked.flags {
            if !pending.decision.flags.contains(&f) {
                pending.decision.flags.push(f);
            }
        }
        let withheld = checked.summary.withheld();
        match checked.verdict {
            ResponseVerdict::Pass => {}
            ResponseVerdict::Rewrite { body, .. } => {
                host.set_response_body(stream, &body);
                host.metric(MetricKind::Counter, "responses_rewritten_total", 1);
                if withheld > 0 {
                    host.metric(
                        MetricKind::Counter,
                        "response_entries_withheld_total",
                        i64::from(withheld),
                    );
                }
                if checked.summary.redacted > 0 {
                    host.metric(
                        MetricKind::Counter,
                        "response_resources_redacted_total",
                        i64::from(checked.summary.redacted),
                    );
                }
            }
            ResponseVerdict::Deny(denial) => {
                self.write_response_denial(host, stream, &denial);
                self.audit_response(host, &pending, Some(&denial), &checked.summary);
                return Action::Continue;
            }
        }
        self.audit_response(host, &pending, None, &checked.summary);
        Action::Continue
    }

    /// Runs every response check (SMART, response rules, consent labels) on the body.
    fn check_body(&self, pending: &PendingResponse, body: &[u8]) -> Checked {
        let mode = pending
            .decision
            .fhir
            .as_ref()
            .map_or(LabelMode::Read, |f| LabelMode::of(f.interaction));
        let consent = &self.config.consent;
        let input = pending.check.rules.then(|| RuleInput {
            request: request_value(&pending.info),
            source: serde_json::json!({ "address": pending.info.source_address }),
            token: pending.token.to_cel_value(),
            fhir: pending
                .decision
                .fhir
                .as_ref()
                .map(|f| f.to_cel_value())
                .unwrap_or_default(),
        });
        let rules = input
            .as_ref()
            .and_then(|i| self.config.rules.response_rules(i));
        let policy = ResponsePolicy {
            check: &pending.check,
            consent: consent
                .active()
                .then(|| (consent, consent.grants(pending.token.claims()))),
            rules: rules.as_ref(),
            mode,
        };
        filter_response(body, &policy)
    }

    fn replace_response(&mut self, host: &dyn Host, stream: StreamId, denial: &Denial) -> Action {
        self.write_response_denial(host, stream, denial);
        if let Some(p) = self.responses.remove(&stream) {
            self.audit_response(host, &p, Some(denial), &ResponseSummary::default());
        }
        Action::Continue
    }

    fn write_response_denial(&self, host: &dyn Host, stream: StreamId, denial: &Denial) {
        let reply = denial.to_reply(&self.config.realm, self.config.retry_after_secs);
        // None of the upstream's headers describe the denial (ETag, Location, Last-Modified
        // and the like would describe the withheld resource): keep only these.
        for (name, _) in host.response_headers(stream) {
            if !KEPT_ON_DENIAL.contains(&name.as_str()) {
                host.set_response_header(stream, &name, None);
            }
        }
        host.set_response_header(stream, ":status", Some(&reply.status.to_string()));
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
        summary: &ResponseSummary,
    ) {
        let mut decision = p.decision.clone();
        decision.denial = denial.cloned();
        let mut record = AuditRecord::new(
            host.now_ms(),
            &p.info,
            Some(&p.token),
            &decision,
            summary.withheld(),
        );
        record.response = summary.clone();
        self.write_audit(host, p.stream, record, Some(&p.token), p.started_ms);
    }
}

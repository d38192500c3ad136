//! The response phase of requests whose decision needs the response checked: buffer the body
//! (bounded), then pass, rewrite (Bundle entries withheld, resources redacted) or refuse it
//! (see [`crate::response`]). In full mode the response headers are held until the check, so a
//! refusal replaces the status; in safe mode they have gone to the client, so a refusal cuts the
//! response off.

use std::rc::Rc;

use super::mode::{HoldMode, PROBE_AFTER_MS, PROBE_SETTLE_MS};
use super::{CheckingResponse, Effect, Exchange, State, Upstream, Verdict};
use crate::audit::AuditRecord;
use crate::metrics::{self, Metric};
use crate::outcome::{Denial, DenyKind};
use crate::response::ResponseVerdict;
use crate::response::{filter_response, Checked, LabelMode, ResponsePolicy, ResponseSummary};

/// Upstream response headers kept when a response is replaced by a denial.
const KEPT_ON_DENIAL: [&str; 3] = [":status", "date", "x-request-id"];

fn bad_gateway(reason: &str, description: &str) -> Denial {
    Denial::new(DenyKind::BadGateway, reason, description)
}

impl Exchange {
    /// The response headers of an allowed request whose response must be checked.
    pub(super) fn on_response_headers(
        &mut self,
        up: Upstream,
        headers: &[(String, String)],
        end_of_stream: bool,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        let status = headers
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse::<u16>().ok())
            .unwrap_or(0);
        if !(200..300).contains(&status) || end_of_stream {
            // Upstream errors (and empty answers) pass unchanged: they carry no resource.
            audit_response(&up, None, &ResponseSummary::default(), now_ms, out);
            return (State::Done, Verdict::Continue);
        }
        let encoded = headers
            .iter()
            .any(|(n, v)| n == "content-encoding" && !v.eq_ignore_ascii_case("identity"));
        if encoded {
            // Nothing was sent yet (this is the headers callback): a local answer replaces it.
            let denial = bad_gateway(
                "response.encoded",
                "the upstream response is compressed and could not be checked",
            );
            let reply = denial.to_reply(&self.config.realm, self.config.retry_after_secs);
            out.push(Effect::ReplaceResponse(reply));
            out.push(Effect::Metric(Metric::inc(metrics::RESPONSES_DENIED)));
            audit_response(&up, Some(&denial), &ResponseSummary::default(), now_ms, out);
            return (State::Done, Verdict::Pause);
        }
        let held = self.mode.holds_for_body();
        if !held {
            // The headers go now and the body may change: its length is recomputed by the proxy.
            out.push(Effect::SetResponseHeader(
                "content-length".to_string(),
                None,
            ));
        }
        let checking = CheckingResponse {
            up,
            held,
            held_since_ms: now_ms,
            probing_since_ms: None,
            upstream_headers: headers.iter().map(|(n, _)| n.clone()).collect(),
            buffered: 0,
        };
        let verdict = if held {
            Verdict::Pause
        } else {
            Verdict::Continue
        };
        (State::CheckingResponse(Box::new(checking)), verdict)
    }

    /// A chunk of a checked response's body arrived.
    pub(super) fn on_response_body(
        &mut self,
        mut c: CheckingResponse,
        buffered: usize,
        end_of_stream: bool,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        if c.held {
            self.learn(HoldMode::Full, out);
        }
        if let Some(since) = c.probing_since_ms.take() {
            if now_ms.saturating_sub(since) <= PROBE_SETTLE_MS {
                self.learn(HoldMode::Safe, out);
            }
        }
        c.buffered = buffered;
        if buffered > self.config.max_response_bytes {
            let denial = bad_gateway(
                "response.too_large",
                "the upstream response is too large to be checked",
            );
            return self.refuse(c, &denial, &ResponseSummary::default(), now_ms, out);
        }
        if end_of_stream {
            out.push(Effect::ReadResponseBody(buffered));
        }
        (State::CheckingResponse(Box::new(c)), Verdict::Pause)
    }

    /// The timer while a checked response's body is awaited behind held headers: see
    /// [`Exchange::probe_request`].
    pub(super) fn probe_response(
        &mut self,
        mut c: CheckingResponse,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        let waited = now_ms.saturating_sub(c.held_since_ms);
        let release = c.held
            && c.buffered == 0
            && match self.mode {
                HoldMode::Safe => true,
                HoldMode::Unknown => waited >= PROBE_AFTER_MS,
                HoldMode::Full => false,
            };
        if !release {
            return (State::CheckingResponse(Box::new(c)), Verdict::Pause);
        }
        c.held = false;
        // The headers go now; the body may still change.
        out.push(Effect::SetResponseHeader(
            "content-length".to_string(),
            None,
        ));
        if self.mode == HoldMode::Unknown {
            c.probing_since_ms = Some(now_ms);
        }
        (State::CheckingResponse(Box::new(c)), Verdict::Continue)
    }

    /// The whole body of a checked response.
    pub(super) fn check_response(
        &mut self,
        c: CheckingResponse,
        body: &[u8],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        let mut c = c;
        let checked = self.filter(&c.up, body);
        for f in &checked.flags {
            if !c.up.decision.flags.contains(f) {
                c.up.decision.flags.push(f.clone());
            }
        }
        if self.explain {
            crate::explain::response_check(&checked, &mut self.trace);
        }
        let withheld = checked.summary.withheld();
        match checked.verdict {
            ResponseVerdict::Pass => {}
            ResponseVerdict::Rewrite { body, .. } => {
                if c.held {
                    // Still held: the new body's length is recomputed by the proxy.
                    out.push(Effect::SetResponseHeader(
                        "content-length".to_string(),
                        None,
                    ));
                }
                out.push(Effect::ReplaceResponseBody(body));
                out.push(Effect::Metric(Metric::inc(metrics::RESPONSES_REWRITTEN)));
                if withheld > 0 {
                    out.push(Effect::Metric(Metric::count(
                        metrics::RESPONSE_ENTRIES_WITHHELD,
                        i64::from(withheld),
                    )));
                }
                if checked.summary.redacted > 0 {
                    out.push(Effect::Metric(Metric::count(
                        metrics::RESPONSE_RESOURCES_REDACTED,
                        i64::from(checked.summary.redacted),
                    )));
                }
            }
            ResponseVerdict::Deny(denial) => {
                return self.refuse(c, &denial, &checked.summary, now_ms, out);
            }
        }
        audit_response(&c.up, None, &checked.summary, now_ms, out);
        (State::Done, Verdict::Continue)
    }

    /// Runs every response check (SMART, response rules, consent labels) on the body.
    fn filter(&self, up: &Upstream, body: &[u8]) -> Checked {
        let mode = up
            .decision
            .fhir
            .as_ref()
            .map_or(LabelMode::Read, |f| LabelMode::of(f.interaction));
        let consent = &self.config.consent;
        let input = up.input.as_ref().map(|i| {
            let mut i = i.clone();
            i.fhir = up
                .decision
                .fhir
                .as_ref()
                .map(|f| f.to_cel_value())
                .unwrap_or_default();
            i
        });
        let rules = input
            .as_ref()
            .and_then(|i| self.config.rules.response_rules(i));
        let policy = ResponsePolicy {
            check: &up.check,
            consent: consent
                .active()
                .then(|| (consent, consent.grants(up.token.claims()))),
            rules: rules.as_ref(),
            mode,
        };
        filter_response(body, &policy)
    }

    /// Refuses a checked response: a new status and body while its headers are held, a reset
    /// once they went to the client.
    fn refuse(
        &mut self,
        c: CheckingResponse,
        denial: &Denial,
        summary: &ResponseSummary,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        out.push(Effect::Metric(Metric::inc(metrics::RESPONSES_DENIED)));
        if !c.held {
            out.push(Effect::ResetResponse);
            out.push(Effect::Metric(Metric::inc(metrics::RESPONSES_RESET)));
            audit_response(&c.up, Some(denial), summary, now_ms, out);
            return (State::Done, Verdict::Pause);
        }
        let reply = denial.to_reply(&self.config.realm, self.config.retry_after_secs);
        // None of the upstream's headers describe the denial (ETag, Location, Last-Modified
        // and the like would describe the withheld resource): keep only these.
        for name in &c.upstream_headers {
            if !KEPT_ON_DENIAL.contains(&name.as_str()) {
                out.push(Effect::SetResponseHeader(name.clone(), None));
            }
        }
        out.push(Effect::SetResponseHeader(
            ":status".to_string(),
            Some(reply.status.to_string()),
        ));
        for (name, value) in &reply.headers {
            out.push(Effect::SetResponseHeader(name.clone(), Some(value.clone())));
        }
        out.push(Effect::ReplaceResponseBody(reply.body));
        audit_response(&c.up, Some(denial), summary, now_ms, out);
        (State::Done, Verdict::Continue)
    }
}

/// The audit record of a checked request, once its response is decided.
fn audit_response(
    up: &Upstream,
    denial: Option<&Denial>,
    summary: &ResponseSummary,
    now_ms: u64,
    out: &mut Vec<Effect>,
) {
    let mut decision = up.decision.clone();
    decision.denial = denial.cloned();
    let mut record = AuditRecord::new(
        now_ms,
        &up.req.info,
        Some(&up.token),
        &decision,
        summary.withheld(),
    );
    record.response = summary.clone();
    out.push(Effect::Audit(
        Box::new(record),
        Some(Rc::clone(&up.token)),
        up.req.started_ms,
    ));
}

//! The request phase: headers → credential → token → (body) → decision.

use std::rc::Rc;

use super::hygiene::refused_on_headers;
use super::mode::{HoldMode, PROBE_AFTER_MS, PROBE_SETTLE_MS};
use super::view::{is_public_discovery, request_info, spoofable_headers};
use super::{
    Authenticating, BodyProgress, Connection, Credential, Effect, Exchange, ReadingBody, Request,
    SenderCheck, SenderFacts, State, Upstream, Verdict,
};
use crate::audit::AuditRecord;
use crate::decision::{decide, decide_explained, decide_on_headers, wants_body};
use crate::forward::identity_headers;
use crate::metrics::{self, Metric};
use crate::outcome::{Denial, DenyKind};
use crate::token::{extract_credential, VerifiedToken};

/// The 413 for a body over `fhir.maxBodyBytes`.
fn too_large() -> Denial {
    Denial::new(
        DenyKind::TooLarge,
        "request.body_too_large",
        "the request body is larger than this gateway accepts",
    )
}

impl Exchange {
    /// The request headers arrived.
    pub(super) fn on_request_headers(
        &mut self,
        headers: &[(String, String)],
        end_of_stream: bool,
        connection: Connection,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        // Headers fhirgate owns are never trusted from downstream, whatever happens next.
        for name in spoofable_headers(&self.config, headers) {
            out.push(Effect::RemoveRequestHeader(name.to_string()));
        }
        let info = request_info(headers, &connection.source);
        if let Some(denial) = refused_on_headers(&info.method, &info.path, headers, end_of_stream) {
            let req = Request {
                info,
                started_ms: now_ms,
                wants_body: false,
                accept_encoding: false,
            };
            return self.deny(req, None, &denial, now_ms, out);
        }
        if is_public_discovery(&self.config, &info) {
            self.note(|| "public discovery: no token needed".to_string());
            let record = AuditRecord::public(now_ms, &info);
            out.push(Effect::Audit(Box::new(record), None, now_ms));
            return (State::Done, Verdict::Continue);
        }
        let wants = wants_body(&info.method, &info.path, &self.config.base_path);
        let req = Request {
            info,
            started_ms: now_ms,
            wants_body: wants,
            accept_encoding: headers.iter().any(|(n, _)| n == "accept-encoding"),
        };
        let authorization: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str())
            .collect();
        let credential = match extract_credential(&authorization) {
            Ok(Some(c)) => Credential {
                token: c.token.to_string(),
                sender: SenderFacts::capture(&c, headers),
            },
            Ok(None) => {
                let denial = Denial::new(
                    DenyKind::NoCredentials,
                    "token.missing",
                    "a bearer token is required",
                );
                return self.deny(req, None, &denial, now_ms, out);
            }
            Err(e) => {
                let denial = Denial::new(
                    DenyKind::InvalidRequest,
                    format!("request.{}", e.code()),
                    e.to_string(),
                );
                return self.deny(req, None, &denial, now_ms, out);
            }
        };
        let need_body = wants && !end_of_stream;
        if need_body {
            let declared = req
                .info
                .headers
                .get("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.config.max_body_bytes as u64) {
                return self.deny(req, None, &too_large(), now_ms, out);
            }
        }
        out.push(Effect::Authenticate(credential.clone()));
        let body = BodyProgress {
            complete: !need_body,
            ..BodyProgress::default()
        };
        let state = Authenticating {
            req,
            credential,
            body,
            held: true,
        };
        (State::Authenticating(Box::new(state)), Verdict::Pause)
    }

    /// A body chunk arrived while the token is still being authenticated (full mode only:
    /// otherwise Envoy holds the body behind the held headers).
    pub(super) fn on_body_while_authenticating(
        &mut self,
        mut a: Box<Authenticating>,
        buffered: usize,
        end_of_stream: bool,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        a.body.buffered = buffered;
        a.body.complete = end_of_stream;
        a.body.seen_while_held |= a.held;
        if a.body.seen_while_held {
            self.learn(HoldMode::Full, out);
        }
        if buffered > self.config.max_body_bytes {
            return self.deny(a.req, None, &too_large(), now_ms, out);
        }
        (State::Authenticating(a), Verdict::Pause)
    }

    /// The engine authenticated the credential (or refused it): next, how it was presented.
    pub(super) fn on_authenticated(
        &mut self,
        a: Box<Authenticating>,
        result: Result<Rc<VerifiedToken>, crate::outcome::Denial>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        let token = match result {
            Ok(token) => token,
            Err(denial) => return self.deny(a.req, None, &denial, now_ms, out),
        };
        // Every request, cached tokens included: a bound token proves its binding each time.
        let check = SenderCheck {
            facts: a.credential.sender.clone(),
            method: a.req.info.method.clone(),
            authority: a.req.info.host.clone(),
            path: a.req.info.path.clone(),
        };
        out.push(Effect::CheckSender(Rc::clone(&token), Box::new(check)));
        (State::CheckingSender(a, token), Verdict::Pause)
    }

    /// The engine checked how the token was presented (DPoP proof, client certificate).
    pub(super) fn on_sender_checked(
        &mut self,
        a: Authenticating,
        token: Rc<VerifiedToken>,
        result: Result<(), crate::outcome::Denial>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        if let Err(denial) = result {
            return self.deny(a.req, Some(&token), &denial, now_ms, out);
        }
        self.note(|| {
            format!(
                "token: subject {:?}, client {:?}, scopes {:?}, patient {}",
                token.subject().unwrap_or(""),
                token.client_id().unwrap_or(""),
                token.scopes(),
                token
                    .patient()
                    .map_or("(none)".to_string(), |p| format!("{p:?}")),
            )
        });
        if !a.req.wants_body {
            return self.decide(a.req, token, None, a.held, now_ms, out);
        }
        // A write that its headers already refuse is refused now: no body could lift it, and
        // nothing (not even in safe mode) goes upstream.
        if let Some(mut decision) =
            decide_on_headers(&self.config, &token, &a.req.info, self.explain)
        {
            self.trace.append(&mut decision.trace);
            self.note(|| "decided on the headers: no body could change it".to_string());
            if let Some(denial) = decision.denial.clone() {
                self.note(|| {
                    format!(
                        "decision: deny {} ({}): {}",
                        denial.status(),
                        denial.reason,
                        denial.description
                    )
                });
                let record = AuditRecord::new(now_ms, &a.req.info, Some(&token), &decision, 0);
                return self.reply(a.req, record, Some(token), &denial, out);
            }
        }
        if a.body.complete {
            if a.body.buffered == 0 {
                return self.decide(a.req, token, Some(&[]), a.held, now_ms, out);
            }
            out.push(Effect::ReadRequestBody(a.body.buffered));
            let r = ReadingBody {
                req: a.req,
                token,
                body: a.body,
                held: a.held,
                held_since_ms: now_ms,
                probing_since_ms: None,
            };
            return (State::ReadingBody(Box::new(r)), Verdict::Pause);
        }
        let mut r = ReadingBody {
            req: a.req,
            token,
            body: a.body,
            held: a.held,
            held_since_ms: now_ms,
            probing_since_ms: None,
        };
        if self.mode.holds_for_body() {
            // Full (or not yet known): keep the headers until the body decides.
            return (State::ReadingBody(Box::new(r)), Verdict::Pause);
        }
        // Safe mode: Envoy delivers no body to held headers, so they go on now, with the
        // identity headers of the verified token; the body is held until the decision, and a
        // denial resets the upstream request before any of it was sent.
        self.release_headers(&mut r, out);
        (State::ReadingBody(Box::new(r)), Verdict::Continue)
    }

    /// The headers go upstream before the body decision (safe mode, or a probe).
    fn release_headers(&self, r: &mut ReadingBody, out: &mut Vec<Effect>) {
        r.held = false;
        self.forward_headers(&r.token, out);
        // The decision may need the response checked: ask upstream for an identity encoding.
        if r.req.accept_encoding {
            out.push(Effect::RemoveRequestHeader("accept-encoding".to_string()));
        }
        out.push(Effect::Metric(Metric::inc(metrics::HEADERS_RELEASED_EARLY)));
    }

    /// A chunk of the body of an authenticated request arrived.
    pub(super) fn on_request_body(
        &mut self,
        mut r: ReadingBody,
        buffered: usize,
        end_of_stream: bool,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        if r.held {
            self.learn(HoldMode::Full, out);
        }
        if let Some(since) = r.probing_since_ms.take() {
            if now_ms.saturating_sub(since) <= PROBE_SETTLE_MS {
                self.learn(HoldMode::Safe, out);
            }
        }
        r.body.buffered = buffered;
        r.body.complete = end_of_stream;
        if buffered > self.config.max_body_bytes {
            return self.deny(r.req, Some(&r.token), &too_large(), now_ms, out);
        }
        if end_of_stream {
            out.push(Effect::ReadRequestBody(buffered));
        }
        (State::ReadingBody(Box::new(r)), Verdict::Pause)
    }

    /// The timer while the body is awaited: a hold that saw no body for [`PROBE_AFTER_MS`]
    /// (or any hold, once safe mode is known) is released, so no request waits for a body that
    /// Envoy will not deliver.
    pub(super) fn probe_request(
        &mut self,
        mut r: ReadingBody,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        let waited = now_ms.saturating_sub(r.held_since_ms);
        let release = r.held
            && r.body.buffered == 0
            && match self.mode {
                HoldMode::Safe => true,
                HoldMode::Unknown => waited >= PROBE_AFTER_MS,
                HoldMode::Full => false,
            };
        if !release {
            return (State::ReadingBody(Box::new(r)), Verdict::Pause);
        }
        self.note(|| "no body reached the held headers: released".to_string());
        self.release_headers(&mut r, out);
        if self.mode == HoldMode::Unknown {
            r.probing_since_ms = Some(now_ms);
        }
        (State::ReadingBody(Box::new(r)), Verdict::Continue)
    }

    /// The decision, and what follows from it. `held`: the request headers have not gone
    /// upstream yet (they get the identity headers now).
    pub(super) fn decide(
        &mut self,
        req: Request,
        token: Rc<VerifiedToken>,
        body: Option<&[u8]>,
        held: bool,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        let mut decision = if self.explain {
            decide_explained(&self.config, &token, &req.info, body)
        } else {
            decide(&self.config, &token, &req.info, body)
        };
        if self.explain {
            self.trace.append(&mut decision.trace);
        }
        if let Some(denial) = decision.denial.clone() {
            self.note(|| {
                format!(
                    "decision: deny {} ({}): {}",
                    denial.status(),
                    denial.reason,
                    denial.description
                )
            });
            let record = AuditRecord::new(now_ms, &req.info, Some(&token), &decision, 0);
            return self.reply(req, record, Some(token), &denial, out);
        }
        if let Some(narrowed) = &decision.narrowed {
            if !held {
                // Cannot happen (a GET is decided on its held headers); never forward the
                // unnarrowed search.
                let denial = Denial::new(
                    DenyKind::Forbidden,
                    "smart.patient_compartment",
                    "the search is not constrained to the patient",
                );
                return self.deny(req, Some(&token), &denial, now_ms, out);
            }
            self.note(|| {
                format!(
                    "narrowed: upstream gets {} {}",
                    req.info.method, narrowed.path
                )
            });
            out.push(Effect::SetRequestHeader(
                ":path".to_string(),
                narrowed.path.clone(),
            ));
            out.push(Effect::SetRequestHeader(
                "prefer".to_string(),
                narrowed.prefer.clone(),
            ));
        }
        if held {
            self.forward_headers(&token, out);
        }
        match decision.response_check.take() {
            Some(check) => {
                // Compressed answers cannot be checked: ask upstream for identity.
                if held && req.accept_encoding {
                    out.push(Effect::RemoveRequestHeader("accept-encoding".to_string()));
                }
                let input = decision.input.take();
                let up = Upstream {
                    req,
                    token,
                    decision,
                    check,
                    input,
                };
                (State::Upstream(Box::new(up)), Verdict::Continue)
            }
            None => {
                let record = AuditRecord::new(now_ms, &req.info, Some(&token), &decision, 0);
                out.push(Effect::Audit(Box::new(record), Some(token), req.started_ms));
                (State::Done, Verdict::Continue)
            }
        }
    }

    /// The identity headers of the verified token, and `removeAuthorization`.
    fn forward_headers(&self, token: &VerifiedToken, out: &mut Vec<Effect>) {
        for (name, value) in identity_headers(&self.config.forward, token) {
            out.push(Effect::SetRequestHeader(name, value));
        }
        if self.config.forward.remove_authorization {
            out.push(Effect::RemoveRequestHeader("authorization".to_string()));
            out.push(Effect::RemoveRequestHeader("dpop".to_string()));
        }
    }

    /// Refuses the request: the audit record of the denial, then the answer.
    pub(super) fn deny(
        &mut self,
        req: Request,
        token: Option<&Rc<VerifiedToken>>,
        denial: &Denial,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        self.note(|| format!("refused: {} ({})", denial.status(), denial.reason));
        let record = AuditRecord::denied(now_ms, &req.info, token.map(|t| &**t), denial);
        self.reply(req, record, token.cloned(), denial, out)
    }

    /// Writes the record (first: the reply may end the stream), then answers.
    fn reply(
        &mut self,
        req: Request,
        record: AuditRecord,
        token: Option<Rc<VerifiedToken>>,
        denial: &Denial,
        out: &mut Vec<Effect>,
    ) -> (State, Verdict) {
        out.push(Effect::Audit(Box::new(record), token, req.started_ms));
        let reply = denial.to_reply(&self.config.realm, self.config.retry_after_secs);
        out.push(Effect::Reply(reply));
        (State::Done, Verdict::Pause)
    }

    /// Records what was learned about the proxy, once.
    pub(super) fn learn(&mut self, mode: HoldMode, out: &mut Vec<Effect>) {
        if self.mode == HoldMode::Unknown && mode != HoldMode::Unknown {
            self.mode = mode;
            out.push(Effect::Learned(mode));
        }
    }
}

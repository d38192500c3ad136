//! One HTTP stream through the worker: headers in, maybe a body, maybe a wait for keys, then the
//! decision carried out.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::auth::AuthStep;
use super::introspect::{introspection_unavailable, IntroOutcome};
use super::{Action, Worker};
use crate::audit::AuditRecord;
use crate::config::OWNED_HEADER_PREFIX;
use crate::decision::{decide, wants_body, RequestInfo};
use crate::forward::identity_headers;
use crate::host::{Host, StreamId};
use crate::outcome::{Denial, DenyKind};
use crate::token::{extract_bearer, VerifiedToken};

/// Longest a stream waits for another worker's key fetch (or an introspection) before getting 503.
const MAX_WAIT_MS: u64 = 65_000;

/// A stream the worker is tracking.
pub(super) struct Stream {
    info: RequestInfo,
    bearer: String,
    need_body: bool,
    body: Option<Vec<u8>>,
    body_done: bool,
    /// The proxy was told to pause because of a wait (not just for the body).
    paused: bool,
    /// The headers went on upstream before the body (see `release_headers`).
    headers_released: bool,
    waiting_keys: Option<usize>,
    /// SHA-256 of the token whose introspection this stream waits for.
    waiting_introspection: Option<[u8; 32]>,
    token: Option<Rc<VerifiedToken>>,
    started_ms: u64,
}

/// Who is driving the stream forward.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// The stream's own headers or body callback: the return value carries the verdict.
    OwnCallback,
    /// Another callback (callout answer, tick): allow must resume the stream explicitly.
    Wake,
}

fn request_info(host: &dyn Host, stream: StreamId, headers: &[(String, String)]) -> RequestInfo {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut method = String::new();
    let mut path = String::new();
    let mut authority = String::new();
    for (name, value) in headers {
        match name.as_str() {
            ":method" => method = value.clone(),
            ":path" => path = value.clone(),
            ":authority" => authority = value.clone(),
            n if n.starts_with(':') || n == "authorization" || n == "cookie" => {}
            n if n.starts_with(OWNED_HEADER_PREFIX) => {}
            n => {
                map.entry(n.to_string())
                    .and_modify(|v| {
                        v.push(',');
                        v.push_str(value);
                    })
                    .or_insert_with(|| value.clone());
            }
        }
    }
    let source_address = host
        .property(stream, &["source", "address"])
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    RequestInfo {
        method,
        path,
        host: authority,
        request_id: map.get("x-request-id").cloned(),
        headers: map,
        source_address,
    }
}

impl Worker {
    /// The request headers arrived.
    pub fn on_request_headers(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        end_of_stream: bool,
    ) -> Action {
        let started_ms = host.now_ms();
        let headers = host.request_headers(stream);
        // Headers fhirgate owns are never trusted from downstream, whatever happens next.
        for (name, _) in &headers {
            let configured = self.config.forward.headers.iter().any(|(h, _)| h == name);
            if name.starts_with(OWNED_HEADER_PREFIX) || configured {
                host.set_request_header(stream, name, None);
            }
        }
        let info = request_info(host, stream, &headers);
        if self.is_public_discovery(&info) {
            let record = AuditRecord::public(host.now_ms(), &info);
            self.write_audit(host, stream, record, None, started_ms);
            return Action::Continue;
        }
        let authorization: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str())
            .collect();
        let bearer = match extract_bearer(&authorization) {
            Ok(Some(token)) => token.to_string(),
            Ok(None) => {
                let denial = Denial::new(
                    DenyKind::NoCredentials,
                    "token.missing",
                    "a bearer token is required",
                );
                return self.deny(host, stream, &info, None, &denial, started_ms);
            }
            Err(e) => {
                let denial = Denial::new(
                    DenyKind::InvalidRequest,
                    format!("request.{}", e.code()),
                    e.to_string(),
                );
                return self.deny(host, stream, &info, None, &denial, started_ms);
            }
        };
        let wants = wants_body(&info.method, &info.path, &self.config.base_path);
        let need_body = wants && !end_of_stream;
        if need_body {
            let declared = info
                .headers
                .get("content-length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.config.max_body_bytes as u64) {
                let denial = too_large();
                return self.deny(host, stream, &info, None, &denial, started_ms);
            }
        }
        self.streams.insert(
            stream,
            Stream {
                info,
                bearer,
                need_body,
                body: wants.then(Vec::new),
                body_done: !need_body,
                paused: false,
                headers_released: false,
                waiting_keys: None,
                waiting_introspection: None,
                token: None,
                started_ms,
            },
        );
        self.advance(host, stream, Driver::OwnCallback)
    }

    /// A chunk of the request body arrived; `body_size` is everything buffered so far.
    pub fn on_request_body(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let max = self.config.max_body_bytes;
        let Some(s) = self.streams.get_mut(&stream) else {
            return Action::Continue;
        };
        if !s.need_body {
            return if s.paused {
                Action::Pause
            } else {
                Action::Continue
            };
        }
        if body_size > max {
            let denial = too_large();
            return self.finish_deny(host, stream, &denial);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        s.body = Some(host.request_body(stream, body_size).unwrap_or_default());
        s.body_done = true;
        if s.waiting_keys.is_some() || s.waiting_introspection.is_some() {
            return Action::Pause;
        }
        // Whatever the verdict, the stream's headers already went on or are answered here.
        if let Some(s) = self.streams.get_mut(&stream) {
            s.paused = false;
        }
        self.advance(host, stream, Driver::OwnCallback)
    }

    fn key_waiters(&self, index: usize) -> Vec<StreamId> {
        self.streams
            .iter()
            .filter(|(_, s)| s.waiting_keys == Some(index))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Re-drives every stream waiting for provider `index`'s keys.
    pub(super) fn wake_key_waiters(&mut self, host: &dyn Host, index: usize, force: bool) {
        let now = host.now_ms();
        let waiting = self.key_waiters(index);
        for id in waiting {
            let expired = self
                .streams
                .get(&id)
                .is_some_and(|s| now.saturating_sub(s.started_ms) > MAX_WAIT_MS);
            if expired {
                let denial = Denial::new(
                    DenyKind::Unavailable,
                    "jwks.timeout",
                    "signing keys are unavailable; retry later",
                );
                self.finish_deny(host, id, &denial);
                continue;
            }
            if force {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.waiting_keys = None;
                }
                self.advance(host, id, Driver::Wake);
            }
        }
    }

    /// Answers 503 to every stream waiting for provider `index`'s keys.
    pub(super) fn fail_key_waiters(&mut self, host: &dyn Host, index: usize) {
        let waiting = self.key_waiters(index);
        for id in waiting {
            let denial = Denial::new(
                DenyKind::Unavailable,
                "jwks.unavailable",
                "signing keys are unavailable; retry later",
            );
            self.finish_deny(host, id, &denial);
        }
    }

    /// Finishes every stream waiting on the introspection of `hash`: on with the token, or denied.
    pub(super) fn finish_introspection_waiters(
        &mut self,
        host: &dyn Host,
        hash: &[u8; 32],
        outcome: IntroOutcome,
    ) {
        let waiting: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.waiting_introspection.as_ref() == Some(hash))
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            match &outcome {
                IntroOutcome::Active(token) => {
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.waiting_introspection = None;
                        s.token = Some(Rc::clone(token));
                        s.bearer.clear();
                    }
                    self.advance(host, id, Driver::Wake);
                }
                IntroOutcome::Denied(denial) => {
                    self.finish_deny(host, id, denial);
                }
            }
        }
    }

    /// Answers 503 to streams waiting on an introspection that is no longer in flight, or
    /// waiting longer than [`MAX_WAIT_MS`].
    pub(super) fn fail_orphan_introspection_waiters(&mut self, host: &dyn Host) {
        let now = host.now_ms();
        let orphans: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                s.waiting_introspection.is_some_and(|h| {
                    !self.intro_inflight.contains_key(&h)
                        || now.saturating_sub(s.started_ms) > MAX_WAIT_MS
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in orphans {
            self.finish_deny(host, id, &introspection_unavailable());
        }
    }

    fn advance(&mut self, host: &dyn Host, stream: StreamId, driver: Driver) -> Action {
        let Some(s) = self.streams.get(&stream) else {
            return Action::Continue;
        };
        if s.token.is_none() {
            let bearer = s.bearer.clone();
            match self.authenticate(host, &bearer) {
                AuthStep::Ready(token) => {
                    if let Some(s) = self.streams.get_mut(&stream) {
                        s.token = Some(token);
                        s.bearer.clear();
                    }
                }
                AuthStep::Deny(denial) => return self.finish_deny(host, stream, &denial),
                AuthStep::WaitKeys(index) => {
                    if let Some(s) = self.streams.get_mut(&stream) {
                        s.waiting_keys = Some(index);
                        s.paused = true;
                    }
                    return Action::Pause;
                }
                AuthStep::WaitIntrospection(hash) => {
                    if let Some(s) = self.streams.get_mut(&stream) {
                        s.waiting_introspection = Some(hash);
                        s.paused = true;
                    }
                    return Action::Pause;
                }
            }
        }
        let Some(s) = self.streams.get(&stream) else {
            return Action::Continue;
        };
        if !s.body_done {
            return self.release_headers(host, stream, driver);
        }
        let Some(token) = s.token.clone() else {
            return Action::Pause;
        };
        let decision = decide(&self.config, &token, &s.info, s.body.as_deref());
        match decision.denial.clone() {
            Some(denial) => {
                // The record of a decision names the interaction and resource it denied.
                let Some(s) = self.streams.remove(&stream) else {
                    return Action::Pause;
                };
                let record = AuditRecord::new(host.now_ms(), &s.info, Some(&token), &decision, 0);
                self.reply_denied(host, stream, record, Some(&token), &denial, s.started_ms)
            }
            None => {
                let Some(s) = self.streams.remove(&stream) else {
                    return Action::Continue;
                };
                if !s.headers_released {
                    self.set_forward_headers(host, stream, &token);
                }
                match decision.response_check.clone() {
                    Some(check) => {
                        // Compressed answers cannot be checked: ask upstream for identity.
                        if !s.headers_released {
                            host.set_request_header(stream, "accept-encoding", None);
                        }
                        self.responses.insert(
                            stream,
                            super::response::PendingResponse {
                                check,
                                info: s.info,
                                token: Rc::clone(&token),
                                decision,
                                started_ms: s.started_ms,
                                stream,
                            },
                        );
                    }
                    None => {
                        let record =
                            AuditRecord::new(host.now_ms(), &s.info, Some(&token), &decision, 0);
                        self.write_audit(host, stream, record, Some(&token), s.started_ms);
                    }
                }
                if driver == Driver::Wake && s.paused {
                    host.resume(stream);
                }
                Action::Continue
            }
        }
    }

    fn set_forward_headers(&self, host: &dyn Host, stream: StreamId, token: &VerifiedToken) {
        for (name, value) in identity_headers(&self.config.forward, token) {
            host.set_request_header(stream, &name, Some(&value));
        }
        if self.config.forward.remove_authorization {
            host.set_request_header(stream, "authorization", None);
        }
    }

    /// The token is verified but the decision needs the body. The proxy delivers no body to a
    /// filter whose headers callback paused (proxy-wasm maps that to "stop all iteration"), so
    /// the headers go on now, with the identity headers of the verified token, and the decision
    /// is made at the end of the body: a denial then answers locally and resets the upstream
    /// request before any of its body was sent.
    fn release_headers(&mut self, host: &dyn Host, stream: StreamId, driver: Driver) -> Action {
        let Some(token) = self.streams.get(&stream).and_then(|s| s.token.clone()) else {
            return Action::Pause;
        };
        let Some(s) = self.streams.get_mut(&stream) else {
            return Action::Pause;
        };
        if s.headers_released {
            return Action::Pause;
        }
        s.headers_released = true;
        let paused = s.paused;
        self.set_forward_headers(host, stream, &token);
        host.set_request_header(stream, "accept-encoding", None);
        if driver == Driver::Wake && paused {
            host.resume(stream);
        }
        Action::Continue
    }

    fn finish_deny(&mut self, host: &dyn Host, stream: StreamId, denial: &Denial) -> Action {
        match self.streams.remove(&stream) {
            Some(s) => {
                let token = s.token.clone();
                self.deny(
                    host,
                    stream,
                    &s.info,
                    token.as_deref(),
                    denial,
                    s.started_ms,
                )
            }
            None => Action::Pause,
        }
    }

    fn deny(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        info: &RequestInfo,
        token: Option<&VerifiedToken>,
        denial: &Denial,
        started_ms: u64,
    ) -> Action {
        let record = AuditRecord::denied(host.now_ms(), info, token, denial);
        self.reply_denied(host, stream, record, token, denial, started_ms)
    }

    /// Writes the record of a denial, then answers it.
    fn reply_denied(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        record: AuditRecord,
        token: Option<&VerifiedToken>,
        denial: &Denial,
        started_ms: u64,
    ) -> Action {
        // The record (and the access-log values) first: the local reply may end the stream.
        self.write_audit(host, stream, record, token, started_ms);
        let reply = denial.to_reply(&self.config.realm, self.config.retry_after_secs);
        host.send_reply(stream, &reply);
        Action::Pause
    }

    fn is_public_discovery(&self, info: &RequestInfo) -> bool {
        if !self.config.public_discovery || !(info.method == "GET" || info.method == "HEAD") {
            return false;
        }
        let path = info.path.split('?').next().unwrap_or_default();
        let base = &self.config.base_path;
        path.strip_prefix(base.as_str())
            .is_some_and(|rest| rest == "/metadata" || rest == "/.well-known/smart-configuration")
    }
}

fn too_large() -> Denial {
    Denial::new(
        DenyKind::TooLarge,
        "request.body_too_large",
        "the request body is larger than this gateway accepts",
    )
}

//! Executing exchanges: proxy callbacks become events, effects become hostcalls, cache lookups
//! and callouts, and their results come back as the next events.

use std::rc::Rc;

use super::auth::AuthStep;
use super::{Action, Slot, Worker};
use crate::exchange::{Connection, Direction, Effect, Event, Exchange, HoldMode, Verdict};
use crate::host::{Host, LogLevel, OneClock, StreamId};
use crate::outcome::{Denial, DenyKind};
use crate::token::VerifiedToken;

/// Who delivered an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The stream's own callback for this direction: its return value carries the verdict.
    Own(Direction),
    /// Another callback (a callout answer, the timer): going on means resuming the stream.
    External,
}

/// Shared-data key suffix of the learned hold mode.
const MODE_KEY: &str = "hold_mode";

impl Worker {
    /// The request headers arrived.
    pub fn on_request_headers(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        end_of_stream: bool,
    ) -> Action {
        let host = &OneClock::new(host);
        let headers = host.request_headers(stream);
        let source = host
            .property(stream, &["source", "address"])
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let mut exchange = Exchange::new(Rc::clone(&self.config), self.mode);
        exchange.set_mode(self.mode);
        self.streams.insert(
            stream,
            Slot {
                exchange,
                held: None,
                waiting_since_ms: None,
            },
        );
        let event = Event::RequestHeaders {
            headers,
            end_of_stream,
            connection: Connection { source },
        };
        self.drive(host, stream, event, Origin::Own(Direction::Request))
    }

    /// A chunk of the request body arrived; `body_size` is everything buffered so far.
    pub fn on_request_body(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let host = &OneClock::new(host);
        let event = Event::RequestBody {
            buffered: body_size,
            end_of_stream,
        };
        self.drive(host, stream, event, Origin::Own(Direction::Request))
    }

    /// The response headers arrived.
    pub fn on_response_headers(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        end_of_stream: bool,
    ) -> Action {
        let host = &OneClock::new(host);
        if !self.streams.contains_key(&stream) {
            return Action::Continue;
        }
        let event = Event::ResponseHeaders {
            headers: host.response_headers(stream),
            end_of_stream,
        };
        self.drive(host, stream, event, Origin::Own(Direction::Response))
    }

    /// A chunk of the response body arrived; `body_size` is everything buffered so far.
    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let host = &OneClock::new(host);
        let event = Event::ResponseBody {
            buffered: body_size,
            end_of_stream,
        };
        self.drive(host, stream, event, Origin::Own(Direction::Response))
    }

    /// Forgets a finished stream. A request that was allowed but whose response never came
    /// (upstream reset, client gone) still gets its audit record.
    pub fn on_stream_done(&mut self, host: &dyn Host, stream: StreamId) {
        let host = &OneClock::new(host);
        self.drive(host, stream, Event::Done, Origin::External);
        self.streams.remove(&stream);
    }

    /// Feeds `event` to the stream's exchange and carries out what it answers, until no effect
    /// yields a further event; returns the proxy action for the delivering callback.
    fn drive(&mut self, host: &dyn Host, stream: StreamId, event: Event, origin: Origin) -> Action {
        let Some(mut slot) = self.streams.remove(&stream) else {
            return Action::Continue;
        };
        slot.exchange.set_mode(self.mode);
        let mut effects = Vec::new();
        let mut next = Some(event);
        let mut verdict = Verdict::Pause;
        while let Some(event) = next.take() {
            verdict = slot.exchange.handle(event, host.now_ms(), &mut effects);
            for effect in effects.drain(..) {
                if let Some(follow) = self.execute(host, stream, &mut slot, effect) {
                    next = Some(follow);
                }
            }
        }
        let action = match (origin, verdict) {
            (Origin::Own(direction), Verdict::Pause) => {
                slot.held = Some(direction);
                Action::Pause
            }
            (Origin::Own(_), Verdict::Continue) => {
                slot.held = None;
                Action::Continue
            }
            (Origin::External, Verdict::Continue) => {
                match slot.held.take() {
                    Some(Direction::Request) => host.resume(stream),
                    Some(Direction::Response) => host.resume_response(stream),
                    None => {}
                }
                Action::Continue
            }
            (Origin::External, Verdict::Pause) => Action::Pause,
        };
        if !slot.exchange.is_done() {
            self.streams.insert(stream, slot);
        }
        action
    }

    /// Carries out one effect; returns the event it produced right away, if any.
    fn execute(
        &mut self,
        host: &dyn Host,
        stream: StreamId,
        slot: &mut Slot,
        effect: Effect,
    ) -> Option<Event> {
        match effect {
            Effect::RemoveRequestHeader(name) => host.set_request_header(stream, &name, None),
            Effect::SetRequestHeader(name, value) => {
                host.set_request_header(stream, &name, Some(&value))
            }
            Effect::Authenticate(credential) => {
                return match self.authenticate(host, &credential.token) {
                    AuthStep::Ready(token) => Some(Event::Authenticated(Ok(token))),
                    AuthStep::Deny(denial) => Some(Event::Authenticated(Err(denial))),
                    AuthStep::WaitKeys(index) => {
                        slot.waiting_since_ms = Some(host.now_ms());
                        self.key_waiters.entry(index).or_default().push(stream);
                        None
                    }
                    AuthStep::WaitIntrospection(hash) => {
                        slot.waiting_since_ms = Some(host.now_ms());
                        self.intro_waiters.entry(hash).or_default().push(stream);
                        None
                    }
                };
            }
            Effect::CheckSender(token, check) => {
                let checked = self.check_sender(host, stream, &token, &check).map(|_| ());
                return Some(Event::SenderChecked(checked));
            }
            Effect::ReadRequestBody(size) => {
                let body = host.request_body(stream, size).unwrap_or_default();
                return Some(Event::RequestBodyRead(body));
            }
            Effect::Reply(reply) => host.send_reply(stream, &reply),
            Effect::ReadResponseBody(size) => {
                let body = host.response_body(stream, size).unwrap_or_default();
                return Some(Event::ResponseBodyRead(body));
            }
            Effect::SetResponseHeader(name, value) => {
                host.set_response_header(stream, &name, value.as_deref())
            }
            Effect::ReplaceResponseBody(body) => host.set_response_body(stream, &body),
            Effect::ReplaceResponse(reply) => host.send_reply(stream, &reply),
            Effect::ResetResponse => host.reset_response(stream),
            Effect::Audit(record, token, started_ms) => {
                self.write_audit(host, stream, *record, token.as_deref(), started_ms)
            }
            Effect::Metric(m) => self.metrics.add(m),
            Effect::Learned(mode) => self.learn_mode(host, mode),
        }
        None
    }

    /// Gives the streams waiting on the engine their token (or denial).
    fn finish_waiters(
        &mut self,
        host: &dyn Host,
        waiters: Vec<StreamId>,
        result: &Result<Rc<VerifiedToken>, Denial>,
    ) {
        for id in waiters {
            let waiting = self
                .streams
                .get_mut(&id)
                .filter(|s| s.exchange.is_authenticating())
                .map(|s| s.waiting_since_ms.take());
            if waiting.is_some() {
                let event = Event::Authenticated(result.clone());
                self.drive(host, id, event, Origin::External);
            }
        }
    }

    /// Re-drives every stream waiting for provider `index`'s keys: with `force`, each
    /// authenticates again now; without, only the ones that waited past their bound get 503.
    pub(super) fn wake_key_waiters(&mut self, host: &dyn Host, index: usize, force: bool) {
        let now = host.now_ms();
        let bound = self.key_wait_bound_ms(index);
        let waiting = self.key_waiters.remove(&index).unwrap_or_default();
        let mut still = Vec::new();
        for id in waiting {
            let Some(since) = self.streams.get(&id).and_then(|s| s.waiting_since_ms) else {
                continue;
            };
            if now.saturating_sub(since) > bound {
                let denial = Denial::new(
                    DenyKind::Unavailable,
                    "jwks.timeout",
                    "signing keys are unavailable; retry later",
                );
                self.finish_waiters(host, vec![id], &Err(denial));
            } else if force {
                self.reauthenticate(host, id);
            } else {
                still.push(id);
            }
        }
        if !still.is_empty() {
            self.key_waiters.entry(index).or_default().extend(still);
        }
    }

    /// Authenticates a waiting stream's credential again (keys changed): the exchange asks
    /// again, so the new key set is used.
    fn reauthenticate(&mut self, host: &dyn Host, id: StreamId) {
        if let Some(slot) = self.streams.get_mut(&id) {
            slot.waiting_since_ms = None;
        }
        self.drive(host, id, Event::Reauthenticate, Origin::External);
    }

    /// Answers 503 to every stream waiting for provider `index`'s keys.
    pub(super) fn fail_key_waiters(&mut self, host: &dyn Host, index: usize) {
        let waiting = self.key_waiters.remove(&index).unwrap_or_default();
        let denial = Denial::new(
            DenyKind::Unavailable,
            "jwks.unavailable",
            "signing keys are unavailable; retry later",
        );
        self.finish_waiters(host, waiting, &Err(denial));
    }

    /// Finishes every stream waiting on the introspection of `hash`: on with the token, or denied.
    pub(super) fn finish_introspection_waiters(
        &mut self,
        host: &dyn Host,
        hash: &[u8; 32],
        result: Result<Rc<VerifiedToken>, Denial>,
    ) {
        let waiting = self.intro_waiters.remove(hash).unwrap_or_default();
        self.finish_waiters(host, waiting, &result);
    }

    /// Answers 503 to streams waiting on an introspection that is no longer in flight, or
    /// waiting longer than their bound.
    pub(super) fn fail_orphan_introspection_waiters(&mut self, host: &dyn Host) {
        let now = host.now_ms();
        let bound = self.introspection_wait_bound_ms();
        let hashes: Vec<[u8; 32]> = self.intro_waiters.keys().copied().collect();
        for hash in hashes {
            let inflight = self.intro_inflight.contains_key(&hash);
            let waiting = self.intro_waiters.remove(&hash).unwrap_or_default();
            let (expired, still): (Vec<StreamId>, Vec<StreamId>) =
                waiting.into_iter().partition(|id| {
                    !inflight
                        || self
                            .streams
                            .get(id)
                            .and_then(|s| s.waiting_since_ms)
                            .is_some_and(|since| now.saturating_sub(since) > bound)
                });
            if !still.is_empty() {
                self.intro_waiters.insert(hash, still);
            }
            let denial = super::introspect::introspection_unavailable();
            self.finish_waiters(host, expired, &Err(denial));
        }
    }

    /// The timer for streams that hold: see [`HoldMode`].
    pub(super) fn timer_streams(&mut self, host: &dyn Host) {
        if self.mode == HoldMode::Full {
            return;
        }
        let held: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.held.is_some() && s.waiting_since_ms.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in held {
            self.drive(host, id, Event::Timer, Origin::External);
        }
    }

    /// Records what an exchange learned about the proxy, for every worker.
    fn learn_mode(&mut self, host: &dyn Host, mode: HoldMode) {
        if self.mode != HoldMode::Unknown || mode == HoldMode::Unknown {
            return;
        }
        self.mode = mode;
        let key = format!("fhirgate.{}.{MODE_KEY}", self.config_id);
        // The first worker to learn it tells the others, and says so in the log (once).
        if host.shared_get(&key).is_none() && host.shared_set(&key, mode.as_str().as_bytes(), None)
        {
            self.report_mode(host);
        }
    }

    /// Adopts a mode another worker learned.
    pub(super) fn sync_mode(&mut self, host: &dyn Host) {
        if self.mode != HoldMode::Unknown {
            return;
        }
        let key = format!("fhirgate.{}.{MODE_KEY}", self.config_id);
        let learned = host
            .shared_get(&key)
            .and_then(|(v, _)| String::from_utf8(v).ok())
            .and_then(|v| HoldMode::parse(&v));
        if let Some(mode) = learned {
            self.mode = mode;
        }
    }

    fn report_mode(&self, host: &dyn Host) {
        if self.mode == HoldMode::Safe {
            host.log(
                LogLevel::Critical,
                "fhirgate: Envoy delivers no body to a filter whose headers callback paused: set \
                 `allow_on_headers_stop_iteration: true` in the Wasm filter's configuration \
                 (Envoy >= 1.35; an Istio EnvoyFilter can set it, a WasmPlugin cannot). Running \
                 in safe mode: requests decided on their body have their headers sent upstream \
                 before the decision (a denial resets them), and a refused checked response is \
                 cut off instead of answered 403/502 (see the README, Envoy modes)",
            );
        } else if self.mode == HoldMode::Full {
            host.log(
                LogLevel::Info,
                "fhirgate: Envoy holds headers while bodies are checked (full mode)",
            );
        }
    }

    /// Longest a stream waits for provider `index`'s keys: two fetch attempts (another worker's
    /// lock, then its own) and a tick.
    pub(super) fn key_wait_bound_ms(&self, index: usize) -> u64 {
        let timeout = self
            .config
            .providers
            .get(index)
            .and_then(|p| match &p.keys {
                Some(crate::config::KeySource::Remote(r)) => Some(r.timeout_ms),
                _ => None,
            })
            .unwrap_or(0);
        2 * (timeout + 1_000) + super::audit::DEFAULT_TICK_MS
    }

    /// Longest a stream waits for an introspection answer: the longest callout timeout of any
    /// provider plus the grace after which a silent callout is abandoned.
    pub(super) fn introspection_wait_bound_ms(&self) -> u64 {
        let timeout = self
            .config
            .providers
            .iter()
            .filter_map(|p| p.introspection.as_ref().map(|i| i.timeout_ms))
            .max()
            .unwrap_or(0);
        timeout + super::introspect::CALLOUT_GRACE_MS
    }
}

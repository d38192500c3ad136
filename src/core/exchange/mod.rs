//! One request's life, as a sans-IO state machine (in the spirit of rustls' handshake states).
//!
//! An [`Exchange`] is fed [`Event`]s — the request headers, the verified token, the body, the
//! response headers and body, the timer, the end of the stream — and answers each with a
//! [`Verdict`] for the callback that brought it (go on, or hold) and a list of [`Effect`]s for
//! the engine to carry out (authenticate this credential, remove or set a header, read the
//! buffered body, reply, reset, write this audit record, count this metric). It never touches
//! the proxy, the clock or a cache: time comes in with each event, and whatever needs I/O is an
//! effect whose result comes back as the next event.
//!
//! ```text
//!            RequestHeaders                Authenticated(token)
//!   New ──────────────────────► Authenticating ─────────────────┬──► decide ──► Upstream ──┐
//!    │ public discovery / bad     │   (waits for the engine:    │        │ deny: Reply     │
//!    │ header / too large: Reply  │    cache, JWKS, RFC 7662)    │        ▼                 │
//!    ▼                            ▼ denied: Reply                └──► ReadingBody ─► decide │
//!   Done ◄────────────────────────────────────────────────────────────────────────────────┤
//!    ▲      ResponseHeaders (2xx, checked)          ResponseBody (end)                    │
//!    └──── CheckingResponse ◄──────────────────────────────────────────────────────────────┘
//!            pass / rewrite / 403 / 502 (full mode) or cut off (safe mode), then Audit
//! ```
//!
//! A sender-constrained token (DPoP proof, certificate-bound token) passes through
//! `CheckingSender` between `Authenticating` and the decision: [`Effect::CheckSender`] asks the
//! engine to check the proof or certificate (replay cache included), [`Event::SenderChecked`]
//! brings the answer.
//!
//! The exchange owns what the filter decides about a request's life: which headers the
//! decision sees and which are removed, public discovery, when the headers are held and when
//! they are released (see [`HoldMode`]), the rules' input (built once), the response policy,
//! and the audit record of every outcome. The engine ([`crate::engine`]) executes its effects
//! and owns the caches and callouts; the glue only translates proxy callbacks. The policy tool
//! (`fhirgate test`/`eval`) drives the same exchange with canned events.

mod hygiene;
mod mode;
mod request;
mod response;
mod view;

use std::rc::Rc;

use crate::audit::AuditRecord;
use crate::config::Config;
use crate::decision::{Decision, RequestInfo};
use crate::metrics::Metric;
use crate::outcome::{Denial, LocalReply};
use crate::response::ResponseCheck;
use crate::rules::RuleInput;
use crate::token::{token_hash, AuthScheme, Credential as TokenCredential, VerifiedToken};

pub use mode::{HoldMode, PROBE_AFTER_MS};
pub use view::{is_public_discovery, request_info, HIDDEN_HEADERS};

/// Facts about the downstream connection, read by the engine with the request headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// Downstream peer address (`ip:port`).
    pub source: String,
}

/// What the engine tells the exchange.
#[derive(Debug)]
pub enum Event {
    /// The request headers (lowercase names, pseudo-headers included, in arrival order).
    RequestHeaders {
        /// Every request header.
        headers: Vec<(String, String)>,
        /// No body follows.
        end_of_stream: bool,
        /// The downstream connection.
        connection: Connection,
    },
    /// The answer to [`Effect::Authenticate`].
    Authenticated(Result<Rc<VerifiedToken>, Denial>),
    /// What the engine waited for changed (new keys): ask for authentication again.
    Reauthenticate,
    /// The answer to [`Effect::CheckSender`].
    SenderChecked(Result<(), Denial>),
    /// A chunk of the request body arrived; `buffered` bytes are held so far.
    RequestBody {
        /// Bytes buffered so far.
        buffered: usize,
        /// The body is complete.
        end_of_stream: bool,
    },
    /// The answer to [`Effect::ReadRequestBody`].
    RequestBodyRead(Vec<u8>),
    /// The response headers (lowercase names, `:status` included).
    ResponseHeaders {
        /// Every response header.
        headers: Vec<(String, String)>,
        /// No body follows.
        end_of_stream: bool,
    },
    /// A chunk of the response body arrived; `buffered` bytes are held so far.
    ResponseBody {
        /// Bytes buffered so far.
        buffered: usize,
        /// The body is complete.
        end_of_stream: bool,
    },
    /// The answer to [`Effect::ReadResponseBody`].
    ResponseBodyRead(Vec<u8>),
    /// The periodic timer: holds that waited too long are given up.
    Timer,
    /// The stream ended (completed, reset, or the client went away).
    Done,
}

/// What the callback that delivered an event should tell the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the request (or response) go on.
    Continue,
    /// Hold it: waiting for the token, the body, or answered by an effect.
    Pause,
}

/// Which half of the stream a verdict or a hold concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Downstream → upstream.
    Request,
    /// Upstream → downstream.
    Response,
}

/// The credential a request presented.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The token as sent (never logged, never a cache key: the engine keys by its SHA-256).
    pub token: String,
    /// How it was presented, with the `DPoP` proofs (checked once the token is known).
    pub sender: SenderFacts,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

/// How a request presented its token: the scheme and, for `DPoP`, the token's SHA-256 (for the
/// proof's `ath`) and every `DPoP` header value. `Debug` prints no proof and no hash.
#[derive(Clone, PartialEq, Eq)]
pub struct SenderFacts {
    /// `Bearer` or `DPoP`.
    pub scheme: AuthScheme,
    /// SHA-256 of the access token (DPoP scheme only).
    pub token_hash: Option<[u8; 32]>,
    /// Every `DPoP` header value (DPoP scheme only). Never logged.
    pub proofs: Vec<String>,
}

impl std::fmt::Debug for SenderFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderFacts")
            .field("scheme", &self.scheme)
            .field("proofs", &self.proofs.len())
            .finish_non_exhaustive()
    }
}

impl SenderFacts {
    /// What the request presented, from its credential and headers (lowercase names).
    pub fn capture(credential: &TokenCredential<'_>, headers: &[(String, String)]) -> SenderFacts {
        match credential.scheme {
            AuthScheme::Bearer => SenderFacts {
                scheme: AuthScheme::Bearer,
                token_hash: None,
                proofs: Vec::new(),
            },
            AuthScheme::Dpop => SenderFacts {
                scheme: AuthScheme::Dpop,
                token_hash: Some(token_hash(credential.token)),
                proofs: headers
                    .iter()
                    .filter(|(n, _)| n == "dpop")
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        }
    }
}

/// What the sender-constraint check needs besides the token: how it was presented, and the
/// request line it must be bound to.
#[derive(Debug, Clone)]
pub struct SenderCheck {
    /// The scheme and proofs.
    pub facts: SenderFacts,
    /// `:method`.
    pub method: String,
    /// `:authority`.
    pub authority: String,
    /// `:path` (query included).
    pub path: String,
}

/// What the exchange asks the engine to do.
#[derive(Debug)]
pub enum Effect {
    /// Remove a request header before the request goes anywhere.
    RemoveRequestHeader(String),
    /// Set (replace) a request header for the upstream.
    SetRequestHeader(String, String),
    /// Turn the credential into a verified token (caches, JWKS, introspection); answer with
    /// [`Event::Authenticated`], now or when a callout comes back.
    Authenticate(Credential),
    /// Check how the verified token was presented (DPoP proof and its replay cache, the client
    /// certificate of the connection); answer with [`Event::SenderChecked`].
    CheckSender(Rc<VerifiedToken>, Box<SenderCheck>),
    /// Read the first `n` buffered bytes of the request body; answer with
    /// [`Event::RequestBodyRead`].
    ReadRequestBody(usize),
    /// Answer the request locally (it never reaches the upstream, or its upstream request is
    /// reset before it completes).
    Reply(LocalReply),
    /// Read the first `n` buffered bytes of the response body; answer with
    /// [`Event::ResponseBodyRead`].
    ReadResponseBody(usize),
    /// Set or, with `None`, remove a response header (while the response headers are held).
    SetResponseHeader(String, Option<String>),
    /// Replace the buffered response body.
    ReplaceResponseBody(Vec<u8>),
    /// Replace the upstream's response with this local answer (its headers were not sent yet).
    ReplaceResponse(LocalReply),
    /// Cut the response off: its headers already went to the client (safe mode), so a refusal
    /// can only reset the stream.
    ResetResponse,
    /// Write this audit record (the engine applies the `audit` options, logs, ships, counts).
    Audit(Box<AuditRecord>, Option<Rc<VerifiedToken>>, u64),
    /// Count this.
    Metric(Metric),
    /// The exchange learned how the proxy treats a held headers callback.
    Learned(HoldMode),
}

/// The request as the exchange keeps it through every state.
#[derive(Debug)]
struct Request {
    info: RequestInfo,
    started_ms: u64,
    /// Whether the decision needs the request body.
    wants_body: bool,
    /// The client sent `Accept-Encoding` (removed when the response must be checked).
    accept_encoding: bool,
}

/// Where a request body stands.
#[derive(Debug, Clone, Copy, Default)]
struct BodyProgress {
    /// Bytes buffered so far.
    buffered: usize,
    /// The body is complete (or there is none).
    complete: bool,
    /// A body callback arrived while the headers were held (proof of full mode).
    seen_while_held: bool,
}

/// Waiting for the engine to authenticate the credential.
#[derive(Debug)]
struct Authenticating {
    req: Request,
    credential: Credential,
    body: BodyProgress,
    /// The headers callback returned [`Verdict::Pause`].
    held: bool,
}

/// Authenticated; the decision needs the body, which is being buffered.
#[derive(Debug)]
struct ReadingBody {
    req: Request,
    token: Rc<VerifiedToken>,
    body: BodyProgress,
    /// The request headers are held (full mode) rather than already upstream (safe mode).
    held: bool,
    /// When the hold began (for the unknown-mode probe).
    held_since_ms: u64,
    /// The headers were released by the probe: the next body callback tells the mode.
    probing_since_ms: Option<u64>,
}

/// Allowed and upstream; the response must be checked (or at least audited when it ends).
#[derive(Debug)]
struct Upstream {
    req: Request,
    token: Rc<VerifiedToken>,
    decision: Decision,
    check: ResponseCheck,
    /// The rules' input of the request, reused by response-phase rules.
    input: Option<RuleInput>,
}

/// The response of a checked request is being buffered.
#[derive(Debug)]
struct CheckingResponse {
    up: Upstream,
    /// The response headers are held (full mode): a refusal can still change the status.
    held: bool,
    held_since_ms: u64,
    probing_since_ms: Option<u64>,
    /// Names of the upstream's response headers (removed when a refusal replaces them).
    upstream_headers: Vec<String>,
    /// Body bytes buffered so far.
    buffered: usize,
}

/// The states of an exchange.
#[derive(Debug)]
enum State {
    /// Before the request headers.
    New,
    /// See [`Authenticating`].
    Authenticating(Box<Authenticating>),
    /// Authenticated; waiting for the engine's check of how the token was presented.
    CheckingSender(Box<Authenticating>, Rc<VerifiedToken>),
    /// See [`ReadingBody`].
    ReadingBody(Box<ReadingBody>),
    /// See [`Upstream`].
    Upstream(Box<Upstream>),
    /// See [`CheckingResponse`].
    CheckingResponse(Box<CheckingResponse>),
    /// Finished: answered, or passed with nothing left to check; its audit record is written.
    Done,
}

/// One request's state machine.
#[derive(Debug)]
pub struct Exchange {
    config: Rc<Config>,
    state: State,
    /// How the proxy treats a held headers callback, as far as this exchange knows.
    pub(crate) mode: HoldMode,
    /// Build `Decision.trace` (the policy tool's explanations).
    explain: bool,
    trace: Vec<String>,
}

impl Exchange {
    /// A new exchange under `config`, knowing `mode` about the proxy.
    pub fn new(config: Rc<Config>, mode: HoldMode) -> Exchange {
        Exchange {
            config,
            state: State::New,
            mode,
            explain: false,
            trace: Vec::new(),
        }
    }

    /// The same, recording the steps of the decision for [`Exchange::explanation`].
    pub fn explained(config: Rc<Config>, mode: HoldMode) -> Exchange {
        Exchange {
            explain: true,
            ..Exchange::new(config, mode)
        }
    }

    /// The steps of the decision (only with [`Exchange::explained`]).
    pub fn explanation(&self) -> &[String] {
        &self.trace
    }

    /// Tells the exchange what the worker learned about the proxy meanwhile.
    pub fn set_mode(&mut self, mode: HoldMode) {
        if mode != HoldMode::Unknown {
            self.mode = mode;
        }
    }

    /// Whether the exchange is finished (nothing more will happen but [`Event::Done`]).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the exchange waits for the engine's authentication.
    pub fn is_authenticating(&self) -> bool {
        matches!(self.state, State::Authenticating(_))
    }

    /// Whether the request is still undecided (waiting for its token or its body).
    pub fn is_undecided(&self) -> bool {
        matches!(self.state, State::Authenticating(_) | State::ReadingBody(_))
    }

    /// When the request headers arrived (ms), for the engine's bound on waits.
    pub fn started_ms(&self) -> Option<u64> {
        match &self.state {
            State::Authenticating(a) | State::CheckingSender(a, _) => Some(a.req.started_ms),
            State::ReadingBody(r) => Some(r.req.started_ms),
            State::Upstream(u) => Some(u.req.started_ms),
            State::CheckingResponse(c) => Some(c.up.req.started_ms),
            State::New | State::Done => None,
        }
    }

    /// Handles one event at time `now_ms`, appending the effects to `out`.
    pub fn handle(&mut self, event: Event, now_ms: u64, out: &mut Vec<Effect>) -> Verdict {
        let state = std::mem::replace(&mut self.state, State::Done);
        let (next, verdict) = match (state, event) {
            (
                State::New,
                Event::RequestHeaders {
                    headers,
                    end_of_stream,
                    connection,
                },
            ) => self.on_request_headers(&headers, end_of_stream, connection, now_ms, out),
            (State::Authenticating(a), Event::Reauthenticate) => {
                out.push(Effect::Authenticate(a.credential.clone()));
                (State::Authenticating(a), Verdict::Pause)
            }
            (State::Authenticating(a), Event::Authenticated(result)) => {
                self.on_authenticated(a, result, now_ms, out)
            }
            (State::CheckingSender(a, token), Event::SenderChecked(result)) => {
                self.on_sender_checked(*a, token, result, now_ms, out)
            }
            (
                State::CheckingSender(mut a, token),
                Event::RequestBody {
                    buffered,
                    end_of_stream,
                },
            ) => {
                a.body.buffered = buffered;
                a.body.complete = end_of_stream;
                (State::CheckingSender(a, token), Verdict::Pause)
            }
            (
                State::Authenticating(a),
                Event::RequestBody {
                    buffered,
                    end_of_stream,
                },
            ) => self.on_body_while_authenticating(a, buffered, end_of_stream, now_ms, out),
            (
                State::ReadingBody(r),
                Event::RequestBody {
                    buffered,
                    end_of_stream,
                },
            ) => self.on_request_body(*r, buffered, end_of_stream, now_ms, out),
            (State::ReadingBody(r), Event::RequestBodyRead(body)) => {
                self.decide(r.req, r.token, Some(&body), r.held, now_ms, out)
            }
            (State::ReadingBody(r), Event::Timer) => self.probe_request(*r, now_ms, out),
            (
                State::Upstream(u),
                Event::ResponseHeaders {
                    headers,
                    end_of_stream,
                },
            ) => self.on_response_headers(*u, &headers, end_of_stream, now_ms, out),
            (
                State::CheckingResponse(c),
                Event::ResponseBody {
                    buffered,
                    end_of_stream,
                },
            ) => self.on_response_body(*c, buffered, end_of_stream, now_ms, out),
            (State::CheckingResponse(c), Event::ResponseBodyRead(body)) => {
                self.check_response(*c, &body, now_ms, out)
            }
            (State::CheckingResponse(c), Event::Timer) => self.probe_response(*c, now_ms, out),
            (State::Upstream(u), Event::Done) => {
                audit_unanswered(&u, now_ms, out);
                (State::Done, Verdict::Continue)
            }
            (State::CheckingResponse(c), Event::Done) => {
                audit_unanswered(&c.up, now_ms, out);
                (State::Done, Verdict::Continue)
            }
            // A body or response callback the exchange has no use for passes (e.g. the body of
            // a request decided on its headers, or the response of an unchecked request).
            (s @ State::Upstream(_), Event::RequestBody { .. })
            | (s @ State::Done, Event::RequestBody { .. } | Event::ResponseBody { .. })
            | (s @ State::Done, Event::ResponseHeaders { .. }) => (s, Verdict::Continue),
            // Waiting on something else: hold on.
            (s, _) => (s, Verdict::Pause),
        };
        self.state = next;
        verdict
    }

    fn note(&mut self, step: impl FnOnce() -> String) {
        if self.explain {
            self.trace.push(step());
        }
    }
}

/// The answer when the worker cannot take a callback (it is busy: re-entrancy, which should not
/// happen): 503 on the request side, 502 on the response side (it might have needed a check).
/// Fail closed, with the configured realm and `Retry-After`.
pub fn busy_reply(config: &Config, direction: Direction) -> LocalReply {
    let denial = match direction {
        Direction::Request => Denial::new(
            crate::outcome::DenyKind::Unavailable,
            "internal.busy",
            "the gateway is busy; retry later",
        ),
        Direction::Response => Denial::new(
            crate::outcome::DenyKind::BadGateway,
            "internal.busy",
            "the gateway could not check the response",
        ),
    };
    denial.to_reply(&config.realm, config.retry_after_secs)
}

/// The audit record of an allowed request whose response never came (upstream reset, client
/// gone): it still has one.
fn audit_unanswered(up: &Upstream, now_ms: u64, out: &mut Vec<Effect>) {
    let record = AuditRecord::new(now_ms, &up.req.info, Some(&up.token), &up.decision, 0);
    out.push(Effect::Audit(
        Box::new(record),
        Some(Rc::clone(&up.token)),
        up.req.started_ms,
    ));
}

#[cfg(test)]
mod tests;

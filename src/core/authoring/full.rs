//! The decider `fhirgate test` and `eval` use: the filter's own [`Exchange`], driven with canned
//! events built from the case (its request headers and body, a token verified from its claims,
//! and — for cases with a `response` — the upstream's answer). What the tool decides is what
//! Envoy decides: the same header visibility, FHIR router, SMART checks, rules' input, response
//! policy and audit record.

use std::rc::Rc;

use serde_json::{json, Value};

use super::cases::{Case, Decider, Outcome};
use super::policy::Policy;
use super::CASE_BASE_PATH;
use crate::audit::{AuditOutcome, AuditRecord};
use crate::config::Config;
use crate::exchange::{Connection, Effect, Event, Exchange, HoldMode, Verdict};
use crate::outcome::LocalReply;
use crate::token::{TokenKind, VerifiedToken};

/// Issuer of the configuration policy cases run under.
pub const CASE_ISSUER: &str = "https://idp.example.org";

/// Source address used when a case does not give one: a documentation address outside every
/// private network (TEST-NET-3), i.e. "from the internet".
pub const DEFAULT_SOURCE: &str = "203.0.113.10:40000";

/// The credential the tool presents for a case (answered with the case's claims; never checked).
const CASE_CREDENTIAL: &str = "Bearer policy-case";

/// The time cases run at (ms since the epoch).
const CASE_NOW_MS: u64 = 1_790_000_000_000;

/// The plugin configuration a policy's cases run under: FHIR base `/fhir`, one provider, the
/// policy's rules, SMART and the consent check enforced (`rules_only`: neither, so only the
/// rules decide).
pub fn case_config(policy: &Policy, rules_only: bool) -> Result<Config, String> {
    let rules = serde_json::to_value(&policy.rules).map_err(|e| e.to_string())?;
    let cfg = json!({
        "fhir": {"basePath": CASE_BASE_PATH},
        "providers": [{
            "name": "policy-test",
            "issuer": CASE_ISSUER,
            "audiences": ["https://fhir.example.org/fhir"],
            // the RFC 8037 example key: cases never verify signatures, but a provider needs a key
            "jwks": {"inline": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "policy-test",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}
        }],
        "smart": {"enforce": !rules_only},
        "consent": {"enforce": !rules_only},
        "rules": rules
    });
    let bytes = serde_json::to_vec(&cfg).map_err(|e| e.to_string())?;
    Config::from_json(&bytes).map_err(|e| e.to_string())
}

/// Runs cases through the filter's exchange.
pub struct ExchangeDecider {
    config: Rc<Config>,
}

impl ExchangeDecider {
    /// A decider for `policy` under [`case_config`].
    pub fn new(policy: &Policy, rules_only: bool) -> Result<Self, String> {
        Ok(ExchangeDecider {
            config: Rc::new(case_config(policy, rules_only)?),
        })
    }
}

fn body_bytes(body: Option<&Value>) -> Vec<u8> {
    match body {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(v) => serde_json::to_vec(v).unwrap_or_default(),
    }
}

/// The case's request headers as Envoy would deliver them.
fn request_headers(case: &Case, body: &[u8]) -> Vec<(String, String)> {
    let req = &case.request;
    let mut headers = vec![
        (":method".to_string(), req.method.to_ascii_uppercase()),
        (":path".to_string(), req.path.clone()),
    ];
    let given: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let has = |name: &str| given.iter().any(|(k, _)| k == name);
    if !has("host") {
        headers.push((":authority".to_string(), "fhir.example.org".to_string()));
    }
    headers.extend(given.iter().map(|(k, v)| {
        if k == "host" {
            (":authority".to_string(), v.clone())
        } else {
            (k.clone(), v.clone())
        }
    }));
    if !has("authorization") {
        headers.push(("authorization".to_string(), CASE_CREDENTIAL.to_string()));
    }
    if !body.is_empty() {
        if !has("content-type") {
            let ct = match &req.body {
                Some(Value::String(_)) => "application/x-www-form-urlencoded",
                _ => "application/fhir+json",
            };
            headers.push(("content-type".to_string(), ct.to_string()));
        }
        headers.push(("content-length".to_string(), body.len().to_string()));
    }
    headers
}

/// Feeds one event and answers the effects that ask for something (the token, the bodies),
/// as the engine would; returns every effect in order.
fn drive(
    ex: &mut Exchange,
    event: Event,
    token: &Rc<VerifiedToken>,
    request_body: &[u8],
    response_body: &[u8],
) -> (Verdict, Vec<Effect>) {
    let mut all = Vec::new();
    let mut next = Some(event);
    let mut verdict = Verdict::Pause;
    while let Some(event) = next.take() {
        let mut out = Vec::new();
        verdict = ex.handle(event, CASE_NOW_MS, &mut out);
        for e in &out {
            next = match e {
                Effect::Authenticate(_) => Some(Event::Authenticated(Ok(Rc::clone(token)))),
                // Cases have no proofs or certificates: the case's token is taken as presented.
                Effect::CheckSender(..) => Some(Event::SenderChecked(Ok(()))),
                Effect::ReadRequestBody(_) => Some(Event::RequestBodyRead(request_body.to_vec())),
                Effect::ReadResponseBody(_) => {
                    Some(Event::ResponseBodyRead(response_body.to_vec()))
                }
                _ => next,
            };
        }
        all.extend(out);
    }
    (verdict, all)
}

/// A challenge attribute such as `scope="…"` of a `WWW-Authenticate` value.
fn challenge_attribute(reply: &LocalReply, name: &str) -> Option<String> {
    let value = reply
        .headers
        .iter()
        .find(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.as_str())?;
    let start = value.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = value.get(start..)?;
    Some(rest.get(..rest.find('"')?)?.to_string())
}

/// Folds the effects of a phase into the outcome.
fn observe(effects: &[Effect], outcome: &mut Outcome) {
    for e in effects {
        match e {
            Effect::Reply(reply) | Effect::ReplaceResponse(reply) => {
                outcome.allowed = false;
                outcome.status = reply.status;
                outcome.scope = challenge_attribute(reply, "scope");
                outcome.acr_values = challenge_attribute(reply, "acr_values");
            }
            Effect::SetResponseHeader(name, Some(status)) if name == ":status" => {
                outcome.allowed = false;
                outcome.status = status.parse().unwrap_or(0);
            }
            Effect::ResetResponse => {
                outcome.allowed = false;
                outcome.status = 0;
            }
            Effect::Audit(record, _, _) => record_into(record, outcome),
            Effect::SetRequestHeader(name, path) if name == ":path" => {
                outcome.narrowed = Some(path.clone());
            }
            _ => {}
        }
    }
}

fn record_into(record: &AuditRecord, outcome: &mut Outcome) {
    outcome.reason = record.reason.clone();
    if record.outcome == AuditOutcome::Deny {
        outcome.rule = record.rule.clone();
    }
    outcome.flags = record.flags.clone();
    outcome.withheld = record.withheld;
    outcome.redacted = record.response.redacted;
    outcome.withheld_labels = record.response.withheld_labels.clone();
}

impl Decider for ExchangeDecider {
    fn decide(&self, case: &Case) -> Result<Outcome, String> {
        let token = Rc::new(VerifiedToken::for_policy_test(
            TokenKind::Jwt,
            case.token.clone(),
            &self.config.claim_names,
        ));
        let body = body_bytes(case.request.body.as_ref());
        let response = case
            .response
            .as_ref()
            .map(|r| serde_json::to_vec(r).map_err(|e| e.to_string()))
            .transpose()?
            .unwrap_or_default();
        let source = case
            .request
            .source
            .clone()
            .unwrap_or_else(|| DEFAULT_SOURCE.to_string());
        let mut ex = Exchange::explained(Rc::clone(&self.config), HoldMode::Full);
        let mut outcome = Outcome {
            allowed: true,
            status: 200,
            ..Outcome::default()
        };
        let mut explanation = vec![format!(
            "request: {} {} from {source}",
            case.request.method.to_ascii_uppercase(),
            case.request.path
        )];
        let headers = Event::RequestHeaders {
            headers: request_headers(case, &body),
            end_of_stream: body.is_empty(),
            connection: Connection { source },
        };
        let (_, effects) = drive(&mut ex, headers, &token, &body, &response);
        observe(&effects, &mut outcome);
        if ex.is_undecided() {
            let event = Event::RequestBody {
                buffered: body.len(),
                end_of_stream: true,
            };
            let (_, effects) = drive(&mut ex, event, &token, &body, &response);
            observe(&effects, &mut outcome);
        }
        if outcome.allowed && !ex.is_done() {
            // Allowed, with a response check pending.
            let event = if case.response.is_some() {
                outcome.response_checked = true;
                Event::ResponseHeaders {
                    headers: vec![
                        (":status".to_string(), "200".to_string()),
                        (
                            "content-type".to_string(),
                            "application/fhir+json".to_string(),
                        ),
                        ("content-length".to_string(), response.len().to_string()),
                    ],
                    end_of_stream: response.is_empty(),
                }
            } else {
                Event::Done
            };
            let (_, effects) = drive(&mut ex, event, &token, &body, &response);
            observe(&effects, &mut outcome);
            if !ex.is_done() {
                let event = Event::ResponseBody {
                    buffered: response.len(),
                    end_of_stream: true,
                };
                let (_, effects) = drive(&mut ex, event, &token, &body, &response);
                observe(&effects, &mut outcome);
            }
        }
        explanation.extend(ex.explanation().iter().cloned());
        explanation.push(if outcome.allowed {
            "result: allow (200)".to_string()
        } else {
            format!("result: deny ({}, {})", outcome.status, outcome.reason)
        });
        outcome.explanation = explanation;
        Ok(outcome)
    }
}

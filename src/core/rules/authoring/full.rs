//! The decider `fhirgate test` and `eval` use: the filter's own decision (`decision::decide`:
//! FHIR request model, SMART scopes and patient compartment, CEL rules) on a token built from the
//! case's claims, then — for cases with a `response` — the response checks (SMART compartment
//! and granular scopes, response-phase rules, consent by security labels).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cases::{Case, Decider, Outcome};
use super::explain::explain_response;
use super::policy::Policy;
use super::request::DEFAULT_SOURCE;
use super::CASE_BASE_PATH;
use crate::config::Config;
use crate::decision::{decide, request_value, wants_body, RequestInfo};
use crate::outcome::DenyKind;
use crate::response::{filter_response, LabelMode, ResponsePolicy, ResponseVerdict};
use crate::rules::RuleInput;
use crate::token::{TokenKind, VerifiedToken};

/// Issuer of the configuration policy cases run under.
pub const CASE_ISSUER: &str = "https://idp.example.org";

/// Headers the filter never passes to the decision (it reads credentials itself).
const HIDDEN_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// The plugin configuration a policy's cases run under: FHIR base `/fhir`, SMART enforced, one
/// provider, and the policy's rules.
pub fn case_config(policy: &Policy) -> Result<Config, String> {
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
        "smart": {"enforce": true},
        "rules": rules
    });
    let bytes = serde_json::to_vec(&cfg).map_err(|e| e.to_string())?;
    Config::from_json(&bytes).map_err(|e| e.to_string())
}

/// Runs cases through the filter's decision.
pub struct FullDecision {
    config: Config,
}

impl FullDecision {
    /// A decider for `policy` under [`case_config`].
    pub fn new(policy: &Policy) -> Result<Self, String> {
        Ok(FullDecision {
            config: case_config(policy)?,
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

impl Decider for FullDecision {
    fn decide(&self, case: &Case) -> Result<Outcome, String> {
        let token = VerifiedToken::for_policy_test(
            TokenKind::Jwt,
            case.token.clone(),
            &self.config.claim_names,
        );
        let method = case.request.method.to_ascii_uppercase();
        let mut headers: BTreeMap<String, String> = case
            .request
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .filter(|(k, _)| !HIDDEN_HEADERS.contains(&k.as_str()) && !k.starts_with("x-fhirgate-"))
            .collect();
        let has_body = matches!(&case.request.body, Some(b) if !b.is_null());
        if has_body && !headers.contains_key("content-type") {
            let ct = match &case.request.body {
                Some(Value::String(_)) => "application/x-www-form-urlencoded",
                _ => "application/fhir+json",
            };
            headers.insert("content-type".to_string(), ct.to_string());
        }
        let req = RequestInfo {
            method: method.clone(),
            path: case.request.path.clone(),
            host: headers
                .get("host")
                .cloned()
                .unwrap_or_else(|| "fhir.example.org".to_string()),
            headers,
            source_address: case
                .request
                .source
                .clone()
                .unwrap_or_else(|| DEFAULT_SOURCE.to_string()),
            request_id: None,
        };
        let body = body_bytes(case.request.body.as_ref());
        let body =
            wants_body(&method, &req.path, &self.config.base_path).then_some(body.as_slice());
        let mut ex = vec![format!(
            "token: subject {:?}, client {:?}, scopes {:?}, patient {}",
            token.subject().unwrap_or(""),
            token.client_id().unwrap_or(""),
            token.scopes(),
            token
                .patient()
                .map_or("(none)".to_string(), |p| format!("{p:?}")),
        )];
        ex.push(format!(
            "request: {method} {} from {}",
            req.path, req.source_address
        ));
        let decision = decide(&self.config, &token, &req, body);
        ex.extend(decision.trace.iter().cloned());
        let mut outcome = Outcome {
            allowed: decision.denial.is_none(),
            status: 200,
            flags: decision.flags.clone(),
            ..Outcome::default()
        };
        if let Some(d) = &decision.denial {
            outcome.status = d.status();
            outcome.rule = d.rule.clone();
            match &d.kind {
                DenyKind::InsufficientScope { scope } => outcome.scope = Some(scope.clone()),
                DenyKind::StepUp { acr_values, .. } => {
                    outcome.acr_values = Some(acr_values.clone())
                }
                _ => {}
            }
            ex.push(format!(
                "decision: deny {} ({}): {}",
                d.status(),
                d.reason,
                d.description
            ));
        }
        if let (true, Some(resource), Some(check)) =
            (outcome.allowed, &case.response, &decision.response_check)
        {
            let bytes = serde_json::to_vec(resource).map_err(|e| e.to_string())?;
            let input = RuleInput {
                request: request_value(&req),
                source: json!({"address": req.source_address}),
                token: token.to_cel_value(),
                fhir: decision
                    .fhir
                    .as_ref()
                    .map(|f| f.to_cel_value())
                    .unwrap_or_default(),
            };
            let rules = self.config.rules.response_rules(&input);
            let consent = &self.config.consent;
            let policy = ResponsePolicy {
                check,
                consent: consent
                    .active()
                    .then(|| (consent, consent.grants(token.claims()))),
                rules: rules.as_ref(),
                mode: decision
                    .fhir
                    .as_ref()
                    .map_or(LabelMode::Read, |f| LabelMode::of(f.interaction)),
            };
            let checked = filter_response(&bytes, &policy);
            explain_response(&checked, &mut ex);
            for f in &checked.flags {
                if !outcome.flags.contains(f) {
                    outcome.flags.push(f.clone());
                }
            }
            outcome.withheld = checked.summary.withheld();
            outcome.redacted = checked.summary.redacted;
            outcome.withheld_labels = checked.summary.withheld_labels.clone();
            if let ResponseVerdict::Deny(d) = &checked.verdict {
                outcome.allowed = false;
                outcome.status = d.status();
                outcome.rule = d.rule.clone();
            }
        }
        ex.push(if outcome.allowed {
            "result: allow (200)".to_string()
        } else {
            format!("result: deny ({})", outcome.status)
        });
        outcome.explanation = ex;
        Ok(outcome)
    }
}

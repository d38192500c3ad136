//! The decision for an authenticated request: FHIR request model, SMART scopes and patient
//! compartment, then the CEL rules (deny overrides). Pure: everything comes in as arguments.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::config::Config;
use crate::fhir::{
    body_need, bundle_entries, parse_request, read_write_body, BodyNeed, FhirError, FhirRequest,
    Interaction,
};
use crate::outcome::{Denial, DenyKind};
use crate::response::{LabelMode, ResponseCheck, Target};
use crate::rules::{RuleInput, RuleVerdict};
use crate::smart::{
    authorize, narrowing, resource_in_patient_compartment, strict_prefer, Membership, Narrowing,
    ScopeSet, SmartDenial,
};
use crate::token::{is_token_param, VerifiedToken};

/// The HTTP request as the decision sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// `:method`.
    pub method: String,
    /// `:path`, query included, exactly as received.
    pub path: String,
    /// `:authority`.
    pub host: String,
    /// Request headers, lowercase names, repeated headers joined with `,`. `authorization`,
    /// `cookie` and fhirgate's own `x-fhirgate-*` headers are never included.
    pub headers: BTreeMap<String, String>,
    /// Downstream peer address (`ip:port`).
    pub source_address: String,
    /// `x-request-id`.
    pub request_id: Option<String>,
}

/// What was decided, with enough context to audit and explain it.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// `None` to allow; the denial otherwise.
    pub denial: Option<Denial>,
    /// The FHIR request, when the path parsed.
    pub fhir: Option<FhirRequest>,
    /// Names of `flag` rules that fired (e.g. break-the-glass).
    pub flags: Vec<String>,
    /// What the response must be checked against, when the request alone could not prove it.
    pub response_check: Option<ResponseCheck>,
    /// Human-readable steps, for `fhirgate eval` and debug logs (no token, no PHI beyond the
    /// request itself).
    pub trace: Vec<String>,
    /// Whether `trace` is written (only for the policy tool's explanations).
    pub explain: bool,
    /// The rules' input built for the request phase (absent without rules), handed on to the
    /// response phase so it is built once per request.
    pub input: Option<RuleInput>,
    /// The search was narrowed to the launch patient (`smart.narrowSearches`): what goes
    /// upstream instead of the request as received.
    pub narrowed: Option<Narrowed>,
}

/// A narrowed search, as it goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowed {
    /// The new `:path` (the received one with the patient parameter appended).
    pub path: String,
    /// The new `Prefer` value (`handling=strict`, with the client's other preferences).
    pub prefer: String,
}

/// Whether the engine should buffer the request body for the decision: form searches and
/// bundles always, writes (`POST`, `PUT`, `PATCH`) so a patient-scoped write can be checked.
pub fn wants_body(method: &str, path: &str, base_path: &str) -> bool {
    body_need(method, path, base_path) != BodyNeed::None
        || matches!(method, "POST" | "PUT" | "PATCH")
}

impl Decision {
    /// Adds a step to the trace, formatted only when the trace is wanted.
    fn note(&mut self, step: impl FnOnce() -> String) {
        if self.explain {
            self.trace.push(step());
        }
    }
}

/// Decides an authenticated request. `body` is the buffered request body when
/// [`wants_body`] asked for it (`Some(&[])` for an empty one).
pub fn decide(
    config: &Config,
    token: &VerifiedToken,
    req: &RequestInfo,
    body: Option<&[u8]>,
) -> Decision {
    decide_with(config, token, req, body, false)
}

/// [`decide`], recording each step in `Decision.trace` (for `fhirgate eval`/`test`).
pub fn decide_explained(
    config: &Config,
    token: &VerifiedToken,
    req: &RequestInfo,
    body: Option<&[u8]>,
) -> Decision {
    decide_with(config, token, req, body, true)
}

/// The decision (a denial) of a request whose decision needs its body, when no body could lift it: a write
/// (create, update, patch) whose scopes, patient context or rules refuse it on its headers alone.
/// The rules never see a write's body and SMART checks only the written resource's compartment
/// against the body, so such a denial stands whatever the body holds; the request is refused
/// before anything (even in safe mode) reaches the upstream. `None` for `_search` forms and
/// batches (their body is the request), and when the headers alone allow.
pub fn decide_on_headers(
    config: &Config,
    token: &VerifiedToken,
    req: &RequestInfo,
    explain: bool,
) -> Option<Decision> {
    if body_need(&req.method, &req.path, &config.base_path) != BodyNeed::None {
        return None;
    }
    let decision = decide_inner(config, token, req, None, explain, true);
    decision.denial.is_some().then_some(decision)
}

fn decide_with(
    config: &Config,
    token: &VerifiedToken,
    req: &RequestInfo,
    body: Option<&[u8]>,
    explain: bool,
) -> Decision {
    decide_inner(config, token, req, body, explain, false)
}

/// `head_only`: the written resource is not there yet (its compartment is not checked).
fn decide_inner(
    config: &Config,
    token: &VerifiedToken,
    req: &RequestInfo,
    body: Option<&[u8]>,
    explain: bool,
    head_only: bool,
) -> Decision {
    let mut decision = Decision {
        explain,
        ..Decision::default()
    };
    let content_type = req.headers.get("content-type").map(String::as_str);
    let model_body = match body_need(&req.method, &req.path, &config.base_path) {
        BodyNeed::None => None,
        _ => Some(body.unwrap_or_default()),
    };
    let parsed = parse_request(
        &req.method,
        &req.path,
        &config.base_path,
        content_type,
        model_body,
    )
    .and_then(|mut f| {
        if let Some(criteria) = req.headers.get("if-none-exist") {
            f.apply_if_none_exist(criteria)?;
        }
        Ok(f)
    });
    let fhir = match parsed {
        Ok(f) => f,
        Err(e) => {
            decision.note(|| format!("FHIR request: rejected ({})", e.code()));
            decision.denial = Some(fhir_denial(&e));
            return decision;
        }
    };
    decision.note(|| {
        format!(
            "FHIR request: {} {}",
            fhir.interaction.as_str(),
            fhir.resource_type.as_deref().unwrap_or("-")
        )
    });
    decision.note(|| {
        format!(
            "fhir: interaction {}, type '{}', id '{}', operation '{}', params {:?}",
            fhir.interaction.as_str(),
            fhir.resource_type.as_deref().unwrap_or_default(),
            fhir.id.as_deref().unwrap_or_default(),
            fhir.operation.as_deref().unwrap_or_default(),
            fhir.params
        )
    });
    // RFC 6750 §3.1: one credential. The query was refused on the headers; a form body (or a
    // bundle entry's URL, or `If-None-Exist`) carrying `access_token` is refused here.
    if fhir.params.keys().any(|n| is_token_param(n)) {
        decision.note(|| "request: a token outside the Authorization header".to_string());
        decision.denial = Some(token_elsewhere());
        decision.fhir = Some(fhir);
        return decision;
    }
    let scopes = ScopeSet::parse(token.scopes());
    let mut fhir = fhir;
    if let Some(n) = narrow(config, token, req, &scopes, &fhir) {
        decision.note(|| {
            format!(
                "SMART: search names no patient: narrowed with {}={}",
                n.param, n.value
            )
        });
        decision.narrowed = Some(Narrowed {
            path: n.apply_to_path(&req.path),
            prefer: strict_prefer(req.headers.get("prefer").map(String::as_str)),
        });
        fhir.params.entry(n.param).or_default().push(n.value);
    }
    let entries = if matches!(
        fhir.interaction,
        Interaction::Batch | Interaction::Transaction
    ) {
        match bundle_entries(body.unwrap_or_default(), &config.base_path) {
            Ok(entries) => entries,
            Err(e) => {
                decision.note(|| format!("bundle: rejected ({})", e.code()));
                decision.denial = Some(fhir_denial(&e));
                decision.fhir = Some(fhir);
                return decision;
            }
        }
    } else {
        Vec::new()
    };
    if entries
        .iter()
        .any(|(_, e)| e.params.keys().any(|n| is_token_param(n)))
    {
        decision.note(|| "bundle: an entry carries a token".to_string());
        decision.denial = Some(token_elsewhere());
        decision.fhir = Some(fhir);
        return decision;
    }
    // The bundle passed the strict reading above (no duplicate members): this is that reading.
    let bundle_json: Option<Value> = if entries.is_empty() {
        None
    } else {
        body.and_then(|b| serde_json::from_slice(b).ok())
    };
    // The rules' input is built once per request (the request, source and token parts are the
    // same for every bundle entry), and only when there are request-phase rules to read it.
    let input = (!config.rules.is_empty()).then(|| RuleInput {
        request: request_value(req),
        source: json!({ "address": req.source_address }),
        // Built once per verified token (the caches keep it with the token).
        token: Value::Null,
        token_cel: Some(token.rules_value()),
        fhir: Value::Null,
    });
    let mut ctx = Ctx {
        config,
        token,
        scopes: &scopes,
        input,
        head_only,
    };
    // The container itself goes through the rules too (rules can refuse all batches). A write's
    // body is read once, strictly, and must be the resource its URL names (deciding on the
    // headers alone, `head_only`, there is no body).
    let own_resource = match (body, model_body) {
        (Some(b), None) => match read_write_body(&fhir, content_type, b) {
            Ok(v) => v,
            Err(e) => {
                decision.note(|| format!("body: rejected ({})", e.code()));
                decision.denial = Some(fhir_denial(&e));
                decision.fhir = Some(fhir);
                return decision;
            }
        },
        _ => None,
    };
    if let Err(denial) = authorize_one(&mut ctx, &fhir, None, own_resource.as_ref(), &mut decision)
    {
        decision.denial = Some(denial);
        decision.fhir = Some(fhir);
        return decision;
    }
    for (index, entry) in &entries {
        let resource = bundle_json
            .as_ref()
            .and_then(|b| b.get("entry"))
            .and_then(|e| e.get(*index))
            .and_then(|e| e.get("resource"));
        if let Err(mut denial) =
            authorize_one(&mut ctx, entry, Some(*index), resource, &mut decision)
        {
            denial.description = format!("bundle entry {index}: {}", denial.description);
            decision.denial = Some(denial);
            break;
        }
    }
    decision.fhir = Some(fhir);
    decision.input = ctx.input.take();
    if decision.denial.is_none() {
        if let Some(f) = decision.fhir.as_ref() {
            decision.response_check = response_check(config, token, &scopes, f);
        }
        if let Some(check) = &decision.response_check {
            let (rules, smart) = (check.rules, !check.reads_everything());
            if smart {
                decision.note(|| {
                    "SMART: every returned resource will be checked against the scopes".to_string()
                });
            }
            if rules {
                decision.note(|| "response rules: will be checked on the response".to_string());
            }
        }
        let interaction = decision.fhir.as_ref().map(|f| f.interaction);
        if interaction.is_some_and(|i| labels_checked(config, token, i)) {
            decision
                .note(|| "consent: security labels will be checked on the response".to_string());
        }
        decision.note(|| "decision: allow".to_string());
    }
    decision
}

/// The narrowing of a `GET` type search that only a patient scope could allow and that names
/// no patient (see `smart::narrowing`), when `smart.narrowSearches` is on.
fn narrow(
    config: &Config,
    token: &VerifiedToken,
    req: &RequestInfo,
    scopes: &ScopeSet,
    fhir: &FhirRequest,
) -> Option<Narrowing> {
    if !config.narrow_searches
        || !config.smart_enforce
        || !matches!(req.method.as_str(), "GET" | "HEAD")
    {
        return None;
    }
    let patient = token.patient()?;
    match authorize(scopes, fhir, Some(patient)) {
        Err(SmartDenial::Compartment {
            reason: "search_not_constrained_to_patient",
        }) => narrowing(fhir, patient),
        _ => None,
    }
}

/// What the response of an allowed request must be checked against, or `None` when nothing in
/// it could be withheld: the scopes read every type unbounded ([`ResponseCheck::reads_everything`],
/// e.g. `system/*.rs`), no response rule applies, and the consent check is off or the token's
/// consent grants every configured label. Capability statements are never checked.
fn response_check(
    config: &Config,
    token: &VerifiedToken,
    scopes: &ScopeSet,
    fhir: &FhirRequest,
) -> Option<ResponseCheck> {
    if fhir.interaction == Interaction::Capabilities {
        return None;
    }
    let target = match (&fhir.resource_type, &fhir.id, fhir.interaction) {
        (Some(ty), Some(id), Interaction::Read | Interaction::Vread | Interaction::Operation) => {
            Some(Target {
                resource_type: ty.clone(),
                id: id.clone(),
                read: matches!(fhir.interaction, Interaction::Read | Interaction::Vread),
            })
        }
        _ => None,
    };
    let check = ResponseCheck {
        smart: config.smart_enforce,
        scopes: scopes.clone(),
        patient: token.patient().map(str::to_string),
        target,
        rules: config.rules.has_response_rules(),
    };
    let needed =
        !check.reads_everything() || check.rules || labels_checked(config, token, fhir.interaction);
    needed.then_some(check)
}

/// Whether the built-in consent check must see the response of `interaction`: the check is
/// enforced, the response can carry resources, and the token's consent does not grant every
/// configured label (then no label can withhold anything and the response is not buffered).
pub fn labels_checked(config: &Config, token: &VerifiedToken, interaction: Interaction) -> bool {
    let consent = &config.consent;
    consent.active()
        && LabelMode::of(interaction) != LabelMode::Off
        && consent.grants(token.claims()) != consent.all()
}

struct Ctx<'a> {
    config: &'a Config,
    token: &'a VerifiedToken,
    scopes: &'a ScopeSet,
    /// The rules' input (absent without rules); `fhir` is set per request or bundle entry.
    input: Option<RuleInput>,
    /// Deciding on the headers alone: the written resource is not checked.
    head_only: bool,
}

fn authorize_one(
    ctx: &mut Ctx,
    fhir: &FhirRequest,
    entry: Option<usize>,
    resource: Option<&Value>,
    decision: &mut Decision,
) -> Result<(), Denial> {
    let label = entry.map(|i| format!("entry {i}: ")).unwrap_or_default();
    if ctx.config.smart_enforce {
        match authorize(ctx.scopes, fhir, ctx.token.patient()) {
            Ok(grant) => {
                if grant.needs_request_check && !ctx.head_only {
                    let patient = ctx.token.patient().unwrap_or_default();
                    let inside = resource
                        .map(|r| resource_in_patient_compartment(r, patient) == Membership::In)
                        .unwrap_or(false);
                    if !inside {
                        decision.note(|| {
                            format!(
                            "{label}SMART: the written resource is outside the patient compartment"
                        )
                        });
                        return Err(Denial::new(
                            DenyKind::Forbidden,
                            "smart.write_outside_compartment",
                            "the resource written is not in the patient's compartment",
                        ));
                    }
                }
                decision.note(|| {
                    format!(
                        "{label}SMART: allowed by `{}`{}",
                        grant.via,
                        if grant.needs_response_check {
                            " (response will be checked)"
                        } else {
                            ""
                        }
                    )
                });
            }
            Err(denial) => {
                decision.note(|| format!("{label}SMART: denied ({})", denial.code()));
                return Err(smart_denial(&denial));
            }
        }
    } else {
        decision.note(|| format!("{label}SMART: not enforced"));
    }
    let Some(input) = ctx.input.as_mut() else {
        return Ok(());
    };
    input.fhir = fhir.to_cel_value();
    let verdict = ctx.config.rules.evaluate(input);
    if decision.explain {
        crate::explain::rule_verdict(&format!("{label}request"), &verdict, &mut decision.trace);
    }
    match verdict {
        RuleVerdict::Allow { flags, .. } => {
            for f in flags {
                if !decision.flags.contains(&f) {
                    decision.flags.push(f);
                }
            }
            Ok(())
        }
        RuleVerdict::Deny {
            rule,
            message,
            step_up,
            error,
            ..
        } => {
            let (kind, reason) = match step_up {
                Some(s) => (
                    DenyKind::StepUp {
                        acr_values: s.acr_values,
                        max_age: s.max_age,
                    },
                    "rule.step_up",
                ),
                None if error => (DenyKind::Forbidden, "rule.error"),
                None => (DenyKind::Forbidden, "rule.denied"),
            };
            let mut denial = Denial::new(kind, reason, message);
            denial.rule = Some(rule);
            Err(denial)
        }
    }
}

/// 400 `invalid_request`: an `access_token` parameter in a form body or bundle entry.
fn token_elsewhere() -> Denial {
    Denial::new(
        DenyKind::InvalidRequest,
        "request.token_in_body",
        "an access token is accepted in the Authorization header only",
    )
}

fn fhir_denial(e: &FhirError) -> Denial {
    let kind = match e.status() {
        404 => DenyKind::NotFound,
        413 => DenyKind::TooLarge,
        _ => DenyKind::BadRequest,
    };
    Denial::new(kind, format!("fhir.{}", e.code()), e.to_string())
}

fn smart_denial(d: &SmartDenial) -> Denial {
    match d {
        SmartDenial::InsufficientScope { required } => Denial::new(
            DenyKind::InsufficientScope {
                scope: required.clone(),
            },
            format!("smart.{}", d.code()),
            format!("the token's scopes do not allow this; needs {required}"),
        ),
        other => Denial::new(
            DenyKind::Forbidden,
            format!("smart.{}", other.code()),
            other.to_string(),
        ),
    }
}

/// The contract's `request` CEL variable: method, path (without query), host, headers, query.
pub fn request_value(req: &RequestInfo) -> Value {
    let (path, query) = match req.path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (req.path.as_str(), ""),
    };
    // The FHIR model already refused a query that does not decode; a pair that does not is
    // left out here rather than read another way.
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in crate::percent::form_pairs(query).flatten() {
        params.entry(name).or_default().push(value);
    }
    json!({
        "method": req.method,
        "path": path,
        "host": req.host,
        "headers": req.headers,
        "query": params,
    })
}

#[cfg(test)]
mod tests;

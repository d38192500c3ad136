//! SMART App Launch 2 scopes and the patient compartment.
//!
//! Pure logic: scopes in, a [`Grant`] or a [`SmartDenial`] out.
//!
//! # Permissions per interaction
//! | interaction | needs |
//! |---|---|
//! | read, vread, history-instance | `r` on the type |
//! | search-type, search-compartment (`[C]/[id]/[type]`) | `s` on the type (`*` for `[C]/[id]/*`) |
//! | history-type | `s` on the type (it lists the type like a search) |
//! | search-system, history-system | `s` on `*` |
//! | create | `c`; with `If-None-Exist` (conditional create) `c` and `s` |
//! | update, patch | `u`; conditional (`PUT [type]?criteria`) `u` and `s` (the server searches first) |
//! | delete | `d`; conditional `d` and `s` |
//! | capabilities | nothing (via `public`) |
//! | batch, transaction | nothing for the container (via `bundle`): the caller authorizes every entry |
//!
//! Operations:
//! | operation | needs | under `patient/` scopes |
//! |---|---|---|
//! | `Patient/[id]/$everything` | `r` and `s` on `*` (it returns every type) | `id` must be the patient |
//! | `[type]/[id]/$everything` (e.g. Encounter) | `rs` on `*` | response check |
//! | `Patient/$everything` | `rs` on `*` | denied (all patients) |
//! | `$export` (any level) | `system/*.r`; only `system/` scopes | — |
//! | `$validate` (system / type) | `c` on `*` / on the type (validates a posted resource, stores nothing) | allowed |
//! | `[type]/[id]/$validate` | `r` on the type | as read |
//! | `$meta` instance / type / system | `r` / `s` / `s` on `*` | as read / type-wide / denied |
//! | `$meta-add`, `$meta-delete` | `u` on the type | as update |
//! | `Observation/$lastn`, `Observation/$stats` | `s` on Observation | as a search (must be constrained) |
//! | `Patient/$match` | `s` on Patient | denied (returns other patients) |
//! | `Composition/[id]/$document` | `r` on `*` | response check |
//! | `$expand`, `$validate-code` (ValueSet), `$lookup`, `$subsumes` (CodeSystem), `$translate`, `$closure` (ConceptMap) | `r` on that terminology type | allowed (no patient data) |
//! | anything else | `cruds` on `*` in `user/` or `system/` (never `patient/`) | denied |
//!
//! Permissions may come from several scopes of one context (`patient/*.r` + `patient/*.s`).
//! Contexts are tried in the order system, user, patient: a `user/` or `system/` grant is not
//! patient-constrained (the FHIR server applies the user's own rights).
//!
//! # Granular scopes
//! `?param=value` constraints on `category`, `code`, `_tag` and `_security` ([`GRANULAR_PARAMS`]).
//! A granular scope grants:
//! - a search (`s`) on its type only when the search's own parameters carry the constraint under
//!   the exact name (no modifier) with every value covered (`category=a,b` needs both `a` and `b`
//!   covered, possibly by two scopes); `system|code` must match exactly; a scope value without a
//!   system also covers `any-system|code`;
//! - a read (`r`) of one instance only with `needs_response_check`: the engine must verify the
//!   returned resource with [`resource_matches_granular`] against [`Grant::granular`];
//! - nothing else (no create, update, delete, history or `*`-type access, since the constraint
//!   cannot be checked on the request).
//!
//! # Patient compartment (`patient/` scopes)
//! `patient` is the token's launch patient (a FHIR id); without it a request that only a
//! `patient/` scope would allow is [`SmartDenial::NoPatientContext`]. Types are classed by a
//! built-in table (R4 Patient CompartmentDefinition, see `table.rs`): the Patient type itself,
//! member types (with the search parameters that tie them to a patient), shared types with no
//! patient data, and unknown types (denied).
//! - read/vread/history-instance: `Patient/[id]` must be the patient; a member instance is allowed
//!   with `needs_response_check` (its owner is only known from the response, see
//!   [`resource_in_patient_compartment`]); shared types are allowed.
//! - update/patch/delete by id: `Patient/[id]` must be the patient; for member types they are
//!   denied (`instance_write_unverifiable`: the stored resource's owner is unknown before the
//!   write; use conditional writes constrained to the patient); shared types: denied.
//! - create: member types are allowed with `needs_request_check` (the body must be in the
//!   compartment); creating a Patient or a shared type is denied.
//! - conditional update/delete (and create with `If-None-Exist`): the criteria must constrain to
//!   the patient as below; update/create also set `needs_request_check`; conditional patch of a
//!   member type is denied.
//! - type search: `Patient` needs `_id` equal to the patient; a member type needs one of its
//!   compartment parameters (e.g. Observation: `subject`, `performer`), optionally with the
//!   `:Patient` modifier, whose every value names the patient: `Patient/[id]`,
//!   `http(s)://host/.../Patient/[id]`, or the bare id (only for the `patient` parameter or with
//!   `:Patient`, because `subject=123` also matches `Group/123`). So comma-OR values or repeats
//!   naming anyone else, chained parameters (`subject.name=x`), and other modifiers (`:missing`,
//!   `:not`, `:identifier`, `:above`, ...) do not constrain; other parameters may be added freely
//!   (they only narrow). `_has` and `_query` are denied. `_include`/`_revinclude` are allowed
//!   with `needs_response_check`. Shared types may be searched freely; member types with no
//!   usable parameter and unknown types are denied.
//! - `Patient/[id]/[type]` and `Patient/[id]/*`: `id` must be the patient (`_has`/`_query`
//!   denied, includes flag a response check); other compartments (`Encounter/1/Observation`)
//!   need a patient constraint like a type search.
//! - history-type of a member type, search-system, history-system: denied (cannot be
//!   constrained).
//!
//! Query narrowing (`narrow.rs`, on by default with `smart.narrowSearches`): the engine adds the
//! launch patient to a type search that names no patient at all, then authorizes the narrowed
//! search; other unconstrained requests are denied.

mod compartment;
mod granular;
mod membership;
mod narrow;
mod need;
mod scope;
mod table;

#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::fhir::types::is_valid_id;
use crate::fhir::FhirRequest;

pub use granular::{matches_granular, resource_matches_granular};
pub use membership::{
    instance_membership, membership, resource_in_patient_compartment, Membership,
};
pub use narrow::{narrowing, strict_prefer, Narrowing};
pub use scope::{Constraint, Context, Permission, Perms, Scope, ScopeSet, GRANULAR_PARAMS};

use compartment::Checks;
use need::{need_for, Need, Rule};

/// Why the SMART layer denies a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmartDenial {
    /// No scope grants the request; `required` is the narrowest v2 scope that would, e.g.
    /// `patient/Observation.rs` (contract: 403 `insufficient_scope`, `scope="…"`).
    #[error("insufficient scope; required: {required}")]
    InsufficientScope {
        /// A scope that would allow the request.
        required: String,
    },
    /// Only `patient/` scopes apply, and the token has no patient context.
    #[error("patient scope without patient context")]
    NoPatientContext,
    /// The token's patient context is not a FHIR id.
    #[error("patient context is not a valid id")]
    InvalidPatientContext,
    /// A `patient/` scope applies but the request leaves the patient's compartment.
    #[error("patient compartment: {reason}")]
    Compartment {
        /// Stable reason: `other_patient`, `search_not_constrained_to_patient`,
        /// `reverse_chain_not_allowed`, `named_query_not_allowed`,
        /// `compartment_membership_unknown`, `write_outside_compartment`,
        /// `instance_write_unverifiable`, `patch_unverifiable`, `create_patient`,
        /// `type_wide_access` or `system_wide_access`.
        reason: &'static str,
    },
    /// The request model lacks a field its interaction needs (a caller bug).
    #[error("malformed FHIR request")]
    Malformed,
}

impl SmartDenial {
    /// Stable code for audit records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SmartDenial::InsufficientScope { .. } => "insufficient_scope",
            SmartDenial::NoPatientContext => "no_patient_context",
            SmartDenial::InvalidPatientContext => "invalid_patient_context",
            SmartDenial::Compartment { .. } => "patient_compartment",
            SmartDenial::Malformed => "malformed_request",
        }
    }
}

/// Why a request is allowed, and what the engine must still check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The scope(s) that allowed it, space separated; `public` for capabilities, `bundle` for a
    /// batch/transaction container.
    pub via: String,
    /// Allowed by a `patient/` scope: the patient compartment applied.
    pub patient_constrained: bool,
    /// Returned resources must be checked (compartment membership with
    /// [`resource_in_patient_compartment`] when `patient_constrained`, and
    /// [`resource_matches_granular`] against `granular`); deny what fails.
    pub needs_response_check: bool,
    /// The resource in the request body (create, conditional update) must be in the patient's
    /// compartment ([`resource_in_patient_compartment`] returns `In`); deny otherwise, or deny
    /// outright if the body cannot be checked.
    pub needs_request_check: bool,
    /// For grants by granular scopes: each returned resource of the requested type must satisfy
    /// at least one of these constraint sets. Empty otherwise.
    pub granular: Vec<Vec<Constraint>>,
}

impl Grant {
    fn plain(via: impl Into<String>) -> Grant {
        Grant {
            via: via.into(),
            patient_constrained: false,
            needs_response_check: false,
            needs_request_check: false,
            granular: Vec::new(),
        }
    }
}

/// Decide whether `scopes` allow `req` for the token's launch `patient` (see the module docs).
pub fn authorize(
    scopes: &ScopeSet,
    req: &FhirRequest,
    patient: Option<&str>,
) -> Result<Grant, SmartDenial> {
    let need = need_for(req)?;
    match need.rule {
        Rule::Public => return Ok(Grant::plain("public")),
        Rule::Bundle => return Ok(Grant::plain("bundle")),
        _ => {}
    }
    let mut denial: Option<SmartDenial> = None;

    for ctx in [Context::System, Context::User] {
        if let Some(via) = covering(scopes, ctx, &need) {
            return Ok(Grant::plain(via));
        }
    }
    if let Some(via) = covering(scopes, Context::Patient, &need) {
        match patient_checks(&need, patient) {
            Ok(checks) => {
                return Ok(Grant {
                    via,
                    patient_constrained: true,
                    needs_response_check: checks.response,
                    needs_request_check: checks.request,
                    granular: Vec::new(),
                })
            }
            Err(d) => denial = Some(d),
        }
    }
    for ctx in [Context::System, Context::User, Context::Patient] {
        let Some((via, sets, read)) = granular_cover(scopes, ctx, &need) else {
            continue;
        };
        let checks = if ctx == Context::Patient {
            match patient_checks(&need, patient) {
                Ok(c) => c,
                Err(d) => {
                    denial.get_or_insert(d);
                    continue;
                }
            }
        } else {
            Checks::default()
        };
        return Ok(Grant {
            via,
            patient_constrained: ctx == Context::Patient,
            needs_response_check: read || checks.response,
            needs_request_check: checks.request,
            granular: sets,
        });
    }
    Err(denial.unwrap_or_else(|| SmartDenial::InsufficientScope {
        required: required_scope(&need, patient.is_some()),
    }))
}

/// Whether an unconstrained scope of `context` (`patient`, `user` or `system`) grants `perm` on
/// `resource_type` (a type, or `*` to ask for a `*` scope). Granular scopes do not count; an
/// unknown context is `false`. For CEL helpers.
pub fn allows(scopes: &ScopeSet, context: &str, resource_type: &str, perm: Permission) -> bool {
    let Some(ctx) = Context::parse(context) else {
        return false;
    };
    let ty = (resource_type != "*").then_some(resource_type);
    scopes
        .iter()
        .any(|s| s.context() == ctx && !s.is_granular() && s.covers_type(ty) && s.perms().has(perm))
}

/// Unconstrained scopes of `ctx` whose union covers the need; the contributing scopes as `via`.
fn covering(scopes: &ScopeSet, ctx: Context, need: &Need<'_>) -> Option<String> {
    if !need.contexts.allows(ctx) {
        return None;
    }
    let mut have = Perms::NONE;
    let mut via: Vec<&str> = Vec::new();
    for s in scopes.iter() {
        if s.context() != ctx || s.is_granular() || !s.covers_type(need.ty) {
            continue;
        }
        let before = have.intersection(need.perms);
        have = have.union(s.perms());
        if have.intersection(need.perms) != before {
            via.push(s.as_str());
        }
        if have.contains(need.perms) {
            return Some(via.join(" "));
        }
    }
    None
}

/// Granular scopes of `ctx` that grant a single-type search or read: (via, constraint sets,
/// whether it is a read).
fn granular_cover(
    scopes: &ScopeSet,
    ctx: Context,
    need: &Need<'_>,
) -> Option<(String, Vec<Vec<Constraint>>, bool)> {
    if !need.contexts.allows(ctx) {
        return None;
    }
    let ty = need.ty?;
    let (perm, params, read) = match &need.rule {
        Rule::Search { params, .. } => (Permission::S, Some(*params), false),
        Rule::CompartmentSearch { params, .. } => (Permission::S, Some(*params), false),
        Rule::ReadInstance { .. } => (Permission::R, None, true),
        _ => return None,
    };
    if need.perms != Perms::of(&[perm]) {
        return None;
    }
    let candidates: Vec<&Scope> = scopes
        .iter()
        .filter(|s| s.context() == ctx && s.is_granular())
        .filter(|s| s.resource_type() == ty && s.perms().has(perm))
        .collect();
    let used = match params {
        Some(params) => granular::covering_search(&candidates, params)?,
        None if candidates.is_empty() => return None,
        None => candidates,
    };
    let via = used
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let sets = used.iter().map(|s| s.constraints().to_vec()).collect();
    Some((via, sets, read))
}

fn patient_checks(need: &Need<'_>, patient: Option<&str>) -> Result<Checks, SmartDenial> {
    let patient = match patient {
        None | Some("") => return Err(SmartDenial::NoPatientContext),
        Some(p) if !is_valid_id(p) => return Err(SmartDenial::InvalidPatientContext),
        Some(p) => p,
    };
    compartment::check(&need.rule, patient).map_err(|reason| SmartDenial::Compartment { reason })
}

/// The narrowest v2 scope that would grant the need: `patient/` when the token has a patient
/// context and patient scopes can grant it, else `user/`, else `system/`.
fn required_scope(need: &Need<'_>, has_patient: bool) -> String {
    let ctx = if has_patient && need.contexts.allows(Context::Patient) {
        Context::Patient
    } else if need.contexts.allows(Context::User) {
        Context::User
    } else {
        Context::System
    };
    format!(
        "{}/{}.{}",
        ctx.as_str(),
        need.ty.unwrap_or("*"),
        need.perms.letters()
    )
}

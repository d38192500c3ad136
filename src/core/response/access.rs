//! What a token may read, resource by resource: the SMART side of the response check.
//!
//! A returned resource of type `T` may reach the client when one of the token's scopes with `r`
//! or `s` covers `T` (or `*`) and:
//! - it is a `system/` or `user/` scope without constraints: nothing more is asked;
//! - it is a `patient/` scope without constraints: the resource is in the launch patient's
//!   compartment, or of a type that holds no patient data ([`membership`]);
//! - it is a granular scope (`…?category=…`): the resource matches its constraints
//!   ([`matches_granular`]), and, for `patient/`, is in the compartment as above.
//!
//! `OperationOutcome` is always readable (it describes the answer, not a patient). With SMART not
//! enforced (`smart.enforce: false`) every type is readable.

use crate::smart::{
    instance_membership, matches_granular, membership, Context, Membership, Permission, ScopeSet,
};
use crate::tape::{JsonRef, Malformed};

/// The resource a request addressed, when it addressed one (`[type]/[id]`, with or without an
/// operation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The type in the URL.
    pub resource_type: String,
    /// The id in the URL.
    pub id: String,
    /// A read or vread: the answer must be that very resource.
    pub read: bool,
}

/// Why a resource may not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No scope covers its type.
    Scope,
    /// Scopes cover its type, but it is outside the patient's compartment or their constraints.
    Compartment,
}

/// What returned resources must satisfy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseCheck {
    /// SMART is enforced: each resource's type must be readable by `scopes` (module docs).
    pub smart: bool,
    /// The token's scopes.
    pub scopes: ScopeSet,
    /// The token's launch patient, for `patient/` scopes.
    pub patient: Option<String>,
    /// The addressed instance (reads: the answer must be it; instance operations: their output
    /// is about it).
    pub target: Option<Target>,
    /// Response-phase CEL rules must hold for the response body (bound to `resource`).
    pub rules: bool,
}

impl ResponseCheck {
    /// A SMART check for a token with `scopes` (space-separated) and launch `patient`.
    pub fn for_scopes(scopes: &str, patient: Option<&str>) -> ResponseCheck {
        ResponseCheck {
            smart: true,
            scopes: ScopeSet::parse(scopes.split(' ')),
            patient: patient.map(str::to_string),
            target: None,
            rules: false,
        }
    }

    /// Whether every type is readable without a bound (SMART not enforced, or a `system/` or
    /// `user/` scope `*.r`/`*.s` without constraints): no resource can fail the SMART check.
    pub fn reads_everything(&self) -> bool {
        !self.smart
            || self.scopes.iter().any(|s| {
                s.context() != Context::Patient
                    && !s.is_granular()
                    && s.resource_type() == "*"
                    && readable(s.perms())
            })
    }

    /// Whether no scope bounds the reading of `resource_type`.
    pub(crate) fn unbounded(&self, resource_type: &str) -> bool {
        !self.smart
            || resource_type == "OperationOutcome"
            || self.scopes.iter().any(|s| {
                s.context() != Context::Patient
                    && !s.is_granular()
                    && s.covers_type(Some(resource_type))
                    && readable(s.perms())
            })
    }

    /// Why the token may not read `resource` (of type `resource_type`): `None` when it may.
    pub(crate) fn refusal<'a, J: JsonRef<'a>>(
        &self,
        resource_type: &str,
        resource: J,
    ) -> Result<Option<Refusal>, Malformed> {
        if self.unbounded(resource_type) {
            return Ok(None);
        }
        let mut in_compartment: Option<bool> = None;
        let mut covered = false;
        for s in self.scopes.iter() {
            if !readable(s.perms()) || !s.covers_type(Some(resource_type)) {
                continue;
            }
            covered = true;
            let patient = s.context() == Context::Patient;
            if s.is_granular() && !matches_granular(resource, &[s.constraints().to_vec()])? {
                continue;
            }
            if !patient {
                return Ok(None);
            }
            let inside = match in_compartment {
                Some(known) => known,
                None => {
                    let inside = match self.patient.as_deref() {
                        Some(p) => matches!(
                            membership(resource, p)?,
                            Membership::In | Membership::Shared
                        ),
                        None => false,
                    };
                    in_compartment = Some(inside);
                    inside
                }
            };
            if inside {
                return Ok(None);
            }
        }
        Ok(Some(if covered {
            Refusal::Compartment
        } else {
            Refusal::Scope
        }))
    }

    /// Whether an operation's output about the addressed instance (a `Parameters` answer to
    /// `[type]/[id]/$op`) may be read: its type is unbounded, or the instance is the patient
    /// itself or of a shared type under an unconstrained `patient/` scope. Anything else cannot
    /// be placed in the compartment from the answer.
    pub(crate) fn may_read_about_target(&self) -> bool {
        let Some(t) = &self.target else {
            return true;
        };
        if self.unbounded(&t.resource_type) {
            return true;
        }
        let Some(patient) = self.patient.as_deref() else {
            return false;
        };
        let inside = matches!(
            instance_membership(&t.resource_type, &t.id, patient),
            Membership::In | Membership::Shared
        );
        inside
            && self.scopes.iter().any(|s| {
                s.context() == Context::Patient
                    && !s.is_granular()
                    && s.covers_type(Some(&t.resource_type))
                    && readable(s.perms())
            })
    }
}

fn readable(perms: crate::smart::Perms) -> bool {
    perms.has(Permission::R) || perms.has(Permission::S)
}

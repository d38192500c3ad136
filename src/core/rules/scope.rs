//! Scope implication for the `hasScope()` rule function. Scopes are parsed by the filter's own
//! SMART model ([`crate::smart::Scope`]), so a rule and the built-in enforcement agree on what a
//! scope string means; this module only decides whether a set of granted scopes implies one.

use crate::smart::{Perms, Scope};

/// Why a required scope string was refused (never includes the text itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeParseError {
    /// Starts with `patient/`, `user/` or `system/` but is not a valid SMART resource scope.
    Resource,
    /// Empty, or contains whitespace.
    Shape,
}

impl ScopeParseError {
    /// Human-readable reason.
    pub fn reason(self) -> &'static str {
        match self {
            ScopeParseError::Resource => {
                "not a SMART scope context/Type.permissions: the context must be patient, user or \
                 system, the type a FHIR resource type or *, the permissions read, write, * or a \
                 subset of cruds in that order, and a granular ?param=value only on a v2 scope of \
                 one type with category, code, _tag or _security"
            }
            ScopeParseError::Shape => "a scope must be one non-empty word",
        }
    }
}

/// What a required scope string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Required {
    /// A resource scope, checked with v1/v2 equivalence and wildcards.
    Resource(Scope),
    /// Any other scope (`openid`, `launch/patient`, ...), checked by exact membership.
    Plain(String),
}

impl Required {
    /// Parses what `hasScope()` was asked. A string starting with `patient/`, `user/` or
    /// `system/` must be a valid SMART resource scope; anything else is a plain scope.
    pub fn parse(s: &str) -> Result<Required, ScopeParseError> {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(ScopeParseError::Shape);
        }
        let looks_resource = ["patient/", "user/", "system/"]
            .iter()
            .any(|p| s.starts_with(p));
        if looks_resource {
            Scope::parse(s)
                .map(Required::Resource)
                .ok_or(ScopeParseError::Resource)
        } else {
            Ok(Required::Plain(s.to_string()))
        }
    }
}

/// True when `granted` counts towards `required`: same context, same type or `*`, and every
/// granular constraint of `granted` is also a constraint of `required`.
fn applies_to(granted: &Scope, required: &Scope) -> bool {
    granted.context() == required.context()
        && (granted.resource_type() == "*" || granted.resource_type() == required.resource_type())
        && granted
            .constraints()
            .iter()
            .all(|c| required.constraints().contains(c))
}

/// True when the granted scopes imply `required`: the permissions of every granted resource
/// scope that applies to it (see `applies_to`) together cover the required permissions.
/// Contexts never imply each other. Granted strings that are not valid scopes grant nothing.
pub fn implies<'a, I>(granted: I, required: &Required) -> bool
where
    I: IntoIterator<Item = &'a str>,
{
    match required {
        Required::Plain(p) => granted.into_iter().any(|g| g == p),
        Required::Resource(req) => {
            let mut have = Perms::NONE;
            for g in granted {
                if let Some(scope) = Scope::parse(g) {
                    if applies_to(&scope, req) {
                        have = have.union(scope.perms());
                    }
                }
            }
            have.contains(req.perms())
        }
    }
}

#[cfg(test)]
mod tests;

//! A small SMART App Launch 2 scope model for the `hasScope()` rule function: parse v1
//! (`.read`, `.write`, `.*`) and v2 (`.cruds` subsets in canonical order) resource scopes with an
//! optional `?param=value` constraint, and decide whether a set of granted scopes implies one.
//!
//! This is deliberately independent of the filter's own SMART enforcement (`crate::smart`): rules
//! only ask "does the token carry this scope or a wider one".

/// Bit for each SMART v2 permission letter, in canonical order `c r u d s`.
const LETTERS: [(char, u8); 5] = [('c', 1), ('r', 2), ('u', 4), ('d', 8), ('s', 16)];
const ALL: u8 = 31;

/// A parsed SMART resource scope such as `patient/Observation.rs?category=laboratory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    /// `patient`, `user` or `system`.
    pub context: String,
    /// A resource type or `*`.
    pub resource_type: String,
    /// Permission bits (c=1, r=2, u=4, d=8, s=16).
    pub perms: u8,
    /// Granular constraints, sorted.
    pub constraints: Vec<(String, String)>,
}

/// Why a scope string is not a resource scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeParseError {
    /// Not of the form `context/type.permissions`.
    Shape,
    /// Context other than patient, user, system.
    Context,
    /// A resource type that is not `*` or a capitalised name.
    ResourceType,
    /// Permissions that are neither v1 nor canonical v2.
    Permissions,
    /// A malformed `?param=value` part (or one on a v1 scope).
    Constraint,
}

impl ScopeParseError {
    /// Human-readable reason, free of the scope text.
    pub fn reason(self) -> &'static str {
        match self {
            ScopeParseError::Shape => "not of the form context/Type.permissions",
            ScopeParseError::Context => "context must be patient, user or system",
            ScopeParseError::ResourceType => "resource type must be * or a FHIR type name",
            ScopeParseError::Permissions => {
                "permissions must be read, write, * or a subset of cruds in that order"
            }
            ScopeParseError::Constraint => {
                "granular constraint must be ?param=value[&param=value] on a v2 scope"
            }
        }
    }
}

impl ResourceScope {
    /// Parses one scope; anything that does not look like a resource scope is an error.
    pub fn parse(s: &str) -> Result<ResourceScope, ScopeParseError> {
        let (context, rest) = s.split_once('/').ok_or(ScopeParseError::Shape)?;
        if !matches!(context, "patient" | "user" | "system") {
            return Err(ScopeParseError::Context);
        }
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let (resource_type, perm_text) = main.rsplit_once('.').ok_or(ScopeParseError::Shape)?;
        if !valid_type(resource_type) {
            return Err(ScopeParseError::ResourceType);
        }
        let (perms, v2) = match perm_text {
            "read" => (2 | 16, false),
            "write" => (1 | 4 | 8, false),
            "*" => (ALL, false),
            letters => (parse_v2(letters).ok_or(ScopeParseError::Permissions)?, true),
        };
        let constraints = match query {
            None => Vec::new(),
            Some(q) if v2 => parse_constraints(q).ok_or(ScopeParseError::Constraint)?,
            Some(_) => return Err(ScopeParseError::Constraint),
        };
        Ok(ResourceScope {
            context: context.to_string(),
            resource_type: resource_type.to_string(),
            perms,
            constraints,
        })
    }

    /// True when `self` (granted) covers the context, type and constraints of `required`
    /// (its permissions are combined by [`implies`]).
    fn applies_to(&self, required: &ResourceScope) -> bool {
        self.context == required.context
            && (self.resource_type == "*" || self.resource_type == required.resource_type)
            && self
                .constraints
                .iter()
                .all(|c| required.constraints.contains(c))
    }
}

fn valid_type(t: &str) -> bool {
    if t == "*" {
        return true;
    }
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && t.len() <= 64
}

/// `c r u d s` subset, non-empty, canonical order, no repeats.
fn parse_v2(letters: &str) -> Option<u8> {
    if letters.is_empty() {
        return None;
    }
    let mut bits = 0u8;
    let mut next = 0usize;
    for ch in letters.chars() {
        let pos = LETTERS.iter().position(|(l, _)| *l == ch)?;
        if pos < next {
            return None;
        }
        bits |= LETTERS.get(pos)?.1;
        next = pos + 1;
    }
    Some(bits)
}

fn parse_constraints(q: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in q.split('&') {
        let (k, v) = part.split_once('=')?;
        if k.is_empty() || v.is_empty() {
            return None;
        }
        out.push((k.to_string(), v.to_string()));
    }
    out.sort();
    Some(out)
}

/// What a required scope string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Required {
    /// A resource scope, checked with v1/v2 equivalence and wildcards.
    Resource(ResourceScope),
    /// Any other scope (`openid`, `launch/patient`, ...), checked by exact membership.
    Plain(String),
}

impl Required {
    /// Parses what `hasScope()` was asked. A string containing `/` and `.` that starts with
    /// `patient/`, `user/` or `system/` must be a valid resource scope; anything else is plain.
    pub fn parse(s: &str) -> Result<Required, ScopeParseError> {
        let looks_resource = ["patient/", "user/", "system/"]
            .iter()
            .any(|p| s.starts_with(p));
        if looks_resource {
            ResourceScope::parse(s).map(Required::Resource)
        } else if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
            Err(ScopeParseError::Shape)
        } else {
            Ok(Required::Plain(s.to_string()))
        }
    }
}

/// True when the granted scopes imply `required`: the permissions of every granted resource
/// scope of the same context, of the same type or `*`, whose constraints are all part of the
/// required scope's constraints, together cover the required permissions. Granted strings that
/// are not valid scopes grant nothing.
pub fn implies<'a, I>(granted: I, required: &Required) -> bool
where
    I: IntoIterator<Item = &'a str>,
{
    match required {
        Required::Plain(p) => granted.into_iter().any(|g| g == p),
        Required::Resource(req) => {
            let mut have = 0u8;
            for g in granted {
                if let Ok(scope) = ResourceScope::parse(g) {
                    if scope.applies_to(req) {
                        have |= scope.perms;
                    }
                }
            }
            have & req.perms == req.perms
        }
    }
}

#[cfg(test)]
mod tests;

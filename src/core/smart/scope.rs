//! SMART App Launch 2 clinical scopes: `context/Type.permissions[?param=value&...]`.

use crate::fhir::types::is_resource_type;

/// Whose data a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// `patient/`: data of the patient in the token's launch context.
    Patient,
    /// `user/`: whatever the user may see (the FHIR server enforces it).
    User,
    /// `system/`: backend services, no user.
    System,
}

impl Context {
    /// The scope prefix without `/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        }
    }

    /// Parses `patient`, `user` or `system` (exact case).
    pub fn parse(s: &str) -> Option<Context> {
        match s {
            "patient" => Some(Context::Patient),
            "user" => Some(Context::User),
            "system" => Some(Context::System),
            _ => None,
        }
    }
}

/// One SMART v2 permission letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `c`: create.
    C,
    /// `r`: read (read, vread, history-instance).
    R,
    /// `u`: update (update, patch).
    U,
    /// `d`: delete.
    D,
    /// `s`: search (and history-type).
    S,
}

impl Permission {
    fn bit(self) -> u8 {
        match self {
            Permission::C => 1,
            Permission::R => 2,
            Permission::U => 4,
            Permission::D => 8,
            Permission::S => 16,
        }
    }
}

/// A set of permissions, printed in the canonical order `cruds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Perms(u8);

impl Perms {
    /// No permission.
    pub const NONE: Perms = Perms(0);
    /// All of `cruds`.
    pub const ALL: Perms = Perms(31);

    /// The set with exactly these permissions.
    pub fn of(perms: &[Permission]) -> Perms {
        Perms(perms.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Whether every permission of `other` is in `self`.
    pub fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `p` is in the set.
    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Union of both sets.
    pub fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    /// Permissions in both sets.
    pub fn intersection(self, other: Perms) -> Perms {
        Perms(self.0 & other.0)
    }

    /// The v2 letters in canonical order, e.g. `rs`.
    pub fn letters(self) -> String {
        const ORDER: [(Permission, char); 5] = [
            (Permission::C, 'c'),
            (Permission::R, 'r'),
            (Permission::U, 'u'),
            (Permission::D, 'd'),
            (Permission::S, 's'),
        ];
        ORDER
            .iter()
            .filter(|(p, _)| self.has(*p))
            .map(|(_, c)| *c)
            .collect()
    }

    /// Parses v2 letters: a non-empty subset of `cruds` in canonical order, each at most once.
    fn parse_v2(s: &str) -> Option<Perms> {
        let mut last = 0u8;
        let mut out = 0u8;
        for c in s.chars() {
            let rank = match c {
                'c' => 1,
                'r' => 2,
                'u' => 3,
                'd' => 4,
                's' => 5,
                _ => return None,
            };
            if rank <= last {
                return None;
            }
            last = rank;
            out |= 1 << (rank - 1);
        }
        (out != 0).then_some(Perms(out))
    }
}

/// Search parameters a granular scope may constrain (`?param=value`).
pub const GRANULAR_PARAMS: &[&str] = &["category", "code", "_tag", "_security"];

/// One `param=value` of a granular scope; `value` is a token (`system|code` or `code`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Constraint {
    /// Search parameter name, one of [`GRANULAR_PARAMS`].
    pub param: String,
    /// Token value, percent-decoded.
    pub value: String,
}

/// A parsed SMART clinical scope.
///
/// Grammar: `(patient|user|system)/(Type|*).(perms)[?param=value(&param=value)*]`, where `perms`
/// is v1 `read` (= `rs`), `write` (= `cud`), `*` (= `cruds`), or v2 letters (a non-empty subset of
/// `cruds` in that order, no repeats). Granular `?...` constraints are allowed only with v2
/// letters and a concrete type, on the parameters in [`GRANULAR_PARAMS`]; several constraints in
/// one scope must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    context: Context,
    resource_type: String,
    perms: Perms,
    constraints: Vec<Constraint>,
    text: String,
}

impl Scope {
    /// Parses one scope; anything else (invalid syntax, unknown type, `openid`, `launch/patient`,
    /// ...) is `None`.
    pub fn parse(s: &str) -> Option<Scope> {
        // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E. A tab, newline or other blank
        // is not a separator (scopes are split on spaces only) and makes the scope invalid.
        if !s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            return None;
        }
        let (context, rest) = s.split_once('/')?;
        let context = Context::parse(context)?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (resource_type, perms) = rest.split_once('.')?;
        if resource_type != "*" && !is_resource_type(resource_type) {
            return None;
        }
        let (perms, v2) = match perms {
            "read" => (Perms::of(&[Permission::R, Permission::S]), false),
            "write" => (
                Perms::of(&[Permission::C, Permission::U, Permission::D]),
                false,
            ),
            "*" => (Perms::ALL, false),
            letters => (Perms::parse_v2(letters)?, true),
        };
        let constraints = match query {
            None => Vec::new(),
            Some(q) => {
                if !v2 || resource_type == "*" {
                    return None;
                }
                parse_constraints(q)?
            }
        };
        Some(Scope {
            context,
            resource_type: resource_type.to_string(),
            perms,
            constraints,
            text: s.to_string(),
        })
    }

    /// The context (`patient`, `user`, `system`).
    pub fn context(&self) -> Context {
        self.context
    }

    /// The resource type, or `*`.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The permissions granted (v1 names expanded).
    pub fn perms(&self) -> Perms {
        self.perms
    }

    /// Granular constraints; empty for an unconstrained scope.
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// Whether the scope has granular constraints.
    pub fn is_granular(&self) -> bool {
        !self.constraints.is_empty()
    }

    /// The scope as written in the token.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the scope's type covers `resource_type` (`None` means "every type": only `*` does).
    pub(crate) fn covers_type(&self, resource_type: Option<&str>) -> bool {
        self.resource_type == "*" || Some(self.resource_type.as_str()) == resource_type
    }
}

fn parse_constraints(query: &str) -> Option<Vec<Constraint>> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        let (param, value) = pair.split_once('=')?;
        if !GRANULAR_PARAMS.contains(&param) {
            return None;
        }
        let value = percent_decode(value)?;
        if value.is_empty() || value.contains(',') || value.chars().any(char::is_control) {
            return None;
        }
        out.push(Constraint {
            param: param.to_string(),
            value,
        });
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    crate::percent::decode(s, crate::percent::Plus::Literal).ok()
}

/// The clinical scopes of one token. Strings that are not valid clinical scopes are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
}

impl ScopeSet {
    /// Parses scope strings; each item may itself hold several space-separated scopes (RFC 6749
    /// §3.3: spaces only; a tab or newline is part of an invalid scope, never a separator). Invalid
    /// ones (and non-clinical scopes such as `openid`, `fhirUser`, `launch/patient`,
    /// `offline_access`) grant nothing and are dropped.
    pub fn parse<I: IntoIterator<Item = S>, S: AsRef<str>>(scopes: I) -> ScopeSet {
        let scopes = scopes
            .into_iter()
            .flat_map(|s| {
                s.as_ref()
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .filter_map(Scope::parse)
                    .collect::<Vec<_>>()
            })
            .collect();
        ScopeSet { scopes }
    }

    /// The valid clinical scopes, in token order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.iter()
    }

    /// Number of valid clinical scopes.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// Whether no valid clinical scope was found.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }
}

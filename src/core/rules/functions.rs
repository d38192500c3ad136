//! The functions rules may call: the supported CEL builtins and fhirgate's own helpers for policy
//! authors. Every helper is documented with an example here and in `policies/README.md`.
//! Error messages never contain request data: only types and names from the policy.

use std::sync::Arc;

use std::cell::RefCell;

use cel_interpreter::extractors::This;
use cel_interpreter::{Context, ExecutionError, FunctionContext, Value};
use regex_lite::{Regex, RegexBuilder};

use super::net::{parse_peer, Cidr};
use super::scope::{implies, Required};

/// Static type of an expression as far as the linter can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Num,
    String,
    Bytes,
    List,
    Map,
    Null,
    Unknown,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Num => "number",
            Kind::String => "string",
            Kind::Bytes => "bytes",
            Kind::List => "list",
            Kind::Map => "map",
            Kind::Null => "null",
            Kind::Unknown => "unknown",
        }
    }
}

/// How many arguments a function takes, counting a method target as the first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

/// A function rules may call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signature {
    pub name: &'static str,
    pub arity: Arity,
    /// Whether `x.f(y)` is accepted as well as `f(x, y)`.
    pub method_ok: bool,
    pub returns: Kind,
    /// fhirgate's own (its error messages are safe to show).
    pub ours: bool,
}

const fn sig(
    name: &'static str,
    arity: Arity,
    method_ok: bool,
    returns: Kind,
    ours: bool,
) -> Signature {
    Signature {
        name,
        arity,
        method_ok,
        returns,
        ours,
    }
}

/// Every callable function. The builtins are those `cel_interpreter::Context::default()`
/// registers without its `chrono` feature.
pub(crate) const SIGNATURES: &[Signature] = &[
    sig("contains", Arity::Exactly(2), true, Kind::Bool, false),
    sig("size", Arity::Exactly(1), true, Kind::Num, false),
    sig("max", Arity::AtLeast(1), false, Kind::Unknown, false),
    sig("min", Arity::AtLeast(1), false, Kind::Unknown, false),
    sig("startsWith", Arity::Exactly(2), true, Kind::Bool, false),
    sig("endsWith", Arity::Exactly(2), true, Kind::Bool, false),
    sig("matches", Arity::Exactly(2), true, Kind::Bool, true),
    sig("string", Arity::Exactly(1), true, Kind::String, false),
    sig("bytes", Arity::Exactly(1), true, Kind::Bytes, false),
    sig("double", Arity::Exactly(1), true, Kind::Num, false),
    sig("int", Arity::Exactly(1), true, Kind::Num, false),
    sig("uint", Arity::Exactly(1), true, Kind::Num, false),
    sig("hasScope", Arity::Exactly(2), false, Kind::Bool, true),
    sig("inCidr", Arity::Exactly(2), false, Kind::Bool, true),
    sig("refType", Arity::Exactly(1), false, Kind::String, true),
    sig("refId", Arity::Exactly(1), false, Kind::String, true),
    sig("paramValues", Arity::Exactly(2), false, Kind::List, true),
    sig("claimValues", Arity::Exactly(2), false, Kind::List, true),
    sig("tokenCode", Arity::Exactly(1), false, Kind::String, true),
    sig("hasAny", Arity::Exactly(2), false, Kind::Bool, true),
    sig("hasAll", Arity::Exactly(2), false, Kind::Bool, true),
];

/// Internal guards the linter inserts; their names cannot be written in CEL source.
pub(crate) const GUARD_ITERABLE: &str = "@iterable";
pub(crate) const GUARD_CONTAINER: &str = "@container";
pub(crate) const GUARD_BOOL: &str = "@bool";

/// Looks up a function rules may call.
pub(crate) fn signature(name: &str) -> Option<&'static Signature> {
    SIGNATURES.iter().find(|s| s.name == name)
}

/// Whether `name` is one of fhirgate's own functions or guards (messages safe to show).
pub(crate) fn is_ours(name: &str) -> bool {
    name.starts_with('@') || signature(name).is_some_and(|s| s.ours)
}

/// The root context: CEL builtins plus fhirgate's functions and guards. Built once per rule set.
pub(crate) fn root_context() -> Context<'static> {
    let mut ctx = Context::default();
    ctx.add_function("matches", matches);
    ctx.add_function("hasScope", has_scope);
    ctx.add_function("inCidr", in_cidr);
    ctx.add_function("refType", ref_type);
    ctx.add_function("refId", ref_id);
    ctx.add_function("paramValues", param_values);
    ctx.add_function("claimValues", claim_values);
    ctx.add_function("tokenCode", token_code);
    ctx.add_function("hasAny", has_any);
    ctx.add_function("hasAll", has_all);
    ctx.add_function(GUARD_ITERABLE, guard_iterable);
    ctx.add_function(GUARD_CONTAINER, guard_container);
    ctx.add_function(GUARD_BOOL, guard_bool);
    ctx
}

type Res<T> = Result<T, ExecutionError>;

fn type_name(v: &Value) -> String {
    v.type_of().to_string()
}

fn string_arg(ftx: &FunctionContext, v: &Value, what: &str) -> Res<Arc<String>> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(ftx.error(format!("{what} must be a string, got {}", type_name(other)))),
    }
}

/// Most compiled patterns kept per thread (rules name their patterns as literals, so few).
const REGEX_CACHE: usize = 64;
/// Bound on a compiled pattern's size, and on its nesting.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
const REGEX_NEST_LIMIT: u32 = 32;

thread_local! {
    static REGEXES: RefCell<Vec<(Arc<String>, Regex)>> = const { RefCell::new(Vec::new()) };
}

/// Compiles a `matches` pattern (RE2 syntax as far as `regex-lite` goes: no Unicode classes).
pub(crate) fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

/// `s.matches('^[A-Z]{2}[0-9]+$')` or `matches(s, re)`: true when the regular expression finds a
/// match anywhere in `s` (anchor it with `^…$` for a whole-string match). Linear-time search;
/// RE2 syntax without Unicode classes (`\w`, `\d` are ASCII). The pattern must be a string literal,
/// checked when the configuration loads.
pub fn matches(
    ftx: &FunctionContext,
    This(text): This<Arc<String>>,
    pattern: Arc<String>,
) -> Res<bool> {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, re)) = cache.iter().find(|(p, _)| **p == *pattern) {
            return Ok(re.is_match(&text));
        }
        let re = compile_pattern(&pattern)
            .map_err(|_| ftx.error("the pattern is not a valid regular expression"))?;
        let found = re.is_match(&text);
        if cache.len() >= REGEX_CACHE {
            cache.remove(0);
        }
        cache.push((pattern, re));
        Ok(found)
    })
}

/// `hasScope(token.scopes, 'patient/Observation.rs')`: true when the granted scopes (a list, or a
/// space-separated string) imply the given one. SMART v1 and v2 are equivalent (`.read` = `.rs`,
/// `.write` = `.cud`, `.*` = `.cruds`), a `*` type covers every type, permissions of several
/// scopes combine, contexts (`patient/`, `user/`, `system/`) never imply each other, and a
/// granular scope (`?category=...`) only counts for a required scope with the same constraint.
/// A non-resource scope (`openid`, `launch/patient`) is checked by exact membership.
pub fn has_scope(ftx: &FunctionContext, scopes: Value, required: Value) -> Res<bool> {
    let req_text = string_arg(ftx, &required, "the required scope")?;
    let req = Required::parse(&req_text)
        .map_err(|e| ftx.error(format!("the required scope is invalid: {}", e.reason())))?;
    match &scopes {
        Value::List(list) => Ok(implies(
            list.iter().filter_map(|v| match v {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            }),
            &req,
        )),
        Value::String(s) => Ok(implies(s.split(' ').filter(|s| !s.is_empty()), &req)),
        other => Err(ftx.error(format!(
            "the granted scopes must be a list or a string, got {}",
            type_name(other)
        ))),
    }
}

/// `inCidr(source.address, '10.0.0.0/8')` or `inCidr(source.address, ['10.0.0.0/8', 'fd00::/8'])`:
/// true when the address (`ip:port`, `[v6]:port` or a bare address) lies in any of the blocks.
/// IPv4 and IPv4-mapped IPv6 addresses are the same. An unparseable address is an error.
pub fn in_cidr(ftx: &FunctionContext, address: Value, cidrs: Value) -> Res<bool> {
    let addr_text = string_arg(ftx, &address, "the address")?;
    let ip = parse_peer(&addr_text).ok_or_else(|| ftx.error("the address is not an IP address"))?;
    let check = |v: &Value| -> Res<bool> {
        let text = string_arg(ftx, v, "a CIDR block")?;
        let cidr = Cidr::parse(&text)
            .map_err(|e| ftx.error(format!("invalid CIDR block: {}", e.reason())))?;
        Ok(cidr.contains(ip))
    };
    match &cidrs {
        Value::List(list) => {
            let mut found = false;
            for v in list.iter() {
                // validate every block, so a typo anywhere fails closed
                found |= check(v)?;
            }
            Ok(found)
        }
        other => check(other),
    }
}

/// Splits a FHIR reference into (type, id): `Patient/123`, `Patient/123/_history/2`, or an
/// absolute `http(s)://.../Patient/123[/_history/2]`.
pub fn parse_reference(s: &str) -> Option<(&str, &str)> {
    if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (prefix_ok, path) = match s.split_once("://") {
        Some((scheme, rest)) => (matches!(scheme, "http" | "https"), rest),
        None => (true, s),
    };
    if !prefix_ok {
        return None;
    }
    let segs: Vec<&str> = path.split('/').collect();
    let n = segs.len();
    let (t_at, id_at) = if n >= 4 && segs.get(n - 2) == Some(&"_history") {
        (n - 4, n - 3)
    } else if n >= 2 {
        (n - 2, n - 1)
    } else {
        return None;
    };
    let absolute = s.contains("://");
    if !absolute && t_at != 0 {
        return None;
    }
    if absolute && t_at == 0 {
        return None;
    }
    let (t, id) = (*segs.get(t_at)?, *segs.get(id_at)?);
    let type_ok = t.len() <= 64
        && t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric());
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if type_ok && id_ok {
        Some((t, id))
    } else {
        None
    }
}

/// `refType('Patient/123')` == `'Patient'`; an invalid reference is an error.
pub fn ref_type(ftx: &FunctionContext, reference: Value) -> Res<Value> {
    let text = string_arg(ftx, &reference, "the reference")?;
    let (t, _) = parse_reference(&text).ok_or_else(|| ftx.error("not a FHIR reference Type/id"))?;
    Ok(Value::String(Arc::new(t.to_string())))
}

/// `refId('Patient/123')` == `'123'` (also for `.../Patient/123/_history/2` and absolute URLs).
pub fn ref_id(ftx: &FunctionContext, reference: Value) -> Res<Value> {
    let text = string_arg(ftx, &reference, "the reference")?;
    let (_, id) =
        parse_reference(&text).ok_or_else(|| ftx.error("not a FHIR reference Type/id"))?;
    Ok(Value::String(Arc::new(id.to_string())))
}

/// `paramValues(fhir.params, 'category')`: every value of the search parameter, including its
/// modifier forms (`category:not`, `category:text`, ...), so that a modifier cannot hide a value
/// from a rule; `[]` when absent. Keys are visited in sorted order.
pub fn param_values(ftx: &FunctionContext, params: Value, name: Value) -> Res<Value> {
    let name = string_arg(ftx, &name, "the parameter name")?;
    let Value::Map(map) = &params else {
        return Err(ftx.error(format!(
            "the parameters must be a map, got {}",
            type_name(&params)
        )));
    };
    let mut keys: Vec<(&str, &Value)> = map
        .map
        .iter()
        .filter_map(|(k, v)| match k {
            cel_interpreter::objects::Key::String(s) => Some((s.as_str(), v)),
            _ => None,
        })
        .filter(|(k, _)| {
            *k == name.as_str()
                || k.strip_prefix(name.as_str())
                    .is_some_and(|rest| rest.starts_with(':'))
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (_, v) in keys {
        match v {
            Value::List(items) => out.extend(items.iter().cloned()),
            Value::String(_) => out.push(v.clone()),
            other => {
                return Err(ftx.error(format!(
                    "parameter values must be lists, got {}",
                    type_name(other)
                )))
            }
        }
    }
    Ok(Value::List(Arc::new(out)))
}

/// `claimValues(token.claims, 'amr')`: a claim as a list of strings: `[]` when absent or null,
/// a space-separated string split on whitespace, a list of strings as is. Any other type is an
/// error (the rule then denies).
pub fn claim_values(ftx: &FunctionContext, claims: Value, name: Value) -> Res<Value> {
    let name = string_arg(ftx, &name, "the claim name")?;
    let Value::Map(map) = &claims else {
        return Err(ftx.error(format!(
            "the claims must be a map, got {}",
            type_name(&claims)
        )));
    };
    let key = cel_interpreter::objects::Key::String(name.clone());
    let out = match map.map.get(&key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split_whitespace()
            .map(|p| Value::String(Arc::new(p.to_string())))
            .collect(),
        Some(Value::List(items)) => {
            if let Some(bad) = items.iter().find(|v| !matches!(v, Value::String(_))) {
                return Err(ftx.error(format!(
                    "claim '{name}' must hold strings, found a {}",
                    type_name(bad)
                )));
            }
            items.as_ref().clone()
        }
        Some(other) => {
            return Err(ftx.error(format!(
                "claim '{name}' must be a string or a list of strings, got {}",
                type_name(other)
            )))
        }
    };
    Ok(Value::List(Arc::new(out)))
}

/// `tokenCode('http://loinc.org|1234-5')` == `'1234-5'`: the code of a FHIR token search value
/// (`system|code`, `|code` or `code`).
pub fn token_code(ftx: &FunctionContext, value: Value) -> Res<Value> {
    let text = string_arg(ftx, &value, "the token value")?;
    let code = match text.split_once('|') {
        Some((_, code)) => code.to_string(),
        None => return Ok(Value::String(text)),
    };
    Ok(Value::String(Arc::new(code)))
}

fn list_arg<'v>(ftx: &FunctionContext, v: &'v Value, what: &str) -> Res<&'v [Value]> {
    match v {
        Value::List(l) => Ok(l.as_slice()),
        other => Err(ftx.error(format!("{what} must be a list, got {}", type_name(other)))),
    }
}

/// `hasAny(fhir.params.category, ['mental-health', 'hiv'])`: true when the lists share a value.
pub fn has_any(ftx: &FunctionContext, a: Value, b: Value) -> Res<bool> {
    let a = list_arg(ftx, &a, "the first argument")?;
    let b = list_arg(ftx, &b, "the second argument")?;
    Ok(a.iter().any(|x| b.contains(x)))
}

/// `hasAll(claimValues(token.claims, 'amr'), ['pwd', 'otp'])`: true when the first list contains
/// every value of the second (`hasAll(x, [])` is true).
pub fn has_all(ftx: &FunctionContext, a: Value, b: Value) -> Res<bool> {
    let a = list_arg(ftx, &a, "the first argument")?;
    let b = list_arg(ftx, &b, "the second argument")?;
    Ok(b.iter().all(|x| a.contains(x)))
}

fn guard_iterable(ftx: &FunctionContext, v: Value) -> Res<Value> {
    match v {
        Value::List(_) | Value::Map(_) => Ok(v),
        other => Err(ftx.error(format!(
            "a macro (all, exists, map, filter, ...) needs a list or map, got {}",
            type_name(&other)
        ))),
    }
}

fn guard_container(ftx: &FunctionContext, v: Value) -> Res<Value> {
    match v {
        Value::List(_) | Value::Map(_) => Ok(v),
        other => Err(ftx.error(format!(
            "the right side of 'in' must be a list or map, got {} (use claimValues() for space-separated claims)",
            type_name(&other)
        ))),
    }
}

fn guard_bool(ftx: &FunctionContext, v: Value) -> Res<Value> {
    match v {
        Value::Bool(_) => Ok(v),
        other => Err(ftx.error(format!(
            "a logical operator or condition needs a bool, got {}",
            type_name(&other)
        ))),
    }
}

#[cfg(test)]
mod tests;

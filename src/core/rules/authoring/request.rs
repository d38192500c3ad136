//! The CEL variables of a policy test case (contract §2), built from the case's claims and
//! request line. Used for the rule part of `fhirgate eval`/`test` and for response-phase cases.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::cases::CaseRequest;
use crate::rules::RuleInput;

/// Source address used when a case does not give one: a documentation address outside every
/// private network (TEST-NET-3), i.e. "from the internet".
pub const DEFAULT_SOURCE: &str = "203.0.113.10:40000";

/// Headers never exposed to rules (they carry credentials).
const HIDDEN_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// `token.*` from claims: kind, issuer, subject, clientId, scopes (from `scope`, space
/// separated, or `scp`, a list), patient, fhirUser, claims. Absent optional values are absent
/// keys.
pub fn token_var(claims: &Map<String, Value>) -> Value {
    let string = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let scopes: Vec<Value> = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => s.split_whitespace().map(|x| json!(x)).collect(),
        (_, Some(Value::Array(a))) => a.iter().filter(|v| v.is_string()).cloned().collect(),
        (_, Some(Value::String(s))) => s.split_whitespace().map(|x| json!(x)).collect(),
        _ => Vec::new(),
    };
    let mut t = Map::new();
    t.insert("kind".into(), json!("jwt"));
    t.insert("issuer".into(), json!(string("iss").unwrap_or_default()));
    t.insert("subject".into(), json!(string("sub").unwrap_or_default()));
    let client = ["client_id", "azp", "cid"].iter().find_map(|k| string(k));
    t.insert("clientId".into(), json!(client.unwrap_or_default()));
    t.insert("scopes".into(), Value::Array(scopes));
    if let Some(p) = string("patient") {
        t.insert("patient".into(), json!(p));
    }
    if let Some(u) = string("fhirUser") {
        t.insert("fhirUser".into(), json!(u));
    }
    t.insert("claims".into(), Value::Object(claims.clone()));
    Value::Object(t)
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
pub fn form_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "bad percent-encoding in the query".to_string())?;
                out.push(hex);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "query is not UTF-8".to_string())
}

/// Query parameters in order of appearance: name -> values (repeated names append).
pub fn parse_query(q: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(form_decode(k)?)
            .or_default()
            .push(form_decode(v)?);
    }
    Ok(out)
}

/// `request.*`: method, path (without query), host, lowercased headers (credentials removed),
/// decoded query.
pub fn request_var(req: &CaseRequest) -> Result<Value, String> {
    let (path, query) = req.path.split_once('?').unwrap_or((req.path.as_str(), ""));
    let headers: Map<String, Value> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .filter(|(k, _)| !HIDDEN_HEADERS.contains(&k.as_str()))
        .collect();
    let host = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("fhir.example.org")
        .to_string();
    Ok(json!({
        "method": req.method.to_ascii_uppercase(),
        "path": path,
        "host": host,
        "headers": headers,
        "query": parse_query(query)?,
    }))
}

/// Splits a FHIR search value on unescaped commas (`\,` is a literal comma).
fn split_or(v: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push(',');
                }
            }
            ',' => out.push(String::new()),
            _ => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

fn is_type(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `fhir.*` for a request under `base` — a simplified reading of the FHIR RESTful API used by
/// the policy tooling: interaction, resourceType, id, versionId, operation (without `$`),
/// compartment and params (query, plus the form body of `POST _search`, comma-split).
pub fn fhir_var(req: &CaseRequest, base: &str) -> Result<Value, String> {
    let method = req.method.to_ascii_uppercase();
    let (path, query) = req.path.split_once('?').unwrap_or((req.path.as_str(), ""));
    let rest = path
        .strip_prefix(base)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .ok_or_else(|| format!("path is not under the FHIR base {base}"))?;
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let mut params = parse_query(query)?;
    let instance = |m: &str| match m {
        "GET" => Ok("read"),
        "PUT" => Ok("update"),
        "PATCH" => Ok("patch"),
        "DELETE" => Ok("delete"),
        _ => Err(format!("{m} is not supported on an instance")),
    };
    let on_type = |m: &str| match m {
        "GET" => Ok("search-type"),
        "POST" => Ok("create"),
        "PUT" => Ok("update"),
        "PATCH" => Ok("patch"),
        "DELETE" => Ok("delete"),
        _ => Err(format!("{m} is not supported on a type")),
    };
    let none = "";
    // (interaction, resourceType, id, versionId, operation, compartment type)
    let (interaction, rtype, id, vid, op, comp): (&str, &str, &str, &str, &str, Option<&str>) =
        match (method.as_str(), segs.as_slice()) {
            ("GET", []) => ("search-system", none, none, none, none, None),
            ("POST", []) => {
                let t = req
                    .body
                    .as_ref()
                    .and_then(|b| b.get("type"))
                    .and_then(Value::as_str);
                let kind = if t == Some("transaction") {
                    "transaction"
                } else {
                    "batch"
                };
                (kind, none, none, none, none, None)
            }
            ("GET", ["metadata"]) => ("capabilities", none, none, none, none, None),
            ("GET" | "POST", ["_search"]) => ("search-system", none, none, none, none, None),
            ("GET", ["_history"]) => ("history-system", none, none, none, none, None),
            (_, [o]) if o.starts_with('$') => ("operation", none, none, none, *o, None),
            (m, [t]) if is_type(t) => (on_type(m)?, *t, none, none, none, None),
            ("GET" | "POST", [t, "_search"]) if is_type(t) => {
                if let Some(Value::String(form)) = &req.body {
                    for (k, v) in parse_query(form)? {
                        params.entry(k).or_default().extend(v);
                    }
                }
                ("search-type", *t, none, none, none, None)
            }
            ("GET", [t, "_history"]) if is_type(t) => ("history-type", *t, none, none, none, None),
            (_, [t, o]) if is_type(t) && o.starts_with('$') => {
                ("operation", *t, none, none, *o, None)
            }
            (m, [t, i]) if is_type(t) => (instance(m)?, *t, *i, none, none, None),
            ("GET", [t, i, "_history"]) if is_type(t) => {
                ("history-instance", *t, *i, none, none, None)
            }
            ("GET", [t, i, "_history", v]) if is_type(t) => ("vread", *t, *i, *v, none, None),
            (_, [t, i, o]) if is_type(t) && o.starts_with('$') => {
                ("operation", *t, *i, none, *o, None)
            }
            ("GET", [c, i, t]) if is_type(c) && (is_type(t) || *t == "*") => {
                let rt = if *t == "*" { none } else { *t };
                ("search-compartment", rt, *i, none, none, Some(*c))
            }
            _ => {
                return Err(format!(
                    "{method} {path} is not a FHIR interaction this tool understands"
                ))
            }
        };
    let params: BTreeMap<String, Vec<String>> = params
        .into_iter()
        .map(|(k, vs)| (k, vs.iter().flat_map(|v| split_or(v)).collect()))
        .collect();
    let mut f = json!({
        "interaction": interaction,
        "resourceType": rtype,
        "id": id,
        "versionId": vid,
        "operation": op.strip_prefix('$').unwrap_or(op),
        "params": params,
    });
    if let (Some(c), Some(obj)) = (comp, f.as_object_mut()) {
        // a compartment search has the compartment's id, not an instance id
        obj.insert("compartment".into(), json!({"type": c, "id": id}));
        obj.insert("id".into(), json!(""));
    }
    Ok(f)
}

/// All variables of a case.
pub fn rule_input(
    claims: &Map<String, Value>,
    req: &CaseRequest,
    base: &str,
) -> Result<RuleInput, String> {
    Ok(RuleInput {
        request: request_var(req)?,
        source: json!({"address": req.source.as_deref().unwrap_or(DEFAULT_SOURCE)}),
        token: token_var(claims),
        fhir: fhir_var(req, base)?,
    })
}

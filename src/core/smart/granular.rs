//! Granular scopes (`patient/Observation.rs?category=...`): which searches they cover, and whether
//! a returned resource satisfies them.

use serde_json::Value;

use crate::tape::{JsonRef, Malformed};

use super::scope::{Constraint, Scope};

type Params = std::collections::BTreeMap<String, Vec<String>>;

/// Whether a search value is covered by a scope's token value.
///
/// Equal strings cover. A scope value without `|` (a code in any system) also covers
/// `system|code` and `|code` with the same code. A search code without a system is not covered by
/// a scope value with a system (it would match the code in every system).
fn value_covered(scope_value: &str, search_value: &str) -> bool {
    if scope_value == search_value {
        return true;
    }
    !scope_value.contains('|')
        && search_value
            .split_once('|')
            .is_some_and(|(_, code)| code == scope_value)
}

/// Whether the search's own parameters satisfy every constraint of one scope: the parameter is
/// present under its exact name (no modifier) and each of its values (OR list and repeats) is
/// covered.
fn covered_by_one(constraints: &[Constraint], params: &Params) -> bool {
    constraints.iter().all(|c| {
        params.get(&c.param).is_some_and(|values| {
            !values.is_empty() && values.iter().all(|v| value_covered(&c.value, v))
        })
    })
}

/// The granular scopes that together cover a search, if any: one scope whose constraints all
/// hold, or several single-constraint scopes on the same parameter that each cover some of the
/// OR values (`category=a,b` with `...?category=a` and `...?category=b`).
pub(crate) fn covering_search<'s>(scopes: &[&'s Scope], params: &Params) -> Option<Vec<&'s Scope>> {
    if let Some(s) = scopes
        .iter()
        .find(|s| covered_by_one(s.constraints(), params))
    {
        return Some(vec![*s]);
    }
    for (name, values) in params {
        if values.is_empty() {
            continue;
        }
        let single: Vec<&Scope> = scopes
            .iter()
            .copied()
            .filter(|s| matches!(s.constraints(), [c] if &c.param == name))
            .collect();
        let mut used: Vec<&Scope> = Vec::new();
        let all = values.iter().all(|v| {
            let hit = single.iter().find(|s| {
                s.constraints()
                    .first()
                    .is_some_and(|c| value_covered(&c.value, v))
            });
            if let Some(s) = hit {
                if !used.iter().any(|u| std::ptr::eq(*u, *s)) {
                    used.push(s);
                }
            }
            hit.is_some()
        });
        if all {
            return Some(used);
        }
    }
    None
}

/// Whether a resource satisfies at least one of the constraint sets (each set: all of its
/// constraints hold). `category` and `code` are read from the element of the same name
/// (CodeableConcept or a list of them), `_tag` from `meta.tag`, `_security` from `meta.security`.
/// An empty list of sets means "no granular restriction" and is satisfied. An element of an
/// unexpected shape satisfies nothing (see [`matches_granular`] for the strict form).
pub fn resource_matches_granular(resource: &Value, alternatives: &[Vec<Constraint>]) -> bool {
    matches_granular(resource, alternatives).unwrap_or(false)
}

/// [`resource_matches_granular`] on any JSON representation, refusing elements of an
/// unexpected shape.
pub fn matches_granular<'a, J: JsonRef<'a>>(
    resource: J,
    alternatives: &[Vec<Constraint>],
) -> Result<bool, Malformed> {
    if alternatives.is_empty() {
        return Ok(true);
    }
    for set in alternatives {
        let mut all = true;
        for c in set {
            all &= resource_has(resource, c)?;
        }
        if all {
            return Ok(true);
        }
    }
    Ok(false)
}

fn resource_has<'a, J: JsonRef<'a>>(resource: J, c: &Constraint) -> Result<bool, Malformed> {
    let meta = || resource.objects("meta", "meta");
    let codings: Vec<J> = match c.param.as_str() {
        "category" | "code" => {
            let mut out = Vec::new();
            for cc in resource.objects(&c.param, "codeable concept")? {
                out.extend(cc.objects("coding", "coding")?);
            }
            out
        }
        "_tag" => meta()?
            .into_iter()
            .map(|m| m.list("tag", "meta.tag"))
            .collect::<Result<Vec<_>, _>>()?
            .concat(),
        "_security" => meta()?
            .into_iter()
            .map(|m| m.list("security", "meta.security"))
            .collect::<Result<Vec<_>, _>>()?
            .concat(),
        _ => Vec::new(),
    };
    for coding in codings {
        if coding_matches(coding, &c.value)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn coding_matches<'a, J: JsonRef<'a>>(coding: J, token: &str) -> Result<bool, Malformed> {
    let code = coding.opt_text("code", "coding.code")?;
    let system = coding.opt_text("system", "coding.system")?;
    let (code, system) = (code.as_deref(), system.as_deref());
    Ok(match token.split_once('|') {
        None => code == Some(token),
        Some(("", want_code)) => system.is_none() && code == Some(want_code),
        Some((want_system, want_code)) => system == Some(want_system) && code == Some(want_code),
    })
}

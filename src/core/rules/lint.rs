//! Compile-time checks and hardening of a rule's CEL.
//!
//! The walk over the parsed expression
//! - accepts only the documented top-level variables (comprehension variables are scoped),
//! - accepts only supported functions, with the right number of arguments and form,
//! - validates literal arguments of fhirgate's functions (scopes, CIDR blocks, references),
//! - refuses syntax the interpreter cannot evaluate (message literals, optional syntax),
//! - refuses expressions known not to be booleans where a boolean is needed,
//! - and rewrites the tree so evaluation is strict and cannot panic: the range of every macro is
//!   checked to be a list or map (`cel-interpreter` 0.10 panics on other ranges), the right side of
//!   `in` must be a list or map (the interpreter would do a substring test on strings), and operands
//!   of `&&`, `||`, `!` and `?:` must be booleans (the interpreter would use truthiness).

use cel_parser::ast::{operators as op, CallExpr, Expr, IdedExpr};
use cel_parser::reference::Val;

use super::error::{Field, RuleError};
use super::functions::{signature, Arity, Kind, GUARD_BOOL, GUARD_CONTAINER, GUARD_ITERABLE};
use super::net::Cidr;
use super::scope::Required;
use super::{functions::parse_reference, MAX_SOURCE_LEN};

/// Deepest expression tree accepted, counting each comprehension macro (`all`, `exists`,
/// `exists_one`, `map`, `filter`) as [`MACRO_DEPTH`] levels.
///
/// The interpreter evaluates recursively, and a nested comprehension costs several times the
/// stack of a plain node: fuzzing found that 12 nested `all` macros (accepted under the former
/// bound of 96) overflowed a 1 MiB stack, and a 40-deep list literal a 2 MiB one. At 24 levels
/// (at most 3 nested macros) the deepest accepted rules evaluate on a 2 MiB stack unoptimised
/// and on the 1 MiB Wasm stack (`rules::tests::compile::deepest_accepted_rules_evaluate`).
pub const MAX_DEPTH: usize = 24;

/// Depth one comprehension macro counts for in [`MAX_DEPTH`].
pub const MACRO_DEPTH: usize = 6;

const MACROS: &[&str] = &[
    "all",
    "exists",
    "exists_one",
    "existsOne",
    "map",
    "filter",
    "has",
];

/// Parses, lints and hardens one CEL field of a rule.
pub(crate) fn compile_expr(
    rule: &str,
    field: Field,
    source: &str,
    variables: &[&str],
) -> Result<IdedExpr, RuleError> {
    let too_complex = |reason: String| RuleError::TooComplex {
        rule: rule.to_string(),
        field,
        reason,
    };
    if source.len() > MAX_SOURCE_LEN {
        return Err(too_complex(format!("longer than {MAX_SOURCE_LEN} bytes")));
    }
    if source.trim().is_empty() {
        return Err(RuleError::Parse {
            rule: rule.to_string(),
            field,
            message: "empty expression".to_string(),
        });
    }
    // the strict recognizer bounds the subset and the depth, then the tree is built without
    // cel-parser's ANTLR runtime (which panics on some invalid input)
    let mut expr = super::syntax::parse(source, MAX_DEPTH).map_err(|message| {
        if message.contains("nested deeper") {
            too_complex(message)
        } else {
            RuleError::Parse {
                rule: rule.to_string(),
                field,
                message,
            }
        }
    })?;
    let linter = Linter {
        rule,
        field,
        variables,
    };
    let kind = linter.walk(&mut expr, &mut Vec::new(), 0)?;
    if !matches!(kind, Kind::Bool | Kind::Unknown) {
        return Err(linter.not_bool(format!(
            "the result is a {}, but a rule needs a bool",
            kind.name()
        )));
    }
    Ok(expr)
}

struct Linter<'a> {
    rule: &'a str,
    field: Field,
    variables: &'a [&'a str],
}

fn wrap(e: &mut IdedExpr, guard: &str) {
    let inner = std::mem::take(e);
    *e = IdedExpr {
        id: inner.id,
        expr: Expr::Call(CallExpr {
            func_name: guard.to_string(),
            target: None,
            args: vec![inner],
        }),
    };
}

fn literal_kind(v: &Val) -> Kind {
    match v {
        Val::String(_) => Kind::String,
        Val::Boolean(_) => Kind::Bool,
        Val::Int(_) | Val::UInt(_) | Val::Double(_) => Kind::Num,
        Val::Bytes(_) => Kind::Bytes,
        Val::Null => Kind::Null,
    }
}

impl Linter<'_> {
    fn not_bool(&self, problem: String) -> RuleError {
        RuleError::NotBool {
            rule: self.rule.to_string(),
            field: self.field,
            problem,
        }
    }

    fn unsupported(&self, what: &str) -> RuleError {
        RuleError::Unsupported {
            rule: self.rule.to_string(),
            field: self.field,
            what: what.to_string(),
        }
    }

    fn bad_call(&self, function: &str, problem: String) -> RuleError {
        RuleError::BadCall {
            rule: self.rule.to_string(),
            field: self.field,
            function: function.to_string(),
            problem,
        }
    }

    fn bad_literal(&self, function: &str, problem: String) -> RuleError {
        RuleError::BadLiteral {
            rule: self.rule.to_string(),
            field: self.field,
            function: function.to_string(),
            problem,
        }
    }

    fn walk(
        &self,
        e: &mut IdedExpr,
        bound: &mut Vec<String>,
        depth: usize,
    ) -> Result<Kind, RuleError> {
        if depth > MAX_DEPTH {
            return Err(RuleError::TooComplex {
                rule: self.rule.to_string(),
                field: self.field,
                reason: format!("nested deeper than {MAX_DEPTH}"),
            });
        }
        let d = depth + 1;
        match &mut e.expr {
            Expr::Unspecified => Err(self.unsupported("an empty expression")),
            Expr::Literal(v) => Ok(literal_kind(v)),
            Expr::Ident(name) => {
                if bound.iter().any(|b| b == name)
                    || (!name.starts_with('@') && self.variables.contains(&name.as_str()))
                {
                    Ok(Kind::Unknown)
                } else {
                    Err(RuleError::UnknownVariable {
                        rule: self.rule.to_string(),
                        field: self.field,
                        name: name.clone(),
                        known: self.variables.join(", "),
                    })
                }
            }
            Expr::Select(sel) => {
                self.walk(&mut sel.operand, bound, d)?;
                Ok(if sel.test { Kind::Bool } else { Kind::Unknown })
            }
            Expr::List(list) => {
                for item in list.elements.iter_mut() {
                    self.walk(item, bound, d)?;
                }
                Ok(Kind::List)
            }
            Expr::Map(map) => {
                for entry in map.entries.iter_mut() {
                    match &mut entry.expr {
                        cel_parser::ast::EntryExpr::MapEntry(me) => {
                            if me.optional {
                                return Err(self.unsupported("optional map entries (?key)"));
                            }
                            self.walk(&mut me.key, bound, d)?;
                            self.walk(&mut me.value, bound, d)?;
                        }
                        cel_parser::ast::EntryExpr::StructField(_) => {
                            return Err(self.unsupported("message fields"));
                        }
                    }
                }
                Ok(Kind::Map)
            }
            Expr::Struct(_) => Err(self.unsupported("message literals (Type{field: value})")),
            Expr::Comprehension(c) => {
                let d = depth + MACRO_DEPTH;
                if d > MAX_DEPTH {
                    return Err(RuleError::TooComplex {
                        rule: self.rule.to_string(),
                        field: self.field,
                        reason: format!(
                            "macros nested too deeply (each counts {MACRO_DEPTH} of the {MAX_DEPTH} levels)"
                        ),
                    });
                }
                let range = self.walk(&mut c.iter_range, bound, d)?;
                match range {
                    Kind::List | Kind::Map => {}
                    Kind::Unknown => wrap(&mut c.iter_range, GUARD_ITERABLE),
                    other => {
                        return Err(self.bad_call(
                            "macro",
                            format!("ranges over a {}; it needs a list or map", other.name()),
                        ))
                    }
                }
                let accu = self.walk(&mut c.accu_init, bound, d)?;
                let before = bound.len();
                bound.push(c.iter_var.clone());
                if let Some(v2) = &c.iter_var2 {
                    bound.push(v2.clone());
                }
                bound.push(c.accu_var.clone());
                let cond = self.walk(&mut c.loop_cond, bound, d);
                let step = self.walk(&mut c.loop_step, bound, d);
                bound.truncate(before);
                cond?;
                step?;
                bound.push(c.accu_var.clone());
                let result = self.walk(&mut c.result, bound, d);
                bound.truncate(before);
                let result = result?;
                let returns_accu = matches!(&c.result.expr, Expr::Ident(n) if *n == c.accu_var);
                Ok(if returns_accu { accu } else { result })
            }
            Expr::Call(call) => self.call(call, bound, d),
        }
    }

    /// Requires a boolean operand: wraps it in the bool guard when its type is not known.
    fn require_bool(&self, e: &mut IdedExpr, kind: Kind, what: &str) -> Result<(), RuleError> {
        match kind {
            Kind::Bool => Ok(()),
            Kind::Unknown => {
                // accumulators generated by macros are booleans or the macro's own values
                if !matches!(&e.expr, Expr::Ident(n) if n.starts_with('@')) {
                    wrap(e, GUARD_BOOL);
                }
                Ok(())
            }
            other => Err(self.not_bool(format!("{what} is a {}, not a bool", other.name()))),
        }
    }

    fn call(
        &self,
        call: &mut CallExpr,
        bound: &mut Vec<String>,
        d: usize,
    ) -> Result<Kind, RuleError> {
        let name = call.func_name.clone();
        let n = call.args.len();
        let operator_arity = match name.as_str() {
            op::CONDITIONAL => Some(3),
            op::LOGICAL_AND
            | op::LOGICAL_OR
            | op::EQUALS
            | op::NOT_EQUALS
            | op::LESS
            | op::LESS_EQUALS
            | op::GREATER
            | op::GREATER_EQUALS
            | op::IN
            | op::ADD
            | op::SUBSTRACT
            | op::MULTIPLY
            | op::DIVIDE
            | op::MODULO
            | op::INDEX => Some(2),
            op::LOGICAL_NOT | op::NEGATE | op::NOT_STRICTLY_FALSE => Some(1),
            op::OPT_INDEX | op::OPT_SELECT => {
                return Err(self.unsupported("optional access (?. and [?])"))
            }
            _ => None,
        };
        if let Some(arity) = operator_arity {
            if n != arity || call.target.is_some() {
                return Err(self.unsupported("an operator with an unexpected shape"));
            }
            let mut kinds = Vec::with_capacity(n);
            for a in call.args.iter_mut() {
                kinds.push(self.walk(a, bound, d)?);
            }
            let k = |i: usize| kinds.get(i).copied().unwrap_or(Kind::Unknown);
            return match name.as_str() {
                op::CONDITIONAL => {
                    if let Some(cond) = call.args.get_mut(0) {
                        self.require_bool(cond, k(0), "the condition of ?:")?;
                    }
                    Ok(if k(1) == k(2) { k(1) } else { Kind::Unknown })
                }
                op::LOGICAL_AND | op::LOGICAL_OR | op::LOGICAL_NOT => {
                    let sym = match name.as_str() {
                        op::LOGICAL_AND => "&&",
                        op::LOGICAL_OR => "||",
                        _ => "!",
                    };
                    for (i, a) in call.args.iter_mut().enumerate() {
                        self.require_bool(a, k(i), &format!("an operand of {sym}"))?;
                    }
                    Ok(Kind::Bool)
                }
                op::IN => {
                    match k(1) {
                        Kind::List | Kind::Map => {}
                        Kind::Unknown => {
                            if let Some(rhs) = call.args.get_mut(1) {
                                wrap(rhs, GUARD_CONTAINER);
                            }
                        }
                        other => {
                            return Err(self.not_bool(format!(
                                "the right side of 'in' is a {}; it must be a list or map (use contains() for substrings)",
                                other.name()
                            )))
                        }
                    }
                    Ok(Kind::Bool)
                }
                op::ADD => Ok(
                    if k(0) == k(1) && matches!(k(0), Kind::String | Kind::List | Kind::Num) {
                        k(0)
                    } else {
                        Kind::Unknown
                    },
                ),
                op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO | op::NEGATE => {
                    Ok(Kind::Num)
                }
                op::INDEX => Ok(Kind::Unknown),
                _ => Ok(Kind::Bool), // comparisons and @not_strictly_false
            };
        }
        let Some(sig) = signature(&name) else {
            if MACROS.contains(&name.as_str()) {
                return Err(self.bad_call(
                    &name,
                    "is a macro: write list.all(x, predicate), list.exists(x, predicate), list.map(x, expr), list.filter(x, predicate) or has(a.b)".to_string(),
                ));
            }
            return Err(RuleError::UnknownFunction {
                rule: self.rule.to_string(),
                field: self.field,
                name,
            });
        };
        if call.target.is_some() && !sig.method_ok {
            return Err(self.bad_call(
                &name,
                format!("must be called as a function: {name}(...), not x.{name}(...)"),
            ));
        }
        let total = n + usize::from(call.target.is_some());
        let arity_ok = match sig.arity {
            Arity::Exactly(a) => total == a,
            Arity::AtLeast(a) => total >= a,
        };
        if !arity_ok {
            let wanted = match sig.arity {
                Arity::Exactly(a) => format!("{a}"),
                Arity::AtLeast(a) => format!("at least {a}"),
            };
            return Err(self.bad_call(&name, format!("takes {wanted} argument(s), got {total}")));
        }
        let mut kinds = Vec::with_capacity(total);
        if let Some(t) = call.target.as_mut() {
            kinds.push(self.walk(t, bound, d)?);
        }
        for a in call.args.iter_mut() {
            kinds.push(self.walk(a, bound, d)?);
        }
        if sig.ours {
            self.check_literals(&name, &call.args, &kinds)?;
        }
        Ok(sig.returns)
    }

    /// Validates literal arguments of fhirgate's functions at configuration time.
    fn check_literals(
        &self,
        name: &str,
        args: &[IdedExpr],
        kinds: &[Kind],
    ) -> Result<(), RuleError> {
        let lit = |i: usize| match args.get(i).map(|a| &a.expr) {
            Some(Expr::Literal(v)) => Some(v),
            _ => None,
        };
        let lit_str = |i: usize| match lit(i) {
            Some(Val::String(s)) => Some(s.as_str()),
            _ => None,
        };
        let kind = |i: usize| kinds.get(i).copied().unwrap_or(Kind::Unknown);
        let expect = |i: usize, allowed: &[Kind], what: &str| -> Result<(), RuleError> {
            let k = kind(i);
            if k == Kind::Unknown || allowed.contains(&k) {
                Ok(())
            } else {
                Err(self.bad_call(
                    name,
                    format!(
                        "{what} must be a {}, got a {}",
                        allowed
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(" or "),
                        k.name()
                    ),
                ))
            }
        };
        match name {
            "hasScope" => {
                expect(0, &[Kind::List, Kind::String], "the granted scopes")?;
                expect(1, &[Kind::String], "the required scope")?;
                if let Some(s) = lit_str(1) {
                    Required::parse(s).map_err(|e| {
                        self.bad_literal(name, format!("invalid scope {s:?}: {}", e.reason()))
                    })?;
                }
            }
            "inCidr" => {
                expect(0, &[Kind::String], "the address")?;
                expect(1, &[Kind::String, Kind::List], "the CIDR block(s)")?;
                let mut blocks: Vec<&str> = Vec::new();
                match args.get(1).map(|a| &a.expr) {
                    Some(Expr::Literal(Val::String(s))) => blocks.push(s),
                    Some(Expr::List(l)) => {
                        for item in &l.elements {
                            match &item.expr {
                                Expr::Literal(Val::String(s)) => blocks.push(s),
                                Expr::Literal(_) | Expr::List(_) | Expr::Map(_) => {
                                    return Err(self.bad_literal(
                                        name,
                                        "every CIDR block must be a string".to_string(),
                                    ))
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
                for b in blocks {
                    Cidr::parse(b)
                        .map_err(|e| self.bad_literal(name, format!("{b:?}: {}", e.reason())))?;
                }
            }
            "matches" => {
                expect(0, &[Kind::String], "the text")?;
                expect(1, &[Kind::String], "the pattern")?;
                // the pattern is the last argument in both `s.matches(p)` and `matches(s, p)`
                let Some(p) = lit_str(args.len().saturating_sub(1)).filter(|_| !args.is_empty())
                else {
                    return Err(self.bad_literal(
                        name,
                        "the pattern must be a string literal (checked at load)".to_string(),
                    ));
                };
                super::functions::compile_pattern(p)
                    .map_err(|e| self.bad_literal(name, format!("invalid pattern {p:?}: {e}")))?;
            }
            "refType" | "refId" => {
                expect(0, &[Kind::String], "the reference")?;
                if let Some(s) = lit_str(0) {
                    if parse_reference(s).is_none() {
                        return Err(self
                            .bad_literal(name, format!("{s:?} is not a FHIR reference Type/id")));
                    }
                }
            }
            "paramValues" | "claimValues" => {
                expect(0, &[Kind::Map], "the first argument")?;
                expect(1, &[Kind::String], "the name")?;
                if lit_str(1).is_some_and(|s| s.is_empty()) {
                    return Err(self.bad_literal(name, "the name must not be empty".to_string()));
                }
            }
            "tokenCode" => expect(0, &[Kind::String], "the value")?,
            "hasAny" | "hasAll" => {
                expect(0, &[Kind::List], "the first argument")?;
                expect(1, &[Kind::List], "the second argument")?;
            }
            _ => {}
        }
        Ok(())
    }
}

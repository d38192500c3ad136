//! Builds the `cel_parser` AST for sources the recognizer accepted, without the ANTLR runtime.
//!
//! The tree is the one `cel_parser::Parser` 0.10.1 builds for the same source, node for node and
//! id for id (the differential tests in `tests.rs` compare them): operator names such as `_==_`
//! and `@in`, `&&`/`||` chains as balanced trees, the macros `has`, `all`, `exists`,
//! `exists_one`/`existsOne`, `map` and `filter` expanded into comprehensions over `@result`.
//! Two deliberate differences, both where cel-parser departs from the CEL specification:
//! `\'` and `\"` give the quote in either kind of string (cel-parser keeps the backslash when the
//! quote is not the delimiter), raw strings are taken literally up to the closing quote, and a
//! `//` comment may stand anywhere a blank may (cel-parser refuses a leading one).
//!
//! It relies on [`super::check`] having run first: the grammar is the same subset, so nesting is
//! already bounded and the recursion here is too. Malformed input still gives an error, never a
//! panic.

use cel_parser::ast::{
    operators as op, CallExpr, EntryExpr, Expr, IdedEntryExpr, IdedExpr, ListExpr, MapEntryExpr,
    MapExpr, SelectExpr,
};
use cel_parser::reference::Val;

use super::lexer::{Lexer, Tok};
use macros::Macro;

mod macros;

type Parsed = Result<IdedExpr, String>;

struct Parser<'a> {
    lx: Lexer<'a>,
    src: &'a str,
    tok: Tok,
    /// Byte range of `tok` in `src`.
    start: usize,
    end: usize,
    next_id: u64,
}

/// The relation operators (one precedence level, left-associative) and their AST names.
fn relation_op(tok: Tok) -> Option<&'static str> {
    Some(match tok {
        Tok::In => op::IN,
        Tok::Op("==") => op::EQUALS,
        Tok::Op("!=") => op::NOT_EQUALS,
        Tok::Op("<") => op::LESS,
        Tok::Op("<=") => op::LESS_EQUALS,
        Tok::Op(">") => op::GREATER,
        Tok::Op(">=") => op::GREATER_EQUALS,
        _ => return None,
    })
}

fn additive_op(tok: Tok) -> Option<&'static str> {
    match tok {
        Tok::Op("+") => Some(op::ADD),
        Tok::Op("-") => Some(op::SUBSTRACT),
        _ => None,
    }
}

fn multiplicative_op(tok: Tok) -> Option<&'static str> {
    match tok {
        Tok::Op("*") => Some(op::MULTIPLY),
        Tok::Op("/") => Some(op::DIVIDE),
        Tok::Op("%") => Some(op::MODULO),
        _ => None,
    }
}

fn call(id: u64, func: &str, target: Option<IdedExpr>, args: Vec<IdedExpr>) -> IdedExpr {
    IdedExpr {
        id,
        expr: Expr::Call(CallExpr {
            func_name: func.to_string(),
            target: target.map(Box::new),
            args,
        }),
    }
}

impl<'a> Parser<'a> {
    fn bump(&mut self) -> Result<(), String> {
        let (tok, start) = self.lx.next()?;
        self.tok = tok;
        self.start = start;
        self.end = self.lx.pos;
        Ok(())
    }

    fn text(&self) -> &'a str {
        self.src.get(self.start..self.end).unwrap_or_default()
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("syntax error at offset {}: {what}", self.start))
    }

    fn expect(&mut self, o: &'static str) -> Result<(), String> {
        if self.tok == Tok::Op(o) {
            self.bump()
        } else {
            self.err(&format!("expected '{o}'"))
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn node(&mut self, expr: Expr) -> IdedExpr {
        IdedExpr {
            id: self.id(),
            expr,
        }
    }

    fn expr(&mut self) -> Parsed {
        let cond = self.or()?;
        if self.tok != Tok::Op("?") {
            return Ok(cond);
        }
        self.bump()?;
        let id = self.id();
        let then = self.or()?;
        self.expect(":")?;
        let otherwise = self.expr()?;
        Ok(call(id, op::CONDITIONAL, None, vec![cond, then, otherwise]))
    }

    fn or(&mut self) -> Parsed {
        self.logic("||", op::LOGICAL_OR, Self::and)
    }

    fn and(&mut self) -> Parsed {
        self.logic("&&", op::LOGICAL_AND, Self::relation)
    }

    /// A chain of `&&` or `||`, built as cel-parser's balanced tree.
    fn logic(&mut self, sym: &'static str, func: &str, operand: fn(&mut Self) -> Parsed) -> Parsed {
        let mut terms = vec![operand(self)?];
        let mut ids = Vec::new();
        while self.tok == Tok::Op(sym) {
            self.bump()?;
            terms.push(operand(self)?);
            ids.push(self.id());
        }
        if ids.is_empty() {
            return terms.pop().ok_or_else(|| "empty expression".to_string());
        }
        let mut terms: Vec<Option<IdedExpr>> = terms.into_iter().map(Some).collect();
        balanced(&mut terms, &ids, func, 0, ids.len() - 1)
    }

    fn relation(&mut self) -> Parsed {
        self.binary(relation_op, Self::additive)
    }

    fn additive(&mut self) -> Parsed {
        self.binary(additive_op, Self::multiplicative)
    }

    fn multiplicative(&mut self) -> Parsed {
        self.binary(multiplicative_op, Self::unary)
    }

    /// A left-associative chain of the operators `which` recognizes.
    fn binary(
        &mut self,
        which: fn(Tok) -> Option<&'static str>,
        operand: fn(&mut Self) -> Parsed,
    ) -> Parsed {
        let mut lhs = operand(self)?;
        while let Some(func) = which(self.tok) {
            self.bump()?;
            let id = self.id();
            let rhs = operand(self)?;
            lhs = call(id, func, None, vec![lhs, rhs]);
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Parsed {
        let func = match self.tok {
            Tok::Op("!") => op::LOGICAL_NOT,
            Tok::Op("-") => op::NEGATE,
            _ => return self.member(),
        };
        self.bump()?;
        if func == op::NEGATE && matches!(self.tok, Tok::Int | Tok::Double) {
            // `-5` is a literal, as in CEL.g4 (`literal: sign=MINUS? tok=NUM_INT`).
            let digits = self.text();
            let lit = self.literal(&format!("-{digits}"))?;
            self.bump()?;
            return self.member_tail(lit);
        }
        if matches!(self.tok, Tok::Op("!" | "-")) {
            return self.err("repeated unary operators are not supported");
        }
        let id = self.id();
        let target = self.member()?;
        Ok(call(id, func, None, vec![target]))
    }

    fn member(&mut self) -> Parsed {
        let primary = self.primary()?;
        self.member_tail(primary)
    }

    fn member_tail(&mut self, mut operand: IdedExpr) -> Parsed {
        loop {
            match self.tok {
                Tok::Op(".") => {
                    self.bump()?;
                    if self.tok != Tok::Ident {
                        return self.err("expected a field or method name after '.'");
                    }
                    let name = self.text().to_string();
                    self.bump()?;
                    if let Some((id, args)) = self.call_args()? {
                        operand = self.call_or_macro(id, name, Some(operand), args)?;
                    } else {
                        operand = self.node(Expr::Select(SelectExpr {
                            operand: Box::new(operand),
                            field: name,
                            test: false,
                        }));
                    }
                }
                Tok::Op("[") => {
                    self.bump()?;
                    let id = self.id();
                    let index = self.expr()?;
                    self.expect("]")?;
                    operand = call(id, op::INDEX, None, vec![operand, index]);
                }
                _ => return Ok(operand),
            }
        }
    }

    /// `(args)` after a function or method name: the call's id (taken at the parenthesis, as
    /// cel-parser does) and its arguments; `None` when no parenthesis follows.
    fn call_args(&mut self) -> Result<Option<(u64, Vec<IdedExpr>)>, String> {
        if self.tok != Tok::Op("(") {
            return Ok(None);
        }
        self.bump()?;
        let id = self.id();
        Ok(Some((id, self.list(")")?)))
    }

    /// Comma-separated expressions up to `close` (consumed); a trailing comma only in list
    /// literals, as in CEL.g4.
    fn list(&mut self, close: &'static str) -> Result<Vec<IdedExpr>, String> {
        let mut items = Vec::new();
        while self.tok != Tok::Op(close) {
            items.push(self.expr()?);
            if self.tok == Tok::Op(",") {
                self.bump()?;
                if close == ")" && self.tok == Tok::Op(close) {
                    return self.err("trailing ',' in an argument list");
                }
            } else if self.tok != Tok::Op(close) {
                return self.err(&format!("expected ',' or '{close}'"));
            }
        }
        self.bump()?;
        Ok(items)
    }

    fn primary(&mut self) -> Parsed {
        match self.tok {
            Tok::Ident => {
                let name = self.text().to_string();
                self.bump()?;
                if let Some((id, args)) = self.call_args()? {
                    return self.call_or_macro(id, name, None, args);
                }
                Ok(self.node(Expr::Ident(name)))
            }
            Tok::Int | Tok::UInt | Tok::Double | Tok::Str | Tok::True | Tok::False | Tok::Null => {
                let lit = self.literal(self.text())?;
                self.bump()?;
                Ok(lit)
            }
            Tok::Op("(") => {
                self.bump()?;
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                self.bump()?;
                let id = self.id();
                let elements = self.list("]")?;
                Ok(IdedExpr {
                    id,
                    expr: Expr::List(ListExpr { elements }),
                })
            }
            Tok::Op("{") => {
                self.bump()?;
                let id = self.id();
                let mut entries = Vec::new();
                while self.tok != Tok::Op("}") {
                    let entry_id = self.id();
                    let key = self.expr()?;
                    self.expect(":")?;
                    let value = self.expr()?;
                    entries.push(IdedEntryExpr {
                        id: entry_id,
                        expr: EntryExpr::MapEntry(MapEntryExpr {
                            key,
                            value,
                            optional: false,
                        }),
                    });
                    if self.tok == Tok::Op(",") {
                        self.bump()?;
                    } else if self.tok != Tok::Op("}") {
                        return self.err("expected ',' or '}'");
                    }
                }
                self.bump()?;
                Ok(IdedExpr {
                    id,
                    expr: Expr::Map(MapExpr { entries }),
                })
            }
            Tok::End => self.err("unexpected end of expression"),
            _ => self.err("expected an operand"),
        }
    }

    /// The literal spelled `text` (the current token, with a `-` in front for negative numbers).
    fn literal(&mut self, text: &str) -> Parsed {
        let val = match self.tok {
            Tok::Int => match text.strip_prefix("0x") {
                Some(hex) => i64::from_str_radix(hex, 16),
                None => text.parse::<i64>(),
            }
            .map(Val::Int)
            .or_else(|_| self.err("invalid int literal"))?,
            Tok::UInt => {
                let digits = text.get(..text.len().saturating_sub(1)).unwrap_or_default();
                match digits.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => digits.parse::<u64>(),
                }
                .map(Val::UInt)
                .or_else(|_| self.err("invalid uint literal"))?
            }
            Tok::Double => match text.parse::<f64>() {
                Ok(d) if d.is_finite() => Val::Double(d),
                _ => return self.err("invalid double literal"),
            },
            Tok::Str => Val::String(unquote(text).or_else(|e| self.err(&e))?),
            Tok::True => Val::Boolean(true),
            Tok::False => Val::Boolean(false),
            _ => Val::Null,
        };
        Ok(self.node(Expr::Literal(val)))
    }

    fn call_or_macro(
        &mut self,
        id: u64,
        name: String,
        target: Option<IdedExpr>,
        mut args: Vec<IdedExpr>,
    ) -> Parsed {
        let n = args.len();
        let Some(target) = target else {
            if name == op::HAS && n == 1 {
                return match args.pop().map(|a| a.expr) {
                    Some(Expr::Select(mut s)) => {
                        s.test = true;
                        Ok(self.node(Expr::Select(s)))
                    }
                    _ => self.err("invalid argument to has() macro"),
                };
            }
            return Ok(call(id, &name, None, args));
        };
        let kind = match name.as_str() {
            op::ALL if n == 2 => Macro::All,
            op::EXISTS if n == 2 => Macro::Exists,
            op::EXISTS_ONE | "existsOne" if n == 2 => Macro::ExistsOne,
            op::MAP if n == 2 || n == 3 => Macro::Map,
            op::FILTER if n == 2 => Macro::Filter,
            _ => return Ok(call(id, &name, Some(target), args)),
        };
        self.expand(kind, target, args)
    }
}

/// cel-parser's balanced tree over `terms[lo..=hi + 1]` joined by the operators `ids[lo..=hi]`.
fn balanced(
    terms: &mut [Option<IdedExpr>],
    ids: &[u64],
    func: &str,
    lo: usize,
    hi: usize,
) -> Parsed {
    let mid = (lo + hi).div_ceil(2);
    let mut take = |i: usize| {
        terms
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| "malformed operator chain".to_string())
    };
    let left = if mid == lo {
        take(mid)?
    } else {
        balanced(terms, ids, func, lo, mid - 1)?
    };
    let right = if mid == hi {
        terms
            .get_mut(mid + 1)
            .and_then(Option::take)
            .ok_or_else(|| "malformed operator chain".to_string())?
    } else {
        balanced(terms, ids, func, mid + 1, hi)?
    };
    let id = ids.get(mid).copied().unwrap_or_default();
    Ok(call(id, func, None, vec![left, right]))
}

/// The value of a string literal token (quotes included, optionally `r`/`R`-prefixed).
fn unquote(token: &str) -> Result<String, String> {
    let (raw, quoted) = match token.strip_prefix(['r', 'R']) {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let mut chars = quoted.chars();
    let quote = chars.next().ok_or("empty string literal")?;
    let body = chars.as_str();
    let body = body
        .strip_suffix(quote)
        .ok_or("unterminated string literal")?;
    if raw {
        return Ok(body.to_string());
    }
    let mut out = String::with_capacity(body.len());
    let mut it = body.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or("dangling '\\' in a string literal")?;
        let simple = match e {
            'a' => Some('\u{07}'),
            'b' => Some('\u{08}'),
            'f' => Some('\u{0C}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{0B}'),
            '\\' | '?' | '"' | '\'' | '`' => Some(e),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (radix, len, first) = match e {
            'x' | 'X' => (16, 2, None),
            'u' => (16, 4, None),
            'U' => (16, 8, None),
            '0'..='3' => (8, 2, Some(e)),
            _ => return Err("invalid escape sequence".to_string()),
        };
        let mut digits: String = first.into_iter().collect();
        for _ in 0..len {
            digits.push(it.next().ok_or("truncated escape sequence")?);
        }
        let code = u32::from_str_radix(&digits, radix).map_err(|_| "invalid escape sequence")?;
        out.push(char::from_u32(code).ok_or("escape is not a Unicode scalar value")?);
    }
    Ok(out)
}

/// Parses `source`, which [`super::check`] accepted, into cel-parser's AST.
pub(crate) fn parse(source: &str) -> Result<IdedExpr, String> {
    let mut p = Parser {
        lx: Lexer {
            src: source.as_bytes(),
            pos: 0,
        },
        src: source,
        tok: Tok::End,
        start: 0,
        end: 0,
        next_id: 1,
    };
    p.bump()?;
    let e = p.expr()?;
    if p.tok != Tok::End {
        return p.err("unexpected text after the expression");
    }
    Ok(e)
}

#[cfg(test)]
mod tests;

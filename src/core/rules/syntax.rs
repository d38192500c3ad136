//! A strict recognizer for the subset of CEL that rules may use, and the parser ([`parser`])
//! that builds the syntax tree of what it accepts.
//!
//! `cel-parser` 0.10 walks its parse tree even after a syntax error and then panics (for
//! example on `a ==` or `((`), and it silently reads `!!x` as `!x`. A panic at configuration time
//! would kill the Wasm VM instead of rejecting the configuration, so every rule is first checked
//! here against a grammar that is a subset of CEL's (`CEL.g4`):
//!
//! ```text
//! expr    = or [ "?" or ":" expr ]
//! or      = and { "||" and }
//! and     = rel { "&&" rel }
//! rel     = unary { binop unary }          binop: == != < <= > >= in + - * / %
//! unary   = [ "!" | "-" ] member           (no repeated unary operators)
//! member  = primary { "." IDENT [ "(" [args] ")" ] | "[" expr "]" }
//! primary = IDENT [ "(" [args] ")" ] | "(" expr ")" | "[" [args [","]] "]"
//!         | "{" [entries [","]] "}" | literal
//! literal = ["-"] INT | UINT | ["-"] DOUBLE | STRING | true | false | null
//! ```
//!
//! Left out on purpose: bytes literals, triple-quoted strings, escaped identifiers, message
//! construction, leading-dot names and the optional syntax (`?.`, `[?`, `{?k: v}`). The
//! recognizer also bounds the depth of the tree the parser would build.

mod lexer;
mod parser;

use lexer::{Lexer, Tok};

struct Recognizer<'a> {
    lx: Lexer<'a>,
    tok: Tok,
    at: usize,
    nesting: usize,
    max_depth: usize,
}

type Depth = Result<usize, String>;

/// Depth added by `n` operators of a chain the parser balances (`&&`, `||`).
fn balanced_depth(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()) as usize
}

impl Recognizer<'_> {
    fn bump(&mut self) -> Result<(), String> {
        let (t, at) = self.lx.next()?;
        self.tok = t;
        self.at = at;
        Ok(())
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("syntax error at offset {}: {what}", self.at))
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.tok, Tok::Op(o) if o == op)
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.is_op(op) {
            self.bump()
        } else {
            self.err(&format!("expected '{op}'"))
        }
    }

    fn check_depth(&self, d: usize) -> Depth {
        if d > self.max_depth {
            Err(format!("expression nested deeper than {}", self.max_depth))
        } else {
            Ok(d)
        }
    }

    fn expr(&mut self) -> Depth {
        self.nesting += 1;
        if self.nesting > self.max_depth {
            return Err(format!("expression nested deeper than {}", self.max_depth));
        }
        let mut d = self.or()?;
        if self.is_op("?") {
            self.bump()?;
            let a = self.or()?;
            self.expect_op(":")?;
            let b = self.expr()?;
            d = d.max(a).max(b) + 1;
        }
        self.nesting -= 1;
        self.check_depth(d)
    }

    fn or(&mut self) -> Depth {
        let mut d = self.and()?;
        let mut n = 0usize;
        while self.is_op("||") {
            self.bump()?;
            d = d.max(self.and()?);
            n += 1;
        }
        self.check_depth(d + balanced_depth(n))
    }

    fn and(&mut self) -> Depth {
        let mut d = self.rel()?;
        let mut n = 0usize;
        while self.is_op("&&") {
            self.bump()?;
            d = d.max(self.rel()?);
            n += 1;
        }
        self.check_depth(d + balanced_depth(n))
    }

    fn rel(&mut self) -> Depth {
        let mut d = self.unary()?;
        loop {
            let binop = self.tok == Tok::In
                || ["==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"]
                    .iter()
                    .any(|op| self.is_op(op));
            if !binop {
                return self.check_depth(d);
            }
            self.bump()?;
            d = d.max(self.unary()?) + 1;
            self.check_depth(d)?;
        }
    }

    fn unary(&mut self) -> Depth {
        if self.is_op("!") || self.is_op("-") {
            let negate = self.is_op("-");
            self.bump()?;
            if self.is_op("!") || self.is_op("-") {
                return self.err("repeated unary operators are not supported (write the expression without them)");
            }
            if negate && matches!(self.tok, Tok::Int | Tok::Double) {
                // a negative literal
                self.bump()?;
                return self.member_tail(1);
            }
            let d = self.member()?;
            return self.check_depth(d + 1);
        }
        self.member()
    }

    fn member(&mut self) -> Depth {
        let d = self.primary()?;
        self.member_tail(d)
    }

    fn member_tail(&mut self, mut d: usize) -> Depth {
        loop {
            if self.is_op(".") {
                self.bump()?;
                if self.is_op("?") {
                    return self.err("optional selection '.?' is not supported");
                }
                if self.tok != Tok::Ident {
                    return self.err("expected a field or method name after '.'");
                }
                self.bump()?;
                if self.is_op("(") {
                    self.bump()?;
                    d = d.max(self.args(")")?);
                }
                d += 1;
            } else if self.is_op("[") {
                self.bump()?;
                if self.is_op("?") {
                    return self.err("optional index '[?' is not supported");
                }
                d = d.max(self.expr()?) + 1;
                self.expect_op("]")?;
            } else {
                return self.check_depth(d);
            }
            self.check_depth(d)?;
        }
    }

    /// A comma-separated list of expressions up to `close` (consumed). No trailing comma.
    fn args(&mut self, close: &str) -> Depth {
        let mut d = 0;
        if self.is_op(close) {
            self.bump()?;
            return Ok(1);
        }
        loop {
            d = d.max(self.expr()?);
            if self.is_op(",") {
                self.bump()?;
                continue;
            }
            self.expect_op(close)?;
            return Ok(d + 1);
        }
    }

    fn primary(&mut self) -> Depth {
        match self.tok {
            Tok::Ident => {
                self.bump()?;
                if self.is_op("(") {
                    self.bump()?;
                    return self.args(")");
                }
                if self.is_op("{") {
                    return self.err("message construction Type{...} is not supported");
                }
                Ok(1)
            }
            Tok::Int | Tok::UInt | Tok::Double | Tok::Str | Tok::True | Tok::False | Tok::Null => {
                self.bump()?;
                Ok(1)
            }
            Tok::Op("(") => {
                self.bump()?;
                let d = self.expr()?;
                self.expect_op(")")?;
                Ok(d)
            }
            Tok::Op("[") => {
                self.bump()?;
                let mut d = 0;
                while !self.is_op("]") {
                    if self.is_op("?") {
                        return self.err("optional list elements are not supported");
                    }
                    d = d.max(self.expr()?);
                    if self.is_op(",") {
                        self.bump()?;
                    } else if !self.is_op("]") {
                        return self.err("expected ',' or ']'");
                    }
                }
                self.bump()?;
                Ok(d + 1)
            }
            Tok::Op("{") => {
                self.bump()?;
                let mut d = 0;
                while !self.is_op("}") {
                    if self.is_op("?") {
                        return self.err("optional map entries are not supported");
                    }
                    d = d.max(self.expr()?);
                    self.expect_op(":")?;
                    d = d.max(self.expr()?);
                    if self.is_op(",") {
                        self.bump()?;
                    } else if !self.is_op("}") {
                        return self.err("expected ',' or '}'");
                    }
                }
                self.bump()?;
                Ok(d + 1)
            }
            Tok::Op(".") => self.err("leading-dot names are not supported"),
            Tok::End => self.err("unexpected end of expression"),
            _ => self.err("expected an operand"),
        }
    }
}

/// Checks `source` against the supported CEL subset and bounds the depth of its tree.
pub(crate) fn check(source: &str, max_depth: usize) -> Result<(), String> {
    let mut r = Recognizer {
        lx: Lexer {
            src: source.as_bytes(),
            pos: 0,
        },
        tok: Tok::End,
        at: 0,
        nesting: 0,
        max_depth,
    };
    r.bump()?;
    r.expr()?;
    if r.tok != Tok::End {
        return r.err("unexpected text after the expression");
    }
    Ok(())
}

/// Checks `source` like [`check`] and builds its syntax tree (see [`parser`]).
pub(crate) fn parse(source: &str, max_depth: usize) -> Result<cel_parser::ast::IdedExpr, String> {
    check(source, max_depth)?;
    parser::parse(source)
}

#[cfg(test)]
mod tests;

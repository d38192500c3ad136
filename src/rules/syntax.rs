//! A strict recognizer for the subset of CEL that rules may use, run before the real parser.
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

/// Tokens of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Ident,
    Int,
    UInt,
    Double,
    Str,
    True,
    False,
    Null,
    In,
    Op(&'static str),
    End,
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const OPS: [&str; 25] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",",
    "(", ")", "[", "]", "{", "}", "=",
];

impl Lexer<'_> {
    fn peek_at(&self, off: usize) -> Option<u8> {
        self.src.get(self.pos + off).copied()
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("syntax error at offset {}: {what}", self.pos))
    }

    fn skip_blank(&mut self) {
        loop {
            match self.peek_at(0) {
                Some(b' ' | b'\t' | b'\r' | b'\n' | 0x0c) => self.pos += 1,
                Some(b'/') if self.peek_at(1) == Some(b'/') => {
                    while let Some(b) = self.peek_at(0) {
                        if b == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// Returns the next token and its start offset.
    fn next(&mut self) -> Result<(Tok, usize), String> {
        self.skip_blank();
        let start = self.pos;
        let Some(b) = self.peek_at(0) else {
            return Ok((Tok::End, start));
        };
        if b.is_ascii_digit() || (b == b'.' && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()))
        {
            return self.number().map(|t| (t, start));
        }
        if matches!(b, b'r' | b'R') && matches!(self.peek_at(1), Some(b'\'' | b'"')) {
            self.pos += 1;
            return self.string(true).map(|t| (t, start));
        }
        if matches!(b, b'b' | b'B') && matches!(self.peek_at(1), Some(b'\'' | b'"' | b'r' | b'R')) {
            let third = self
                .peek_at(1)
                .filter(|c| matches!(c, b'\'' | b'"'))
                .or(self.peek_at(2));
            if matches!(third, Some(b'\'' | b'"')) {
                return self.err("bytes literals are not supported");
            }
        }
        if b == b'\'' || b == b'"' {
            return self.string(false).map(|t| (t, start));
        }
        if is_ident_start(b) {
            while self.peek_at(0).is_some_and(is_ident_char) {
                self.pos += 1;
            }
            let word = self.src.get(start..self.pos).unwrap_or_default();
            let tok = match word {
                b"true" => Tok::True,
                b"false" => Tok::False,
                b"null" => Tok::Null,
                b"in" => Tok::In,
                _ => Tok::Ident,
            };
            return Ok((tok, start));
        }
        if b == b'`' {
            return self.err("escaped identifiers are not supported");
        }
        for op in OPS {
            if self
                .src
                .get(self.pos..)
                .is_some_and(|rest| rest.starts_with(op.as_bytes()))
            {
                if op == "=" {
                    return self.err("'=' is not an operator (use '==')");
                }
                self.pos += op.len();
                return Ok((Tok::Op(op), start));
            }
        }
        self.err("unexpected character")
    }

    fn digits(&mut self, hex: bool) -> usize {
        let from = self.pos;
        while self.peek_at(0).is_some_and(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            }
        }) {
            self.pos += 1;
        }
        self.pos - from
    }

    fn number(&mut self) -> Result<Tok, String> {
        if self.peek_at(0) == Some(b'0')
            && matches!(self.peek_at(1), Some(b'x'))
            && self.peek_at(2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            self.pos += 2;
            self.digits(true);
            return Ok(self.uint_suffix());
        }
        let int_digits = self.digits(false);
        let mut float = false;
        if self.peek_at(0) == Some(b'.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.digits(false);
            float = true;
        }
        if matches!(self.peek_at(0), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some(b'+' | b'-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1 + sign;
                self.digits(false);
                float = true;
            }
        }
        if float {
            return Ok(Tok::Double);
        }
        if int_digits == 0 {
            return self.err("malformed number");
        }
        Ok(self.uint_suffix())
    }

    fn uint_suffix(&mut self) -> Tok {
        if matches!(self.peek_at(0), Some(b'u' | b'U')) {
            self.pos += 1;
            Tok::UInt
        } else {
            Tok::Int
        }
    }

    fn string(&mut self, raw: bool) -> Result<Tok, String> {
        let Some(quote) = self.peek_at(0) else {
            return self.err("unterminated string");
        };
        if self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote) {
            return self.err("triple-quoted strings are not supported");
        }
        self.pos += 1;
        loop {
            let Some(c) = self.peek_at(0) else {
                return self.err("unterminated string");
            };
            match c {
                b'\n' | b'\r' => return self.err("line break in a string"),
                b'\\' if !raw => {
                    self.pos += 1;
                    self.escape()?;
                    continue;
                }
                _ if c == quote => {
                    self.pos += 1;
                    return Ok(Tok::Str);
                }
                _ => self.pos += 1,
            }
        }
    }

    /// After a backslash: one of CEL's escape sequences.
    fn escape(&mut self) -> Result<(), String> {
        let hex_run = |lx: &Self, from: usize, n: usize| {
            (0..n).all(|i| lx.peek_at(from + i).is_some_and(|c| c.is_ascii_hexdigit()))
        };
        let len = match self.peek_at(0) {
            Some(
                b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'"' | b'\'' | b'\\' | b'?' | b'`',
            ) => 1,
            Some(b'x' | b'X') if hex_run(self, 1, 2) => 3,
            Some(b'u') if hex_run(self, 1, 4) => 5,
            Some(b'U') if hex_run(self, 1, 8) => 9,
            Some(b'0'..=b'3')
                if self.peek_at(1).is_some_and(|c| (b'0'..=b'7').contains(&c))
                    && self.peek_at(2).is_some_and(|c| (b'0'..=b'7').contains(&c)) =>
            {
                3
            }
            _ => return self.err("invalid escape sequence"),
        };
        self.pos += len;
        Ok(())
    }
}

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

#[cfg(test)]
mod tests;

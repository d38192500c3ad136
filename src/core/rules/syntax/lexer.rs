//! The tokens of the CEL subset accepted by [`super::check`], following `CEL.g4`'s lexer rules.

/// Tokens of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok {
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

pub(super) struct Lexer<'a> {
    pub(super) src: &'a [u8],
    pub(super) pos: usize,
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
    pub(super) fn next(&mut self) -> Result<(Tok, usize), String> {
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

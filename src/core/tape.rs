//! A strict, single-pass JSON scanner: one reading of a body, with byte spans.
//!
//! [`Tape::parse`] validates the whole text against RFC 8259 and refuses everything another
//! parser might read differently: duplicate member names at any depth (compared after unescaping,
//! so `"id"` and `"\u0069d"` collide), invalid UTF-8, unpaired surrogate escapes, control
//! characters in strings, a byte-order mark, trailing text, comments, `NaN`, trailing commas, and
//! nesting deeper than [`MAX_NESTING`]. What it keeps is a flat list of nodes (kind, byte span,
//! and where the node's subtree ends): strings are not decoded and no value is copied, so
//! looking at a body costs one pass and one allocation. [`Val`] navigates it.
//!
//! [`JsonRef`] is the little the checks need from a JSON value (a member, the items of an array,
//! a string), implemented for [`Val`] and for `&serde_json::Value`, so one implementation of a
//! check serves both the response side (tape) and the request side (`serde_json`).

use std::borrow::Cow;

use serde_json::Value;
use thiserror::Error;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_NESTING: usize = 128;

/// Objects with more members than this are checked for duplicates by sorting.
const PAIRWISE_MAX: usize = 12;

/// Why a body is not one unambiguous JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TapeError {
    /// Not JSON (syntax error at this byte offset), or not UTF-8.
    #[error("not JSON at byte {0}")]
    Syntax(usize),
    /// An object names a member twice.
    #[error("duplicate member name")]
    Duplicate,
    /// A `\u` escape that is half of a surrogate pair.
    #[error("unpaired surrogate escape")]
    Surrogate,
    /// Nested deeper than [`MAX_NESTING`].
    #[error("nested too deep")]
    TooDeep,
    /// Longer than 4 GiB.
    #[error("too large")]
    TooLarge,
}

impl TapeError {
    /// Stable code for audit records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TapeError::Syntax(_) | TapeError::TooLarge => "not_json",
            TapeError::Duplicate => "duplicate_member",
            TapeError::Surrogate => "ambiguous_string",
            TapeError::TooDeep => "too_deep",
        }
    }
}

/// What kind of JSON value a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    kind: Kind,
    /// A string holding a `\` escape.
    escaped: bool,
    /// Span in the text: `start..end` (quotes and brackets included).
    start: u32,
    end: u32,
    /// The index after this node's subtree (children of a container follow it directly;
    /// an object's children alternate key, value).
    next: u32,
}

/// A validated JSON text and its nodes.
#[derive(Debug)]
pub struct Tape<'a> {
    text: &'a str,
    nodes: Vec<Node>,
}

impl<'a> Tape<'a> {
    /// Scans `body` (see the module docs for what is refused).
    pub fn parse(body: &'a [u8]) -> Result<Tape<'a>, TapeError> {
        let text = std::str::from_utf8(body).map_err(|e| TapeError::Syntax(e.valid_up_to()))?;
        if u32::try_from(body.len()).is_err() {
            return Err(TapeError::TooLarge);
        }
        let mut p = Parser {
            s: body,
            pos: 0,
            nodes: Vec::with_capacity(body.len() / 8 + 4),
            keys: Vec::new(),
        };
        p.ws();
        p.value(0)?;
        p.ws();
        if p.pos != body.len() {
            return Err(TapeError::Syntax(p.pos));
        }
        Ok(Tape {
            text,
            nodes: p.nodes,
        })
    }

    /// The root value.
    pub fn root(&self) -> Val<'_> {
        Val { tape: self, idx: 0 }
    }

    /// The whole text.
    pub fn text(&self) -> &'a str {
        self.text
    }
}

/// A value in a [`Tape`].
#[derive(Debug, Clone, Copy)]
pub struct Val<'t> {
    tape: &'t Tape<'t>,
    idx: usize,
}

impl<'t> Val<'t> {
    fn node(&self) -> Node {
        self.tape.nodes.get(self.idx).copied().unwrap_or(Node {
            kind: Kind::Null,
            escaped: false,
            start: 0,
            end: 0,
            next: u32::MAX,
        })
    }

    fn at(&self, idx: usize) -> Val<'t> {
        Val {
            tape: self.tape,
            idx,
        }
    }

    /// The kind of value.
    pub fn kind(&self) -> Kind {
        self.node().kind
    }

    /// Its byte span in the text.
    pub fn span(&self) -> std::ops::Range<usize> {
        let n = self.node();
        n.start as usize..n.end as usize
    }

    /// Its text exactly as received.
    pub fn raw(&self) -> &'t str {
        self.tape.text.get(self.span()).unwrap_or_default()
    }

    fn next(&self) -> usize {
        self.node().next as usize
    }

    /// The members of an object, in order: (name, value, span of the whole member). Empty for
    /// other kinds.
    pub fn members(&self) -> Members<'t> {
        let (i, end) = if self.kind() == Kind::Object {
            (self.idx + 1, self.next())
        } else {
            (0, 0)
        };
        Members {
            tape: self.tape,
            i,
            end,
        }
    }

    /// The items of an array. Empty for other kinds.
    pub fn elements(&self) -> Items<'t> {
        let (i, end) = if self.kind() == Kind::Array {
            (self.idx + 1, self.next())
        } else {
            (0, 0)
        };
        Items {
            tape: self.tape,
            i,
            end,
        }
    }

    /// The member named `key` of an object.
    pub fn member(&self, key: &str) -> Option<Val<'t>> {
        if self.kind() != Kind::Object {
            return None;
        }
        let (mut i, end) = (self.idx + 1, self.next());
        let bytes = self.tape.text.as_bytes();
        let want = key.as_bytes();
        while i < end {
            let k = self.tape.nodes.get(i)?;
            let v = self.tape.nodes.get(i + 1)?;
            let (start, stop) = (k.start as usize, k.end as usize);
            let hit = if k.escaped {
                self.at(i).is(key)
            } else {
                stop.saturating_sub(start) == want.len() + 2
                    && bytes.get(start + 1..stop.saturating_sub(1)) == Some(want)
            };
            if hit {
                return Some(self.at(i + 1));
            }
            i = (v.next as usize).max(i + 2);
        }
        None
    }

    /// A string's value (decoded when it holds escapes).
    pub fn string(&self) -> Option<Cow<'t, str>> {
        let n = self.node();
        if n.kind != Kind::String {
            return None;
        }
        let inner = self
            .tape
            .text
            .get(n.start as usize + 1..(n.end as usize).saturating_sub(1))
            .unwrap_or_default();
        Some(if n.escaped {
            Cow::Owned(unescape(inner))
        } else {
            Cow::Borrowed(inner)
        })
    }

    /// Whether this is a string equal to `s`.
    pub fn is(&self, s: &str) -> bool {
        self.string().is_some_and(|v| v == s)
    }

    /// The same value as a `serde_json::Value` (for the rules; the text is already validated).
    pub fn to_value(&self) -> Option<Value> {
        serde_json::from_str(self.raw()).ok()
    }
}

/// Iterator over an object's members.
pub struct Members<'t> {
    tape: &'t Tape<'t>,
    i: usize,
    end: usize,
}

impl<'t> Iterator for Members<'t> {
    type Item = (Val<'t>, Val<'t>, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.end {
            return None;
        }
        let key = Val {
            tape: self.tape,
            idx: self.i,
        };
        let value = key.at(self.i + 1);
        self.i = value.next().max(self.i + 2);
        let span = key.span().start..value.span().end;
        Some((key, value, span))
    }
}

/// Iterator over an array's items.
pub struct Items<'t> {
    tape: &'t Tape<'t>,
    i: usize,
    end: usize,
}

impl<'t> Iterator for Items<'t> {
    type Item = Val<'t>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.end {
            return None;
        }
        let item = Val {
            tape: self.tape,
            idx: self.i,
        };
        self.i = item.next().max(self.i + 1);
        Some(item)
    }
}

/// A JSON value whose shape a check does not accept (the element named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// What the checks read from a JSON value, for a tape [`Val`] and for `&serde_json::Value`.
pub trait JsonRef<'a>: Copy {
    /// Iterator over an array's items.
    type Items: Iterator<Item = Self>;
    /// The member `key` of an object (`None` for other kinds).
    fn get(self, key: &str) -> Option<Self>;
    /// The items, when an array.
    fn items(self) -> Option<Self::Items>;
    /// The value, when a string.
    fn text(self) -> Option<Cow<'a, str>>;
    /// Whether an object.
    fn is_object(self) -> bool;
    /// Whether `null`.
    fn is_null(self) -> bool;

    /// A member that must be absent, `null` or a string.
    fn opt_text(self, key: &str, what: &'static str) -> Result<Option<Cow<'a, str>>, Malformed> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_null() => Ok(None),
            Some(v) => v.text().map(Some).ok_or(Malformed(what)),
        }
    }

    /// A member that must be absent, `null`, an object or an array of objects: its objects.
    fn objects(self, key: &str, what: &'static str) -> Result<Vec<Self>, Malformed> {
        match self.get(key) {
            Some(v) if v.is_object() => Ok(vec![v]),
            _ => self.list(key, what),
        }
    }

    /// A member that must be absent, `null` or an array of objects: its items.
    fn list(self, key: &str, what: &'static str) -> Result<Vec<Self>, Malformed> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) if v.is_null() => Ok(Vec::new()),
            Some(v) => {
                let items = v.items().ok_or(Malformed(what))?;
                items
                    .map(|i| {
                        if i.is_object() {
                            Ok(i)
                        } else {
                            Err(Malformed(what))
                        }
                    })
                    .collect()
            }
        }
    }
}

impl<'a> JsonRef<'a> for &'a Value {
    type Items = std::slice::Iter<'a, Value>;
    fn get(self, key: &str) -> Option<Self> {
        Value::get(self, key)
    }
    fn items(self) -> Option<Self::Items> {
        self.as_array().map(|a| a.iter())
    }
    fn text(self) -> Option<Cow<'a, str>> {
        self.as_str().map(Cow::Borrowed)
    }
    fn is_object(self) -> bool {
        Value::is_object(self)
    }
    fn is_null(self) -> bool {
        Value::is_null(self)
    }
}

impl<'t> JsonRef<'t> for Val<'t> {
    type Items = Items<'t>;
    fn get(self, key: &str) -> Option<Self> {
        self.member(key)
    }
    fn items(self) -> Option<Self::Items> {
        (self.kind() == Kind::Array).then(|| self.elements())
    }
    fn text(self) -> Option<Cow<'t, str>> {
        self.string()
    }
    fn is_object(self) -> bool {
        self.kind() == Kind::Object
    }
    fn is_null(self) -> bool {
        self.kind() == Kind::Null
    }
}

/// Decodes the inside of a validated string literal.
fn unescape(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hi = hex4(&mut chars);
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    // Validated: a low surrogate escape follows.
                    let _ = chars.next();
                    let _ = chars.next();
                    let lo = hex4(&mut chars);
                    0x10000 + ((hi - 0xD800) << 10) + (lo.saturating_sub(0xDC00) & 0x3FF)
                } else {
                    hi
                };
                out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn hex4(chars: &mut std::str::Chars<'_>) -> u32 {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next().and_then(|c| c.to_digit(16)).unwrap_or(0);
    }
    v
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    /// Keys of the objects being scanned (a stack: each object checks and drops its own).
    keys: Vec<(u32, u32, bool)>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn err(&self) -> TapeError {
        TapeError::Syntax(self.pos)
    }

    fn push(&mut self, kind: Kind, start: usize) -> usize {
        let idx = self.nodes.len();
        self.nodes.push(Node {
            kind,
            escaped: false,
            start: start as u32,
            end: start as u32,
            next: idx as u32 + 1,
        });
        idx
    }

    fn close(&mut self, idx: usize, escaped: bool) {
        let (end, next) = (self.pos as u32, self.nodes.len() as u32);
        if let Some(n) = self.nodes.get_mut(idx) {
            n.end = end;
            n.next = next;
            n.escaped = escaped;
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), TapeError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(|_| ()),
            Some(b't') => self.literal(b"true", Kind::Bool),
            Some(b'f') => self.literal(b"false", Kind::Bool),
            Some(b'n') => self.literal(b"null", Kind::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err()),
        }
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Result<(), TapeError> {
        if self.s.get(self.pos..self.pos + word.len()) != Some(word) {
            return Err(self.err());
        }
        let idx = self.push(kind, self.pos);
        self.pos += word.len();
        self.close(idx, false);
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let from = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - from
    }

    fn number(&mut self) -> Result<(), TapeError> {
        let idx = self.push(Kind::Number, self.pos);
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err());
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err());
            }
        }
        self.close(idx, false);
        Ok(())
    }

    /// A string at `pos` (on its `"`); returns its node index.
    fn string(&mut self) -> Result<usize, TapeError> {
        let idx = self.push(Kind::String, self.pos);
        self.pos += 1;
        let mut escaped = false;
        loop {
            // Skip the plain run at once (the text is valid UTF-8: only these bytes matter).
            let rest = self.s.get(self.pos..).unwrap_or_default();
            self.pos += rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            match self.peek() {
                None => return Err(self.err()),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    self.escape()?;
                }
                Some(b) if b < 0x20 => return Err(self.err()),
                Some(_) => self.pos += 1,
            }
        }
        self.close(idx, escaped);
        Ok(idx)
    }

    /// After a `\`.
    fn escape(&mut self) -> Result<(), TapeError> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                self.pos += 1;
                let cp = self.hex()?;
                if (0xDC00..0xE000).contains(&cp) {
                    return Err(TapeError::Surrogate);
                }
                if (0xD800..0xDC00).contains(&cp) {
                    if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(TapeError::Surrogate);
                    }
                    self.pos += 2;
                    let lo = self.hex()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(TapeError::Surrogate);
                    }
                }
                Ok(())
            }
            _ => Err(self.err()),
        }
    }

    fn hex(&mut self) -> Result<u32, TapeError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or(self.err())?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    fn array(&mut self, depth: usize) -> Result<(), TapeError> {
        if depth > MAX_NESTING {
            return Err(TapeError::TooDeep);
        }
        let idx = self.push(Kind::Array, self.pos);
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.close(idx, false);
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err()),
            }
        }
        self.close(idx, false);
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<(), TapeError> {
        if depth > MAX_NESTING {
            return Err(TapeError::TooDeep);
        }
        let idx = self.push(Kind::Object, self.pos);
        let base = self.keys.len();
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.close(idx, false);
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err());
            }
            let key = self.string()?;
            if let Some(k) = self.nodes.get(key) {
                self.keys
                    .push((k.start + 1, k.end.saturating_sub(1), k.escaped));
            }
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err());
            }
            self.pos += 1;
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err()),
            }
        }
        let dup = self.has_duplicate(base);
        self.keys.truncate(base);
        if dup {
            return Err(TapeError::Duplicate);
        }
        self.close(idx, false);
        Ok(())
    }

    fn key_text(&self, (start, end, escaped): (u32, u32, bool)) -> Cow<'_, str> {
        let raw = self
            .s
            .get(start as usize..end as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default();
        if escaped {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        }
    }

    fn has_duplicate(&self, base: usize) -> bool {
        let keys = self.keys.get(base..).unwrap_or_default();
        if keys.len() <= PAIRWISE_MAX {
            let any_escaped = keys.iter().any(|k| k.2);
            for (i, a) in keys.iter().enumerate() {
                for b in keys.iter().skip(i + 1) {
                    let same = if any_escaped {
                        self.key_text(*a) == self.key_text(*b)
                    } else {
                        self.s.get(a.0 as usize..a.1 as usize)
                            == self.s.get(b.0 as usize..b.1 as usize)
                    };
                    if same {
                        return true;
                    }
                }
            }
            return false;
        }
        let mut names: Vec<Cow<'_, str>> = keys.iter().map(|k| self.key_text(*k)).collect();
        names.sort_unstable();
        names.windows(2).any(|w| w.first() == w.get(1))
    }
}

#[cfg(test)]
mod tests;

//! Names the key of a configuration that serde_json rejected, in the format serde_path_to_error
//! used (`providers[0].jwks.remote.cluster`, `?` for a key that could not be read, `.` for the
//! top level). serde_json reports a line and column; a small tokenizer replays the raw bytes up to
//! that position, keeping the stack of open objects (current key) and arrays (current index), and
//! the place within the innermost one decides which of them the error belongs to.
//!
//! The rules mirror where serde_json raises each error and how serde_path_to_error attributes it:
//! an error inside a value belongs to that value; a bad or missing separator belongs to the
//! container (an object adds `?`, as its next key was never read); an unknown field is reported
//! right after its key and names it; a missing field is reported after the closing brace and names
//! the object. Malformed input never panics: the scan stops at the first byte JSON does not allow.

#[cfg(test)]
mod tests;

use serde_json::error::Category;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
    /// A member whose key was never read (a separator or key error).
    Unknown,
}

/// An open object or array.
#[derive(Debug)]
struct Frame {
    object: bool,
    /// The member being read (objects): set once its key string is closed.
    key: Option<String>,
    /// Elements begun so far (arrays).
    count: usize,
    /// A `,` was read and nothing after it yet.
    comma: bool,
}

/// Where the scan stands within the innermost container (or the top level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spot {
    /// After `{` or `,` in an object.
    ExpectKey,
    /// Inside a key string.
    InKey,
    /// After a key string, before `:`.
    AfterKey,
    /// After `:`, `[`, `,` in an array, or at the start.
    ExpectValue,
    /// Inside a string, number or literal.
    InValue,
    /// After a whole value.
    AfterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpInt,
}

impl Num {
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::ExpInt)
    }

    /// The state after `b`, or `None` when `b` does not continue the number.
    fn next(self, b: u8) -> Option<Num> {
        match (self, b) {
            (Num::Minus, b'0') => Some(Num::Zero),
            (Num::Minus | Num::Int, b'0'..=b'9') => Some(Num::Int),
            (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
            (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::Exp),
            (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
            (Num::Exp | Num::ExpSign | Num::ExpInt, b'0'..=b'9') => Some(Num::ExpInt),
            _ => None,
        }
    }
}

/// Escape state inside a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Backslash,
    /// `\u` with `left` hex digits to go and the value so far; `low` when it must be the low
    /// half of a surrogate pair.
    Hex {
        left: u8,
        value: u32,
        low: bool,
    },
    /// After a high surrogate: `\` must follow.
    PairBackslash,
    /// After a high surrogate and `\`: `u` must follow.
    PairU,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Str(Esc),
    Number(Num),
    /// The bytes of `true`, `false` or `null` still expected.
    Literal(&'static [u8]),
}

/// The tokenizer.
#[derive(Debug)]
struct Scan {
    frames: Vec<Frame>,
    spot: Spot,
    scalar: Scalar,
    /// Decoded bytes of the key being read.
    key: Vec<u8>,
    /// A `\u` high surrogate waiting for its low half (keys).
    high: Option<u32>,
    /// The last key of the object just closed, while `}` is the last token.
    closed_key: Option<String>,
    /// `{` or `[` is the last token.
    opened: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

impl Scan {
    fn new() -> Scan {
        Scan {
            frames: Vec::new(),
            spot: Spot::ExpectValue,
            scalar: Scalar::Literal(b""),
            key: Vec::new(),
            high: None,
            closed_key: None,
            opened: false,
        }
    }

    /// Consumes one byte; `false` when JSON does not allow it here (the scan stops).
    fn step(&mut self, b: u8) -> bool {
        if !is_ws(b) && !matches!(self.spot, Spot::InKey | Spot::InValue) {
            self.closed_key = None;
            self.opened = false;
        }
        match self.spot {
            Spot::ExpectValue => self.expect_value(b),
            Spot::ExpectKey => match b {
                _ if is_ws(b) => true,
                b'"' => {
                    self.spot = Spot::InKey;
                    self.scalar = Scalar::Str(Esc::None);
                    self.key.clear();
                    self.high = None;
                    true
                }
                b'}' if !self.top_comma() => self.close(true),
                _ => false,
            },
            Spot::InKey => self.string_byte(b, true),
            Spot::AfterKey => match b {
                _ if is_ws(b) => true,
                b':' => {
                    self.spot = Spot::ExpectValue;
                    true
                }
                _ => false,
            },
            Spot::InValue => self.value_byte(b),
            Spot::AfterValue => self.after_value(b),
        }
    }

    fn top_comma(&self) -> bool {
        self.frames.last().is_some_and(|f| f.comma)
    }

    fn expect_value(&mut self, b: u8) -> bool {
        let scalar = match b {
            _ if is_ws(b) => return true,
            b']' => {
                let empty = self
                    .frames
                    .last()
                    .is_some_and(|f| !f.object && f.count == 0 && !f.comma);
                return empty && self.close(false);
            }
            b'{' | b'[' => {
                self.begin_value();
                self.frames.push(Frame {
                    object: b == b'{',
                    key: None,
                    count: 0,
                    comma: false,
                });
                self.opened = true;
                self.spot = if b == b'{' {
                    Spot::ExpectKey
                } else {
                    Spot::ExpectValue
                };
                return true;
            }
            b'"' => Scalar::Str(Esc::None),
            b'-' => Scalar::Number(Num::Minus),
            b'0' => Scalar::Number(Num::Zero),
            b'1'..=b'9' => Scalar::Number(Num::Int),
            b't' => Scalar::Literal(b"rue"),
            b'f' => Scalar::Literal(b"alse"),
            b'n' => Scalar::Literal(b"ull"),
            _ => return false,
        };
        self.begin_value();
        self.scalar = scalar;
        self.spot = Spot::InValue;
        true
    }

    /// A value starts in the innermost container.
    fn begin_value(&mut self) {
        if let Some(f) = self.frames.last_mut() {
            f.comma = false;
            if !f.object {
                f.count += 1;
            }
        }
    }

    fn value_byte(&mut self, b: u8) -> bool {
        match self.scalar {
            Scalar::Str(_) => self.string_byte(b, false),
            // `01`: serde_json rejects the digit as part of the number.
            Scalar::Number(Num::Zero) if b.is_ascii_digit() => false,
            Scalar::Number(n) => match n.next(b) {
                Some(next) => {
                    self.scalar = Scalar::Number(next);
                    true
                }
                None if n.complete() => {
                    self.spot = Spot::AfterValue;
                    self.step(b)
                }
                None => false,
            },
            Scalar::Literal(rest) => match rest.split_first() {
                Some((&want, tail)) if want == b => {
                    self.scalar = Scalar::Literal(tail);
                    if tail.is_empty() {
                        self.spot = Spot::AfterValue;
                    }
                    true
                }
                _ => false,
            },
        }
    }

    fn string_byte(&mut self, b: u8, is_key: bool) -> bool {
        let Scalar::Str(esc) = self.scalar else {
            return false;
        };
        let next = match esc {
            Esc::None => match b {
                b'"' => {
                    self.end_string(is_key);
                    return true;
                }
                b'\\' => Esc::Backslash,
                0..=0x1f => return false,
                _ => {
                    if is_key {
                        self.key.push(b);
                    }
                    Esc::None
                }
            },
            Esc::Backslash => {
                let plain = match b {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.scalar = Scalar::Str(Esc::Hex {
                            left: 4,
                            value: 0,
                            low: false,
                        });
                        return true;
                    }
                    _ => return false,
                };
                if is_key {
                    self.key.push(plain);
                }
                Esc::None
            }
            // serde_json rejects a lone surrogate, as a low half or not followed by one.
            Esc::PairBackslash if b == b'\\' => Esc::PairU,
            Esc::PairU if b == b'u' => Esc::Hex {
                left: 4,
                value: 0,
                low: true,
            },
            Esc::PairBackslash | Esc::PairU => return false,
            Esc::Hex { left, value, low } => {
                let Some(digit) = char::from(b).to_digit(16) else {
                    return false;
                };
                let value = value * 16 + digit;
                if left > 1 {
                    Esc::Hex {
                        left: left - 1,
                        value,
                        low,
                    }
                } else {
                    let is_low = (0xDC00..=0xDFFF).contains(&value);
                    if is_low != low {
                        return false;
                    }
                    if is_key {
                        self.key_unit(value);
                    }
                    if (0xD800..=0xDBFF).contains(&value) {
                        Esc::PairBackslash
                    } else {
                        Esc::None
                    }
                }
            }
        };
        self.scalar = Scalar::Str(next);
        true
    }

    /// A `\uXXXX` unit of a key (the scan already checked that surrogates pair up).
    fn key_unit(&mut self, unit: u32) {
        let code = match (self.high.take(), unit) {
            (_, 0xD800..=0xDBFF) => {
                self.high = Some(unit);
                return;
            }
            (Some(high), _) => 0x10000 + ((high.saturating_sub(0xD800)) << 10) + (unit & 0x3FF),
            (None, _) => unit,
        };
        let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut buf = [0u8; 4];
        self.key
            .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }

    fn end_string(&mut self, is_key: bool) {
        if is_key {
            let key = String::from_utf8_lossy(&self.key).into_owned();
            if let Some(f) = self.frames.last_mut() {
                f.key = Some(key);
            }
            self.spot = Spot::AfterKey;
        } else {
            self.spot = Spot::AfterValue;
        }
    }

    fn after_value(&mut self, b: u8) -> bool {
        let Some(top) = self.frames.last_mut() else {
            return is_ws(b);
        };
        match b {
            _ if is_ws(b) => true,
            b',' => {
                top.comma = true;
                if top.object {
                    top.key = None;
                    self.spot = Spot::ExpectKey;
                } else {
                    self.spot = Spot::ExpectValue;
                }
                true
            }
            b'}' if top.object => self.close(true),
            b']' if !top.object => self.close(false),
            _ => false,
        }
    }

    /// Closes the innermost container.
    fn close(&mut self, object: bool) -> bool {
        match self.frames.pop() {
            Some(f) if f.object == object => {
                self.closed_key = if object { f.key } else { None };
                self.spot = Spot::AfterValue;
                true
            }
            _ => false,
        }
    }

    /// The path of the innermost container: each outer frame names the member it is in.
    fn container_path(&self) -> Vec<Segment> {
        let outer = self.frames.len().saturating_sub(1);
        self.frames
            .iter()
            .take(outer)
            .map(|f| {
                if f.object {
                    f.key.clone().map_or(Segment::Unknown, Segment::Key)
                } else {
                    Segment::Index(f.count.saturating_sub(1))
                }
            })
            .collect()
    }
}

/// What kind of error serde_json reported (it decides the owner at a few places).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    /// Input ended early.
    eof: bool,
    /// A data error (from a Deserialize impl) rather than a syntax error.
    data: bool,
    /// `unknown field`: reported after the key, names it.
    unknown_field: bool,
    /// An untagged enum matched no variant: reported after the enclosing object's `}`.
    untagged: bool,
    /// `trailing characters`: a struct given as an array has more elements than fields (raised
    /// for the struct after reading into it).
    trailing: bool,
}

impl Kind {
    fn of(error: &serde_json::Error) -> Kind {
        let message = error.to_string();
        let data = error.classify() == Category::Data;
        Kind {
            eof: error.classify() == Category::Eof,
            data,
            unknown_field: data && message.starts_with("unknown field `"),
            untagged: data && message.starts_with("data did not match any variant of untagged"),
            trailing: !data && message.starts_with("trailing characters"),
        }
    }
}

/// Byte offset of serde_json's (1-based line, byte column) position: the bytes it had consumed.
fn offset_of(json: &[u8], line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let start = if line == 1 {
        0
    } else {
        json.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map(|(i, _)| i + 1)?
    };
    Some(start.saturating_add(column).min(json.len()))
}

/// The segments of the member serde_json's error at `offset` belongs to.
fn path_at(json: &[u8], offset: usize, kind: Kind) -> Vec<Segment> {
    let mut scan = Scan::new();
    let mut stray = None;
    for &b in json.iter().take(offset) {
        if !scan.step(b) {
            stray = Some(b);
            break;
        }
    }
    // A number is whole once its digits end (serde_json reports right after it).
    if scan.spot == Spot::InValue && stray.is_none() {
        if let Scalar::Number(n) = scan.scalar {
            if n.complete() {
                scan.spot = Spot::AfterValue;
            }
        }
    }
    let mut path = scan.container_path();
    let Some(top) = scan.frames.last() else {
        return path;
    };
    // A syntax error at the bracket just opened (recursion limit, an enum given as an array)
    // belongs to the value the bracket opens.
    if kind.trailing || (scan.opened && stray.is_none() && !kind.data && !kind.eof) {
        return path;
    }
    // A bad byte or the end of input after a value is a separator error of the container.
    let separator = stray.is_some() || kind.eof;
    let member = if top.object {
        top.key.clone().map_or(Segment::Unknown, Segment::Key)
    } else {
        Segment::Index(top.count.saturating_sub(1))
    };
    match (top.object, scan.spot) {
        (true, Spot::ExpectKey | Spot::InKey) => path.push(Segment::Unknown),
        (true, Spot::AfterKey) => {
            if kind.unknown_field {
                path.push(member);
            }
        }
        (false, Spot::ExpectValue) => {
            // `[` then EOF, or `,` then `]` / EOF: the array's own error; else the next element.
            // An untagged enum element is checked after the `,` that follows it was read.
            let outside = kind.eof || stray == Some(b']');
            if kind.untagged {
                path.push(Segment::Index(top.count.saturating_sub(1)));
            } else if !outside {
                path.push(Segment::Index(top.count));
            }
        }
        (_, Spot::ExpectValue | Spot::InValue) => path.push(member),
        (object, _) => {
            if separator {
                if object {
                    path.push(Segment::Unknown);
                }
            } else {
                path.push(member);
                if kind.untagged {
                    if let Some(key) = scan.closed_key {
                        path.push(Segment::Key(key));
                    }
                }
            }
        }
    }
    path
}

/// serde_path_to_error's rendering: `a.b[0].c`, `[0].a`, `?` for an unread key, `.` when empty.
fn render(path: &[Segment]) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let mut out = String::new();
    for (i, segment) in path.iter().enumerate() {
        if i > 0 && !matches!(segment, Segment::Index(_)) {
            out.push('.');
        }
        match segment {
            Segment::Key(key) => out.push_str(key),
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

/// The JSON path of the member `error` (from deserializing `json` with serde_json) is about, as
/// serde_path_to_error printed it (`.` for the top level).
pub(super) fn error_path(json: &[u8], error: &serde_json::Error) -> String {
    match offset_of(json, error.line(), error.column()) {
        Some(offset) => render(&path_at(json, offset, Kind::of(error))),
        None => render(&[]),
    }
}

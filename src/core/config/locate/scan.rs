//! The tokenizer of the locator: replays JSON bytes one at a time, keeping the open objects
//! (current key) and arrays (elements begun), and stops at the first byte JSON does not allow.

use super::Segment;

/// An open object or array.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) object: bool,
    /// The member being read (objects): set once its key string is closed.
    pub(super) key: Option<String>,
    /// Elements begun so far (arrays).
    pub(super) count: usize,
    /// A `,` was read and nothing after it yet.
    comma: bool,
}

/// Where the scan stands within the innermost container (or the top level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spot {
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
pub(super) struct Scan {
    pub(super) frames: Vec<Frame>,
    pub(super) spot: Spot,
    scalar: Scalar,
    /// Decoded bytes of the key being read.
    key: Vec<u8>,
    /// A `\u` high surrogate waiting for its low half (keys).
    high: Option<u32>,
    /// The last key of the object just closed, while `}` is the last token.
    pub(super) closed_key: Option<String>,
    /// `{` or `[` is the last token.
    pub(super) opened: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

impl Scan {
    /// Nothing read yet.
    pub(super) fn new() -> Scan {
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
    pub(super) fn step(&mut self, b: u8) -> bool {
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

    /// Where the input stops, a number whose digits ended is a whole value (serde_json reports
    /// right after it).
    pub(super) fn settle(&mut self) {
        if let (Spot::InValue, Scalar::Number(n)) = (self.spot, self.scalar) {
            if n.complete() {
                self.spot = Spot::AfterValue;
            }
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
    pub(super) fn container_path(&self) -> Vec<Segment> {
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

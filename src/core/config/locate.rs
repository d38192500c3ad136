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

mod scan;
#[cfg(test)]
mod tests;

use serde_json::error::Category;

use scan::{Scan, Spot};

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
    if stray.is_none() {
        scan.settle();
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

//! The one percent-decoder (RFC 3986 §2.1, and `application/x-www-form-urlencoded` where `+` is
//! a space), strict: every `%` must start two hex digits, the result must be UTF-8 and free of
//! control characters. The FHIR query and form bodies, the rules' `request.query` and granular
//! scope values all decode with it, so each reads a component the same way.

/// Why a component does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// The decoded text holds a control character (e.g. `%00`, `%0A`).
    ControlChar,
}

/// How `+` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    /// Form encoding: `+` is a space.
    Space,
    /// Plain percent-encoding: `+` is itself.
    Literal,
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one component.
pub fn decode(s: &str, plus: Plus) -> Result<String, DecodeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' if plus == Plus::Space => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                    _ => return Err(DecodeError::BadEscape),
                }
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(DecodeError::ControlChar);
    }
    Ok(text)
}

/// The `name=value` pairs of a query string or form body, decoded (form encoding), in order;
/// empty pairs (`&&`) are skipped and a pair without `=` has the value `""`.
pub fn form_pairs(input: &str) -> impl Iterator<Item = Result<(String, String), DecodeError>> + '_ {
    input.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        Ok((decode(name, Plus::Space)?, decode(value, Plus::Space)?))
    })
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn decodes_escapes_and_plus_by_mode() {
        assert_eq!(decode("a%2Cb+c", Plus::Space).unwrap(), "a,b c");
        assert_eq!(decode("a%2Cb+c", Plus::Literal).unwrap(), "a,b+c");
        assert_eq!(decode("%7c%7C", Plus::Literal).unwrap(), "||");
        assert_eq!(decode("caf%C3%A9", Plus::Space).unwrap(), "café");
    }

    #[test]
    fn refuses_what_two_readers_could_read_differently() {
        for bad in ["%", "%2", "%zz", "%+1", "a%g0"] {
            assert_eq!(
                decode(bad, Plus::Space),
                Err(DecodeError::BadEscape),
                "{bad}"
            );
        }
        assert_eq!(decode("%C3", Plus::Space), Err(DecodeError::NotUtf8));
        assert_eq!(decode("%FF%FE", Plus::Space), Err(DecodeError::NotUtf8));
        for ctl in ["%00", "%0A", "a%0Db", "%7F", "\u{1}"] {
            assert_eq!(
                decode(ctl, Plus::Space),
                Err(DecodeError::ControlChar),
                "{ctl}"
            );
        }
    }

    #[test]
    fn form_pairs_keep_order_and_skip_empty_pairs() {
        let pairs: Vec<_> = form_pairs("a=1&&b&c=x+y&a=%32").collect();
        assert_eq!(
            pairs,
            [
                Ok(("a".into(), "1".into())),
                Ok(("b".into(), String::new())),
                Ok(("c".into(), "x y".into())),
                Ok(("a".into(), "2".into())),
            ]
        );
        assert!(form_pairs("a=%zz").any(|p| p.is_err()));
    }
}

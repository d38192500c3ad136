//! Decoding of query strings and `application/x-www-form-urlencoded` bodies into FHIR search
//! parameters.

use std::collections::BTreeMap;

use super::FhirError;

/// Search parameters: name (with its modifier, as given) to values, in order of appearance.
pub type Params = BTreeMap<String, Vec<String>>;

/// Decodes `input` (form encoding: `&` separates pairs, `+` is a space, `%XX` escapes) and appends
/// every value to `params`.
///
/// - A pair without `=` has the value `""`; empty pairs (`&&`) are skipped; a pair with an empty
///   name is an error.
/// - Values are split on unescaped commas (FHIR's OR): `\,` is a literal comma and becomes `,`;
///   `\\` stays `\\` and does not escape a following comma; other escapes (`\|`, `\$`) stay as given.
/// - Repeated names append, so `a=1&a=2` and `a=1,2` give the same list.
/// - A raw `;` is rejected (some servers split pairs on it; we must see what they see), as are
///   decoded control characters, invalid `%` escapes and decoded text that is not UTF-8.
pub fn parse_form(input: &str, params: &mut Params) -> Result<(), FhirError> {
    if input.contains(';') {
        return Err(FhirError::MatrixParam);
    }
    for pair in input.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_name, raw_value) = match pair.split_once('=') {
            Some((n, v)) => (n, v),
            None => (pair, ""),
        };
        let name = decode_component(raw_name)?;
        if name.is_empty() {
            return Err(FhirError::EmptyParamName);
        }
        let value = decode_component(raw_value)?;
        params.entry(name).or_default().extend(split_or(&value));
    }
    Ok(())
}

/// Percent-decodes one form component (`+` is a space) and checks it.
fn decode_component(s: &str) -> Result<String, FhirError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                    _ => return Err(FhirError::BadPercentEncoding),
                }
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| FhirError::NonUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(FhirError::ControlCharInQuery);
    }
    Ok(text)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a decoded value on unescaped commas (see [`parse_form`]).
pub fn split_or(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(',') => current.push(','),
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            },
            ',' => out.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    out.push(current);
    out
}

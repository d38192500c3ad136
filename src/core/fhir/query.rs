//! Decoding of query strings and `application/x-www-form-urlencoded` bodies into FHIR search
//! parameters.

use std::collections::BTreeMap;

use super::FhirError;
use crate::percent::{decode, DecodeError, Plus};

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

/// Percent-decodes one form component (`+` is a space) with the one strict decoder.
fn decode_component(s: &str) -> Result<String, FhirError> {
    decode(s, Plus::Space).map_err(|e| match e {
        DecodeError::BadEscape => FhirError::BadPercentEncoding,
        DecodeError::NotUtf8 => FhirError::NonUtf8,
        DecodeError::ControlChar => FhirError::ControlCharInQuery,
    })
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

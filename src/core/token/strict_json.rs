//! JSON parsing that refuses duplicate member names at any depth.
//!
//! serde_json keeps the last of duplicate members silently; another parser may keep the first.
//! Such parser differentials let a token mean different things to different components, so
//! token headers, payloads, JWKS documents and introspection responses go through this parser.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Why strict parsing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictJsonError {
    /// Not JSON (syntax, trailing data, invalid UTF-8, nesting too deep).
    Syntax,
    /// An object repeats a member name.
    Duplicate,
}

/// A `serde_json::Value` built while checking member names for duplicates.
struct StrictValue(Value);

const DUPLICATE_MARK: &str = "fhirgate: duplicate member";

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE_MARK));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses `bytes` as one JSON value, refusing duplicate member names anywhere.
pub fn parse(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match StrictValue::deserialize(&mut de) {
        Ok(StrictValue(v)) => v,
        Err(e) if e.to_string().starts_with(DUPLICATE_MARK) => {
            return Err(StrictJsonError::Duplicate)
        }
        Err(_) => return Err(StrictJsonError::Syntax),
    };
    de.end().map_err(|_| StrictJsonError::Syntax)?;
    Ok(value)
}

/// Parses `bytes` as a JSON object, refusing duplicate member names anywhere.
/// `Ok(None)` when the JSON is valid but not an object.
pub fn parse_object(bytes: &[u8]) -> Result<Option<Map<String, Value>>, StrictJsonError> {
    match parse(bytes)? {
        Value::Object(map) => Ok(Some(map)),
        _ => Ok(None),
    }
}

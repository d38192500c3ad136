//! Conversions between the rule layer's inputs (serde_json values) and CEL values, and a
//! description of evaluation errors that never repeats request data.

use std::collections::HashMap;
use std::sync::Arc;

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{ExecutionError, Value};

use super::functions::is_ours;

/// Converts JSON into a CEL value: integers that fit `i64` become `int`, larger ones `uint`,
/// other numbers `double`; objects become maps with string keys.
pub fn json_to_cel(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(obj) => {
            let mut map = HashMap::with_capacity(obj.len());
            for (k, v) in obj {
                map.insert(Key::String(Arc::new(k.clone())), json_to_cel(v));
            }
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

/// A short description of an evaluation error for traces and logs: names from the policy and
/// type names only, never the values of request data.
pub fn describe_error(err: &ExecutionError) -> String {
    match err {
        ExecutionError::InvalidArgumentCount { expected, actual } => {
            format!("wrong number of arguments: expected {expected}, got {actual}")
        }
        ExecutionError::UnsupportedTargetType { target } => {
            format!("unsupported target of type {}", target.type_of())
        }
        ExecutionError::NotSupportedAsMethod { method, target } => {
            format!("'{method}' cannot be called on a {}", target.type_of())
        }
        ExecutionError::UnsupportedKeyType(v) => format!("a {} cannot be a map key", v.type_of()),
        ExecutionError::UnexpectedType { want, .. } => format!("unexpected type (wanted {want})"),
        ExecutionError::NoSuchKey(k) => {
            format!("no such key '{k}' (guard optional data with has())")
        }
        ExecutionError::UndeclaredReference(n) => format!("undeclared reference '{n}'"),
        ExecutionError::MissingArgumentOrTarget => "missing argument or target".to_string(),
        ExecutionError::ValuesNotComparable(a, b) => {
            format!(
                "a {} cannot be compared with a {}",
                a.type_of(),
                b.type_of()
            )
        }
        ExecutionError::UnsupportedUnaryOperator(op, v) => {
            format!("operator '{op}' does not apply to a {}", v.type_of())
        }
        ExecutionError::UnsupportedBinaryOperator(op, a, b) => {
            format!(
                "operator '{op}' does not apply to a {} and a {}",
                a.type_of(),
                b.type_of()
            )
        }
        ExecutionError::UnsupportedMapIndex(v) => format!("a {} cannot index a map", v.type_of()),
        ExecutionError::UnsupportedListIndex(v) => format!("a {} cannot index a list", v.type_of()),
        ExecutionError::UnsupportedIndex(a, b) => {
            format!("a {} cannot be indexed by a {}", a.type_of(), b.type_of())
        }
        ExecutionError::FunctionError { function, message } => {
            if is_ours(function) {
                let shown = function.trim_start_matches('@');
                format!("{shown}(): {message}")
            } else {
                format!("{function}() failed")
            }
        }
        ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".to_string(),
        ExecutionError::Overflow(op, _, _) => format!("integer overflow in '{op}'"),
        _ => "evaluation error".to_string(),
    }
}

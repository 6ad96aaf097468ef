//! Small helpers for reading and writing hyper-parameters as JSON. Non-finite numbers (the
//! `best` of `ReduceLROnPlateau` starts at ±∞) are written as the strings `"inf"`, `"-inf"` and
//! `"nan"`, which plain JSON numbers cannot hold.

use super::OptimError;
use serde_json::{Map, Value};

/// A number as JSON (non-finite values as strings).
pub(crate) fn num(x: f64) -> Value {
    if x.is_finite() {
        Value::from(x)
    } else if x.is_nan() {
        Value::from("nan")
    } else if x > 0.0 {
        Value::from("inf")
    } else {
        Value::from("-inf")
    }
}

/// A list of numbers as JSON.
pub(crate) fn nums(xs: &[f64]) -> Value {
    Value::Array(xs.iter().map(|&x| num(x)).collect())
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            "nan" => Some(f64::NAN),
            _ => None,
        },
        _ => None,
    }
}

fn field<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a Value, OptimError> {
    m.get(key)
        .ok_or_else(|| OptimError::Malformed(format!("missing field `{key}`")))
}

fn bad(key: &str, want: &str) -> OptimError {
    OptimError::Malformed(format!("field `{key}` is not {want}"))
}

/// The JSON object `v`.
pub(crate) fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, OptimError> {
    v.as_object()
        .ok_or_else(|| OptimError::Malformed(format!("{what} is not a JSON object")))
}

/// A number field.
pub(crate) fn f64_field(m: &Map<String, Value>, key: &str) -> Result<f64, OptimError> {
    as_f64(field(m, key)?).ok_or_else(|| bad(key, "a number"))
}

/// An optional number field (absent or null → `None`).
pub(crate) fn opt_f64_field(m: &Map<String, Value>, key: &str) -> Result<Option<f64>, OptimError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_f64(v).map(Some).ok_or_else(|| bad(key, "a number")),
    }
}

/// A boolean field.
pub(crate) fn bool_field(m: &Map<String, Value>, key: &str) -> Result<bool, OptimError> {
    field(m, key)?
        .as_bool()
        .ok_or_else(|| bad(key, "a boolean"))
}

/// An integer field.
pub(crate) fn i64_field(m: &Map<String, Value>, key: &str) -> Result<i64, OptimError> {
    field(m, key)?
        .as_i64()
        .ok_or_else(|| bad(key, "an integer"))
}

/// A non-negative integer field.
pub(crate) fn usize_field(m: &Map<String, Value>, key: &str) -> Result<usize, OptimError> {
    field(m, key)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| bad(key, "a non-negative integer"))
}

/// A string field.
pub(crate) fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str, OptimError> {
    field(m, key)?.as_str().ok_or_else(|| bad(key, "a string"))
}

/// A list-of-numbers field.
pub(crate) fn f64s_field(m: &Map<String, Value>, key: &str) -> Result<Vec<f64>, OptimError> {
    field(m, key)?
        .as_array()
        .ok_or_else(|| bad(key, "a list of numbers"))?
        .iter()
        .map(|v| as_f64(v).ok_or_else(|| bad(key, "a list of numbers")))
        .collect()
}

/// A list-of-integers field.
pub(crate) fn i64s_field(m: &Map<String, Value>, key: &str) -> Result<Vec<i64>, OptimError> {
    field(m, key)?
        .as_array()
        .ok_or_else(|| bad(key, "a list of integers"))?
        .iter()
        .map(|v| v.as_i64().ok_or_else(|| bad(key, "a list of integers")))
        .collect()
}

/// A two-number field (`betas`).
pub(crate) fn pair_field(m: &Map<String, Value>, key: &str) -> Result<(f64, f64), OptimError> {
    match f64s_field(m, key)?.as_slice() {
        [a, b] => Ok((*a, *b)),
        _ => Err(bad(key, "a pair of numbers")),
    }
}

/// Checks the `kind` tag of a saved state.
pub(crate) fn check_kind(m: &Map<String, Value>, expected: &str) -> Result<(), OptimError> {
    let found = str_field(m, "kind")?;
    if found != expected {
        return Err(OptimError::KindMismatch {
            expected: expected.to_string(),
            found: found.to_string(),
        });
    }
    Ok(())
}

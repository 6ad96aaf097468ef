//! TensorFlow Serving's REST API, for clients written against TF Serving: model status
//! (`GET /v1/models/{m}[/versions/{v}]`), signature metadata (`.../metadata`) and
//! `POST /v1/models/{m}[/versions/{v}]:predict` in both of its formats — `instances` (one entry
//! per row, answered as `predictions`) and `inputs` (whole tensors, answered as `outputs`).
//!
//! A Kiln graph has one signature, `serving_default`. Tensors are nested JSON arrays whose
//! nesting gives their shape; datatypes are the model's. Errors are `{"error": "..."}` with
//! 400 or 404, as TF Serving answers.

use crate::error::ServeError;
use crate::model::{ServedModel, TensorSpec};
use crate::registry::Registry;
use crate::tensor::{HostTensor, MAX_JSON_DEPTH};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use kiln_kernels::DType;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The one signature a Kiln graph has.
pub const SIGNATURE: &str = "serving_default";

/// The routes under `/v1/models/`.
pub fn routes() -> Router<Arc<Registry>> {
    Router::new().route("/v1/models/{*rest}", get(status_or_metadata).post(predict))
}

fn bad(m: impl Into<String>) -> ServeError {
    ServeError::BadRequest(m.into())
}

/// What a path under `/v1/models/` names: the model, its version if given, and the rest
/// (`metadata`, `:predict`, or nothing).
struct Target<'a> {
    model: &'a str,
    version: Option<&'a str>,
    verb: &'a str,
}

fn parse(rest: &str) -> Result<Target<'_>, ServeError> {
    // `m:predict` and `m/versions/3:predict`: the verb is glued to the last segment.
    let (path, verb) = match rest.rsplit_once(':') {
        Some((p, v)) if !v.contains('/') => (p, v),
        _ => (rest, ""),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let (model, version, tail) = match parts.as_slice() {
        [m] => (*m, None, None),
        [m, t] => (*m, None, Some(*t)),
        [m, "versions", v] => (*m, Some(*v), None),
        [m, "versions", v, t] => (*m, Some(*v), Some(*t)),
        _ => {
            return Err(ServeError::NotFound(format!(
                "no endpoint /v1/models/{rest}"
            )))
        }
    };
    let verb = match (tail, verb) {
        (Some("metadata"), "") => "metadata",
        (None, v) => v,
        _ => {
            return Err(ServeError::NotFound(format!(
                "no endpoint /v1/models/{rest}"
            )))
        }
    };
    Ok(Target {
        model,
        version,
        verb,
    })
}

async fn status_or_metadata(
    State(r): State<Arc<Registry>>,
    Path(rest): Path<String>,
) -> Result<Json<Value>, ServeError> {
    let t = parse(&rest)?;
    match t.verb {
        "" => status(&r, t.model, t.version),
        "metadata" => Ok(Json(metadata(&*r.get(t.model, t.version)?))),
        v => Err(ServeError::NotFound(format!(
            "`{}` is a POST verb, or none TF Serving has",
            v.escape_debug()
        ))),
    }
}

/// TF Serving's model status: each version AVAILABLE, and a version that failed to load as
/// END with its error.
fn status(r: &Registry, model: &str, version: Option<&str>) -> Result<Json<Value>, ServeError> {
    let ok = |v: u64| {
        json!({"version": v.to_string(), "state": "AVAILABLE",
                            "status": {"error_code": "OK", "error_message": ""}})
    };
    let mut versions: Vec<Value> = match version {
        Some(_) => vec![ok(r.get(model, version)?.version)],
        None => {
            r.get(model, None)?;
            r.versions_of(model).into_iter().map(ok).collect()
        }
    };
    if version.is_none() {
        for u in r.unavailable().iter().filter(|u| u.model == model) {
            versions.push(json!({
                "version": u.version.map(|v| v.to_string()).unwrap_or_default(),
                "state": "END",
                "status": {"error_code": "UNKNOWN", "error_message": u.reason},
            }));
        }
    }
    Ok(Json(json!({ "model_version_status": versions })))
}

/// TF's name of a dtype (`DataType` in tensorflow/core/framework/types.proto).
fn tf_dtype(d: DType) -> &'static str {
    match d {
        DType::F32 => "DT_FLOAT",
        DType::F64 => "DT_DOUBLE",
        DType::F16 => "DT_HALF",
        DType::BF16 => "DT_BFLOAT16",
        DType::I64 => "DT_INT64",
        DType::I32 => "DT_INT32",
        DType::U8 => "DT_UINT8",
        DType::Bool => "DT_BOOL",
        DType::I8 => "DT_INT8",
        DType::I16 => "DT_INT16",
        DType::U16 => "DT_UINT16",
        DType::U32 => "DT_UINT32",
        DType::U64 => "DT_UINT64",
    }
}

fn tensor_info(s: &TensorSpec) -> Value {
    let dims: Vec<Value> = s
        .shape
        .iter()
        .map(|d| json!({"size": d.to_string(), "name": ""}))
        .collect();
    json!({
        "dtype": tf_dtype(s.dtype),
        "tensor_shape": {"dim": dims, "unknown_rank": false},
        "name": format!("{}:0", s.name),
    })
}

/// The model's signature as TF Serving's `GetModelMetadata` answers it over REST.
fn metadata(m: &ServedModel) -> Value {
    let map = |specs: &[TensorSpec]| -> Map<String, Value> {
        specs
            .iter()
            .map(|s| (s.name.clone(), tensor_info(s)))
            .collect()
    };
    json!({
        "model_spec": {"name": m.name, "signature_name": "", "version": m.version.to_string()},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: {
            "inputs": map(&m.inputs),
            "outputs": map(&m.outputs),
            "method_name": "tensorflow/serving/predict",
        }}}},
    })
}

/// The shape of a nested JSON array (a scalar has shape `[]`); an error when its rows differ
/// in length or nest differently.
fn shape_of(v: &Value, depth: usize) -> Result<Vec<usize>, String> {
    let Value::Array(items) = v else {
        return Ok(Vec::new());
    };
    if depth >= MAX_JSON_DEPTH {
        return Err(format!("nests deeper than {MAX_JSON_DEPTH} levels"));
    }
    let Some(first) = items.first() else {
        return Ok(vec![0]);
    };
    let inner = shape_of(first, depth + 1)?;
    for (i, item) in items.iter().enumerate().skip(1) {
        if shape_of(item, depth + 1)? != inner {
            return Err(format!("row {i} has another shape than row 0 ({inner:?})"));
        }
    }
    Ok(std::iter::once(items.len()).chain(inner).collect())
}

/// A nested JSON value as a tensor of the input `spec`'s dtype.
fn tensor(spec: &TensorSpec, v: &Value) -> Result<HostTensor, ServeError> {
    let at = |m: String| bad(format!("input `{}`: {m}", spec.name));
    let shape = shape_of(v, 0).map_err(at)?;
    HostTensor::from_json(spec.dtype, &shape, v).map_err(at)
}

/// `t`'s elements as nested arrays of its shape (a scalar for shape `[]`).
fn nested(t: &HostTensor) -> Value {
    fn build(flat: &mut std::vec::IntoIter<Value>, shape: &[usize]) -> Value {
        match shape.split_first() {
            None => flat.next().unwrap_or(Value::Null),
            Some((&n, inner)) => Value::Array((0..n).map(|_| build(flat, inner)).collect()),
        }
    }
    let Value::Array(flat) = t.to_json() else {
        unreachable!("to_json gives an array")
    };
    build(&mut flat.into_iter(), &t.shape)
}

/// The model's input `name`.
fn input_spec<'a>(m: &'a ServedModel, name: &str) -> Result<&'a TensorSpec, ServeError> {
    m.inputs.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = m.inputs.iter().map(|s| s.name.as_str()).collect();
        bad(format!(
            "model `{}` has no input `{}`; its inputs are {names:?}",
            m.name,
            name.escape_debug()
        ))
    })
}

/// The only input, for the formats that do not name it.
fn sole_input(m: &ServedModel) -> Result<&TensorSpec, ServeError> {
    match m.inputs.as_slice() {
        [only] => Ok(only),
        _ => Err(bad(format!(
            "model `{}` takes {} inputs: name each (an object of input names)",
            m.name,
            m.inputs.len()
        ))),
    }
}

/// The `instances` format: rows, each a value of the sole input or an object of named
/// values; stacked per input along a new dim 0.
fn from_instances(
    m: &ServedModel,
    instances: &Value,
) -> Result<Vec<(String, HostTensor)>, ServeError> {
    let rows = instances
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("`instances` is not a non-empty list"))?;
    if !rows[0].is_object() {
        let spec = sole_input(m)?;
        return Ok(vec![(spec.name.clone(), tensor(spec, instances)?)]);
    }
    let names: Vec<&String> = rows[0].as_object().expect("checked").keys().collect();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let spec = input_spec(m, name)?;
        let column: Vec<Value> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.get(name)
                    .cloned()
                    .ok_or_else(|| bad(format!("instances[{i}] has no `{}`", name.escape_debug())))
            })
            .collect::<Result<_, _>>()?;
        columns.push((name.clone(), tensor(spec, &Value::Array(column))?));
    }
    Ok(columns)
}

/// The `inputs` format: a value of the sole input, or an object of named values.
fn from_inputs(m: &ServedModel, inputs: &Value) -> Result<Vec<(String, HostTensor)>, ServeError> {
    match inputs.as_object() {
        Some(named) => named
            .iter()
            .map(|(name, v)| Ok((name.clone(), tensor(input_spec(m, name)?, v)?)))
            .collect(),
        None => {
            let spec = sole_input(m)?;
            Ok(vec![(spec.name.clone(), tensor(spec, inputs)?)])
        }
    }
}

async fn predict(
    State(r): State<Arc<Registry>>,
    Path(rest): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ServeError> {
    let t = parse(&rest)?;
    if t.verb != "predict" {
        return Err(ServeError::NotFound(format!(
            "POST /v1/models/{rest}: the verbs are `:predict` (Kiln graphs have no \
             classify or regress signature)"
        )));
    }
    let model = r.get(t.model, t.version)?;
    // Any content type: TF Serving's own examples post with `curl -d`, which sends a form type.
    let body = body.map_err(|e| bad(e.body_text()))?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the request is not valid JSON: {e}")))?;
    let signature = request.get("signature_name").and_then(Value::as_str);
    if !matches!(signature, None | Some("") | Some(SIGNATURE)) {
        return Err(bad(format!(
            "signature `{}` not found; the model's one signature is `{SIGNATURE}`",
            signature.unwrap_or_default().escape_debug()
        )));
    }
    let (given, rows) = match (request.get("instances"), request.get("inputs")) {
        (Some(i), None) => (from_instances(&model, i)?, true),
        (None, Some(i)) => (from_inputs(&model, i)?, false),
        _ => return Err(bad("give exactly one of `instances` and `inputs`")),
    };
    let (args, batch) = model.check_inputs(given)?;
    let outputs = model.infer(args, batch).await?;
    if rows && outputs.iter().any(|o| o.shape.first() != Some(&batch)) {
        return Err(bad(format!(
            "model `{}`'s outputs are not one row per instance: send `inputs` instead",
            model.name
        )));
    }
    let names = model.outputs.iter().map(|s| s.name.clone());
    // Each output nested once: its outer array is its rows.
    let nested: Vec<Value> = outputs.iter().map(nested).collect();
    Ok(Json(match (rows, nested) {
        (true, mut nested) if nested.len() == 1 => json!({ "predictions": nested.remove(0) }),
        (true, nested) => {
            let mut columns: Vec<std::vec::IntoIter<Value>> = nested
                .into_iter()
                .map(|o| match o {
                    Value::Array(rows) => rows.into_iter(),
                    _ => unreachable!("a batched output nests as rows"),
                })
                .collect();
            let per_row: Vec<Value> = (0..batch)
                .map(|_| {
                    let fields: Map<String, Value> = names
                        .clone()
                        .zip(columns.iter_mut().map(|c| c.next().unwrap_or(Value::Null)))
                        .collect();
                    Value::Object(fields)
                })
                .collect();
            json!({ "predictions": per_row })
        }
        (false, mut nested) if nested.len() == 1 => json!({ "outputs": nested.remove(0) }),
        (false, nested) => json!({ "outputs": names.zip(nested).collect::<Map<String, Value>>() }),
    }))
}

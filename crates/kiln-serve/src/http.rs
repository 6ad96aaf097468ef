//! The Open Inference Protocol v2 over HTTP (the REST API of KServe and NVIDIA Triton), with
//! the binary tensor data extension, and `/metrics`.
//!
//! Every error is `{"error": "..."}` with a 4xx or 5xx status; nothing a client sends can stop
//! the server.

use crate::datatype::{from_protocol_name, protocol_name};
use crate::error::ServeError;
use crate::model::{ServedModel, TensorSpec};
use crate::registry::Registry;
use crate::tensor::HostTensor;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The header that says how many bytes of the body are JSON (the rest is binary tensor data).
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The largest request body accepted (larger: 413).
pub const MAX_BODY_BYTES: usize = 64 << 20;

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The router of the protocol's endpoints over `registry`.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(|| async { StatusCode::OK }))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_version_metadata),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_version_ready),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer_version),
        )
        .route("/metrics", get(metrics))
        .merge(crate::tf_serving::routes())
        .fallback(|| async { ServeError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(registry)
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "kiln",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

fn spec_json(s: &TensorSpec) -> Value {
    json!({ "name": s.name, "datatype": protocol_name(s.dtype), "shape": s.shape })
}

fn metadata(registry: &Registry, model: &ServedModel) -> Value {
    let versions: Vec<String> = registry
        .versions_of(&model.name)
        .iter()
        .map(u64::to_string)
        .collect();
    json!({
        "name": model.name,
        "versions": versions,
        "platform": "kiln_graph",
        "inputs": model.inputs.iter().map(spec_json).collect::<Vec<_>>(),
        "outputs": model.outputs.iter().map(spec_json).collect::<Vec<_>>(),
    })
}

async fn model_metadata(
    State(r): State<Arc<Registry>>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ServeError> {
    let m = r.get(&model, None)?;
    Ok(Json(metadata(&r, &m)))
}

async fn model_version_metadata(
    State(r): State<Arc<Registry>>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, ServeError> {
    let m = r.get(&model, Some(&version))?;
    Ok(Json(metadata(&r, &m)))
}

async fn model_ready(
    State(r): State<Arc<Registry>>,
    Path(model): Path<String>,
) -> Result<StatusCode, ServeError> {
    r.get(&model, None).map(|_| StatusCode::OK)
}

async fn model_version_ready(
    State(r): State<Arc<Registry>>,
    Path((model, version)): Path<(String, String)>,
) -> Result<StatusCode, ServeError> {
    r.get(&model, Some(&version)).map(|_| StatusCode::OK)
}

async fn metrics(State(r): State<Arc<Registry>>) -> Response {
    let models = r.all();
    let stats: Vec<&crate::metrics::Stats> = models.iter().map(|m| &*m.stats).collect();
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        crate::metrics::render(&stats),
    )
        .into_response()
}

async fn infer(
    State(r): State<Arc<Registry>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServeError> {
    let m = r.get(&model, None)?;
    run_infer(m, headers, body).await
}

async fn infer_version(
    State(r): State<Arc<Registry>>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServeError> {
    let m = r.get(&model, Some(&version))?;
    run_infer(m, headers, body).await
}

fn bad(m: impl Into<String>) -> ServeError {
    ServeError::BadRequest(m.into())
}

/// The JSON part and the binary part of a request body.
fn split_body<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ServeError> {
    let Some(len) = headers.get(HEADER_LENGTH) else {
        return Ok((body, &[]));
    };
    let n: usize = len
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad(format!("{HEADER_LENGTH} is not a byte count")))?;
    if n > body.len() {
        return Err(bad(format!(
            "{HEADER_LENGTH} is {n} but the body has {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(n))
}

/// The request's inputs, by name, decoded from JSON `data` or from the binary part.
fn decode_inputs(
    request: &Value,
    mut binary: &[u8],
) -> Result<Vec<(String, HostTensor)>, ServeError> {
    let inputs = request
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the request has no `inputs` array"))?;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let field = |k: &str| {
            input
                .get(k)
                .ok_or_else(|| bad(format!("inputs[{i}] has no `{k}`")))
        };
        let name = field("name")?
            .as_str()
            .ok_or_else(|| bad(format!("inputs[{i}].name is not a string")))?
            .to_string();
        let at = |m: String| bad(format!("input `{name}`: {m}"));
        let datatype = field("datatype")?
            .as_str()
            .ok_or_else(|| at("`datatype` is not a string".into()))?;
        let dtype = from_protocol_name(datatype)
            .ok_or_else(|| at(format!("datatype `{datatype}` is not supported")))?;
        let shape: Vec<usize> = field("shape")?
            .as_array()
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| at("`shape` is not an array of non-negative integers".into()))?;
        let binary_size = input
            .get("parameters")
            .and_then(|p| p.get("binary_data_size"));
        let tensor = match binary_size {
            Some(size) => {
                let n = size
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| at("`binary_data_size` is not a byte count".into()))?;
                if n > binary.len() {
                    return Err(at(format!(
                        "binary_data_size {n} but only {} bytes of binary data are left",
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(n);
                binary = rest;
                HostTensor::from_bytes(dtype, &shape, mine.to_vec()).map_err(at)?
            }
            None => {
                let data = field("data")?;
                HostTensor::from_json(dtype, &shape, data).map_err(at)?
            }
        };
        out.push((name, tensor));
    }
    if !binary.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data are not claimed by any input's binary_data_size",
            binary.len()
        )));
    }
    Ok(out)
}

/// Which outputs to return, and whether each goes as binary data.
fn requested_outputs(
    request: &Value,
    model: &ServedModel,
) -> Result<Vec<(usize, bool)>, ServeError> {
    let all_binary = request
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(list) = request.get("outputs") else {
        return Ok((0..model.outputs.len()).map(|i| (i, all_binary)).collect());
    };
    let list = list
        .as_array()
        .ok_or_else(|| bad("`outputs` is not an array"))?;
    list.iter()
        .enumerate()
        .map(|(i, o)| {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("outputs[{i}] has no string `name`")))?;
            let index = model.output_index(name)?;
            let binary = o
                .get("parameters")
                .and_then(|p| p.get("binary_data"))
                .and_then(Value::as_bool)
                .unwrap_or(all_binary);
            Ok((index, binary))
        })
        .collect()
}

async fn run_infer(
    model: Arc<ServedModel>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ServeError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => bad(format!(
            "the request body is over the {MAX_BODY_BYTES}-byte limit"
        )),
        _ => bad(e.body_text()),
    })?;
    let (json_part, binary) = split_body(&headers, &body)?;
    let request: Value = serde_json::from_slice(json_part)
        .map_err(|e| bad(format!("the request is not valid JSON: {e}")))?;
    if !request.is_object() {
        return Err(bad("the request is not a JSON object"));
    }
    let inputs = decode_inputs(&request, binary)?;
    let wanted = requested_outputs(&request, &model)?;
    let (args, batch) = model.check_inputs(inputs)?;
    let outputs = model.infer(args, batch).await?;

    let mut binary_out: Vec<u8> = Vec::new();
    let mut listed = Vec::with_capacity(wanted.len());
    for (index, as_binary) in wanted {
        let t = &outputs[index];
        let mut o = Map::new();
        o.insert("name".into(), json!(model.outputs[index].name));
        o.insert("datatype".into(), json!(protocol_name(t.dtype)));
        o.insert("shape".into(), json!(t.shape));
        if as_binary {
            o.insert(
                "parameters".into(),
                json!({ "binary_data_size": t.bytes.len() }),
            );
            binary_out.extend_from_slice(&t.bytes);
        } else {
            o.insert("data".into(), t.to_json());
        }
        listed.push(Value::Object(o));
    }
    let mut answer = json!({
        "model_name": model.name,
        "model_version": model.version.to_string(),
        "outputs": listed,
    });
    if let Some(id) = request.get("id") {
        answer["id"] = id.clone();
    }
    let text = serde_json::to_vec(&answer).expect("JSON values serialize");
    if binary_out.is_empty() {
        return Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response());
    }
    let header_len = text.len().to_string();
    let mut body = text;
    body.extend_from_slice(&binary_out);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::HeaderName::from_static(HEADER_LENGTH), header_len),
        ],
        body,
    )
        .into_response())
}

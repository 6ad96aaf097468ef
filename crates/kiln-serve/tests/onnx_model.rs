//! A model repository version holding `model.onnx` instead of `model.kgraph`: imported when it
//! loads, its input and output names taken from the ONNX file, served with dynamic batching,
//! and answering as the eager model does.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn an_onnx_file_is_served_with_its_own_names_and_the_eager_models_answers() {
    let s = start_onnx("max_batch_size = 8\n");
    let (status, _, body) = request(s.addr, "GET", "/v2/models/mlp", &[], b"");
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        meta["inputs"],
        json!([{"name": "features", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        meta["outputs"],
        json!([{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}])
    );
    let rows = [0.5f32, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 3.0];
    let (status, answer) = post_json(
        s.addr,
        "/v2/models/mlp/infer",
        &json!({
            "inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 4], "data": rows}]
        }),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"][0]["name"], "scores");
    assert_eq!(answer["outputs"][0]["shape"], json!([2, 3]));
    let got = floats(&answer["outputs"][0]["data"]);
    let want = eager(&s.model, &rows);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
    }
}

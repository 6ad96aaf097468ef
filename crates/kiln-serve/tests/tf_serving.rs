//! TF Serving's REST API against a real server on 127.0.0.1: model status, signature
//! metadata, `:predict` in the row (`instances`) and columnar (`inputs`) formats with answers
//! equal to eager mode's, and errors. `tests/tf_serving_check.py` runs the same API with
//! `requests` on a two-output model in CI.

mod common;

use common::*;
use serde_json::{json, Value};

const CONFIG: &str = "max_batch_size = 8\ninputs = [\"x\"]\noutputs = [\"logits\"]\n";

fn get(s: &Served, path: &str) -> (u16, Value) {
    let (status, _, body) = request(s.addr, "GET", path, &[], b"");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Eager outputs of `rows` (4 features each) as nested rows of 3.
fn eager_rows(s: &Served, rows: &[[f32; 4]]) -> Vec<Vec<f32>> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    eager(&s.model, &flat)
        .chunks(3)
        .map(<[f32]>::to_vec)
        .collect()
}

fn nested_floats(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

#[test]
fn status_and_metadata() {
    let s = start(CONFIG);
    let (status, answer) = get(&s, "/v1/models/mlp");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"model_version_status": [{"version": "1", "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""}}]})
    );
    assert_eq!(get(&s, "/v1/models/mlp/versions/1").1, answer);
    assert_eq!(get(&s, "/v1/models/mlp/versions/2").0, 404);
    assert_eq!(get(&s, "/v1/models/nope").0, 404);

    let (status, meta) = get(&s, "/v1/models/mlp/metadata");
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["model_spec"]["name"], "mlp");
    assert_eq!(meta["model_spec"]["version"], "1");
    let signature = &meta["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(
        signature["inputs"]["x"],
        json!({"dtype": "DT_FLOAT", "name": "x:0", "tensor_shape": {"unknown_rank": false,
               "dim": [{"size": "-1", "name": ""}, {"size": "4", "name": ""}]}})
    );
    assert_eq!(
        signature["outputs"]["logits"]["tensor_shape"]["dim"][1]["size"],
        "3"
    );
    assert_eq!(signature["method_name"], "tensorflow/serving/predict");
    assert_eq!(get(&s, "/v1/models/mlp/versions/1/metadata").1, meta);
}

#[test]
fn predict_rows_and_columns_give_eager_values() {
    let s = start(CONFIG);
    let rows = [[0.5f32, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]];
    let want = eager_rows(&s, &rows);

    let (status, answer) = post_json(
        s.addr,
        "/v1/models/mlp:predict",
        &json!({"instances": rows}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(nested_floats(&answer["predictions"]), want);

    let named = json!({"signature_name": "serving_default",
                       "instances": [{"x": rows[0]}, {"x": rows[1]}]});
    let (status, answer) = post_json(s.addr, "/v1/models/mlp/versions/1:predict", &named);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(nested_floats(&answer["predictions"]), want);

    let (status, answer) = post_json(s.addr, "/v1/models/mlp:predict", &json!({"inputs": rows}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(nested_floats(&answer["outputs"]), want);

    let (status, answer) = post_json(
        s.addr,
        "/v1/models/mlp:predict",
        &json!({"inputs": {"x": rows}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(nested_floats(&answer["outputs"]), want);
}

#[test]
fn bad_requests_get_errors_that_name_the_problem() {
    let s = start(CONFIG);
    let row = json!([1.0, 2.0, 3.0, 4.0]);
    let cases = [
        (
            "/v1/models/nope:predict",
            json!({"instances": [row]}),
            404,
            "nope",
        ),
        (
            "/v1/models/mlp/versions/7:predict",
            json!({"instances": [row]}),
            404,
            "7",
        ),
        (
            "/v1/models/mlp:classify",
            json!({"instances": [row]}),
            404,
            ":predict",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"instances": [row], "inputs": [row]}),
            400,
            "exactly one",
        ),
        ("/v1/models/mlp:predict", json!({}), 400, "exactly one"),
        (
            "/v1/models/mlp:predict",
            json!({"instances": []}),
            400,
            "non-empty",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"instances": [[1.0, 2.0, 3.0, 4.0], [1.0]]}),
            400,
            "row 1",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"instances": [[1.0, 2.0, 3.0]]}),
            400,
            "shape",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"instances": [["a", 2.0, 3.0, 4.0]]}),
            400,
            "element 0",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"instances": [{"y": row}]}),
            400,
            "`y`",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"instances": [{"x": row}, {"z": row}]}),
            400,
            "instances[1]",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"inputs": {"y": [row]}}),
            400,
            "`y`",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"signature_name": "other", "inputs": [row]}),
            400,
            "other",
        ),
        (
            "/v1/models/mlp:predict",
            json!({"instances": vec![row.clone(); 9]}),
            400,
            "max_batch_size",
        ),
    ];
    for (path, body, code, named) in cases {
        let (status, answer) = post_json(s.addr, path, &body);
        assert_eq!(status, code, "{path} {body}: {answer}");
        let message = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(message.contains(named), "{path} {body}: {message}");
    }
    let (status, _, body) = request(s.addr, "POST", "/v1/models/mlp:predict", &[], b"{not json");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _) = post_json(
        s.addr,
        "/v1/models/mlp:predict",
        &json!({"instances": [row]}),
    );
    assert_eq!(status, 200, "the server still answers");
}

//! The Open Inference Protocol over HTTP against a real server on 127.0.0.1: health, metadata,
//! inference with JSON and binary tensors, dynamic batching (answers equal eager mode's),
//! errors, and metrics. A small HTTP/1.1 client over `TcpStream` stands in for curl here; the
//! conformance suite with Triton's own client is `tests/tritonclient_check.py`.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn health_metadata_and_json_inference() {
    let s = start("max_batch_size = 8\ninputs = [\"x\"]\noutputs = [\"logits\"]\n");
    assert_eq!(request(s.addr, "GET", "/v2/health/live", &[], b"").0, 200);
    assert_eq!(request(s.addr, "GET", "/v2/health/ready", &[], b"").0, 200);
    let (status, _, body) = request(s.addr, "GET", "/v2/models/mlp", &[], b"");
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        meta["inputs"],
        json!([{"name": "x", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        meta["outputs"],
        json!([{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}])
    );
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(
        request(s.addr, "GET", "/v2/models/mlp/versions/1/ready", &[], b"").0,
        200
    );

    let rows = [0.5f32, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 3.0];
    let (status, answer) = post_json(
        s.addr,
        "/v2/models/mlp/infer",
        &json!({
            "id": "r1",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]]}]
        }),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "r1");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["outputs"][0]["shape"], json!([2, 3]));
    // The served graph gives the eager model's values (f32 bits through JSON's f64).
    assert_eq!(
        floats(&answer["outputs"][0]["data"]),
        eager(&s.model, &rows)
    );
}

#[test]
fn binary_tensors_in_and_out() {
    let s = start("");
    let rows = [1.0f32, 2.0, 3.0, 4.0];
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({
        "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}],
        "outputs": [{"name": "output__0", "parameters": {"binary_data": true}}]
    }).to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&bytes);
    let len = header.len().to_string();
    let (status, headers, answer) = request(
        s.addr,
        "POST",
        "/v2/models/mlp/infer",
        &[("Inference-Header-Content-Length", &len)],
        &body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let n: usize = headers
        .iter()
        .find(|(k, _)| k == "inference-header-content-length")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let meta: Value = serde_json::from_slice(&answer[..n]).unwrap();
    assert_eq!(meta["outputs"][0]["parameters"]["binary_data_size"], 12);
    let out: Vec<f32> = answer[n..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(out, eager(&s.model, &rows));
}

#[test]
fn concurrent_requests_are_batched_and_each_gets_its_own_rows() {
    let s = start("max_batch_size = 32\nmax_queue_delay_us = 20000\n");
    let addr = s.addr;
    let requests: Vec<Vec<f32>> = (0..24)
        .map(|i| {
            (0..4 * (1 + i % 3))
                .map(|k| (i * 7 + k) as f32 * 0.1 - 1.0)
                .collect()
        })
        .collect();
    let answers: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|rows| {
                scope.spawn(move || {
                    let n = rows.len() / 4;
                    let (status, answer) = post_json(addr, "/v2/models/mlp/infer", &json!({
                        "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [n, 4], "data": rows}]
                    }));
                    assert_eq!(status, 200, "{answer}");
                    floats(&answer["outputs"][0]["data"])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (rows, got) in requests.iter().zip(&answers) {
        let want = eager(&s.model, rows);
        // A joined batch may sum in another order than the request alone: within 1e-6.
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
        assert_eq!(got.len(), want.len());
    }
    let (_, _, metrics) = request(addr, "GET", "/metrics", &[], b"");
    let metrics = String::from_utf8(metrics).unwrap();
    let read = |name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(read("nv_inference_request_success"), 24);
    assert_eq!(read("nv_inference_count"), 48); // 8 requests each of 1, 2 and 3 rows
    assert!(read("nv_inference_exec_count") < 24, "{metrics}");
}

#[test]
fn bad_requests_get_4xx_answers_that_name_the_problem() {
    let s = start("");
    let infer = "/v2/models/mlp/infer";
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (infer, b"{not json".to_vec(), 400, "not valid JSON"),
        (infer, b"[1, 2]".to_vec(), 400, "not a JSON object"),
        (infer, br#"{"inputs": 3}"#.to_vec(), 400, "no `inputs` array"),
        (infer, json!({"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 5], "data": [1,2,3,4,5]}]}).to_string().into_bytes(), 400, "shape [1, 5] but the model takes [-1, 4]"),
        (infer, json!({"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3]}]}).to_string().into_bytes(), 400, "has 3 elements but shape [1, 4] has 4"),
        (infer, json!({"inputs": [{"name": "input__0", "datatype": "INT64", "shape": [1, 4], "data": [1,2,3,4]}]}).to_string().into_bytes(), 400, "datatype INT64 but the model takes FP32"),
        (infer, json!({"inputs": [{"name": "input__0", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}).to_string().into_bytes(), 400, "datatype `BYTES` is not supported"),
        (infer, json!({"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}]}).to_string().into_bytes(), 400, "no input named `nope`"),
        (infer, json!({"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 4], "data": [1,2,3,4]}], "outputs": [{"name": "zzz"}]}).to_string().into_bytes(), 400, "no output `zzz`"),
        ("/v2/models/nope/infer", b"{}".to_vec(), 404, "unknown model `nope`"),
        ("/v2/models/mlp/versions/9/infer", b"{}".to_vec(), 404, "has no version 9"),
        ("/v2/models/mlp/versions/x/infer", b"{}".to_vec(), 400, "is not a number"),
        ("/v2/models/..%2f..%2fetc/infer", b"{}".to_vec(), 400, "is not a valid name"),
    ];
    for (path, body, want, message) in cases {
        let (status, _, answer) = request(s.addr, "POST", path, &[], &body);
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        assert_eq!(
            status,
            want,
            "{path} {}: {answer}",
            String::from_utf8_lossy(&body)
        );
        let text = answer["error"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{path}: {text:?} should say {message:?}"
        );
    }
    // The server still answers.
    assert_eq!(request(s.addr, "GET", "/v2/health/live", &[], b"").0, 200);
}

/// Resident memory of this process in KiB (Linux), for the growth check below.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn ten_thousand_mutated_requests_get_answers_and_no_crash() {
    // Open Inference Protocol bodies (JSON and binary) and TF Serving predict bodies.
    let s = start("max_batch_size = 8\nmax_queue_delay_us = 100\n");
    let valid = json!({
        "id": "m",
        "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [2, 4],
                    "data": [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]]}],
        "outputs": [{"name": "output__0", "parameters": {"binary_data": true}}]
    })
    .to_string()
    .into_bytes();
    let binary_header = json!({
        "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 4],
                    "parameters": {"binary_data_size": 16}}]
    })
    .to_string();
    // TF Serving's REST predict, rows and columns.
    let tf_bodies = [
        json!({"instances": [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]]}),
        json!({"signature_name": "serving_default", "inputs": {"input__0": [[0.5, -1.0, 2.0, 0.25]]}}),
    ]
    .map(|b| b.to_string().into_bytes());
    let mut next = below(0x9E37_79B9_7F4A_7C15);
    let tokens: [&[u8]; 10] = [
        b"-1",
        b"1e309",
        b"null",
        b"\"FP64\"",
        b"[]",
        b"{}",
        b"99999999999",
        b"\"",
        b"]",
        b"\xff",
    ];
    let (mut ok, mut client_errors) = (0, 0);
    let mut rss_after_warmup = 0;
    for i in 0..10_000 {
        if i == 500 {
            rss_after_warmup = rss_kib();
        }
        let kind = next(5);
        let binary = kind == 0;
        let tf = kind == 4;
        let mut body = if binary {
            let mut b = binary_header.clone().into_bytes();
            b.extend_from_slice(&[0u8; 16]);
            b
        } else if tf {
            tf_bodies[next(2)].clone()
        } else {
            valid.clone()
        };
        let mut length_header = binary.then(|| binary_header.len().to_string());
        for _ in 0..1 + next(3) {
            if body.is_empty() {
                body.push(b'{');
            }
            let at = next(body.len());
            match next(6) {
                0 => body[at] = next(256) as u8,
                1 => body.truncate(at),
                2 => {
                    let t = tokens[next(tokens.len())];
                    body.splice(at..at, t.iter().copied());
                }
                3 => {
                    let end = (at + 1 + next(8)).min(body.len());
                    body.drain(at..end);
                }
                4 => length_header = Some(["0", "-3", "x", "999999999", "10"][next(5)].to_string()),
                _ => {
                    let dup = body[at..(at + 1 + next(16)).min(body.len())].to_vec();
                    body.splice(at..at, dup);
                }
            }
        }
        let mut headers = vec![];
        if let Some(h) = &length_header {
            headers.push(("Inference-Header-Content-Length", h.as_str()));
        }
        let path = if tf {
            [
                "/v1/models/mlp:predict",
                "/v1/models/mlp/versions/1:predict",
                "/v1/models/mlp:pre%00dict",
            ][next(3)]
        } else {
            [
                "/v2/models/mlp/infer",
                "/v2/models/mlp/versions/1/infer",
                "/v2/models/ml%00p/infer",
            ][next(3)]
        };
        let (status, _, answer) = request(s.addr, "POST", path, &headers, &body);
        match status {
            200 => ok += 1,
            400..=499 => {
                let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                assert!(
                    v["error"].is_string(),
                    "{status} without an error message: {}",
                    String::from_utf8_lossy(&answer)
                );
                client_errors += 1;
            }
            _ => panic!(
                "request {i} got {status}: {} for {}",
                String::from_utf8_lossy(&answer),
                String::from_utf8_lossy(&body)
            ),
        }
    }
    let grown_mib = rss_kib().saturating_sub(rss_after_warmup) as f64 / 1024.0;
    eprintln!("10000 mutated requests: {ok} answered 200, {client_errors} 4xx; RSS grew {grown_mib:.1} MiB after the first 500");
    assert!(
        client_errors > 5_000,
        "most mutations should be refused ({client_errors})"
    );
    assert!(grown_mib < 50.0, "resident memory grew {grown_mib:.1} MiB");
    assert_eq!(request(s.addr, "GET", "/v2/health/live", &[], b"").0, 200);
}

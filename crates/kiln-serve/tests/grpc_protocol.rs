//! The Open Inference Protocol over gRPC against a real server on 127.0.0.1, with a client
//! generated from the same vendored .proto: health, metadata, inference with raw and typed
//! tensors (answers equal eager mode's and the HTTP answers), and errors as gRPC statuses.
//! Triton's own gRPC client is run on it by `tests/tritonclient_check.py`.

mod common;

use common::*;
use kiln_serve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use kiln_serve::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use kiln_serve::grpc::proto::*;
use serde_json::json;
use tonic::transport::Channel;
use tonic::Code;

async fn client(s: &Served) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .expect("the gRPC server accepts a connection")
}

fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        ..Default::default()
    }
}

fn raw_request(rows: &[f32]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "mlp".into(),
        id: "g1".into(),
        inputs: vec![input("x", "FP32", &[rows.len() as i64 / 4, 4])],
        raw_input_contents: vec![rows.iter().flat_map(|v| v.to_le_bytes()).collect()],
        ..Default::default()
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

const CONFIG: &str = "max_batch_size = 8\ninputs = [\"x\"]\noutputs = [\"logits\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metadata() {
    let s = start(CONFIG);
    let mut c = client(&s).await;
    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let meta = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "kiln");
    let ready = |name: &str, version: &str| ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        c.model_ready(ready("mlp", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        c.model_ready(ready("mlp", "1"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("mlp", "2"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !c.model_ready(ready("nope", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );

    let m = c
        .model_metadata(ModelMetadataRequest {
            name: "mlp".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.versions, ["1"]);
    assert_eq!(
        (m.inputs[0].name.as_str(), m.inputs[0].datatype.as_str()),
        ("x", "FP32")
    );
    assert_eq!(m.inputs[0].shape, [-1, 4]);
    assert_eq!(m.outputs[0].name, "logits");
    assert_eq!(m.outputs[0].shape, [-1, 3]);
    let missing = c
        .model_metadata(ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("nope"), "{}", missing.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_typed_tensors_give_eager_values_and_the_http_answer() {
    let s = start(CONFIG);
    let mut c = client(&s).await;
    let rows = [0.5f32, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 3.0];
    let answer = c
        .model_infer(raw_request(&rows))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.id, "g1");
    assert_eq!(
        (answer.model_name.as_str(), answer.model_version.as_str()),
        ("mlp", "1")
    );
    assert_eq!(answer.outputs.len(), 1);
    assert_eq!(answer.outputs[0].name, "logits");
    assert_eq!(answer.outputs[0].datatype, "FP32");
    assert_eq!(answer.outputs[0].shape, [2, 3]);
    let raw_values = f32s(&answer.raw_output_contents[0]);
    assert_eq!(raw_values, eager(&s.model, &rows));

    // Typed contents instead of raw bytes: the same values.
    let mut typed = raw_request(&rows);
    typed.raw_input_contents.clear();
    typed.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: rows.to_vec(),
        ..Default::default()
    });
    typed.outputs = vec![InferRequestedOutputTensor {
        name: "logits".into(),
        ..Default::default()
    }];
    let answer = c.model_infer(typed).await.unwrap().into_inner();
    assert_eq!(f32s(&answer.raw_output_contents[0]), raw_values);

    // The same request over HTTP: the same bits.
    let (status, http) = tokio::task::spawn_blocking(move || {
        post_json(
            s.addr,
            "/v2/models/mlp/infer",
            &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": rows}]}),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{http}");
    assert_eq!(floats(&http["outputs"][0]["data"]), raw_values);
}

/// A change that makes a valid request bad.
type Mutation = Box<dyn Fn(&mut ModelInferRequest)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_statuses_that_name_the_problem() {
    let s = start(CONFIG);
    let mut c = client(&s).await;
    let rows = [1.0f32, 2.0, 3.0, 4.0];
    let cases: Vec<(&str, Mutation, Code, &str)> = vec![
        (
            "unknown model",
            Box::new(|r| r.model_name = "nope".into()),
            Code::NotFound,
            "nope",
        ),
        (
            "unknown version",
            Box::new(|r| r.model_version = "9".into()),
            Code::NotFound,
            "9",
        ),
        (
            "version not a number",
            Box::new(|r| r.model_version = "x".into()),
            Code::InvalidArgument,
            "version",
        ),
        (
            "name with ..",
            Box::new(|r| r.model_name = "..".into()),
            Code::InvalidArgument,
            "..",
        ),
        (
            "wrong datatype",
            Box::new(|r| r.inputs[0].datatype = "INT32".into()),
            Code::InvalidArgument,
            "datatype",
        ),
        (
            "unknown datatype",
            Box::new(|r| r.inputs[0].datatype = "BYTES".into()),
            Code::InvalidArgument,
            "BYTES",
        ),
        (
            "wrong shape",
            Box::new(|r| r.inputs[0].shape = vec![1, 5]),
            Code::InvalidArgument,
            "shape",
        ),
        (
            "negative dim",
            Box::new(|r| r.inputs[0].shape = vec![-1, 4]),
            Code::InvalidArgument,
            "negative",
        ),
        (
            "17 dims",
            Box::new(|r| r.inputs[0].shape = vec![1; 17]),
            Code::InvalidArgument,
            "at most 16",
        ),
        (
            "short raw data",
            Box::new(|r| {
                r.raw_input_contents[0].pop();
            }),
            Code::InvalidArgument,
            "bytes",
        ),
        (
            "raw count",
            Box::new(|r| r.raw_input_contents.push(vec![])),
            Code::InvalidArgument,
            "raw_input_contents",
        ),
        (
            "no data",
            Box::new(|r| r.raw_input_contents.clear()),
            Code::InvalidArgument,
            "contents",
        ),
        (
            "unknown input",
            Box::new(|r| r.inputs[0].name = "y".into()),
            Code::InvalidArgument,
            "y",
        ),
        (
            "unknown output",
            Box::new(|r| {
                r.outputs.push(InferRequestedOutputTensor {
                    name: "z".into(),
                    ..Default::default()
                })
            }),
            Code::InvalidArgument,
            "z",
        ),
        (
            "over max batch",
            Box::new(|r| {
                r.inputs[0].shape = vec![9, 4];
                r.raw_input_contents[0] = vec![0; 9 * 16];
            }),
            Code::InvalidArgument,
            "max_batch_size",
        ),
    ];
    for (what, mutate, code, named) in cases {
        let mut r = raw_request(&rows);
        mutate(&mut r);
        let e = c.model_infer(r).await.expect_err(what);
        assert_eq!(e.code(), code, "{what}: {}", e.message());
        assert!(e.message().contains(named), "{what}: {}", e.message());
    }
    // The server still answers.
    assert!(c.model_infer(raw_request(&rows)).await.is_ok());
}

/// Sends and receives message bytes as they are, so a test can send mutated protobuf.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawBytes;

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }
    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_mutated_protobuf_requests_get_statuses_and_no_crash() {
    use prost::Message;
    let s = start(CONFIG);
    let channel = Channel::from_shared(format!("http://{}", s.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/inference.GRPCInferenceService/ModelInfer",
    );
    let mut typed = raw_request(&[0.5, -1.0, 2.0, 0.25]);
    typed.raw_input_contents.clear();
    typed.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: vec![0.5, -1.0, 2.0, 0.25],
        ..Default::default()
    });
    let valid = [
        raw_request(&[0.5, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 3.0]).encode_to_vec(),
        typed.encode_to_vec(),
    ];
    let mut next = below(0x2545_F491_4F6C_DD1D);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..3_000 {
        let mut body = valid[next(2)].clone();
        for _ in 0..1 + next(3) {
            if body.is_empty() {
                body.push(0x0a);
            }
            let at = next(body.len());
            match next(5) {
                0 => body[at] = next(256) as u8,
                1 => body.truncate(at),
                2 => {
                    let end = (at + 1 + next(8)).min(body.len());
                    body.drain(at..end);
                }
                3 => body.insert(at, [0xff, 0x80, 0x7f, 0x00][next(4)]),
                _ => {
                    let dup = body[at..(at + 1 + next(16)).min(body.len())].to_vec();
                    body.splice(at..at, dup);
                }
            }
        }
        grpc.ready().await.expect("the connection stays up");
        match grpc
            .unary(tonic::Request::new(body.clone()), path.clone(), RawCodec)
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => {
                let decode = e.code() == Code::Internal && e.message().contains("decode");
                assert!(
                    matches!(e.code(), Code::InvalidArgument | Code::NotFound) || decode,
                    "request {i}: {:?} {}",
                    e.code(),
                    e.message()
                );
                refused += 1;
            }
        }
    }
    eprintln!("3000 mutated protobuf requests: {ok} answered, {refused} refused");
    assert!(
        refused > 1_000,
        "most mutations should be refused ({refused})"
    );
    let mut c = client(&s).await;
    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
}

//! The test server: a small MLP compiled to a graph with a symbolic batch, served from a
//! temporary repository on 127.0.0.1 (HTTP and gRPC on free ports), and a plain HTTP/1.1
//! client over `TcpStream` that stands in for curl.
#![allow(dead_code)] // each test file uses its own part

use kiln::graph::artifact;
use kiln::prelude::*;
use kiln_serve::{serve_until, ServeOptions};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// A served repository and the eager model its graph was made from.
pub struct Served {
    /// HTTP.
    pub addr: SocketAddr,
    pub grpc: SocketAddr,
    pub model: Sequential,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    _repo: tempfile::TempDir,
}

impl Served {
    /// Asks the server to stop (as SIGTERM does) and returns what `serve_until` returned.
    pub fn shut_down(&mut self) -> Result<(), String> {
        let _ = self.stop.take().expect("running").send(());
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("server thread")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread").expect("server ran");
        }
    }
}

pub fn mlp() -> Sequential {
    manual_seed(7);
    Sequential::new()
        .append(Linear::new(4, 16))
        .append(ReLU::new())
        .append(Linear::new(16, 3))
}

/// `model`'s forward pass compiled with a symbolic batch, for inputs of `features` columns.
fn dynamic_graph(model: &Sequential, features: usize) -> artifact::DynamicGraph {
    no_grad(|| {
        compile(|x: &[Tensor]| vec![model.forward(&x[0])])
            .dynamic_batch()
            .dynamic_graph(&[Tensor::zeros([1, features], DType::F32)])
            .expect("a graph with a symbolic batch")
    })
}

/// Saves `model`'s graph, for inputs of `features` columns and any batch size.
pub fn save_graph(model: &Sequential, features: usize, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    artifact::save_dynamic(&dynamic_graph(model, features), path).unwrap();
}

/// Saves `model`'s graph as an ONNX file with a symbolic batch, its input named `features`
/// and its output `scores`.
pub fn save_onnx(model: &Sequential, features: usize, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let options = kiln_onnx::ExportOptions {
        input_names: vec!["features".into()],
        output_names: vec!["scores".into()],
        ..Default::default()
    };
    let onnx = kiln_onnx::export_dynamic(&dynamic_graph(model, features), &options).unwrap();
    kiln_onnx::save(&onnx, path).unwrap();
}

/// Serves `mlp()` as model `mlp` with `config` as its config.toml.
pub fn start(config: &str) -> Served {
    start_model(mlp(), 4, config)
}

/// Serves `mlp()` from an ONNX file (`mlp/1/model.onnx`) with `config`.
pub fn start_onnx(config: &str) -> Served {
    start_from(mlp(), config, |m, repo| {
        save_onnx(m, 4, &repo.join("mlp/1/model.onnx"))
    })
}

/// Serves `model` (inputs of `features` columns) as model `mlp` with `config`.
pub fn start_model(model: Sequential, features: usize, config: &str) -> Served {
    start_from(model, config, |m, repo| {
        save_graph(m, features, &repo.join("mlp/1/model.kgraph"))
    })
}

/// Serves `model` as model `mlp` with `config`, its file written by `write` into the repository.
fn start_from(model: Sequential, config: &str, write: impl FnOnce(&Sequential, &Path)) -> Served {
    let repo = tempfile::tempdir().unwrap();
    write(&model, repo.path());
    std::fs::write(repo.path().join("mlp/config.toml"), config).unwrap();
    let options = ServeOptions {
        repository: repo.path().to_path_buf(),
        http: "127.0.0.1:0".parse().unwrap(),
        grpc: Some("127.0.0.1:0".parse().unwrap()),
        poll: None,
        import: kiln::onnx::ImportOptions {
            optimize: Some(kiln::onnx::optimize()),
            ..Default::default()
        },
        exit_on_error: false,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        serve_until(&options, |a| tx.send(a).unwrap(), async {
            let _ = stopped.await;
        })
    });
    let bound = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server starts");
    Served {
        addr: bound.http,
        grpc: bound.grpc.expect("gRPC was asked for"),
        model,
        stop: Some(stop),
        thread: Some(thread),
        _repo: repo,
    }
}

/// An HTTP answer: status, headers (names lowercased), body.
pub type HttpAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.1 request and its answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    receive(send(addr, method, path, headers, body))
}

/// Sends one HTTP/1.1 request (the connection closes after its answer); read it with `receive`.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s
}

/// The answer on a connection `send` wrote a request to: (status, headers lowercased, body).
pub fn receive(mut s: TcpStream) -> HttpAnswer {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + n]);
        b = &b[line_end + 2 + n + 2..];
    }
}

pub fn post_json(addr: SocketAddr, path: &str, v: &Value) -> (u16, Value) {
    let (status, _, body) = request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        v.to_string().as_bytes(),
    );
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub fn eager(model: &Sequential, rows: &[f32]) -> Vec<f32> {
    let n = rows.len() / 4;
    no_grad(|| model.forward(&Tensor::from_vec(rows.to_vec(), [n, 4]))).to_vec::<f32>()
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// A seeded xorshift generator: each call gives a number below its argument.
pub fn below(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed;
    move |n| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    }
}

//! The server under more load than it takes: a full request queue answers 503 with
//! Retry-After at once, and stopping the server (SIGTERM's path) first answers every request
//! already accepted, then exits cleanly.

mod common;

use common::*;
use kiln::prelude::*;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

/// A model slow enough (≈10 ms a request of 256 rows on 2 cores) that requests pile up.
fn slow_model() -> Sequential {
    manual_seed(3);
    Sequential::new()
        .append(Linear::new(1024, 1024))
        .append(ReLU::new())
        .append(Linear::new(1024, 1024))
        .append(ReLU::new())
        .append(Linear::new(1024, 4))
}

const ROWS: usize = 256;

/// Sends a request of ROWS rows as binary tensor data; `receive` reads its answer.
fn send_slow(addr: SocketAddr) -> std::net::TcpStream {
    let header = json!({"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [ROWS, 1024],
                                    "parameters": {"binary_data_size": ROWS * 1024 * 4}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend((0..ROWS * 1024).flat_map(|i| ((i % 7) as f32 * 0.1).to_le_bytes()));
    let len = header.len().to_string();
    send(
        addr,
        "POST",
        "/v2/models/mlp/infer",
        &[("Inference-Header-Content-Length", &len)],
        &body,
    )
}

fn slow_request(addr: SocketAddr) -> HttpAnswer {
    receive(send_slow(addr))
}

/// Sends `n` requests at once, each on its own thread; their statuses and headers.
fn burst(addr: SocketAddr, n: usize) -> Vec<HttpAnswer> {
    let threads: Vec<_> = (0..n)
        .map(|_| std::thread::spawn(move || slow_request(addr)))
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn a_full_queue_answers_503_with_retry_after_at_once() {
    // No batching, one worker, room for one waiting request.
    let s = start_model(
        slow_model(),
        1024,
        "max_batch_size = 0\nmax_queue_size = 1\n",
    );
    let answers = burst(s.addr, 16);
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(
        ok + refused.len(),
        16,
        "only 200 and 503: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(ok >= 1, "the worker ran requests");
    assert!(
        !refused.is_empty(),
        "16 requests at once overflow a queue of 1"
    );
    for (_, headers, body) in refused {
        assert!(
            headers.iter().any(|(k, v)| k == "retry-after" && v == "1"),
            "{headers:?}"
        );
        let message = String::from_utf8_lossy(body);
        assert!(message.contains("queue is full"), "{message}");
    }
    // Once the burst is over the model serves again.
    assert_eq!(slow_request(s.addr).0, 200);
}

#[test]
fn stopping_answers_the_requests_in_flight_then_exits_cleanly() {
    let mut s = start_model(slow_model(), 1024, "max_batch_size = 0\n");
    let addr = s.addr;
    // 12 requests sent (≈120 ms of work for the one worker), then the server is stopped
    // while most of them wait.
    let sent: Vec<_> = (0..12).map(|_| send_slow(addr)).collect();
    std::thread::sleep(Duration::from_millis(30));
    let stopping = std::time::Instant::now();
    assert_eq!(s.shut_down(), Ok(()), "the server exits without an error");
    let drained = stopping.elapsed();
    let statuses: Vec<u16> = sent.into_iter().map(|c| receive(c).0).collect();
    assert_eq!(statuses, [200; 12], "every accepted request was answered");
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "no longer listening"
    );
    eprintln!("stopped after draining for {drained:?}");
}

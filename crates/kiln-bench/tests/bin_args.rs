//! The benchmark tools refuse malformed arguments with a message and exit 1: no panic.

use std::process::Command;

fn refused(bin: &str, args: &[&str], what: &str) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(
        stderr.contains(what),
        "{args:?}: expected {what:?} in {stderr}"
    );
}

#[test]
fn serve_bench_refuses_malformed_arguments() {
    let bin = env!("CARGO_BIN_EXE_serve_bench");
    let load = |extra: &[&str]| {
        let mut a = vec!["grpc-load", "--addr", "127.0.0.1:1", "--model", "mlp"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    refused(bin, &[], "usage");
    refused(bin, &["models"], "--out");
    let ok = ["--shape", "1,784", "--concurrency", "1", "--seconds", "1"];
    for (flag, bad, what) in [
        ("--seconds", "-1", "--seconds"),
        ("--seconds", "nan", "--seconds"),
        ("--seconds", "1e400", "--seconds"),
        ("--concurrency", "0", "--concurrency"),
        ("--concurrency", "1e9", "--concurrency"),
        ("--concurrency", "x", "--concurrency"),
        ("--shape", "1,-784", "--shape"),
        ("--shape", "1,x", "--shape"),
        ("--shape", "100000,100000", "--shape"),
    ] {
        let mut extra = ok.to_vec();
        let at = extra.iter().position(|a| *a == flag).unwrap();
        extra[at + 1] = bad;
        let args = load(&extra);
        refused(
            bin,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            what,
        );
    }
    // Well-formed, but nothing listens there: a connection error, not a panic.
    let args = load(&ok);
    refused(
        bin,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "connecting to 127.0.0.1:1",
    );
}

#[test]
fn onnx_bench_refuses_malformed_arguments() {
    let bin = env!("CARGO_BIN_EXE_onnx_bench");
    refused(bin, &[], "usage");
    refused(bin, &["export"], "--out");
    refused(bin, &["time", "--model", "mlp"], "--batch");
    refused(bin, &["time", "--model", "mlp", "--batch", "0"], "--batch");
    refused(bin, &["time", "--model", "mlp", "--batch", "-3"], "--batch");
    refused(
        bin,
        &["time", "--model", "resnet", "--batch", "1"],
        "unknown model",
    );
}

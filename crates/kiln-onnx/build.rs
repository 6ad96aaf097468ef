//! Generates ONNX's protobuf types from the vendored `proto/onnx.proto` (ONNX 1.23.2). `protox`
//! parses it in Rust, so building needs no `protoc` binary (none is installed or downloaded).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/onnx.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}

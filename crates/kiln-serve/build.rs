//! Generates the Open Inference Protocol's gRPC types and service from the vendored
//! `proto/open_inference_grpc.proto`. `protox` parses it in Rust, so building needs no `protoc`
//! binary (none is installed or downloaded); `tonic-prost-build` writes the code to OUT_DIR.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/open_inference_grpc.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

//! Compiles the vendored ONNX schema with protox (pure Rust, no system protoc).
use std::io::Result;

fn main() -> Result<()> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["proto/onnx.proto"], ["proto"]).map_err(std::io::Error::other)?;
    prost_build::Config::new()
        .bytes([".onnx.TensorProto.raw_data"])
        .compile_fds(fds)
}

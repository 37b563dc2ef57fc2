//! The hostile models' helpers shared by tests/it/hostile.rs and tests/it/limits.rs: writing generated
//! bytes, running the binary on them, a model keeping a weight in external data.

use prost::Message;
use se_inject::onnx::proto::tensor_proto::DataLocation;
use se_inject::onnx::proto::StringStringEntryProto;
use se_inject::onnx::tensor::ElemType;
use se_inject::testutil::residual_model;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Writes `bytes` to `dir/name`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs the binary on `model`, writing `out.onnx` beside it, with `extra` flags.
pub fn run_on(model: &Path, extra: &[&str]) -> Output {
    let out = model.with_file_name("out.onnx");
    let mut args = vec![model.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    super::run(args)
}

/// The residual model with its first weight in the external data file `location` (written
/// beside it as `w.data`), at `offset` for `length` bytes: `ext.onnx`.
pub fn external_model(dir: &Path, location: &str, offset: u64, length: u64) -> PathBuf {
    let mut m = residual_model(ElemType::FLOAT);
    let w = &mut m.graph.as_mut().unwrap().initializer[0];
    let raw = w.raw_data.take().unwrap();
    std::fs::write(dir.join("w.data"), &raw).unwrap();
    let e = |k: &str, v: String| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v),
    };
    w.external_data = vec![
        e("location", location.into()),
        e("offset", offset.to_string()),
        e("length", length.to_string()),
    ];
    w.data_location = Some(DataLocation::External as i32);
    write(dir, "ext.onnx", &m.encode_to_vec())
}

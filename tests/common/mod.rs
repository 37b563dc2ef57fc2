//! Helpers shared by the integration tests: fixture paths, running the binary, copying fixtures
//! into temporary folders (fixtures/ itself is never written).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The residual fixtures (each exported as `_ts` and `_dynamo`).
pub const RESIDUAL: [&str; 3] = ["resnet_basic", "resnet_bottleneck", "resnext_tiny"];

/// The committed fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `fixtures/<name>.onnx`.
pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(format!("{name}.onnx"))
}

/// `fixtures/<name>.onnx.data`.
pub fn fixture_data(name: &str) -> PathBuf {
    fixtures().join(format!("{name}.onnx.data"))
}

/// Copies `<name>.onnx` (and `<name>.onnx.data` when it exists) into `dir`; returns the model path.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let to = dir.join(format!("{name}.onnx"));
    std::fs::copy(fixture(name), &to).expect("copy fixture");
    let data = fixture_data(name);
    if data.exists() {
        std::fs::copy(&data, dir.join(format!("{name}.onnx.data"))).expect("copy fixture data");
    }
    to
}

/// Runs the binary with `args` in `cwd` (the crate root when None).
pub fn run_in<I, S>(cwd: Option<&Path>, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_se-inject"));
    cmd.args(args);
    cmd.current_dir(cwd.unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR"))));
    cmd.output().expect("run se-inject")
}

/// Runs the binary with `args` in the crate root.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_in(None, args)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit code 0 and parses stdout as JSON.
pub fn json_ok(o: &Output) -> serde_json::Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "expected success\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(o)))
}

/// The sorted names of the files in `dir`.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

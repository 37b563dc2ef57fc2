//! Helpers shared by the integration tests: fixture paths, running the binary, copying fixtures
//! into temporary folders (fixtures/ itself is never written).

#![allow(dead_code)]

pub mod hostile;

use std::ffi::{OsStr, OsString};
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

/// The data file written beside the output `out`: the one file every external tensor of `out`
/// names, asserted to be there, to be named as an output's data file is, and to be named by the
/// model file's fingerprint: `<out>.<16 hex digits>.data`, rapidhash v3 (seed 0) of the model
/// file's bytes with every location left empty.
pub fn data_file_of(out: &Path) -> PathBuf {
    use prost::Message;
    let found = se_inject::onnx::io::data_files_beside(out);
    let bytes = std::fs::read(out).expect("read the model");
    let mut proto = se_inject::onnx::ModelProto::decode(bytes.as_slice()).expect("a model");
    let mut names: Vec<String> = Vec::new();
    let locations = proto
        .graph
        .iter_mut()
        .flat_map(|g| g.initializer.iter_mut())
        .flat_map(|t| t.external_data.iter_mut())
        .filter(|e| e.key.as_deref() == Some("location"));
    for e in locations {
        names.extend(e.value.take());
        e.value = Some(String::new());
    }
    names.dedup();
    assert_eq!(names.len(), 1, "one data file named by '{}'", out.display());
    let path = out.with_file_name(&names[0]);
    assert!(found.contains(&path), "'{}' is there", path.display());
    let secrets = rapidhash::v3::RapidSecrets::seed(0);
    let fingerprint = rapidhash::v3::rapidhash_v3_seeded(&proto.encode_to_vec(), &secrets);
    let named = se_inject::onnx::io::data_path_for(out, fingerprint);
    assert_eq!(
        path, named,
        "the data file is named by the model's fingerprint"
    );
    named
}

/// The file name of [`data_file_of`] `out`.
pub fn data_name_of(out: &Path) -> String {
    let path = data_file_of(out);
    let name = path.file_name().expect("a file name");
    name.to_string_lossy().into_owned()
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

/// A command line: `model`, then `-o out` when given, then `args`.
fn line(model: &OsStr, out: Option<&Path>, args: &[&str]) -> Vec<OsString> {
    let mut line = vec![model.to_os_string()];
    if let Some(out) = out {
        line.extend(["-o".into(), out.as_os_str().to_os_string()]);
    }
    line.extend(args.iter().map(OsString::from));
    line
}

/// Runs the binary on `model` with `args` in `cwd` (the crate root when None).
pub fn run_model_in(cwd: Option<&Path>, model: impl AsRef<OsStr>, args: &[&str]) -> Output {
    run_in(cwd, line(model.as_ref(), None, args))
}

/// Runs the binary on `model` with `args` in the crate root.
pub fn run_model(model: impl AsRef<OsStr>, args: &[&str]) -> Output {
    run_model_in(None, model, args)
}

/// Runs the binary on `model`, writing `out`, with `args`.
pub fn run_to(model: impl AsRef<OsStr>, out: &Path, args: &[&str]) -> Output {
    run(line(model.as_ref(), Some(out), args))
}

/// Runs the binary on `model`, writing `out` without validating in tract, with `args`.
pub fn run_unvalidated(model: impl AsRef<OsStr>, out: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--no-validate"];
    all.extend_from_slice(args);
    run_to(model, out, &all)
}

/// The JSON report of a run on `model` with `args` in `cwd` (the crate root when None);
/// asserts exit 0.
pub fn json_in(cwd: Option<&Path>, model: impl AsRef<OsStr>, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    json_ok(&run_model_in(cwd, model, &all))
}

/// The JSON report of a run on `model` with `args`; asserts exit 0.
pub fn json(model: impl AsRef<OsStr>, args: &[&str]) -> serde_json::Value {
    json_in(None, model, args)
}

/// The JSON report of a run on `model` writing `out`, with `args`; asserts exit 0.
pub fn json_to(model: impl AsRef<OsStr>, out: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    json_ok(&run_to(model, out, &all))
}

/// The JSON report of a run on `model` writing `out` without validating in tract, with `args`;
/// asserts exit 0.
pub fn json_unvalidated(model: impl AsRef<OsStr>, out: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--no-validate"];
    all.extend_from_slice(args);
    json_to(model, out, &all)
}

/// The JSON parameter report (`--report params`, nothing written) on `model` with `args`.
pub fn params_report(model: impl AsRef<OsStr>, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--report", "params"];
    all.extend_from_slice(args);
    json(model, &all)
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

/// The unsigned integer at `key` of a JSON object.
pub fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("'{key}' is not an unsigned integer in {v}"))
}

/// The array at `key` of a JSON object.
pub fn arr<'a>(v: &'a serde_json::Value, key: &str) -> &'a Vec<serde_json::Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("'{key}' is not an array in {v}"))
}

/// The number at `key` of a JSON object.
pub fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("'{key}' is not a number in {v}"))
}

/// Asserts a failed run: exit 1, exactly one stderr line starting `se-inject: error:` that
/// contains every string of `needles`, no panic. `what` labels the failure. Returns the line.
pub fn assert_error_in(o: &Output, needles: &[&str], what: &str) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what}: expected exit 1\nstdout:\n{}\nstderr:\n{err}",
        stdout(o)
    );
    assert!(!err.contains("panicked"), "{what}: panic on stderr:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one stderr line, got:\n{err}"
    );
    assert!(
        lines[0].starts_with("se-inject: error:"),
        "{what}: stderr line does not start with 'se-inject: error:': {}",
        lines[0]
    );
    for n in needles {
        assert!(
            lines[0].contains(n),
            "{what}: stderr does not name '{n}': {}",
            lines[0]
        );
    }
    lines[0].to_string()
}

/// [`assert_error_in`] without a label.
pub fn assert_error(o: &Output, needles: &[&str]) -> String {
    assert_error_in(o, needles, "")
}

/// The float initializers (FLOAT, FLOAT16, DOUBLE, BFLOAT16) of a graph.
pub fn float_initializers(
    graph: &se_inject::onnx::GraphProto,
) -> impl Iterator<Item = &se_inject::onnx::TensorProto> {
    graph
        .initializer
        .iter()
        .filter(|t| matches!(t.data_type, Some(1 | 10 | 11 | 16)))
}

/// Whether every float initializer of a graph is FLOAT16.
pub fn all_float16(graph: &se_inject::onnx::GraphProto) -> bool {
    float_initializers(graph).all(|t| t.data_type == Some(10))
}

/// Elements of the float initializers of a graph, counted independently of the tool's report.
pub fn float_params(graph: &se_inject::onnx::GraphProto) -> u64 {
    float_initializers(graph)
        .map(|t| t.dims.iter().product::<i64>() as u64)
        .sum()
}

/// Parameters of one SE block on C channels with hidden width h (with biases).
pub fn se(c: u64, h: u64) -> u64 {
    2 * c * h + h + c
}

/// Where SE lands in one block at one position.
#[derive(Debug, Clone, Copy)]
pub enum Land {
    /// Injected on a tensor of C channels with hidden width h.
    At(u64, u64),
    /// Skipped; the reason contains this text.
    Skip(&'static str),
}

impl Land {
    /// Parameters SE adds in this block.
    pub fn added(self) -> u64 {
        match self {
            Land::At(c, h) => se(c, h),
            Land::Skip(_) => 0,
        }
    }
}

/// Parameters SE adds over these blocks.
pub fn added(lands: &[Land]) -> u64 {
    lands.iter().map(|l| l.added()).sum()
}

/// One block row of a JSON report against where SE lands in it; `channels`: the block's output
/// channels, which a skipped block reports.
pub fn check_landing(b: &serde_json::Value, land: Land, channels: u64, what: &str) {
    use serde_json::Value;
    match land {
        Land::At(c, h) => {
            assert_eq!(b["injected"], Value::Bool(true), "{what}");
            assert!(b["skipped"].is_null(), "{what}");
            assert_eq!((u(b, "channels"), u(b, "hidden")), (c, h), "{what}");
            assert_eq!(u(b, "added_params"), se(c, h), "{what}");
        }
        Land::Skip(reason) => {
            assert_eq!(b["injected"], Value::Bool(false), "{what}");
            let why = b["skipped"].as_str().unwrap_or("");
            assert!(why.contains(reason), "{what}: skipped '{why}'");
            assert_eq!(u(b, "channels"), channels, "{what}");
            assert_eq!(u(b, "hidden"), 0, "{what}");
            assert_eq!(u(b, "added_params"), 0, "{what}");
        }
    }
}

/// Of `lands` (one per block, the blocks in stages `stages`), those in stage `index`: how many
/// get SE, and the paper's (2/16)·N·C² for them on `channels`.
pub fn stage_landing(
    stages: impl IntoIterator<Item = u64>,
    lands: &[Land],
    index: u64,
    channels: u64,
) -> (Vec<Land>, u64, f64) {
    let mine: Vec<Land> = stages
        .into_iter()
        .zip(lands)
        .filter(|(s, _)| *s == index)
        .map(|(_, l)| *l)
        .collect();
    let injected = mine.iter().filter(|l| matches!(l, Land::At(..))).count() as u64;
    let formula = (2 * injected * channels * channels) as f64 / 16.0;
    (mine, injected, formula)
}

/// A small tmpfs mounted at `dir` with `options` (`size=120k`, `ro,size=64k`), unmounted when the
/// guard is dropped, however the test ends; None where mounting is refused (not root).
pub fn mount_tmpfs(dir: &Path, options: &str) -> Option<Mounted> {
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    mounted.then(|| Mounted(dir.to_path_buf()))
}

/// A mounted file system, unmounted when dropped.
pub struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

//! End-to-end tests of the `se-inject` binary on the committed fixtures.
//!
//! Every expected number is derived by hand from the architectures in fixtures/generate.py:
//!
//! - resnet_basic: BasicBlock stages N = [2, 1, 2], C = [8, 16, 32]; projection shortcut in the
//!   first block of stages 2 and 3. 39,450 float parameters.
//! - resnet_bottleneck: Bottleneck (expansion 4) stages N = [2, 2, 1], widths [4, 8, 16],
//!   C = [16, 32, 64]; projection in the first block of every stage. 10,314 float parameters.
//! - resnext_tiny: as the bottleneck net with groups = 2, N = [1, 1, 1], widths [8, 16, 32],
//!   C = [16, 32, 64]. 13,978 float parameters.
//! - plain_cnn: no residual block; conv+ReLU plain blocks split at the MaxPool, N = [2, 1],
//!   C = [8, 16]. 2,146 float parameters.
//!
//! Hidden width h = max(1, round(C / r)) (half up); one SE block adds 2·C·h weights plus h + C
//! biases; the paper's formula per stage is (2/r)·N·C² = 2·N·C²/r.

mod cost;
mod errors;
mod expect;
mod options;
mod output;
mod paths;
mod schema;
mod select;

use crate::common::*;
use expect::*;
use serde_json::Value;
use std::path::Path;

// ------------------------------------------------------------------------------------------------
// JSON helpers

fn stages_of(j: &Value) -> Vec<Stage> {
    arr(j, "stages")
        .iter()
        .map(|s| Stage {
            index: u(s, "index"),
            blocks: u(s, "blocks"),
            channels: u(s, "channels"),
            formula: f(s, "formula_params"),
            added: u(s, "added_params"),
        })
        .collect()
}

fn blocks_of(j: &Value) -> Vec<Block> {
    arr(j, "blocks")
        .iter()
        .map(|b| {
            (
                u(b, "stage"),
                u(b, "channels"),
                u(b, "hidden"),
                b["projection"].as_bool().expect("projection bool"),
                u(b, "added_params"),
            )
        })
        .collect()
}

/// Checks a report against the expectations: stage rows, block rows, totals.
fn check_report(j: &Value, e: &Expect, what: &str) {
    assert_eq!(stages_of(j), e.stages, "{what}: stages");
    assert_eq!(blocks_of(j), e.blocks, "{what}: blocks");
    assert_eq!(f(j, "formula_params"), e.formula, "{what}: formula_params");
    assert_eq!(u(j, "added_params"), e.added, "{what}: added_params");
    assert_eq!(
        u(j, "params_before"),
        e.params_before,
        "{what}: params_before"
    );
    assert_eq!(
        u(j, "params_after"),
        e.params_before + e.added,
        "{what}: params_after"
    );
    for b in arr(j, "blocks") {
        assert_eq!(b["injected"], Value::Bool(true), "{what}: block {b}");
        assert!(b["skipped"].is_null(), "{what}: block {b}");
        assert_eq!(b["existing_se"], Value::Bool(false), "{what}: block {b}");
    }
    for s in arr(j, "stages") {
        assert_eq!(s["kind"], "residual", "{what}: stage {s}");
        assert_eq!(u(s, "injected"), u(s, "blocks"), "{what}: stage {s}");
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Float parameters of a saved model, counted independently of the tool's report.
fn float_params_on_disk(path: &Path) -> u64 {
    let m = se_inject::onnx::load(path).expect("load written model");
    float_params(m.graph())
}

// ------------------------------------------------------------------------------------------------
// 1. Detection and the parameter report

/// Report only (r = 16, json) on every residual fixture, both exporters: exact stage and block
/// lists, totals, nothing written; the two exports of one net agree.
#[test]
fn report_params_on_every_residual_fixture() {
    let dir = tempfile::tempdir().unwrap();
    for net in RESIDUAL {
        let mut reports = Vec::new();
        for kind in ["ts", "dynamo"] {
            let name = format!("{net}_{kind}");
            copy_fixture(&name, dir.path());
            let before = listing(dir.path());
            let args = ["-r", "16", "--report", "params"];
            let j = json_in(Some(dir.path()), format!("{name}.onnx"), &args);
            check_report(&j, expect_r16(net), &name);
            assert_eq!(u(&j, "ratio"), 16);
            assert_eq!(j["position"], "standard");
            assert_eq!(j["bias"], Value::Bool(true));
            assert!(j["output"].is_null(), "{name}: output {}", j["output"]);
            assert!(j["validation"].is_null(), "{name}: validation ran");
            assert_eq!(listing(dir.path()), before, "{name}: a file was written");
            reports.push(j);
        }
        // The two exporters give the same stages, blocks and numbers.
        let (ts, dy) = (&reports[0], &reports[1]);
        assert_eq!(stages_of(ts), stages_of(dy), "{net}: ts vs dynamo stages");
        assert_eq!(blocks_of(ts), blocks_of(dy), "{net}: ts vs dynamo blocks");
        for k in [
            "formula_params",
            "added_params",
            "params_before",
            "params_after",
        ] {
            assert_eq!(ts[k], dy[k], "{net}: ts vs dynamo {k}");
        }
    }
}

/// r = 4 on resnet_basic: h = 8/4 = 2, 16/4 = 4, 32/4 = 8.
#[test]
fn report_params_ratio_4() {
    let j = params_report(fixture("resnet_basic_ts"), &["-r", "4"]);
    check_report(&j, &RESNET_BASIC_R4, "resnet_basic_ts r=4");
    assert_eq!(u(&j, "ratio"), 4);
}

/// --no-bias on resnet_basic (dynamo): only the 2·C·h weights; the formula is unchanged.
#[test]
fn report_params_no_bias() {
    let j = params_report(fixture("resnet_basic_dynamo"), &["--no-bias"]);
    check_report(&j, &RESNET_BASIC_NO_BIAS, "resnet_basic_dynamo --no-bias");
    assert_eq!(j["bias"], Value::Bool(false));
}

// ------------------------------------------------------------------------------------------------
// 2. The splice

/// Writes `fixtures/<name>` with -o into a temp folder, validating in tract, and checks the
/// numbers, the files written, and that the input is untouched.
fn check_splice(name: &str, net: &str, external: bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let input = fixture(name);
    let input_data = fixture_data(name);
    let in_bytes = read(&input);
    let in_data_bytes = external.then(|| read(&input_data));

    let j = json_to(&input, &out, &[]);
    check_report(&j, expect_r16(net), name);
    let v = &j["validation"];
    assert_eq!(v["runtime"], "tract", "{name}: {v}");
    assert_eq!(v["ok"], Value::Bool(true), "{name}: {v}");
    assert!(v["reason"].is_null(), "{name}: {v}");
    assert_eq!(
        v["output_shapes"],
        serde_json::json!([[1, 10]]),
        "{name}: {v}"
    );
    assert_eq!(j["output"].as_str(), Some(out.to_str().unwrap()), "{name}");

    // The files written, and nothing else (no temporary leftovers).
    let expected_files: Vec<String> = if external {
        let data = data_file_of(&out);
        assert_eq!(j["data_file"].as_str(), data.to_str(), "{name}");
        vec!["out.onnx".into(), data_name_of(&out)]
    } else {
        assert!(j["data_file"].is_null(), "{name}");
        vec!["out.onnx".into()]
    };
    assert_eq!(listing(dir.path()), expected_files, "{name}: files written");
    check_written(name, net, external, &out, u(&j, "params_after"));

    // The input is untouched.
    assert_eq!(read(&input), in_bytes, "{name}: input .onnx changed");
    if let Some(b) = in_data_bytes {
        assert_eq!(read(&input_data), b, "{name}: input .onnx.data changed");
    }
}

/// The written model, read back: same storage kind, IR and opsets kept, and the float
/// parameters on disk are what the report says (`params_after`).
fn check_written(name: &str, net: &str, external: bool, out: &Path, params_after: u64) {
    let input = fixture(name);
    let written = se_inject::onnx::load(out).expect("load output");
    let original = se_inject::onnx::load(&input).expect("load input");
    let storage = if external {
        se_inject::onnx::Storage::External
    } else {
        se_inject::onnx::Storage::Inline
    };
    assert_eq!(written.storage, storage, "{name}: output storage");
    assert_eq!(
        written.proto.ir_version, original.proto.ir_version,
        "{name}"
    );
    assert_eq!(
        written.proto.opset_import, original.proto.opset_import,
        "{name}"
    );
    assert_eq!(
        float_params_on_disk(out),
        params_after,
        "{name}: float parameters in the written file"
    );
    assert_eq!(float_params_on_disk(&input), expect_r16(net).params_before);
}

#[test]
fn splice_resnet_basic_ts() {
    check_splice("resnet_basic_ts", "resnet_basic", false);
}

#[test]
fn splice_resnet_basic_dynamo() {
    check_splice("resnet_basic_dynamo", "resnet_basic", true);
}

#[test]
fn splice_resnet_bottleneck_ts() {
    check_splice("resnet_bottleneck_ts", "resnet_bottleneck", false);
}

#[test]
fn splice_resnet_bottleneck_dynamo() {
    check_splice("resnet_bottleneck_dynamo", "resnet_bottleneck", true);
}

#[test]
fn splice_resnext_tiny_ts() {
    check_splice("resnext_tiny_ts", "resnext_tiny", false);
}

#[test]
fn splice_resnext_tiny_dynamo() {
    check_splice("resnext_tiny_dynamo", "resnext_tiny", true);
}

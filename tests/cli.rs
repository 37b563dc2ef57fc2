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

// The expected numbers keep their `·1` factors (h = 1) so the arithmetic reads as derived.
#![allow(clippy::identity_op)]

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

// ------------------------------------------------------------------------------------------------
// Expected numbers, by hand

/// One expected stage row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stage {
    index: u64,
    blocks: u64,
    channels: u64,
    formula: f64,
    added: u64,
}

/// A stage row of N blocks on C channels at ratio r, whose formula is the paper's (2/r)·N·C²
/// = 2·N·C²/r: (index, N, C, r, added).
const fn stage(index: u64, n: u64, c: u64, r: u64, added: u64) -> Stage {
    Stage {
        index,
        blocks: n,
        channels: c,
        formula: (2 * n * c * c) as f64 / r as f64,
        added,
    }
}

/// One expected block row: (stage, channels, hidden, projection, added_params).
type Block = (u64, u64, u64, bool, u64);

/// The expected report of one run.
struct Expect {
    params_before: u64,
    stages: &'static [Stage],
    blocks: &'static [Block],
    formula: f64,
    added: u64,
}

/// resnet_basic, r = 16, with biases.
const RESNET_BASIC_R16: Expect = Expect {
    params_before: 39_450,
    stages: &[
        // C = 8: h = max(1, round(0.5)) = 1; formula 16, added 50
        stage(1, 2, 8, 16, 2 * (2 * 8 * 1 + 1 + 8)),
        // C = 16: h = 1; formula 32, added 49
        stage(2, 1, 16, 16, 2 * 16 * 1 + 1 + 16),
        // C = 32: h = 2; formula 256, added 324
        stage(3, 2, 32, 16, 2 * (2 * 32 * 2 + 2 + 32)),
    ],
    blocks: &[
        (1, 8, 1, false, 2 * 8 * 1 + 1 + 8),
        (1, 8, 1, false, 2 * 8 * 1 + 1 + 8),
        (2, 16, 1, true, 2 * 16 * 1 + 1 + 16),
        (3, 32, 2, true, 2 * 32 * 2 + 2 + 32),
        (3, 32, 2, false, 2 * 32 * 2 + 2 + 32),
    ],
    formula: 16.0 + 32.0 + 256.0,
    added: 50 + 49 + 324,
};

/// resnet_bottleneck, r = 16, with biases.
const RESNET_BOTTLENECK_R16: Expect = Expect {
    params_before: 10_314,
    stages: &[
        // C = 16: h = 1; formula 64, added 98
        stage(1, 2, 16, 16, 2 * (2 * 16 * 1 + 1 + 16)),
        // C = 32: h = 2; formula 256, added 324
        stage(2, 2, 32, 16, 2 * (2 * 32 * 2 + 2 + 32)),
        // C = 64: h = 4; formula 512, added 580
        stage(3, 1, 64, 16, 2 * 64 * 4 + 4 + 64),
    ],
    blocks: &[
        (1, 16, 1, true, 2 * 16 * 1 + 1 + 16),
        (1, 16, 1, false, 2 * 16 * 1 + 1 + 16),
        (2, 32, 2, true, 2 * 32 * 2 + 2 + 32),
        (2, 32, 2, false, 2 * 32 * 2 + 2 + 32),
        (3, 64, 4, true, 2 * 64 * 4 + 4 + 64),
    ],
    formula: 64.0 + 256.0 + 512.0,
    added: 98 + 324 + 580,
};

/// resnext_tiny, r = 16, with biases.
const RESNEXT_TINY_R16: Expect = Expect {
    params_before: 13_978,
    stages: &[
        // formula 32, added 49
        stage(1, 1, 16, 16, 2 * 16 * 1 + 1 + 16),
        // formula 128, added 162
        stage(2, 1, 32, 16, 2 * 32 * 2 + 2 + 32),
        // formula 512, added 580
        stage(3, 1, 64, 16, 2 * 64 * 4 + 4 + 64),
    ],
    blocks: &[
        (1, 16, 1, true, 2 * 16 * 1 + 1 + 16),
        (2, 32, 2, true, 2 * 32 * 2 + 2 + 32),
        (3, 64, 4, true, 2 * 64 * 4 + 4 + 64),
    ],
    formula: 32.0 + 128.0 + 512.0,
    added: 49 + 162 + 580,
};

/// r = 4 on resnet_basic: h = 8/4 = 2, 16/4 = 4, 32/4 = 8.
const RESNET_BASIC_R4: Expect = Expect {
    params_before: 39_450,
    stages: &[
        // formula 64, added 84
        stage(1, 2, 8, 4, 2 * (2 * 8 * 2 + 2 + 8)),
        // formula 128, added 148
        stage(2, 1, 16, 4, 2 * 16 * 4 + 4 + 16),
        // formula 1024, added 1104
        stage(3, 2, 32, 4, 2 * (2 * 32 * 8 + 8 + 32)),
    ],
    blocks: &[
        (1, 8, 2, false, 2 * 8 * 2 + 2 + 8),
        (1, 8, 2, false, 2 * 8 * 2 + 2 + 8),
        (2, 16, 4, true, 2 * 16 * 4 + 4 + 16),
        (3, 32, 8, true, 2 * 32 * 8 + 8 + 32),
        (3, 32, 8, false, 2 * 32 * 8 + 8 + 32),
    ],
    formula: 64.0 + 128.0 + 1024.0,
    added: 84 + 148 + 1104,
};

/// --no-bias on resnet_basic: only the 2·C·h weights; the formula is unchanged.
const RESNET_BASIC_NO_BIAS: Expect = Expect {
    params_before: 39_450,
    stages: &[
        // added 32
        stage(1, 2, 8, 16, 2 * (2 * 8 * 1)),
        // added 32
        stage(2, 1, 16, 16, 2 * 16 * 1),
        // added 256
        stage(3, 2, 32, 16, 2 * (2 * 32 * 2)),
    ],
    blocks: &[
        (1, 8, 1, false, 2 * 8 * 1),
        (1, 8, 1, false, 2 * 8 * 1),
        (2, 16, 1, true, 2 * 16 * 1),
        (3, 32, 2, true, 2 * 32 * 2),
        (3, 32, 2, false, 2 * 32 * 2),
    ],
    formula: 16.0 + 32.0 + 256.0,
    added: 32 + 32 + 256,
};

/// The residual fixtures' reports at r = 16, with biases, standard position.
const R16: [(&str, &Expect); 3] = [
    ("resnet_basic", &RESNET_BASIC_R16),
    ("resnet_bottleneck", &RESNET_BOTTLENECK_R16),
    ("resnext_tiny", &RESNEXT_TINY_R16),
];

/// r = 16, with biases, standard position.
fn expect_r16(net: &str) -> &'static Expect {
    R16.iter()
        .find(|(n, _)| *n == net)
        .map(|(_, e)| *e)
        .unwrap_or_else(|| panic!("no expectations for {net}"))
}

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

/// Asserts a usage error: exit 2, no panic.
fn assert_usage_error(args: &[&str]) {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?}: expected exit 2\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    assert!(
        !stderr(&o).is_empty(),
        "{args:?}: usage error without a message"
    );
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
        vec!["out.onnx".into(), "out.onnx.data".into()]
    } else {
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

// ------------------------------------------------------------------------------------------------
// 3. Initialisation

fn validation_of(name: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let j = json_to(fixture(name), &out, extra);
    let v = j["validation"].clone();
    assert_eq!(v["ok"], Value::Bool(true), "{name} {extra:?}: {v}");
    assert!(out.exists(), "{name} {extra:?}: nothing written");
    v
}

/// --init identity keeps the function: max |diff| <= 1e-4 · max(1, output scale).
#[test]
fn identity_init_keeps_the_function() {
    for name in [
        "resnet_basic_ts",
        "resnet_bottleneck_ts",
        "resnext_tiny_ts",
        "resnet_bottleneck_dynamo",
    ] {
        let v = validation_of(name, &["--init", "identity"]);
        let diff = f(&v, "max_abs_diff");
        let scale = f(&v, "output_scale");
        assert!(scale > 0.0, "{name}: output scale {scale}");
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{name}: identity init changed the output by {diff} (scale {scale})"
        );
    }
}

/// Random init changes the function (the SE blocks are live), and the model still runs.
#[test]
fn random_init_changes_the_output() {
    for name in ["resnet_basic_ts", "resnext_tiny_dynamo"] {
        let v = validation_of(name, &["--init", "random", "--seed", "3"]);
        let diff = f(&v, "max_abs_diff");
        assert!(diff > 0.0, "{name}: random init left the output unchanged");
    }
}

/// Every gate and squeeze keeps the function with --init identity.
#[test]
fn identity_init_with_every_gate_and_squeeze() {
    for (gate, squeeze) in [
        ("hard-sigmoid", "avg"),
        ("tanh", "max"),
        ("relu", "none"),
        ("sigmoid", "max"),
    ] {
        let v = validation_of(
            "resnet_basic_ts",
            &["--init", "identity", "--gate", gate, "--squeeze", squeeze],
        );
        let diff = f(&v, "max_abs_diff");
        let scale = f(&v, "output_scale");
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "gate {gate}, squeeze {squeeze}: diff {diff} (scale {scale})"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// 4. Determinism

/// Writes `fixtures/<name>` into `<dir>/<sub>/out.onnx` with the given seed; returns the bytes of
/// out.onnx and (when external) out.onnx.data.
fn spliced_bytes(name: &str, dir: &Path, sub: &str, seed: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let d = dir.join(sub);
    std::fs::create_dir(&d).unwrap();
    let out = d.join("out.onnx");
    let o = run_unvalidated(fixture(name), &out, &["--seed", seed]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let data = d.join("out.onnx.data");
    (read(&out), data.exists().then(|| read(&data)))
}

fn check_determinism(name: &str, external: bool) {
    let dir = tempfile::tempdir().unwrap();
    let a = spliced_bytes(name, dir.path(), "a", "7");
    let b = spliced_bytes(name, dir.path(), "b", "7");
    let c = spliced_bytes(name, dir.path(), "c", "8");
    assert_eq!(a.1.is_some(), external, "{name}: data file written?");
    assert!(a.0 == b.0, "{name}: same seed, different .onnx bytes");
    assert!(a.1 == b.1, "{name}: same seed, different .onnx.data bytes");
    if external {
        // The new weights go to the data file.
        assert!(a.1 != c.1, "{name}: another seed, same .onnx.data bytes");
    } else {
        assert!(a.0 != c.0, "{name}: another seed, same .onnx bytes");
    }
}

#[test]
fn same_seed_same_bytes_ts() {
    check_determinism("resnet_bottleneck_ts", false);
}

#[test]
fn same_seed_same_bytes_dynamo() {
    check_determinism("resnet_basic_dynamo", true);
}

// ------------------------------------------------------------------------------------------------
// 5. Stage selection

/// --stages 2 on resnet_basic: only stage 2's single block (C = 16, h = 1) gets SE.
#[test]
fn stages_2_injects_only_stage_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let j = json_unvalidated(fixture("resnet_basic_ts"), &out, &["--stages", "2"]);
    let stage2 = 2 * 16 * 1 + 1 + 16; // 49
    for b in arr(&j, "blocks") {
        if u(b, "stage") == 2 {
            assert_eq!(b["injected"], Value::Bool(true), "{b}");
            assert!(b["skipped"].is_null(), "{b}");
            assert_eq!(u(b, "added_params"), stage2, "{b}");
        } else {
            assert_eq!(b["injected"], Value::Bool(false), "{b}");
            assert_eq!(b["skipped"], "stage not selected", "{b}");
            assert_eq!(u(b, "added_params"), 0, "{b}");
        }
    }
    let injected: Vec<u64> = arr(&j, "stages").iter().map(|s| u(s, "injected")).collect();
    assert_eq!(injected, vec![0, 1, 0]);
    // Only stage 2's formula: 2·1·16²/16 = 32.
    assert_eq!(f(&j, "formula_params"), (2 * 16 * 16) as f64 / 16.0);
    assert_eq!(u(&j, "added_params"), stage2);
    assert_eq!(u(&j, "params_after"), 39_450 + stage2);
    assert_eq!(float_params_on_disk(&out), 39_450 + stage2);
}

/// --stages 1,3 on resnet_basic: stages 1 and 3 only.
#[test]
fn stages_1_and_3() {
    let j = params_report(fixture("resnet_basic_ts"), &["--stages", "1,3"]);
    // 2·2·8²/16 + 2·2·32²/16 = 16 + 256
    assert_eq!(f(&j, "formula_params"), 16.0 + 256.0);
    // 2·(2·8·1 + 1 + 8) + 2·(2·32·2 + 2 + 32) = 50 + 324
    assert_eq!(u(&j, "added_params"), 50 + 324);
    let injected: Vec<u64> = arr(&j, "stages").iter().map(|s| u(s, "injected")).collect();
    assert_eq!(injected, vec![2, 0, 2]);
}

/// A stage number past the last: exit 1, naming the stage and the count (resnet_basic has 3).
#[test]
fn stages_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let o = run_to(fixture("resnet_basic_ts"), &out, &["--stages", "7"]);
    assert_error(&o, &["7", "3 stage"]);
    assert!(!out.exists());
}

// ------------------------------------------------------------------------------------------------
// 6. Idempotence

/// Running on its own output stops (exit 1, "already present"); --force adds the same again.
#[test]
fn second_run_finds_existing_se() {
    for (name, net) in [
        ("resnet_basic_ts", "resnet_basic"),
        ("resnet_bottleneck_dynamo", "resnet_bottleneck"),
    ] {
        let e = expect_r16(net);
        let dir = tempfile::tempdir().unwrap();
        let once = dir.path().join("once.onnx");
        let twice = dir.path().join("twice.onnx");
        let o = run_unvalidated(fixture(name), &once, &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));

        let o = run_to(&once, &twice, &["--format", "json"]);
        assert_error(&o, &["already present", "once.onnx"]);
        assert!(!twice.exists(), "{name}: written although SE was present");

        let j = json_to(&once, &twice, &["--force"]);
        assert_eq!(u(&j, "params_before"), e.params_before + e.added, "{name}");
        assert_eq!(u(&j, "added_params"), e.added, "{name}");
        assert_eq!(
            u(&j, "params_after"),
            e.params_before + 2 * e.added,
            "{name}"
        );
        assert_eq!(stages_of(&j), e.stages, "{name}: stages after --force");
        for b in arr(&j, "blocks") {
            assert_eq!(b["existing_se"], Value::Bool(true), "{name}: {b}");
            assert_eq!(b["injected"], Value::Bool(true), "{name}: {b}");
        }
        assert_eq!(j["validation"]["ok"], Value::Bool(true), "{name}");
        assert!(twice.exists());
    }
}

// ------------------------------------------------------------------------------------------------
// 7. Bad input

/// Runs on `model` with -o into `dir`; asserts the error and that nothing was written.
fn bad_input(dir: &Path, model: &Path, needles: &[&str]) -> String {
    let out = dir.join("never.onnx");
    let o = run_to(model, &out, &[]);
    let line = assert_error(&o, needles);
    assert!(!out.exists(), "written despite the error: {line}");
    assert!(!dir.join("never.onnx.data").exists());
    line
}

#[test]
fn error_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    bad_input(
        dir.path(),
        &dir.path().join("nowhere.onnx"),
        &["nowhere.onnx"],
    );
}

#[test]
fn error_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.onnx");
    std::fs::write(&p, b"").unwrap();
    bad_input(dir.path(), &p, &["empty.onnx"]);
}

#[test]
fn error_text_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.onnx");
    std::fs::write(&p, "this is a text file, not a protobuf\nsecond line\n").unwrap();
    bad_input(dir.path(), &p, &["notes.onnx"]);
}

#[test]
fn error_truncated_model() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["resnet_basic_ts", "resnet_bottleneck_dynamo"] {
        let bytes = read(&fixture(name));
        let p = dir.path().join(format!("half_{name}.onnx"));
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        if name.ends_with("dynamo") {
            std::fs::copy(
                fixture_data(name),
                dir.path().join(format!("{name}.onnx.data")),
            )
            .unwrap();
        }
        bad_input(dir.path(), &p, &[&format!("half_{name}.onnx")]);
    }
}

#[test]
fn error_external_data_missing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("resnet_basic_dynamo.onnx");
    std::fs::copy(fixture("resnet_basic_dynamo"), &p).unwrap();
    bad_input(dir.path(), &p, &["resnet_basic_dynamo.onnx.data"]);
}

#[test]
fn error_external_data_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnet_bottleneck_dynamo", dir.path());
    let data = dir.path().join("resnet_bottleneck_dynamo.onnx.data");
    let bytes = read(&data);
    std::fs::write(&data, &bytes[..bytes.len() / 3]).unwrap();
    bad_input(dir.path(), &p, &["resnet_bottleneck_dynamo.onnx.data"]);
}

#[test]
fn error_external_data_empty() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnext_tiny_dynamo", dir.path());
    std::fs::write(dir.path().join("resnext_tiny_dynamo.onnx.data"), b"").unwrap();
    bad_input(dir.path(), &p, &["resnext_tiny_dynamo.onnx.data"]);
}

/// plain_cnn with its ReLUs cut out (each consumer reads the Conv directly): no residual
/// merge and no convolution with an activation, so no block at all. The error says so and lists
/// what the graph holds: 3 Conv, 1 MaxPool, ... and no Relu.
#[test]
fn error_no_block_at_all() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let mut m = se_inject::onnx::load(&fixture("plain_cnn_ts")).unwrap();
    let graph = m.proto.graph.as_mut().unwrap();
    let relus: Vec<(String, String)> = graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Relu"))
        .map(|n| (n.output[0].clone(), n.input[0].clone()))
        .collect();
    assert_eq!(relus.len(), 3, "plain_cnn has 3 ReLUs");
    graph.node.retain(|n| n.op_type.as_deref() != Some("Relu"));
    for n in graph.node.iter_mut() {
        for i in n.input.iter_mut() {
            if let Some((_, from)) = relus.iter().find(|(out, _)| out == i) {
                *i = from.clone();
            }
        }
    }
    let p = dir.path().join("no_relu.onnx");
    std::fs::write(&p, m.proto.encode_to_vec()).unwrap();
    let line = bad_input(dir.path(), &p, &["no_relu.onnx", "3 Conv", "MaxPool"]);
    let lower = line.to_lowercase();
    assert!(
        lower.contains("no block") || lower.contains("no residual block"),
        "{line}"
    );
    assert!(!line.contains("Relu"), "{line}");
    // The report alone fails the same way.
    let o = run_model_in(Some(dir.path()), "no_relu.onnx", &["--report", "params"]);
    assert_error(&o, &["no_relu.onnx", "3 Conv"]);
}

/// plain_cnn has no residual block: each conv + ReLU is a plain block (DESIGN.md: "For a plain
/// chain ... SE goes after that activation"), split into stages at the MaxPool:
/// conv 3→8, conv 8→8 | MaxPool | conv 8→16; N = [2, 1], C = [8, 16]. 2,146 parameters.
#[test]
fn plain_cnn_gets_se_after_each_activation() {
    for name in ["plain_cnn_ts", "plain_cnn_dynamo"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.onnx");
        let j = json_to(fixture(name), &out, &[]);
        let kinds: Vec<&str> = arr(&j, "stages")
            .iter()
            .map(|s| s["kind"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["plain", "plain"], "{name}");
        let by_hand = [
            // 2·2·8²/16 = 16; 2·(2·8·1 + 1 + 8) = 50
            stage(1, 2, 8, 16, 2 * (2 * 8 * 1 + 1 + 8)),
            // 2·16²/16 = 32; 2·16·1 + 1 + 16 = 49
            stage(2, 1, 16, 16, 2 * 16 * 1 + 1 + 16),
        ];
        assert_eq!(stages_of(&j), by_hand, "{name}");
        assert_eq!(f(&j, "formula_params"), 16.0 + 32.0, "{name}");
        assert_eq!(u(&j, "added_params"), 50 + 49, "{name}");
        assert_eq!(u(&j, "params_before"), 2_146, "{name}");
        assert_eq!(u(&j, "params_after"), 2_146 + 50 + 49, "{name}");
        assert_eq!(j["validation"]["ok"], Value::Bool(true), "{name}");
        assert_eq!(
            j["validation"]["output_shapes"],
            serde_json::json!([[1, 10]])
        );
        assert_eq!(float_params_on_disk(&out), 2_146 + 50 + 49, "{name}");
    }
}

/// The output may not be the input, however it is spelled.
#[test]
fn error_output_is_input() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("dir");
    std::fs::create_dir(&sub).unwrap();
    let p = copy_fixture("resnet_basic_ts", &sub);
    let before = read(&p);

    let o = run_to(&p, &p, &[]);
    assert_error(&o, &["resnet_basic_ts.onnx"]);

    let o = run_model_in(
        Some(dir.path()),
        "dir/resnet_basic_ts.onnx",
        &["-o", "./dir/../dir/resnet_basic_ts.onnx"],
    );
    assert_error(&o, &["resnet_basic_ts.onnx"]);

    let o = run_model_in(
        Some(&sub),
        "resnet_basic_ts.onnx",
        &["-o", "../dir/./resnet_basic_ts.onnx"],
    );
    assert_error(&o, &["resnet_basic_ts.onnx"]);

    assert_eq!(read(&p), before, "input changed");
    assert_eq!(listing(&sub), vec!["resnet_basic_ts.onnx".to_string()]);
}

/// Nor the input's external data file.
#[test]
fn error_output_is_input_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnet_basic_dynamo", dir.path());
    let data = dir.path().join("resnet_basic_dynamo.onnx.data");
    let (before, before_data) = (read(&p), read(&data));
    let model = "resnet_basic_dynamo.onnx";
    let o = run_model_in(
        Some(dir.path()),
        model,
        &["-o", "./resnet_basic_dynamo.onnx"],
    );
    assert_error(&o, &["resnet_basic_dynamo.onnx"]);
    let o = run_model_in(
        Some(dir.path()),
        model,
        &["-o", "resnet_basic_dynamo.onnx.data"],
    );
    assert_error(&o, &["resnet_basic_dynamo.onnx.data"]);
    assert_eq!(read(&p), before);
    assert_eq!(read(&data), before_data);
    assert_eq!(
        listing(dir.path()),
        vec![
            "resnet_basic_dynamo.onnx".to_string(),
            "resnet_basic_dynamo.onnx.data".to_string()
        ]
    );
}

/// A renamed model still reads `resnet_basic_dynamo.onnx.data`; an output named
/// `resnet_basic_dynamo.onnx` would write its data over that file, so it is refused.
#[test]
fn error_output_data_would_overwrite_input_data() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("renamed.onnx");
    let data = dir.path().join("resnet_basic_dynamo.onnx.data");
    std::fs::copy(fixture("resnet_basic_dynamo"), &model).unwrap();
    std::fs::copy(fixture_data("resnet_basic_dynamo"), &data).unwrap();
    let o = run_model_in(
        Some(dir.path()),
        "renamed.onnx",
        &["-o", "resnet_basic_dynamo.onnx", "--no-validate"],
    );
    assert_error(&o, &["resnet_basic_dynamo.onnx.data"]);
    assert_eq!(read(&data), read(&fixture_data("resnet_basic_dynamo")));
    assert_eq!(
        listing(dir.path()),
        vec![
            "renamed.onnx".to_string(),
            "resnet_basic_dynamo.onnx.data".to_string()
        ]
    );
}

#[test]
fn usage_errors_exit_2() {
    let m = "fixtures/resnet_basic_ts.onnx";
    for args in [
        &[m, "--ratio", "0", "--report", "params"][..],
        &[m, "--ratio", "-3", "--report", "params"],
        &[m, "--ratio=-3", "--report", "params"],
        &[m, "-r", "x", "--report", "params"],
        &[m, "--position", "bogus", "--report", "params"],
        &[m, "--init", "identity", "--no-bias", "--report", "params"],
        &[m, "--stages", "0", "--report", "params"],
        &[m, "--stages", "1,x", "--report", "params"],
        &[m, "--squeeze", "median", "--report", "params"],
        &[m, "--gate", "softmax", "--report", "params"],
        &[m, "--format", "xml", "--report", "params"],
        &[m, "--input-shape", "1,0", "--report", "params"],
        &[m, "--input-shape", "1,x,32,32", "--report", "params"],
        &[m, "--no-such-flag"],
        &[],
    ] {
        assert_usage_error(args);
    }
}

// ------------------------------------------------------------------------------------------------
// 8. Text report

/// The text table: one line per stage (index, kind, blocks, channels, formula) and a total line
/// with the formula total.
#[test]
fn text_report_params() {
    let o = run_model(fixture("resnet_basic_ts"), &["--report", "params"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // (index, blocks, channels, formula) by hand, as in expect_r16("resnet_basic").
    for (index, blocks, channels, formula) in [
        ("1", "2", "8", "16"),
        ("2", "1", "16", "32"),
        ("3", "2", "32", "256"),
    ] {
        let row = rows
            .iter()
            .find(|r| r.first() == Some(&index) && r.get(1) == Some(&"residual"))
            .unwrap_or_else(|| panic!("no line for stage {index}:\n{text}"));
        assert_eq!(
            &row[2..5],
            &[blocks, channels, formula],
            "stage {index}:\n{text}"
        );
    }
    let total = rows
        .iter()
        .find(|r| r.first() == Some(&"total"))
        .unwrap_or_else(|| panic!("no total line:\n{text}"));
    // 16 + 32 + 256 = 304 by the formula, 50 + 49 + 324 = 423 counted, 5 blocks.
    assert!(total.contains(&"304"), "total line: {total:?}");
    assert!(total.contains(&"423"), "total line: {total:?}");
    assert!(total.contains(&"5"), "total line: {total:?}");
}

// ------------------------------------------------------------------------------------------------
// 9. Default output path

/// Without -o (and without --report) the model goes to `<stem>.se.onnx` beside the input, not
/// into the working folder.
#[test]
fn default_output_beside_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnext_tiny_ts", dir.path());
    let o = run_model_in(Some(cwd.path()), &p, &["--no-validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        listing(dir.path()),
        vec![
            "resnext_tiny_ts.onnx".to_string(),
            "resnext_tiny_ts.se.onnx".to_string()
        ]
    );
    assert!(listing(cwd.path()).is_empty(), "written into the cwd");
    // 49 + 162 + 580 = 791 added to 13,978.
    assert_eq!(
        float_params_on_disk(&dir.path().join("resnext_tiny_ts.se.onnx")),
        13_978 + 791
    );

    // Relative path, run in the model's folder.
    let dir2 = tempfile::tempdir().unwrap();
    copy_fixture("resnet_basic_dynamo", dir2.path());
    let o = run_model_in(
        Some(dir2.path()),
        "resnet_basic_dynamo.onnx",
        &["--no-validate"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        listing(dir2.path()),
        vec![
            "resnet_basic_dynamo.onnx".to_string(),
            "resnet_basic_dynamo.onnx.data".to_string(),
            "resnet_basic_dynamo.se.onnx".to_string(),
            "resnet_basic_dynamo.se.onnx.data".to_string(),
        ]
    );
}

// ------------------------------------------------------------------------------------------------
// 10. Positions

/// Runs resnet_bottleneck_ts at `position`, validated; returns the report.
fn at_position(net: &str, position: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let j = json_to(fixture(net), &out, &["-p", position]);
    assert_eq!(j["position"], position);
    assert_eq!(
        j["validation"]["ok"],
        Value::Bool(true),
        "{position}: {}",
        j["validation"]
    );
    assert_eq!(
        j["validation"]["output_shapes"],
        serde_json::json!([[1, 10]])
    );
    for b in arr(&j, "blocks") {
        assert_eq!(b["injected"], Value::Bool(true), "{position}: {b}");
    }
    assert_eq!(
        u(&j, "params_after"),
        u(&j, "params_before") + u(&j, "added_params")
    );
    assert_eq!(float_params_on_disk(&out), u(&j, "params_after"));
    j
}

/// (channels, hidden) of each block, in order.
fn landing(j: &Value) -> Vec<(u64, u64)> {
    arr(j, "blocks")
        .iter()
        .map(|b| (u(b, "channels"), u(b, "hidden")))
        .collect()
}

/// Where SE lands at one position: the fixture, the position, (channels, hidden) per block and
/// the parameters added in all, by hand.
struct Landing {
    fixture: &'static str,
    position: &'static str,
    blocks: &'static [(u64, u64)],
    added: u64,
}

/// pre: SE on each block's input: 8 (the stem), 16, 16, 32, 32 channels.
const PRE: Landing = Landing {
    fixture: "resnet_bottleneck_ts",
    position: "pre",
    blocks: &[(8, 1), (16, 1), (16, 1), (32, 2), (32, 2)],
    // (2·8·1 + 1 + 8) + 2·(2·16·1 + 1 + 16) + 2·(2·32·2 + 2 + 32) = 25 + 98 + 324
    added: 25 + 98 + 324,
};

/// post: after the Add and its ReLU, on the block output: C = 16, 16, 32, 32, 64.
const POST: Landing = Landing {
    fixture: "resnet_bottleneck_ts",
    position: "post",
    blocks: &[(16, 1), (16, 1), (32, 2), (32, 2), (64, 4)],
    added: 98 + 324 + 580,
};

/// identity: on the shortcut (after the projection where there is one): C as the block output.
const IDENTITY: Landing = Landing {
    fixture: "resnet_bottleneck_ts",
    position: "identity",
    blocks: &[(16, 1), (16, 1), (32, 2), (32, 2), (64, 4)],
    added: 98 + 324 + 580,
};

/// inner: after the 3x3 conv and its ReLU, on the bottleneck width C/4 = 4, 4, 8, 8, 16, each
/// with h = max(1, round(w/16)) = 1: 2·4 + 1 + 4 = 13 per block of 4, 2·8 + 1 + 8 = 25 per
/// block of 8, 2·16 + 1 + 16 = 49 for the block of 16.
const INNER: Landing = Landing {
    fixture: "resnet_bottleneck_ts",
    position: "inner",
    blocks: &[(4, 1), (4, 1), (8, 1), (8, 1), (16, 1)],
    // 2·13 + 2·25 + 49
    added: 26 + 50 + 49,
};

/// inner on the grouped 3x3 convs of resnext_tiny: widths 8, 16, 32 (h = 1, 1, 2).
const INNER_GROUPED: Landing = Landing {
    fixture: "resnext_tiny_dynamo",
    position: "inner",
    blocks: &[(8, 1), (16, 1), (32, 2)],
    // (2·8·1 + 1 + 8) + (2·16·1 + 1 + 16) + (2·32·2 + 2 + 32)
    added: 25 + 49 + 162,
};

/// Runs one landing: where each block's SE sits, the parameters each block adds
/// (2·C·h + h + C) and the total.
fn check_landing(e: &Landing) {
    let j = at_position(e.fixture, e.position);
    assert_eq!(landing(&j), e.blocks, "{}", e.position);
    let per_block: Vec<u64> = arr(&j, "blocks")
        .iter()
        .map(|b| u(b, "added_params"))
        .collect();
    let by_hand: Vec<u64> = e.blocks.iter().map(|&(c, h)| 2 * c * h + h + c).collect();
    assert_eq!(per_block, by_hand, "{}", e.position);
    assert_eq!(u(&j, "added_params"), e.added, "{}", e.position);
}

#[test]
fn position_pre() {
    check_landing(&PRE);
}

#[test]
fn position_post() {
    check_landing(&POST);
}

#[test]
fn position_identity() {
    check_landing(&IDENTITY);
}

#[test]
fn position_inner() {
    check_landing(&INNER);
}

#[test]
fn position_inner_grouped() {
    check_landing(&INNER_GROUPED);
}

// ------------------------------------------------------------------------------------------------
// 11. --input-shape

/// A concrete batch of 2 for the symbolic batch dim of the TorchScript export: the validation
/// runs with it and the logits come out 2×10.
#[test]
fn input_shape_sets_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let args = ["--input-shape", "2,3,32,32", "--format", "json"];
    let o = run_to(fixture("resnet_basic_ts"), &out, &args);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let j = json_ok(&o);
    assert_eq!(
        j["validation"]["ok"],
        Value::Bool(true),
        "{}",
        j["validation"]
    );
    assert_eq!(
        j["validation"]["output_shapes"],
        serde_json::json!([[2, 10]])
    );
    assert!(out.exists());
}

/// An input shape that does not fit the model fails cleanly (bad input or failed validation),
/// without a panic, and writes nothing.
#[test]
fn input_shape_of_the_wrong_rank() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let o = run_to(
        fixture("resnet_basic_ts"),
        &out,
        &["--input-shape", "1,3,32"],
    );
    let err = stderr(&o);
    assert!(
        matches!(o.status.code(), Some(1) | Some(3)),
        "exit {:?}\n{err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("se-inject: "), "{err}");
    assert!(!out.exists(), "written despite a wrong input shape");
}

/// MACs of resnet_basic on its 1×3×32×32 input, by hand (out H·W · C_out · C_in · k²):
/// stem 32·32·8·3·9; layer1 4 convs 32·32·8·8·9; layer2 conv1 (stride 2) 16·16·16·8·9, conv2
/// 16·16·16·16·9, projection 16·16·16·8; layer3 conv1 8·8·32·16·9, three convs 8·8·32·32·9,
/// projection 8·8·32·16; the Linear 32·10. SE adds its two FCs, 2·C·h per block.
#[test]
fn macs_report() {
    let before = 32 * 32 * 8 * 3 * 9
        + 4 * (32 * 32 * 8 * 8 * 9)
        + 16 * 16 * 16 * 8 * 9
        + 16 * 16 * 16 * 16 * 9
        + 16 * 16 * 16 * 8
        + 8 * 8 * 32 * 16 * 9
        + 3 * (8 * 8 * 32 * 32 * 9)
        + 8 * 8 * 32 * 16
        + 32 * 10;
    let se = 2 * (2 * 8 * 1) + 2 * 16 * 1 + 2 * (2 * 32 * 2);
    for name in ["resnet_basic_ts", "resnet_basic_dynamo"] {
        let j = json(fixture(name), &["--report", "macs"]);
        assert_eq!(u(&j, "macs_before"), before, "{name}");
        assert_eq!(u(&j, "macs_after"), before + se, "{name}");
        let o = run_model(fixture(name), &["--report", "macs"]);
        let text = stdout(&o);
        assert!(
            text.contains(
                "MACs (convolutions and matrix products): 5,595,456 before, 5,595,776 after"
            ),
            "{text}"
        );
    }
}

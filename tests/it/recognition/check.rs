//! The expected-analysis types of tests/it/recognition.rs, running the binary, and the checks of
//! one fixture against its hand derivation.

use serde_json::Value;
use std::process::{Command, Output};

// ------------------------------------------------------------------------------------------------
// Expected numbers, by hand

pub use crate::common::Land;
use crate::common::{added, arr, check_landing, data_name_of, f, listing, stage_landing, u};

pub const NO_IDENTITY: &str = "identity has no meaning";
/// An inverted residual without its Add, at identity.
pub const NO_SHORTCUT: &str =
    "identity has no meaning for an inverted-residual block: it has no shortcut";
pub const NO_INNER: &str = "inner has no meaning";
pub const PARALLEL: &str = "inner has no meaning for a branch of parallel paths";
pub const INNER_IS_STANDARD: &str = "the spatial convolution ends the branch";
/// The outputs of a classifier fixture: 10 logits.
pub const CLASSIFIER: &[&[u64]] = &[&[1, 10]];
/// A block nested in a module, at the module level.
pub const UNIT: &str = "a unit of module";
const POSITIONS: [&str; 5] = ["standard", "pre", "post", "identity", "inner"];

/// One expected block: (stage, kind, merge op, output channels, projection shortcut).
pub type Blk = (u64, &'static str, &'static str, u64, bool);

/// The hand-derived analysis of one fixture.
pub struct Expect {
    pub net: &'static str,
    /// The shape of every output, in the graph's order.
    pub outputs: &'static [&'static [u64]],
    /// (kind, blocks, channels) per stage.
    pub stages: Vec<(&'static str, u64, u64)>,
    pub blocks: Vec<Blk>,
    /// Where SE lands per block, for each of the five positions.
    pub positions: Vec<(&'static str, Vec<Land>)>,
}

impl Expect {
    pub fn lands(&self, position: &str) -> &[Land] {
        self.positions
            .iter()
            .find(|(p, _)| *p == position)
            .map(|(_, l)| l.as_slice())
            .unwrap_or_else(|| panic!("{}: no position {position}", self.net))
    }
}

// ------------------------------------------------------------------------------------------------
// Running the binary

/// Runs the binary in the crate root (fixture paths are relative to it).
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_se-inject"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run se-inject")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The JSON report of one position: nothing written, not validated (a position no block can
/// take is reported too, every block with its reason).
fn report(name: &str, position: &str) -> Value {
    let model = format!("fixtures/{name}.onnx");
    let args = [
        "-p",
        position,
        "--report",
        "all",
        "--format",
        "json",
        "--no-validate",
    ];
    let o = run(&[&[model.as_str()], &args[..]].concat());
    let what = format!("{name} -p {position}");
    assert_eq!(o.status.code(), Some(0), "{what}: {}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e})"))
}

// ------------------------------------------------------------------------------------------------
// The checks

/// One position of one export against the hand-derived landing.
fn check_position(e: &Expect, exporter: &str, position: &str, lands: &[Land]) {
    let name = format!("{}_{exporter}", e.net);
    let what = format!("{name} -p {position}");
    let j = report(&name, position);
    assert_eq!(j["position"], position, "{what}");
    check_stages(&j, e, lands, &what);
    check_blocks(&j, e, lands, &what);
    let added = added(lands);
    assert_eq!(u(&j, "added_params"), added, "{what}");
    assert_eq!(
        u(&j, "params_after"),
        u(&j, "params_before") + added,
        "{what}"
    );
}

/// The stage rows: kind, blocks, channels, SE injected and added, the formula.
fn check_stages(j: &Value, e: &Expect, lands: &[Land], what: &str) {
    let stages = arr(j, "stages");
    let got: Vec<(String, u64, u64)> = stages
        .iter()
        .map(|s| {
            let kind = s["kind"].as_str().unwrap_or("?").to_string();
            (kind, u(s, "blocks"), u(s, "channels"))
        })
        .collect();
    let want: Vec<(String, u64, u64)> = e
        .stages
        .iter()
        .map(|&(k, n, c)| (k.to_string(), n, c))
        .collect();
    assert_eq!(got, want, "{what}: stages");
    let mut formula_total = 0.0;
    for (i, (s, &(_, _, c))) in stages.iter().zip(&e.stages).enumerate() {
        let index = i as u64 + 1;
        let (mine, injected, formula) =
            stage_landing(e.blocks.iter().map(|b| b.0), lands, index, c);
        let added = added(&mine);
        assert_eq!(u(s, "injected"), injected, "{what}: stage {index}");
        assert_eq!(u(s, "added_params"), added, "{what}: stage {index}");
        assert_eq!(f(s, "formula_params"), formula, "{what}: stage {index}");
        formula_total += formula;
    }
    assert_eq!(f(j, "formula_params"), formula_total, "{what}");
}

/// The block rows: the analysis, and where SE lands in each.
fn check_blocks(j: &Value, e: &Expect, lands: &[Land], what: &str) {
    let blocks = arr(j, "blocks");
    assert_eq!(blocks.len(), e.blocks.len(), "{what}: blocks {blocks:?}");
    for (i, ((b, &(stage, kind, merge, channels, projection)), land)) in
        blocks.iter().zip(&e.blocks).zip(lands).enumerate()
    {
        let what = format!("{what}: block {i} {b}");
        assert_eq!(u(b, "stage"), stage, "{what}");
        assert_eq!(b["kind"], kind, "{what}");
        assert_eq!(b["merge"], merge, "{what}");
        assert_eq!(b["projection"], Value::Bool(projection), "{what}");
        assert_eq!(b["existing_se"], Value::Bool(false), "{what}");
        check_landing(b, *land, channels, &what);
    }
}

/// What a run reports, without the names the exporters give: the stages, and per block its
/// analysis and landing (skip reasons reduced to skipped or not, as they may name tensors).
fn summary(j: &Value) -> String {
    let stages: Vec<String> = arr(j, "stages")
        .iter()
        .map(|s| format!("{} {}x{}", s["kind"], s["blocks"], s["channels"]))
        .collect();
    let keys = "stage kind merge channels hidden projection injected added_params";
    let blocks: Vec<String> = arr(j, "blocks")
        .iter()
        .map(|b| {
            let row: Vec<String> = keys.split_whitespace().map(|k| b[k].to_string()).collect();
            format!("{} skipped {}", row.join(" "), !b["skipped"].is_null())
        })
        .collect();
    format!("{stages:?} {blocks:?} added {}", j["added_params"])
}

/// One run with `--init identity` and validation in tract at the standard position, written
/// into a fresh folder: the output is kept, the files written are the model and its data file.
fn check_identity_validated(e: &Expect, exporter: &str) {
    let name = format!("{}_{exporter}", e.net);
    let dir = tempfile::tempdir().expect("temporary folder");
    let out = dir.path().join("out.onnx");
    let model = format!("fixtures/{name}.onnx");
    let out_path = out.to_str().expect("temporary path in UTF-8");
    let o = run(&[
        &model, "--init", "identity", "-o", out_path, "--format", "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    let v = &j["validation"];
    assert_eq!(v["ok"], Value::Bool(true), "{name}: {v}");
    assert_eq!(v["output_shapes"], serde_json::json!(e.outputs), "{name}");
    let (diff, scale) = (f(v, "max_abs_diff"), f(v, "output_scale"));
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "{name}: identity init changed the output by {diff} (scale {scale})"
    );
    let added = added(e.lands("standard"));
    assert_eq!(u(&j, "added_params"), added, "{name}");
    let mut want = vec!["out.onnx".to_string()];
    if exporter == "dynamo" {
        want.push(data_name_of(&out));
    }
    assert_eq!(listing(dir.path()), want, "{name}: files written");
}

/// Every position of one export against the hand derivation.
fn check_export(e: &Expect, exporter: &str) {
    for (position, lands) in &e.positions {
        check_position(e, exporter, position, lands);
    }
}

/// Every position of both exports against the hand derivation, both exports against
/// each other at every position, and one validated identity-init run.
pub fn check_fixture(e: Expect) {
    let net = e.net;
    for exporter in ["ts", "dynamo"] {
        check_export(&e, exporter);
    }
    for position in POSITIONS {
        let ts = summary(&report(&format!("{net}_ts"), position));
        let dynamo = summary(&report(&format!("{net}_dynamo"), position));
        assert_eq!(ts, dynamo, "{net} -p {position}: the exports differ");
    }
    check_identity_validated(&e, "dynamo");
}

/// Every position of one file, `fixtures/{net}_{variant}.onnx`, against the hand derivation,
/// and one validated identity-init run.
pub fn check_variant(e: Expect, variant: &str) {
    check_export(&e, variant);
    check_identity_validated(&e, variant);
}

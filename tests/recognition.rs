//! End-to-end tests of the `se-inject` binary on the fixtures of
//! fixtures/generate_recognition.py: a CSP stage (timm cspnet), two GhostNet bottlenecks (timm
//! ghostnet), three RepVGG blocks (timm byobnet), a DenseNet written one Concat per layer and a
//! pre-activation ResNet v2 (both laid out as Keras writes them). Each is exported by
//! TorchScript (`_ts`) and by dynamo (`_dynamo`, weights in `.onnx.data`).
//!
//! Every expected number is derived by hand from the architectures in the generator script:
//!
//! - hidden width h = max(1, round(C / 16)), half up; h is written by hand next to each C;
//! - one SE block adds 2·C·h + h + C parameters ([`se`]);
//! - the paper's formula per stage is (2/16)·N·C², N counting the stage's blocks that get SE at
//!   the position asked for, C the stage's output channels.
//!
//! Per fixture, one test checks for both exports: the stages (kind, blocks, channels), the
//! blocks (stage, kind, merge, channels, projection) and where SE lands at each of the five
//! positions, that both exports report the same, and one run with `--init identity` validated
//! in tract.

use serde_json::Value;
use std::process::{Command, Output};

// ------------------------------------------------------------------------------------------------
// Expected numbers, by hand

/// Parameters of one SE block on C channels with hidden width h (with biases).
fn se(c: u64, h: u64) -> u64 {
    2 * c * h + h + c
}

/// Parameters SE adds to the blocks of one landing.
fn added(lands: &[Land]) -> u64 {
    lands
        .iter()
        .map(|l| if let At(c, h) = l { se(*c, *h) } else { 0 })
        .sum()
}

/// Where SE lands in one block at one position.
#[derive(Debug, Clone, Copy)]
enum Land {
    /// Injected on a tensor of C channels with hidden width h.
    At(u64, u64),
    /// Skipped; the reason contains this text.
    Skip(&'static str),
}
use Land::{At, Skip};

const NO_IDENTITY: &str = "identity has no meaning";
const NO_INNER: &str = "inner has no meaning";
const PARALLEL: &str = "inner has no meaning for a branch of parallel paths";
const INNER_IS_STANDARD: &str = "the spatial convolution ends the branch";
const POSITIONS: [&str; 5] = ["standard", "pre", "post", "identity", "inner"];

/// One expected block: (stage, kind, merge op, output channels, projection shortcut).
type Blk = (u64, &'static str, &'static str, u64, bool);

/// The hand-derived analysis of one fixture.
struct Expect {
    net: &'static str,
    /// (kind, blocks, channels) per stage.
    stages: Vec<(&'static str, u64, u64)>,
    blocks: Vec<Blk>,
    /// Where SE lands per block, for each of the five positions.
    positions: Vec<(&'static str, Vec<Land>)>,
}

impl Expect {
    fn lands(&self, position: &str) -> &[Land] {
        self.positions
            .iter()
            .find(|(p, _)| *p == position)
            .map(|(_, l)| l.as_slice())
            .unwrap_or_else(|| panic!("{}: no position {position}", self.net))
    }
}

/// The hand-derived analysis of a fixture by name.
fn expect(net: &str) -> Expect {
    match net {
        "csp_tiny" => csp_tiny_expect(),
        "ghost_tiny" => ghost_tiny_expect(),
        "repvgg_tiny" => repvgg_tiny_expect(),
        "densenet_pairwise_tiny" => densenet_pairwise_tiny_expect(),
        "resnet_v2_tiny" => resnet_v2_tiny_expect(),
        _ => panic!("no expectation for {net}"),
    }
}

/// Stem 3→8; CrossStage: conv_down 3x3 s2 8→8, conv_exp 1x1 8→32, split 16 | 16; the second
/// half through two BottleneckBlocks 16→16 (1x1 16→8, 3x3 8→8, 1x1 8→16, + x, ReLU), then
/// conv_transition_b 16→16, Concat with the first half (32), conv_transition 32→16.
/// The bottlenecks are residual blocks (identity shortcuts); the Concat is an inception
/// block forking where the split halves come from (conv_exp, 32). A new kind starts a
/// new stage: residual 2×16, then inception 1×32 (its output channels, the Concat's).
fn csp_tiny_expect() -> Expect {
    Expect {
        net: "csp_tiny",
        stages: vec![("residual", 2, 16), ("inception", 1, 32)],
        blocks: vec![
            (1, "residual", "Add", 16, false),
            (1, "residual", "Add", 16, false),
            (2, "inception", "Concat", 32, false),
        ],
        positions: vec![
            // Bottleneck branch outputs (16, h 1); the Concat (32, h 2).
            ("standard", vec![At(16, 1), At(16, 1), At(32, 2)]),
            // The split half (16), the first bottleneck's output (16); conv_exp's output,
            // read by the split only (32).
            ("pre", vec![At(16, 1), At(16, 1), At(32, 2)]),
            // After each Add's ReLU (16); after the Concat (32).
            ("post", vec![At(16, 1), At(16, 1), At(32, 2)]),
            // The bottlenecks' identity shortcuts (16); an inception block has none.
            ("identity", vec![At(16, 1), At(16, 1), Skip(NO_IDENTITY)]),
            // After each bottleneck's 3x3 and its ReLU: 8, h = max(1, round(0.5)) = 1.
            ("inner", vec![At(8, 1), At(8, 1), Skip(NO_INNER)]),
        ],
    }
}

/// Stem 3→8; GhostBottleneck(8, mid 16, 16, s2): ghost1 (1x1 8→8, dw 3x3 8, Concat 16),
/// dw 3x3 s2 16 + BN, ghost2 (1x1 16→8, dw 8, Concat 16), shortcut dw 3x3 s2 8 + BN and
/// 1x1 8→16 + BN (a projection); GhostBottleneck(16, mid 32, 16, s1): ghost1 (1x1 16→16,
/// dw 16, Concat 32), ghost2 (1x1 32→8, dw 8, Concat 16), identity shortcut. The branches
/// hold depthwise convs: inverted-residual blocks, one stage of 2×16 (the stride is in the
/// first block).
fn ghost_tiny_expect() -> Expect {
    Expect {
        net: "ghost_tiny",
        stages: vec![("inverted-residual", 2, 16)],
        blocks: vec![
            (1, "inverted-residual", "Add", 16, true),
            (1, "inverted-residual", "Add", 16, false),
        ],
        positions: vec![
            // ghost2's output before the Add: 16, h 1.
            ("standard", vec![At(16, 1), At(16, 1)]),
            // Block inputs: the stem (8), the first block's Add (16).
            ("pre", vec![At(8, 1), At(16, 1)]),
            // No activation after the Add: the Add, 16.
            ("post", vec![At(16, 1), At(16, 1)]),
            // After the 1x1 8→16 of the projection; the identity shortcut: 16.
            ("identity", vec![At(16, 1), At(16, 1)]),
            // Each ghost module concatenates a 1x1 conv with its cheap depthwise copy, so both
            // branches merge parallel paths of their own: skipped. (GhostNet's own SE sits after
            // the stride-2 depthwise conv, or after ghost1: not the first spatial conv, which is
            // ghost1's cheap depthwise copy.)
            ("inner", vec![Skip(PARALLEL), Skip(PARALLEL)]),
        ],
    }
}

/// Stem 3→8; RepVggBlock(8, 16, s2): 3x3 s2 + BN and 1x1 s2 + BN summed by one Add, ReLU
/// (the 1x1 path is the projection); two RepVggBlock(16, 16): 3x3 + BN, 1x1 + BN and the
/// identity BN, summed by two Adds, ReLU. One residual block each (the Adds of one input's
/// paths are one merge); one stage of 3×16: the first block strides and changes channels,
/// the other two keep them.
fn repvgg_tiny_expect() -> Expect {
    Expect {
        net: "repvgg_tiny",
        stages: vec![("residual", 3, 16)],
        blocks: vec![
            (1, "residual", "Add", 16, true),
            (1, "residual", "Add", 16, false),
            (1, "residual", "Add", 16, false),
        ],
        positions: vec![
            // The 3x3 path's output before the Add: 16, h 1.
            ("standard", vec![At(16, 1); 3]),
            // Block inputs: the stem (8), then 16.
            ("pre", vec![At(8, 1), At(16, 1), At(16, 1)]),
            // After each block's ReLU: 16.
            ("post", vec![At(16, 1); 3]),
            // After the 1x1 projection; the identity BNs: 16.
            ("identity", vec![At(16, 1); 3]),
            // The first block's branch is the 3x3 conv alone (the 1x1 is its shortcut): the
            // spatial conv ends the branch, where standard puts SE, so inner is skipped. The
            // other two branches are the 3x3 and the 1x1 merged by an Add: skipped, as for
            // Inception-ResNet.
            (
                "inner",
                vec![Skip(INNER_IS_STANDARD), Skip(PARALLEL), Skip(PARALLEL)],
            ),
        ],
    }
}

/// Stem 3→8; dense block of 3 layers (BN-ReLU-1x1 →16-BN-ReLU-3x3 →4, x = cat([x, y]))
/// 8→12→16→20; transition BN-ReLU-1x1 20→10-AvgPool 2; dense block of 2 layers 10→14→18.
/// Each dense block is one block up to its last Concat; the pooling starts stage 2.
fn densenet_pairwise_tiny_expect() -> Expect {
    Expect {
        net: "densenet_pairwise_tiny",
        stages: vec![("dense", 1, 20), ("dense", 1, 18)],
        blocks: vec![
            (1, "dense", "Concat", 20, false),
            (2, "dense", "Concat", 18, false),
        ],
        positions: vec![
            // The last Concats: 20 (h = round(1.25) = 1), 18 (h = round(1.125) = 1).
            ("standard", vec![At(20, 1), At(18, 1)]),
            // Dense block inputs: the stem (8), the transition (10).
            ("pre", vec![At(8, 1), At(10, 1)]),
            ("post", vec![At(20, 1), At(18, 1)]),
            ("identity", vec![Skip(NO_IDENTITY); 2]),
            ("inner", vec![Skip(NO_INNER); 2]),
        ],
    }
}

/// Stem 3→8 (bias); stack 1 (filters 4): block 8→16 with the 1x1 projection (bias) of
/// the pre-activation, block 16→16 with 3x3 s2 and a MaxPool 1 s2 shortcut; stack 2
/// (filters 8): block 16→32 with projection, block 32→32 s2 with MaxPool. Branch:
/// BN-ReLU, 1x1 →f, BN-ReLU, pad + 3x3, BN-ReLU, 1x1 →4f (bias). The stride is in each
/// stage's last block: stages 2×16 and 2×32.
fn resnet_v2_tiny_expect() -> Expect {
    Expect {
        net: "resnet_v2_tiny",
        stages: vec![("residual", 2, 16), ("residual", 2, 32)],
        blocks: vec![
            (1, "residual", "Add", 16, true),
            (1, "residual", "Add", 16, false),
            (2, "residual", "Add", 32, true),
            (2, "residual", "Add", 32, false),
        ],
        positions: vec![
            // The last 1x1's output before the Add: 16, 16 (h 1), 32, 32 (h 2).
            ("standard", vec![At(16, 1), At(16, 1), At(32, 2), At(32, 2)]),
            // Block inputs: the stem (8), 16, 16, 32.
            ("pre", vec![At(8, 1), At(16, 1), At(16, 1), At(32, 2)]),
            // After the Add (the next BN-ReLU belongs to the next block): 16, 16, 32, 32.
            ("post", vec![At(16, 1), At(16, 1), At(32, 2), At(32, 2)]),
            // After the projection, or the MaxPool: 16, 16, 32, 32.
            ("identity", vec![At(16, 1), At(16, 1), At(32, 2), At(32, 2)]),
            // After the 3x3 and its ReLU: 4, 4, 8, 8 (h = max(1, round(0.25 | 0.5)) = 1).
            ("inner", vec![At(4, 1), At(4, 1), At(8, 1), At(8, 1)]),
        ],
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

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("'{key}' is not an unsigned integer in {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("'{key}' is not a number in {v}"))
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("'{key}' is not an array in {v}"))
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
        let mine: Vec<Land> = e
            .blocks
            .iter()
            .zip(lands)
            .filter(|(b, _)| b.0 == index)
            .map(|(_, l)| *l)
            .collect();
        let injected = mine.iter().filter(|l| matches!(l, At(..))).count() as u64;
        let added = added(&mine);
        let formula = (2 * injected * c * c) as f64 / 16.0;
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
        match *land {
            At(c, h) => {
                assert_eq!(b["injected"], Value::Bool(true), "{what}");
                assert!(b["skipped"].is_null(), "{what}");
                assert_eq!((u(b, "channels"), u(b, "hidden")), (c, h), "{what}");
                assert_eq!(u(b, "added_params"), se(c, h), "{what}");
            }
            Skip(reason) => {
                assert_eq!(b["injected"], Value::Bool(false), "{what}");
                let why = b["skipped"].as_str().unwrap_or("");
                assert!(why.contains(reason), "{what}: skipped '{why}'");
                assert_eq!(u(b, "channels"), channels, "{what}");
                assert_eq!(u(b, "added_params"), 0, "{what}");
            }
        }
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
    assert_eq!(v["output_shapes"], serde_json::json!([[1, 10]]), "{name}");
    let (diff, scale) = (f(v, "max_abs_diff"), f(v, "output_scale"));
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "{name}: identity init changed the output by {diff} (scale {scale})"
    );
    let added = added(e.lands("standard"));
    assert_eq!(u(&j, "added_params"), added, "{name}");
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read the folder")
        .map(|d| {
            d.expect("folder entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut want = vec!["out.onnx".to_string()];
    if exporter == "dynamo" {
        want.push("out.onnx.data".to_string());
    }
    assert_eq!(files, want, "{name}: files written");
}

/// Every position of both exports against the hand derivation, both exports against
/// each other at every position, and one validated identity-init run.
fn check_fixture(net: &str) {
    let e = expect(net);
    for exporter in ["ts", "dynamo"] {
        for (position, lands) in &e.positions {
            check_position(&e, exporter, position, lands);
        }
    }
    for position in POSITIONS {
        let ts = summary(&report(&format!("{net}_ts"), position));
        let dynamo = summary(&report(&format!("{net}_dynamo"), position));
        assert_eq!(ts, dynamo, "{net} -p {position}: the exports differ");
    }
    check_identity_validated(&e, "dynamo");
}

// ------------------------------------------------------------------------------------------------
// One test per fixture

#[test]
fn csp_tiny() {
    check_fixture("csp_tiny");
}

#[test]
fn ghost_tiny() {
    check_fixture("ghost_tiny");
}

#[test]
fn repvgg_tiny() {
    check_fixture("repvgg_tiny");
}

#[test]
fn densenet_pairwise_tiny() {
    check_fixture("densenet_pairwise_tiny");
}

#[test]
fn resnet_v2_tiny() {
    check_fixture("resnet_v2_tiny");
}

//! End-to-end tests of the `se-inject` binary on the CNN family fixtures of
//! fixtures/generate_families.py (VGG, MobileNet v1 / v2 / v3, Inception, Inception-ResNet,
//! ShuffleNet v2, DenseNet, SE-ResNet, EfficientNet), each exported by TorchScript (`_ts`, weights
//! inline) and by dynamo (`_dynamo`, weights in `.onnx.data`), plus the fp16 ResNet.
//!
//! Every expected number is derived by hand from the architectures in the generator script,
//! in one table per family under tests/family/; the paper's formula per stage is
//! (2/r)·N·C² = 2·N·C²/16, N counting the stage's blocks that get SE at the position asked for.
//!
//! Per fixture and exporter, one test checks: the params report, each of the five
//! positions with `--init identity` and the written model read back with the library,
//! and the random init at the standard position. The fp16 ResNet and the idempotence
//! of a second run follow at the end.

use crate::common::*;
use crate::family::Land::{At, Skip};
use crate::family::{added, family, se, Fam, Land, Pos, PRESENT};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

// ------------------------------------------------------------------------------------------------
// Helpers

fn load(path: &Path) -> se_inject::onnx::Model {
    se_inject::onnx::load(path).unwrap_or_else(|e| panic!("cannot load {}: {e:#}", path.display()))
}

/// The checks every written model must pass: the library's graph view builds (producers,
/// duplicates, cycles), the nodes are in topological order, node names are unique.
fn check_well_formed(graph: &se_inject::onnx::GraphProto, what: &str) {
    let view = se_inject::graph::GraphView::new(graph)
        .unwrap_or_else(|e| panic!("{what}: the written graph is malformed: {e:#}"));
    assert!(view.is_ordered(), "{what}: nodes not in topological order");
    let mut seen = HashSet::new();
    for n in &graph.node {
        let name = n.name.as_deref().unwrap_or("");
        assert!(!name.is_empty(), "{what}: a node has no name: {n:?}");
        assert!(seen.insert(name), "{what}: node name '{name}' twice");
    }
}

// ------------------------------------------------------------------------------------------------
// The checks

/// Item 1: `--report params --format json`, nothing written, nothing validated.
fn check_report(fam: &Fam, exporter: &str) {
    let name = format!("{}_{exporter}", fam.net);
    let cwd = tempfile::tempdir().unwrap();
    let j = json_in(Some(cwd.path()), fixture(&name), &["--report", "params"]);
    assert!(listing(cwd.path()).is_empty(), "{name}: a file was written");
    assert!(
        !fixtures().join(format!("{name}.se.onnx")).exists(),
        "{name}: written beside the fixture"
    );
    assert!(j["output"].is_null(), "{name}: output {}", j["output"]);
    assert!(j["validation"].is_null(), "{name}: validation ran");
    assert_eq!(u(&j, "ratio"), 16, "{name}");
    assert_eq!(j["position"], "standard", "{name}");

    // Stages and blocks: the analysis, and where standard lands.
    let standard = fam.lands("standard");
    check_stages(&j, fam, standard, &name);
    check_blocks(&j, fam, standard, &name);
    check_totals(&j, fam.params_before(exporter), added(standard), &name);
    // The fixture itself holds that many float parameters.
    assert_eq!(
        float_params(load(&fixture(&name)).graph()),
        fam.params_before(exporter),
        "{name}: float parameters in the fixture"
    );

    let gates: Vec<u64> = arr(&j, "existing_se")
        .iter()
        .map(|g| u(g, "channels"))
        .collect();
    assert_eq!(gates, fam.gates, "{name}: existing SE");
}

/// The report's totals: parameters added, before and after.
fn check_totals(j: &Value, before: u64, added: u64, what: &str) {
    assert_eq!(u(j, "added_params"), added, "{what}");
    assert_eq!(u(j, "params_before"), before, "{what}");
    assert_eq!(u(j, "params_after"), before + added, "{what}");
}

/// The stage rows against the family's stages and one position's landing: kind, blocks,
/// channels; the formula 2·N·C²/16 with N the stage's blocks that get SE; the parameters added
/// and the blocks injected. The total formula sums the stages'.
fn check_stages(j: &Value, fam: &Fam, lands: &[Land], what: &str) {
    let stages = arr(j, "stages");
    assert_eq!(stages.len(), fam.stages.len(), "{what}: stages {stages:?}");
    let mut formula_total = 0.0;
    for (i, (s, &(kind, n, c))) in stages.iter().zip(fam.stages).enumerate() {
        let index = i as u64 + 1;
        let what = format!("{what}: stage {index} {s}");
        let (mine, injected, formula) =
            stage_landing(fam.blocks.iter().map(|b| b.0), lands, index, c);
        assert_eq!(u(s, "index"), index, "{what}");
        assert_eq!(s["kind"], kind, "{what}");
        assert_eq!(u(s, "blocks"), n, "{what}");
        assert_eq!(u(s, "channels"), c, "{what}");
        assert_eq!(f(s, "formula_params"), formula, "{what}");
        assert_eq!(u(s, "added_params"), added(&mine), "{what}");
        assert_eq!(u(s, "injected"), injected, "{what}");
        formula_total += formula;
    }
    assert_eq!(f(j, "formula_params"), formula_total, "{what}");
}

/// The block rows against the family's blocks and one position's landing.
fn check_blocks(j: &Value, fam: &Fam, lands: &[Land], what: &str) {
    let blocks = arr(j, "blocks");
    assert_eq!(blocks.len(), fam.blocks.len(), "{what}: blocks {blocks:?}");
    for (i, ((b, &(stage, merge, channels, existing)), land)) in
        blocks.iter().zip(fam.blocks).zip(lands).enumerate()
    {
        let what = format!("{what}: block {i} {b}");
        assert_eq!(u(b, "stage"), stage, "{what}");
        assert_eq!(b["kind"], fam.stages[stage as usize - 1].0, "{what}");
        assert_eq!(b["merge"], merge, "{what}");
        assert_eq!(b["existing_se"], Value::Bool(existing), "{what}");
        check_landing(b, *land, channels, &what);
    }
}

/// Identity init kept the function, and the output is the logits [1, 10].
fn check_identity_validation(j: &Value, what: &str) {
    let v = &j["validation"];
    assert_eq!(v["ok"], Value::Bool(true), "{what}: {v}");
    assert_eq!(
        v["output_shapes"],
        serde_json::json!([[1, 10]]),
        "{what}: {v}"
    );
    let (diff, scale) = (f(v, "max_abs_diff"), f(v, "output_scale"));
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "{what}: identity init changed the output by {diff} (scale {scale})"
    );
}

/// Item 2: one position with `--init identity`, written with -o into a fresh folder.
fn check_position(fam: &Fam, exporter: &str, p: &Pos) {
    let name = format!("{}_{exporter}", fam.net);
    let what = format!("{name} -p {}", p.name);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let args = ["-p", p.name, "--init", "identity", "--format", "json"];
    let o = run_to(fixture(&name), &out, &args);
    if p.lands.iter().all(|l| matches!(l, Skip(_))) {
        // Nothing can take SE: one error line naming the model, the position and the reasons.
        let file = format!("{name}.onnx");
        let none = format!("no block can take SE at position {}", p.name);
        let mut needles: Vec<&str> = vec![&file, &none];
        needles.extend(p.lands.iter().filter_map(|l| match l {
            Skip(reason) => Some(*reason),
            At(..) => None,
        }));
        assert_error_in(&o, &needles, &what);
        assert!(listing(dir.path()).is_empty(), "{what}: written anyway");
        return;
    }
    let j = json_ok(&o);
    assert_eq!(j["position"], p.name, "{what}");
    check_blocks(&j, fam, p.lands, &what);
    check_totals(&j, fam.params_before(exporter), added(p.lands), &what);
    check_stages(&j, fam, p.lands, &what);
    check_identity_validation(&j, &what);

    // The files written: out.onnx, and its data file for the dynamo export.
    assert_eq!(j["output"].as_str(), out.to_str(), "{what}");
    let files: Vec<String> = if exporter == "dynamo" {
        vec!["out.onnx".into(), data_name_of(&out)]
    } else {
        vec!["out.onnx".into()]
    };
    assert_eq!(listing(dir.path()), files, "{what}: files written");
    check_written(fam, exporter, p, &out);
}

/// The model written at one position, read back with the library: well formed, the float
/// parameters the report counts, 6 nodes per SE block, and the family's own checks.
fn check_written(fam: &Fam, exporter: &str, p: &Pos, out: &Path) {
    let name = format!("{}_{exporter}", fam.net);
    let what = format!("{name} -p {}", p.name);
    let written = load(out);
    let graph = written.graph();
    check_well_formed(graph, &what);
    assert_eq!(
        float_params(graph),
        fam.params_before(exporter) + added(p.lands),
        "{what}: float parameters in the written file"
    );
    // An SE block (avg squeeze, sigmoid) is 6 nodes: pool, fc1, ReLU, fc2, Sigmoid, Mul.
    let injected = p.lands.iter().filter(|l| matches!(l, At(..))).count();
    let original = load(&fixture(&name));
    assert_eq!(
        graph.node.len(),
        original.graph().node.len() + 6 * injected,
        "{what}: node count"
    );
    if let Some(extra) = fam.extra {
        extra(exporter, p.name, graph);
    }
}

/// Item 3: the default random init at the standard position changes the output; the model
/// still runs.
fn check_random_init(fam: &Fam, exporter: &str) {
    let name = format!("{}_{exporter}", fam.net);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let force: &[&str] = if fam.forced.is_some() {
        &["--force"]
    } else {
        &[]
    };
    let j = json_to(fixture(&name), &out, force);
    let v = &j["validation"];
    assert_eq!(v["ok"], Value::Bool(true), "{name}: {v}");
    assert!(
        f(v, "max_abs_diff") > 0.0,
        "{name}: random init left the output unchanged"
    );
    assert!(out.exists(), "{name}: nothing written");
    if let Some(forced) = fam.forced {
        check_blocks(&j, fam, forced, &format!("{name} --force"));
        assert_eq!(u(&j, "added_params"), added(forced), "{name} --force");
        check_well_formed(load(&out).graph(), &name);
    }
}

fn check_family(net: &str, exporter: &str) {
    let fam = family(net);
    check_report(fam, exporter);
    for p in fam.positions {
        check_position(fam, exporter, p);
    }
    check_random_init(fam, exporter);
}

// ------------------------------------------------------------------------------------------------
// One test per fixture

/// One test per fixture and exporter: `name: (net, exporter)`.
macro_rules! family_tests {
    ($($test:ident: ($net:literal, $exporter:literal)),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_family($net, $exporter);
            }
        )*
    };
}

family_tests! {
    vgg_tiny_ts: ("vgg_tiny", "ts"),
    vgg_tiny_dynamo: ("vgg_tiny", "dynamo"),
    mobilenet_v1_tiny_ts: ("mobilenet_v1_tiny", "ts"),
    mobilenet_v1_tiny_dynamo: ("mobilenet_v1_tiny", "dynamo"),
    mobilenet_v2_tiny_ts: ("mobilenet_v2_tiny", "ts"),
    mobilenet_v2_tiny_dynamo: ("mobilenet_v2_tiny", "dynamo"),
    inception_tiny_ts: ("inception_tiny", "ts"),
    inception_tiny_dynamo: ("inception_tiny", "dynamo"),
    inception_resnet_tiny_ts: ("inception_resnet_tiny", "ts"),
    inception_resnet_tiny_dynamo: ("inception_resnet_tiny", "dynamo"),
    shufflenet_v2_tiny_ts: ("shufflenet_v2_tiny", "ts"),
    shufflenet_v2_tiny_dynamo: ("shufflenet_v2_tiny", "dynamo"),
    densenet_tiny_ts: ("densenet_tiny", "ts"),
    densenet_tiny_dynamo: ("densenet_tiny", "dynamo"),
    se_resnet_tiny_ts: ("se_resnet_tiny", "ts"),
    se_resnet_tiny_dynamo: ("se_resnet_tiny", "dynamo"),
    mobilenet_v3_tiny_ts: ("mobilenet_v3_tiny", "ts"),
    mobilenet_v3_tiny_dynamo: ("mobilenet_v3_tiny", "dynamo"),
    efficientnet_tiny_ts: ("efficientnet_tiny", "ts"),
    efficientnet_tiny_dynamo: ("efficientnet_tiny", "dynamo"),
}

// ------------------------------------------------------------------------------------------------
// fp16

/// resnet_basic of fixtures/generate.py: stem 3x3 3→8, BasicBlock stages N = [2, 1, 2],
/// C = [8, 16, 32] (projections 8→16 and 16→32), Linear 32→10, every BatchNorm folded.
const RESNET_BASIC_PARAMS: u64 = (3 * 8 * 9 + 8)
    + 2 * 2 * (8 * 8 * 9 + 8)
    + (8 * 16 * 9 + 16)
    + (16 * 16 * 9 + 16)
    + (8 * 16 + 16)
    + (16 * 32 * 9 + 32)
    + (32 * 32 * 9 + 32)
    + (16 * 32 + 32)
    + 2 * (32 * 32 * 9 + 32)
    + (32 * 10 + 10); // 39,450

/// Standard SE on resnet_basic: 2·SE(8, h 1) + SE(16, h 1) + 2·SE(32, h 2).
fn resnet_basic_added() -> u64 {
    2 * se(8, 1) + se(16, 1) + 2 * se(32, 2) // 423
}

/// With --no-validate: the SE initializers are FLOAT16 like the model's, and as many as
/// resnet_basic's.
#[test]
fn fp16_se_initializers_are_float16() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let input = fixture("fp16_resnet_tiny_ts");
    let j = json_unvalidated(&input, &out, &[]);
    assert!(
        j["validation"].is_null(),
        "validation ran: {}",
        j["validation"]
    );
    let stages: Vec<(String, u64, u64)> = arr(&j, "stages")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                u(s, "blocks"),
                u(s, "channels"),
            )
        })
        .collect();
    let residual = || "residual".to_string();
    assert_eq!(
        stages,
        vec![(residual(), 2, 8), (residual(), 1, 16), (residual(), 2, 32)]
    );
    assert_eq!(u(&j, "params_before"), RESNET_BASIC_PARAMS);
    assert_eq!(u(&j, "added_params"), resnet_basic_added());
    assert_eq!(
        u(&j, "params_after"),
        RESNET_BASIC_PARAMS + resnet_basic_added()
    );

    // The fp32 export of the same net reports the same counts.
    let j32 = params_report(fixture("resnet_basic_ts"), &[]);
    assert_eq!(u(&j32, "added_params"), u(&j, "added_params"));
    assert_eq!(u(&j32, "params_before"), u(&j, "params_before"));

    // Read back: every new initializer is FLOAT16 (10); 5 blocks × (W1, b1, W2, b2).
    let original = load(&input);
    let written = load(&out);
    check_well_formed(written.graph(), "fp16");
    let old: HashSet<&str> = original
        .graph()
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let new: Vec<&se_inject::onnx::TensorProto> = written
        .graph()
        .initializer
        .iter()
        .filter(|t| !old.contains(t.name.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(new.len(), 5 * 4, "new initializers");
    for t in &new {
        assert_eq!(t.data_type, Some(10), "{:?} is not FLOAT16", t.name);
    }
    let elements: u64 = new
        .iter()
        .map(|t| t.dims.iter().product::<i64>() as u64)
        .sum();
    assert_eq!(elements, resnet_basic_added());
    // The original initializers are all FLOAT16 too.
    assert!(all_float16(original.graph()));
    assert_eq!(
        float_params(written.graph()),
        RESNET_BASIC_PARAMS + resnet_basic_added()
    );
}

/// Current behaviour with validation: both models are converted from FLOAT16 to FLOAT and run
/// in tract (`converted_from: "FLOAT16"`); identity init keeps the output, random init changes
/// it; the model is written in FLOAT16.
#[test]
fn fp16_validation() {
    for (init, same) in [("identity", true), ("random", false)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.onnx");
        let j = json_to(fixture("fp16_resnet_tiny_ts"), &out, &["--init", init]);
        let v = &j["validation"];
        assert_eq!(v["ok"], Value::Bool(true), "{init}: {v}");
        assert_eq!(v["converted_from"], "FLOAT16", "{init}: {v}");
        assert_eq!(
            v["output_shapes"],
            serde_json::json!([[1, 10]]),
            "{init}: {v}"
        );
        let (diff, scale) = (f(v, "max_abs_diff"), f(v, "output_scale"));
        if same {
            assert!(
                diff <= 1e-4 * scale.max(1.0),
                "{init}: diff {diff} (scale {scale})"
            );
        } else {
            assert!(diff > 0.0, "{init}: output unchanged");
        }
        assert_eq!(u(&j, "added_params"), resnet_basic_added(), "{init}");
        let written = load(&out);
        assert!(
            all_float16(written.graph()),
            "{init}: a float initializer of the written model is not FLOAT16"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Idempotence

/// Running on the tool's own output with the same position refuses at every position: exit 1,
/// "already present", nothing written.
fn check_idempotent(name: &str, positions: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for &p in positions {
        let once = dir.path().join(format!("once_{p}.onnx"));
        let twice = dir.path().join(format!("twice_{p}.onnx"));
        let o = run_unvalidated(fixture(name), &once, &["-p", p]);
        assert_eq!(o.status.code(), Some(0), "{name} -p {p}: {}", stderr(&o));
        let o = run_unvalidated(&once, &twice, &["-p", p]);
        assert_error_in(
            &o,
            &[&format!("once_{p}.onnx"), PRESENT],
            &format!("{name} -p {p}, second run"),
        );
        assert!(
            !twice.exists(),
            "{name} -p {p}: written although SE was present"
        );
    }
}

const ALL_POSITIONS: [&str; 5] = ["standard", "pre", "post", "identity", "inner"];

#[test]
fn idempotent_resnet_basic_ts() {
    check_idempotent("resnet_basic_ts", &ALL_POSITIONS);
}

#[test]
fn idempotent_mobilenet_v2_tiny_ts() {
    check_idempotent("mobilenet_v2_tiny_ts", &ALL_POSITIONS);
}

/// Plain chains: the SE gates' own 1×1 convolutions and activations are not taken for plain
/// blocks on a second run.
#[test]
fn idempotent_plain_chains() {
    for name in ["vgg_tiny_ts", "mobilenet_v1_tiny_dynamo"] {
        check_idempotent(name, &["standard", "pre", "post"]);
    }
}

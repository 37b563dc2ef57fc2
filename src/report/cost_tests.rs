//! The compute of built blocks against counts worked out by hand, before and after SE.
//!
//! One SE block on a map of C channels and H·W positions, hidden width h, with biases, adds:
//! - MACs: the two FCs, C·h + h·C = 2·C·h;
//! - element ops: the squeeze reads C·H·W, the ReLU h, the sigmoid C, the scaling C·H·W:
//!   2·C·H·W + h + C;
//! - profiler: the MACs, the FCs' bias adds h + C, the squeeze C·H·W + 4·C (a division per
//!   channel), the ReLU h, the sigmoid 32·C, the scaling C·H·W: 2·C·h + 2·h + 37·C + 2·C·H·W.

use super::{Cost, Report};
use crate::analysis::analyse;
use crate::graph::GraphView;
use crate::onnx::GraphProto;
use crate::rewrite::{splice, Position, SeOptions};
use crate::testutil::GraphBuilder;

/// The report of SE at `position` in `g`, compute counted.
fn report(g: &GraphProto, position: Position) -> Report {
    let view = GraphView::new(g).unwrap();
    let analysis = analyse(&view).unwrap();
    let opts = SeOptions {
        position,
        ..SeOptions::default()
    };
    let s = splice(&view, &analysis, &opts).unwrap();
    crate::testutil::report_of(&view, &analysis, &s, &opts, "m")
}

/// What SE on C channels of H·W positions with hidden width h adds (the module comment).
fn se(c: u64, h: u64, hw: u64) -> Cost {
    Cost {
        macs: 2 * c * h,
        element_ops: 2 * c * hw + h + c,
        profiler: 2 * c * h + 2 * h + 37 * c + 2 * c * hw,
    }
}

/// A ResNet bottleneck on a 1×16×8×8 input, identity shortcut:
///
/// ```text
/// input ─ 1×1 16→4 ─ ReLU ─ 3×3 4→4 ─ ReLU ─ 1×1 4→16 ─ Add ─ ReLU
///   └──────────────────────────────────────────────────┘
/// ```
fn bottleneck() -> GraphProto {
    let mut g = GraphBuilder::new(16);
    let a = g.conv("input", 16, 4, 1, 1);
    let a = g.relu(&a);
    let b = g.conv(&a, 4, 4, 3, 1);
    let b = g.relu(&b);
    let c = g.conv(&b, 4, 16, 1, 1);
    let s = g.add(&c, "input");
    let out = g.relu(&s);
    g.finish(&out)
}

/// The bottleneck by hand, 64 positions:
/// - 1×1 16→4: 4·64 = 256 outputs × 16 = 4,096 MACs; 3×3 4→4: 256 × 4·9 = 9,216; 1×1 4→16:
///   16·64 = 1,024 outputs × 4 = 4,096. MACs 17,408.
/// - element ops: ReLU 256, ReLU 256, Add 1,024, ReLU 1,024: 2,560.
/// - profiler: 17,408 MACs + bias adds 256 + 256 + 1,024 + the element ops at weight 1:
///   21,504.
///
/// SE at the standard position lands on the branch output, C = 16, h = round(16/16) = 1:
/// +32 MACs, +2·16·64 + 1 + 16 = 2,065 element ops, +32 + 2 + 592 + 2,048 = 2,674 profiler.
#[test]
fn resnet_bottleneck_by_hand() {
    let r = report(&bottleneck(), Position::Standard);
    let c = r.compute.unwrap();
    let before = Cost {
        macs: 17_408,
        element_ops: 2_560,
        profiler: 21_504,
    };
    assert_eq!(c.before, before);
    assert_eq!(c.added, se(16, 1, 64));
    assert_eq!(c.added.profiler, 2_674);
    assert_eq!(
        c.after,
        Cost {
            macs: 17_440,
            element_ops: 4_625,
            profiler: 24_178,
        }
    );
    // The block is the whole stage; nothing lies outside it.
    assert_eq!(r.stages[0].compute.unwrap().added, c.added);
    assert_eq!(r.stages[0].compute_share_pct, Some(100.0));
    assert_eq!(c.outside_stages.before, Cost::default());
    assert_eq!((r.macs_before, r.macs_after), (Some(17_408), Some(17_440)));
}

/// SE_3×3 (`inner`) lands after the 3×3 and its ReLU: C = 4, h = max(1, round(4/16)) = 1,
/// +8 MACs, +2·4·64 + 1 + 4 = 517 element ops, +8 + 2 + 148 + 512 = 670 profiler.
#[test]
fn resnet_bottleneck_inner_by_hand() {
    let r = report(&bottleneck(), Position::Inner);
    let c = r.compute.unwrap();
    assert_eq!(c.added, se(4, 1, 64));
    assert_eq!(c.added.profiler, 670);
    assert_eq!(r.stages[0].compute.unwrap().added, c.added);
}

/// A MobileNet v2 inverted residual on a 1×8×8×8 input, expansion 4:
///
/// ```text
/// input ─ 1×1 8→32 ─ ReLU ─ dw 3×3 32 ─ ReLU ─ 1×1 32→8 ─ Add
///   └─────────────────────────────────────────────────┘
/// ```
///
/// By hand, 64 positions:
/// - 1×1 8→32: 2,048 outputs × 8 = 16,384 MACs; depthwise 3×3: 2,048 × 1·9 = 18,432;
///   1×1 32→8: 512 outputs × 32 = 16,384. MACs 51,200.
/// - element ops: ReLU 2,048, ReLU 2,048, Add 512: 4,608.
/// - profiler: 51,200 + bias adds 2,048 + 2,048 + 512 + 4,608 = 60,416.
///
/// SE on the projection's output, C = 8, h = round(8/16) = 1 (half up): +16 MACs,
/// +2·8·64 + 1 + 8 = 1,033 element ops, +16 + 2 + 296 + 1,024 = 1,338 profiler.
#[test]
fn mobilenet_block_by_hand() {
    let mut g = GraphBuilder::new(8);
    let e = g.conv("input", 8, 32, 1, 1);
    let e = g.relu(&e);
    let d = g.conv(&e, 32, 32, 3, 32);
    let d = g.relu(&d);
    let p = g.conv(&d, 32, 8, 1, 1);
    let out = g.add(&p, "input");
    let c = report(&g.finish(&out), Position::Standard).compute.unwrap();
    assert_eq!(
        c.before,
        Cost {
            macs: 51_200,
            element_ops: 4_608,
            profiler: 60_416,
        }
    );
    assert_eq!(c.added, se(8, 1, 64));
    assert_eq!(c.added.profiler, 1_338);
}

/// Pools and reductions: a 2×2 MaxPool counts its window per output, a global pool every
/// element it reads. Two plain blocks split by the pool, on 1×4×8×8:
/// 3×3 4→4 ReLU (64·4 = 256 outputs, 256·36 = 9,216 MACs), MaxPool 2×2 s2 (4·16 outputs × 4 =
/// 256 ops), 3×3 4→4 ReLU (64 outputs, 2,304 MACs), GlobalAveragePool (reads 64; profiler
/// 64 + 4·4 = 80). Element ops 256 + 256 + 64 + 64 = 640; profiler 9,216 + 2,304 + biases
/// 256 + 64 + ReLUs 320 + MaxPool 256 + pool 80 = 12,496.
#[test]
fn pools_count_their_windows_and_inputs() {
    let mut g = GraphBuilder::new(4);
    let a = g.conv("input", 4, 4, 3, 1);
    let a = g.relu(&a);
    let m = g.max_pool(&a);
    let b = g.conv(&m, 4, 4, 3, 1);
    let b = g.relu(&b);
    let p = g.node("GlobalAveragePool", &[&b], vec![]);
    let c = report(&g.finish(&p), Position::Standard).compute.unwrap();
    assert_eq!(
        c.before,
        Cost {
            macs: 11_520,
            element_ops: 640,
            profiler: 12_496,
        }
    );
    let op = |o: &str| c.by_op.iter().find(|r| r.op == o).unwrap().clone();
    assert_eq!(op("MaxPool").before.element_ops, 256);
    assert_eq!(op("GlobalAveragePool").before.profiler, 80);
    // SE on both blocks: 4 channels, h = 1, on 64 then 16 positions; the one on the second
    // block is the second stage's.
    assert_eq!(c.added, se(4, 1, 64) + se(4, 1, 16));
}

/// Where shapes stop, the compute is not counted and the note names the node.
#[test]
fn unknown_shapes_name_the_node() {
    let mut g = bottleneck();
    g.input[0] = crate::testutil::value_info("input", crate::onnx::tensor::ElemType::FLOAT, &[]);
    let r = report(&g, Position::Standard);
    assert_eq!(r.compute, None);
    let note = r.compute_note.unwrap();
    assert!(note.starts_with("original: the shapes at "), "{note}");
    assert!(note.contains("Conv"), "{note}");
}

/// Ops of several inputs count (inputs − 1) per element, unless the extra inputs are
/// parameters; each weighs what it costs. On 1×4×8×8 (256 elements):
/// `input → Clip(min, max) → Sum(·, ·, input) → Div(·, k) → InstanceNormalization(·, s, b)`:
/// Clip 256 ops at 2; Sum 2·256 at 1; Div 256 at 4; InstanceNormalization 256 at 14.
#[test]
fn op_weights_and_arity() {
    let mut g = GraphBuilder::new(4);
    let (lo, hi) = (g.weight(&[]), g.weight(&[]));
    let c = g.node("Clip", &["input", &lo, &hi], vec![]);
    let s = g.node("Sum", &[&c, &c, "input"], vec![]);
    let k = g.weight(&[1]);
    let d = g.node("Div", &[&s, &k], vec![]);
    let (sc, b) = (g.weight(&[4]), g.weight(&[4]));
    let n = g.node("InstanceNormalization", &[&d, &sc, &b], vec![]);
    let graph = g.finish(&n);
    let view = GraphView::new(&graph).unwrap();
    let counted =
        super::breakdown::GraphCost::count(&view, &crate::analysis::Features::new(&view), None);
    let ops: Vec<(String, u64, u64)> = counted
        .by_op()
        .into_iter()
        .map(|(o, _, c)| (o, c.element_ops, c.profiler))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("Clip".to_string(), 256, 512),
            ("Div".to_string(), 256, 1_024),
            ("InstanceNormalization".to_string(), 256, 3_584),
            ("Sum".to_string(), 512, 512),
        ]
    );
}

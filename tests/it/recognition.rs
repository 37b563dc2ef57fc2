//! End-to-end tests of the `se-inject` binary on the fixtures of
//! fixtures/generate_recognition.py: a CSP stage (timm cspnet), two GhostNet bottlenecks (timm
//! ghostnet), three RepVGG blocks (timm byobnet), a DenseNet written one Concat per layer and a
//! pre-activation ResNet v2 (both laid out as Keras writes them), a narrow torchvision ConvNeXt and
//! two timm MixNet blocks, four timm DPN dual-path blocks. Each is exported by TorchScript (`_ts`) and by dynamo (`_dynamo`,
//! weights in `.onnx.data`). Besides: the legacy fixtures of fixtures/generate_legacy.py and a
//! Keras ConvNeXt exported by tf2onnx (fixtures/generate_keras.py), and a tiny ultralytics
//! YOLOv8 detector (fixtures/generate_detection.py).
//!
//! Every expected number is derived by hand from the architectures in the generator script:
//!
//! - hidden width h = max(1, round(C / 16)), half up; h is written by hand next to each C;
//! - one SE block adds 2·C·h + h + C parameters ([`check::se`]);
//! - the paper's formula per stage is (2/16)·N·C², N counting the stage's blocks that get SE at
//!   the position asked for, C the stage's output channels.
//!
//! Per fixture, one test checks for both exports: the stages (kind, blocks, channels), the
//! blocks (stage, kind, merge, channels, projection) and where SE lands at each of the five
//! positions, that both exports report the same, and one run with `--init identity` validated
//! in tract.

mod check;

use crate::common;

use crate::common::Land::{At, Skip};
use check::{
    check_fixture, check_variant, Expect, CLASSIFIER, INNER_IS_STANDARD, NO_IDENTITY, NO_INNER,
    NO_SHORTCUT, PARALLEL, UNIT,
};

/// Stem 3→8; CrossStage: conv_down 3x3 s2 8→8, conv_exp 1x1 8→32, split 16 | 16; the second
/// half through two BottleneckBlocks 16→16 (1x1 16→8, 3x3 8→8, 1x1 8→16, + x, ReLU), then
/// conv_transition_b 16→16, Concat with the first half (32), conv_transition 32→16.
/// The bottlenecks are residual blocks (identity shortcuts), nested in one csp module: the
/// Concat is read only by conv_transition (1x1, stride 1) and its parts come from one Split,
/// so the module runs from conv_exp (only the split reads it) to conv_transition's ReLU, 16
/// channels. Units and modules are grouped apart: residual 2×16, then csp 1×16. At the
/// default level the module takes SE and its units do not, except where the position has no
/// place in a csp module (identity, inner): there the units take it.
fn csp_tiny_expect() -> Expect {
    Expect {
        net: "csp_tiny",
        outputs: CLASSIFIER,
        stages: vec![("residual", 2, 16), ("csp", 1, 16)],
        blocks: vec![
            (1, "residual", "Add", 16, false),
            (1, "residual", "Add", 16, false),
            (2, "csp", "Concat", 16, false),
        ],
        positions: vec![
            // conv_transition's ReLU (16, h 1).
            ("standard", vec![Skip(UNIT), Skip(UNIT), At(16, 1)]),
            // conv_down's output, read by conv_exp only: 8, h = max(1, round(0.5)) = 1.
            ("pre", vec![Skip(UNIT), Skip(UNIT), At(8, 1)]),
            // The fusion conv closes the module: the same map as standard.
            ("post", vec![Skip(UNIT), Skip(UNIT), At(16, 1)]),
            // The bottlenecks' identity shortcuts (16); a csp module has none.
            ("identity", vec![At(16, 1), At(16, 1), Skip(NO_IDENTITY)]),
            // After each bottleneck's 3x3 and its ReLU: 8, h 1; a csp module has no inner.
            ("inner", vec![At(8, 1), At(8, 1), Skip(NO_INNER)]),
        ],
    }
}

/// ultralytics yolov8.yaml at width 0.03125 (fixtures/generate_detection.py for every layer).
/// Each C2f(c, n) is one csp module of c channels from the map before its cv1 (read by cv1
/// only) to cv2's SiLU; with shortcut (the backbone's) its n Bottlenecks on c/2 are residual
/// units nested in it; the neck's (no shortcut) hold none. SPPF is a pyramid-pool block. The
/// neck's Concats merge an upsampled or strided map: fusion, no block; Detect is a head, no
/// block. Units and modules group apart, each module its own stage (the modules of one
/// resolution are one per level):
///
/// - backbone: 2 C2f 8 (unit 4), 4 C2f 8 (units 4, 4), 6 C2f 16 (units 8, 8), 8 C2f 32
///   (unit 16), 9 SPPF 32;
/// - neck: 12 C2f 16, 15 C2f 8, 18 C2f 16, 21 C2f 32.
///
/// h = max(1, round(C / 16)), half up: 1 for C = 4, 8, 16; 2 for 24 and 32; 3 for 48.
fn yolo_tiny_expect() -> Expect {
    let unit = |stage, c| (stage, "residual", "Add", c, false);
    let module = |stage, c| (stage, "csp", "Concat", c, false);
    // Standard and post: every module's (and SPPF's) fusion conv SiLU; the units are
    // units of their module.
    let modules = || {
        vec![
            Skip(UNIT),
            At(8, 1),
            Skip(UNIT),
            Skip(UNIT),
            At(8, 1),
            Skip(UNIT),
            Skip(UNIT),
            At(16, 1),
            Skip(UNIT),
            At(32, 2),
            At(32, 2),
            At(16, 1),
            At(8, 1),
            At(16, 1),
            At(32, 2),
        ]
    };
    // Identity and inner have no place in a module; its units take SE on their identity
    // shortcut (the unit's input) or after their first 3x3 (c/2 -> c/2): 4, 4, 4, 8, 8, 16.
    let units = |why: &'static str| {
        vec![
            At(4, 1),
            Skip(why),
            At(4, 1),
            At(4, 1),
            Skip(why),
            At(8, 1),
            At(8, 1),
            Skip(why),
            At(16, 1),
            Skip(why),
            Skip(why),
            Skip(why),
            Skip(why),
            Skip(why),
            Skip(why),
        ]
    };
    Expect {
        net: "yolo_tiny",
        // The decoded predictions (4 box sides + 2 classes per anchor: 8² + 4² + 2² = 84),
        // the box distributions (4 sides × 4 bins) and class scores, the three neck maps.
        outputs: &[
            &[1, 6, 84],
            &[1, 16, 84],
            &[1, 2, 84],
            &[1, 8, 8, 8],
            &[1, 16, 4, 4],
            &[1, 32, 2, 2],
        ],
        stages: vec![
            ("residual", 1, 4),
            ("csp", 1, 8),
            ("residual", 2, 4),
            ("csp", 1, 8),
            ("residual", 2, 8),
            ("csp", 1, 16),
            ("residual", 1, 16),
            ("csp", 1, 32),
            ("pyramid-pool", 1, 32),
            ("csp", 1, 16),
            ("csp", 1, 8),
            ("csp", 1, 16),
            ("csp", 1, 32),
        ],
        blocks: vec![
            unit(1, 4),
            module(2, 8),
            unit(3, 4),
            unit(3, 4),
            module(4, 8),
            unit(5, 8),
            unit(5, 8),
            module(6, 16),
            unit(7, 16),
            module(8, 32),
            (9, "pyramid-pool", "Concat", 32, false),
            module(10, 16),
            module(11, 8),
            module(12, 16),
            module(13, 32),
        ],
        positions: vec![
            ("standard", modules()),
            // Each module's input, read by its cv1 only: the conv before it (8, 8, 16, 32),
            // C2f 8's output for SPPF (32), the neck's Concats (48, 24, 24, 48).
            (
                "pre",
                vec![
                    Skip(UNIT),
                    At(8, 1),
                    Skip(UNIT),
                    Skip(UNIT),
                    At(8, 1),
                    Skip(UNIT),
                    Skip(UNIT),
                    At(16, 1),
                    Skip(UNIT),
                    At(32, 2),
                    At(32, 2),
                    At(48, 3),
                    At(24, 2),
                    At(24, 2),
                    At(48, 3),
                ],
            ),
            ("post", modules()),
            ("identity", units(NO_IDENTITY)),
            ("inner", units(NO_INNER)),
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
        outputs: CLASSIFIER,
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
        outputs: CLASSIFIER,
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
        outputs: CLASSIFIER,
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
        outputs: CLASSIFIER,
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

/// torchvision ConvNeXt, block_setting [CNBlockConfig(8, 16, 2), CNBlockConfig(16, None, 1)]:
/// stem 4x4 s4 3→8 + LayerNorm2d; two CNBlocks on 8 (dw 7x7, permute to NHWC, LayerNorm,
/// Linear 8→32, GELU, Linear 32→8, permute back, layer scale, + x); downsample LayerNorm2d +
/// 2x2 s2 8→16; one CNBlock on 16 (Linear 16→64→16). Each CNBlock's branch holds a depthwise
/// conv: an inverted-residual block with an identity shortcut. The stages split at the channel
/// change (and the downsampling between the blocks): 2×8, then 1×16.
fn convnext_stack_tiny_expect() -> Expect {
    // Every position lands on a map of the block's width: 8 (h = max(1, round(0.5)) = 1),
    // 8, 16 (h = 1).
    let width = || vec![At(8, 1), At(8, 1), At(16, 1)];
    Expect {
        net: "convnext_stack_tiny",
        outputs: CLASSIFIER,
        stages: vec![("inverted-residual", 2, 8), ("inverted-residual", 1, 16)],
        blocks: vec![
            (1, "inverted-residual", "Add", 8, false),
            (1, "inverted-residual", "Add", 8, false),
            (2, "inverted-residual", "Add", 16, false),
        ],
        positions: vec![
            // The layer-scaled branch (permuted back to NCHW) before the Add.
            ("standard", width()),
            // Block inputs: the stem's LayerNorm2d (8), the first block's Add (8), the
            // downsampling conv (16).
            ("pre", width()),
            // No activation follows the Add: the Add.
            ("post", width()),
            // The identity shortcuts.
            ("identity", width()),
            // After the 7x7 depthwise conv (no norm or activation before the permute).
            ("inner", width()),
        ],
    }
}

/// Stem 3→8; timm InvertedResidual(8, 16, dw [3, 5], s2, expand 4, ReLU): 1x1 8→32 + BN +
/// ReLU, MixedConv2d (Split 16 | 16, dw 3x3 s2 | dw 5x5 s2, Concat 32) + BN + ReLU, 1x1
/// 32→16 + BN, no Add; InvertedResidual(16, 16, dw [3, 5, 7], exp [1, 1], pw [1, 1], expand
/// 2, SiLU): split 1x1 (8 | 8 → 16 | 16, Concat 32) + BN + SiLU, MixedConv2d (12 | 10 | 10,
/// dw 3x3 | 5x5 | 7x7, Concat 32) + BN + SiLU, split 1x1 (16 | 16 → 8 | 8, Concat 16) + BN,
/// then the Add of the block input. A split convolution is one convolution, so both are
/// inverted-residual blocks (their branches hold depthwise convs); one stage of 2×16 (the
/// stride is in the first block).
fn mixnet_tiny_expect() -> Expect {
    Expect {
        net: "mixnet_tiny",
        outputs: CLASSIFIER,
        stages: vec![("inverted-residual", 2, 16)],
        blocks: vec![
            (1, "inverted-residual", "none", 16, false),
            (1, "inverted-residual", "Add", 16, false),
        ],
        positions: vec![
            // The projection's BN: the block output (no Add), then before the Add: 16, h 1.
            ("standard", vec![At(16, 1), At(16, 1)]),
            // Block inputs: the stem (8), the first block's output (16).
            ("pre", vec![At(8, 1), At(16, 1)]),
            // No activation after the projection or the Add: the block output.
            ("post", vec![At(16, 1), At(16, 1)]),
            // The first block has no Add; the second's identity shortcut (16).
            ("identity", vec![Skip(NO_SHORTCUT), At(16, 1)]),
            // A split convolution is one convolution, and an inverted residual's inner SE goes
            // after its depthwise conv and activation: here the mixed depthwise conv's Concat, BN
            // and activation, 32 channels, h = round(2) = 2, in both blocks (where MixNet's own
            // SE sits).
            ("inner", vec![At(32, 2), At(32, 2)]),
        ],
    }
}

// ------------------------------------------------------------------------------------------------
// One test per fixture

/// Stem 3→16; four timm DualPathBlocks (BN-ReLU-Conv units). Each cuts its transformation's
/// output T (the last 1x1, num_1x1_c + inc channels) into a residual part added to the
/// shortcut's first part and a dense part concatenated after the shortcut's rest:
/// proj(16; 1x1 16→8, 3x3 g2 8→8, 1x1 8→12 = 8 | 4; shortcut: 1x1 projection 16→16 = 8 | 8;
/// out 8 + 8 + 4 = 20), normal(20; T 12; shortcut: the input, 8 | 12; out 24), down(24; 1x1
/// 24→16, 3x3 s2 g2 16→16, 1x1 16→24 = 16 | 8; projection 1x1 s2 24→32 = 16 | 16; out 40),
/// normal(40; T 24; out 48). A block's channels are T's, equal within a stage while the map
/// grows: dual-path 2×12, then 2×24 (the stride is in the first block of the second).
fn dpn_tiny_expect() -> Expect {
    Expect {
        net: "dpn_tiny",
        outputs: CLASSIFIER,
        stages: vec![("dual-path", 2, 12), ("dual-path", 2, 24)],
        blocks: vec![
            (1, "dual-path", "Concat", 12, true),
            (1, "dual-path", "Concat", 12, false),
            (2, "dual-path", "Concat", 24, true),
            (2, "dual-path", "Concat", 24, false),
        ],
        positions: vec![
            // T before it is cut: 12 (h = round(0.75) = 1), 24 (h = round(1.5) = 2).
            ("standard", vec![At(12, 1), At(12, 1), At(24, 2), At(24, 2)]),
            // Block inputs for the branch only: 16 (1), 20 (1), 24 (2), 40 (3).
            ("pre", vec![At(16, 1), At(20, 1), At(24, 2), At(40, 3)]),
            // After each Concat (a BN follows, not an activation): 20 (1), 24 (2), 40 (3), 48 (3).
            ("post", vec![At(20, 1), At(24, 2), At(40, 3), At(48, 3)]),
            // The shortcut before it is cut: projections 16 (1) and 32 (2); inputs 20 (1), 40 (3).
            ("identity", vec![At(16, 1), At(20, 1), At(32, 2), At(40, 3)]),
            // After the grouped 3x3 and the BN + ReLU after it: 8 (1), 8 (1), 16 (1), 16 (1).
            ("inner", vec![At(8, 1), At(8, 1), At(16, 1), At(16, 1)]),
        ],
    }
}

/// fixtures/generate_legacy.py: stem Conv 3x3 3→8 + BN + Relu; a basic block 8→8 (identity
/// shortcut); a basic block 8→16, stride 2, with a 1x1 projection; BatchNormalization kept
/// separate, merges by `merge` (Sum in the IR 3 file, Add in the other). Two residual stages of
/// one block each, 1×8 and 1×16 (the channels change).
fn legacy_resnet_expect(merge: &'static str) -> Expect {
    Expect {
        net: "legacy_resnet",
        outputs: CLASSIFIER,
        stages: vec![("residual", 1, 8), ("residual", 1, 16)],
        blocks: vec![
            (1, "residual", merge, 8, false),
            (2, "residual", merge, 16, true),
        ],
        positions: vec![
            // Second conv + BN of each branch: 8 (h = round(0.5) = 1), 16 (h 1).
            ("standard", vec![At(8, 1), At(16, 1)]),
            // Block inputs: the stem's Relu (8), the first block's Relu (8).
            ("pre", vec![At(8, 1), At(8, 1)]),
            // After each merge's Relu: 8, 16.
            ("post", vec![At(8, 1), At(16, 1)]),
            // The identity shortcut (8), the projection's BN (16).
            ("identity", vec![At(8, 1), At(16, 1)]),
            // After the first 3x3, its BN and Relu: 8, 16.
            ("inner", vec![At(8, 1), At(16, 1)]),
        ],
    }
}

/// IR 3, opset 8: weights as initializers also listed as graph inputs.
#[test]
fn legacy_resnet_ir3() {
    check_variant(legacy_resnet_expect("Sum"), "ir3");
}

/// No initializer: weights in Constant nodes, reshaped, transposed, cast from FLOAT16; biases
/// made by ConstantOfShape.
#[test]
fn legacy_resnet_weights_from_nodes() {
    check_variant(legacy_resnet_expect("Add"), "nodes");
}

/// fixtures/generate_legacy.py, channels_last_tiny: stem Conv 4x4 s4 3→8, Transpose to NHWC;
/// two ConvNeXt-style blocks whose Add and MLP stay channels-last (dw 3x3 on an NCHW copy,
/// LayerNorm, MatMul 8→32, Relu, MatMul 32→8, + x). The depthwise conv makes them inverted
/// residuals, one stage of 2×8; every site is 8 channels (h 1), NHWC except inner's (the dw
/// conv's NCHW output).
fn channels_last_expect() -> Expect {
    let each = || vec![At(8, 1), At(8, 1)];
    Expect {
        net: "channels_last",
        outputs: CLASSIFIER,
        stages: vec![("inverted-residual", 2, 8)],
        blocks: vec![
            (1, "inverted-residual", "Add", 8, false),
            (1, "inverted-residual", "Add", 8, false),
        ],
        positions: ["standard", "pre", "post", "identity", "inner"]
            .into_iter()
            .map(|p| (p, each()))
            .collect(),
    }
}

/// fixtures/generate_keras.py, keras_convnext_tiny: Keras's ConvNeXt (depths 2, 1, 2, 1;
/// widths 8, 8, 16, 16) through tf2onnx. Each block: dw Conv 7x7 (groups C), a LayerNorm
/// written out (ReduceMean, Sub, Mul, Sqrt, Reciprocal, Add), Transpose to NHWC, Reshape to
/// (H·W, C), MatMul C→4C, Reshape back, GELU, the same for 4C→C, layer scale, Transpose to NCHW,
/// then the Add of x. The depthwise conv makes them inverted residuals; the resolution halves
/// between stages (8, 4, 2, 1 pixels), so four stages 2×8, 1×8, 2×16, 1×16, and
/// h = max(1, round(C / 16)) = 1 in all. Every position lands on a map of the block's width;
/// inner after the dw conv, before the written-out LayerNorm (whose Add merges no parallel
/// paths: nothing but element-wise and statistics ops lies between its fork and it). Added:
/// 3·(2·8 + 1 + 8) + 3·(2·16 + 1 + 16) = 75 + 147 = 222; the formula
/// (2/16)·(2·64 + 64 + 2·256 + 256) = 120.
fn keras_convnext_expect() -> Expect {
    let each = || {
        vec![
            At(8, 1),
            At(8, 1),
            At(8, 1),
            At(16, 1),
            At(16, 1),
            At(16, 1),
        ]
    };
    let block = |stage, channels| (stage, "inverted-residual", "Add", channels, false);
    Expect {
        net: "keras_convnext",
        outputs: CLASSIFIER,
        stages: vec![
            ("inverted-residual", 2, 8),
            ("inverted-residual", 1, 8),
            ("inverted-residual", 2, 16),
            ("inverted-residual", 1, 16),
        ],
        blocks: vec![
            block(1, 8),
            block(1, 8),
            block(2, 8),
            block(3, 16),
            block(3, 16),
            block(4, 16),
        ],
        positions: ["standard", "pre", "post", "identity", "inner"]
            .into_iter()
            .map(|p| (p, each()))
            .collect(),
    }
}

#[test]
fn keras_convnext_through_tf2onnx() {
    let e = keras_convnext_expect();
    assert_eq!(common::added(e.lands("standard")), 222);
    check_variant(e, "tiny");
}

/// SE on channels-last maps pools over H and W and scales the channel axis: identity init
/// keeps the outputs, random weights change them, validated in tract; a second run finds the
/// gates.
#[test]
fn channels_last_blocks() {
    check_variant(channels_last_expect(), "tiny");
    let dir = tempfile::tempdir().expect("temporary folder");
    let out = dir.path().join("out.onnx");
    let o = common::run_to(
        "fixtures/channels_last_tiny.onnx",
        &out,
        &["--format", "json"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert_eq!(
        j["validation"]["ok"],
        serde_json::Value::Bool(true),
        "{}",
        j["validation"]
    );
    assert!(j["validation"]["max_abs_diff"]
        .as_f64()
        .is_some_and(|d| d > 1e-6));
    // Its own output holds an SE gate in every block (pooling a transposed copy of the map).
    let again = common::run_unvalidated(&out, &dir.path().join("again.onnx"), &[]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("2 block(s): an SE block is already present"),
        "{err}"
    );
}

#[test]
fn csp_tiny() {
    check_fixture(csp_tiny_expect());
}

#[test]
fn yolo_tiny() {
    check_fixture(yolo_tiny_expect());
}

#[test]
fn ghost_tiny() {
    check_fixture(ghost_tiny_expect());
}

#[test]
fn repvgg_tiny() {
    check_fixture(repvgg_tiny_expect());
}

#[test]
fn densenet_pairwise_tiny() {
    check_fixture(densenet_pairwise_tiny_expect());
}

#[test]
fn resnet_v2_tiny() {
    check_fixture(resnet_v2_tiny_expect());
}

/// The dynamo export writes LayerNormalization nodes (opset 20); the TorchScript export (opset
/// 13) writes each LayerNorm out (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add),
/// where a mean over the channels is one channel broadcast back.
#[test]
fn convnext_stack_tiny() {
    check_fixture(convnext_stack_tiny_expect());
}

#[test]
fn mixnet_tiny() {
    check_fixture(mixnet_tiny_expect());
}

#[test]
fn dpn_tiny() {
    check_fixture(dpn_tiny_expect());
}

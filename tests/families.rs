//! End-to-end tests of the `se-inject` binary on the CNN family fixtures of
//! fixtures/generate_families.py (VGG, MobileNet v1 / v2 / v3, Inception, Inception-ResNet,
//! ShuffleNet v2, DenseNet, SE-ResNet, EfficientNet), each exported by TorchScript (`_ts`, weights
//! inline) and by dynamo (`_dynamo`, weights in `.onnx.data`), plus the fp16 ResNet.
//!
//! Every expected number is derived by hand from the architectures in the generator script:
//!
//! - hidden width h = max(1, round(C / 16)), half up; h is written by hand next to each C;
//! - one SE block adds 2·C·h + h + C parameters ([`se`]);
//! - the paper's formula per stage is (2/r)·N·C² = 2·N·C²/16, N counting the stage's blocks
//!   that get SE at the position asked for;
//! - params_before counts float initializer elements. Both exporters fold each BatchNorm that
//!   follows a convolution into it (conv weight + a bias of C_out); a BatchNorm that follows a
//!   ReLU / Concat (DenseNet) stays, with 4 tensors of C. Where the two exports differ, the
//!   comment of the net says why (constants kept as nodes or initializers, zero biases dropped or
//!   deduplicated).
//!
//! Per fixture and exporter, one test checks: the params report, each of the five
//! positions with `--init identity` and the written model read back with the library,
//! and the random init at the standard position. The fp16 ResNet and the idempotence
//! of a second run follow at the end.

// The expected numbers keep their `·1` factors (h = 1) so the arithmetic reads as derived.
#![allow(clippy::identity_op)]

mod common;

use common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

// ------------------------------------------------------------------------------------------------
// Expected numbers, by hand

/// Parameters of one SE block on C channels with hidden width h (with biases).
fn se(c: u64, h: u64) -> u64 {
    2 * c * h + h + c
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
const PRESENT: &str = "already present";
const PARALLEL: &str = "inner has no meaning for a branch of parallel paths";

/// One expected block of the analysis: (stage, merge op, channels, existing SE).
type Blk = (u64, &'static str, u64, bool);

/// One expected position: its name and where SE lands per block.
struct Pos {
    name: &'static str,
    lands: Vec<Land>,
}

fn pos(name: &'static str, lands: Vec<Land>) -> Pos {
    Pos { name, lands }
}

/// Extra structural checks of a written model: (exporter, position, graph).
type Extra = fn(&str, &str, &se_inject::onnx::GraphProto);

struct Fam {
    net: &'static str,
    /// params_before for the `ts` and the `dynamo` export.
    params_ts: u64,
    params_dynamo: u64,
    /// (kind, blocks, channels) per stage.
    stages: Vec<(&'static str, u64, u64)>,
    blocks: Vec<Blk>,
    /// Channels of the SE gates already in the model.
    gates: Vec<u64>,
    /// Where standard lands with --force, for a model that already has SE there (the random
    /// init run adds --force then).
    forced: Option<Vec<Land>>,
    positions: Vec<Pos>,
    extra: Option<Extra>,
}

impl Fam {
    fn params_before(&self, exporter: &str) -> u64 {
        if exporter == "ts" {
            self.params_ts
        } else {
            self.params_dynamo
        }
    }

    fn lands(&self, position: &str) -> &[Land] {
        &self
            .positions
            .iter()
            .find(|p| p.name == position)
            .unwrap_or_else(|| panic!("{}: no position {position}", self.net))
            .lands
    }
}

fn family(net: &str) -> Fam {
    match net {
        // torchvision make_layers([8, 8, M, 16, 16, M, 32]), no BN, conv biases:
        //   conv 3→8, 8→8 | MaxPool | 8→16, 16→16 | MaxPool | 16→32, Linear 32→10.
        // One plain block per conv + ReLU; stages split at the MaxPools.
        "vgg_tiny" => {
            let hand = (3 * 8 * 9 + 8)
                + (8 * 8 * 9 + 8)
                + (8 * 16 * 9 + 16)
                + (16 * 16 * 9 + 16)
                + (16 * 32 * 9 + 32)
                + (32 * 10 + 10); // 9,266
            Fam {
                net: "vgg_tiny",
                params_ts: hand,
                params_dynamo: hand, // the same tensors
                stages: vec![("plain", 2, 8), ("plain", 2, 16), ("plain", 1, 32)],
                blocks: vec![
                    (1, "none", 8, false),
                    (1, "none", 8, false),
                    (2, "none", 16, false),
                    (2, "none", 16, false),
                    (3, "none", 32, false),
                ],
                gates: vec![],
                forced: None,
                positions: vec![
                    pos(
                        "standard",
                        vec![At(8, 1), At(8, 1), At(16, 1), At(16, 1), At(32, 2)],
                    ),
                    // Block inputs: the image (3), ReLU (8), MaxPool (8), ReLU (16), MaxPool (16).
                    pos(
                        "pre",
                        vec![At(3, 1), At(8, 1), At(8, 1), At(16, 1), At(16, 1)],
                    ),
                    // After the activation, as standard (no Add).
                    pos(
                        "post",
                        vec![At(8, 1), At(8, 1), At(16, 1), At(16, 1), At(32, 2)],
                    ),
                    pos("identity", vec![Skip(NO_IDENTITY); 5]),
                    pos("inner", vec![Skip(NO_INNER); 5]),
                ],
                extra: None,
            }
        }
        // Stem conv 3x3 s2 3→8 + BN + ReLU, depthwise-separable pairs (dw3x3 + BN + ReLU,
        // pw1x1 + BN + ReLU) 8→16, 16→32 (s2), 32→32, 32→64 (s2), Linear 64→10. The stem is one
        // plain block, each pair one.
        "mobilenet_v1_tiny" => {
            let hand = (3 * 8 * 9 + 8)
                // (dw C→C with BN bias, pw C→C' with BN bias) per pair
                + (8 * 9 + 8) + (8 * 16 + 16)
                + (16 * 9 + 16) + (16 * 32 + 32)
                + (32 * 9 + 32) + (32 * 32 + 32)
                + (32 * 9 + 32) + (32 * 64 + 64)
                + (64 * 10 + 10); // 5,610
            Fam {
                net: "mobilenet_v1_tiny",
                params_ts: hand,
                params_dynamo: hand, // the same tensors
                stages: vec![
                    ("plain", 1, 8),
                    ("plain", 1, 16),
                    ("plain", 2, 32),
                    ("plain", 1, 64),
                ],
                blocks: vec![
                    (1, "none", 8, false),
                    (2, "none", 16, false),
                    (3, "none", 32, false),
                    (3, "none", 32, false),
                    (4, "none", 64, false),
                ],
                gates: vec![],
                forced: None,
                positions: vec![
                    pos(
                        "standard",
                        vec![At(8, 1), At(16, 1), At(32, 2), At(32, 2), At(64, 4)],
                    ),
                    pos(
                        "pre",
                        vec![At(3, 1), At(8, 1), At(16, 1), At(32, 2), At(32, 2)],
                    ),
                    pos(
                        "post",
                        vec![At(8, 1), At(16, 1), At(32, 2), At(32, 2), At(64, 4)],
                    ),
                    pos("identity", vec![Skip(NO_IDENTITY); 5]),
                    pos("inner", vec![Skip(NO_INNER); 5]),
                ],
                extra: None,
            }
        }
        // torchvision MobileNetV2, setting [[1,8,1,1],[6,16,2,2],[6,24,2,2]]: stem 3x3 s2 3→32,
        // IR 32→8 (t=1: dw 32, project), IR 8→16 s2 (48), IR 16→16 (96, Add),
        // IR 16→24 s2 (96), IR 24→24 (144, Add), last 1x1 24→64, Linear 64→10 (replaced after
        // construction: default init, non-zero bias). ReLU6 is a Clip.
        "mobilenet_v2_tiny" => {
            let hand = (3 * 32 * 9 + 32)
                // (expand 1x1, dw 3x3, project 1x1) per block, each with its folded BN bias
                + (32 * 9 + 32) + (32 * 8 + 8)
                + (8 * 48 + 48) + (48 * 9 + 48) + (48 * 16 + 16)
                + (16 * 96 + 96) + (96 * 9 + 96) + (96 * 16 + 16)
                + (16 * 96 + 96) + (96 * 9 + 96) + (96 * 24 + 24)
                + (24 * 144 + 144) + (144 * 9 + 144) + (144 * 24 + 24)
                // last 1x1, Linear
                + (24 * 64 + 64)
                + (64 * 10 + 10); // 23,010
            Fam {
                net: "mobilenet_v2_tiny",
                params_ts: hand,
                // dynamo keeps the Clip's min and max as two scalar float initializers (TorchScript
                // writes them as Constant nodes, which are not initializers).
                params_dynamo: hand + 2,
                stages: vec![
                    ("inverted-residual", 1, 8),
                    ("inverted-residual", 2, 16),
                    ("inverted-residual", 2, 24),
                ],
                blocks: vec![
                    (1, "none", 8, false),
                    (2, "none", 16, false),
                    (2, "Add", 16, false),
                    (3, "none", 24, false),
                    (3, "Add", 24, false),
                ],
                gates: vec![],
                forced: None,
                positions: vec![
                    pos(
                        "standard",
                        vec![At(8, 1), At(16, 1), At(16, 1), At(24, 2), At(24, 2)],
                    ),
                    // Block inputs: stem 32, then 8, 16, 16 (the Add), 24.
                    pos(
                        "pre",
                        vec![At(32, 2), At(8, 1), At(16, 1), At(16, 1), At(24, 2)],
                    ),
                    // No activation after the projection or the Add: the block output.
                    pos(
                        "post",
                        vec![At(8, 1), At(16, 1), At(16, 1), At(24, 2), At(24, 2)],
                    ),
                    // Only the two blocks with an Add have a shortcut (the identity).
                    pos(
                        "identity",
                        vec![
                            Skip(NO_IDENTITY),
                            Skip(NO_IDENTITY),
                            At(16, 1),
                            Skip(NO_IDENTITY),
                            At(24, 2),
                        ],
                    ),
                    // After the depthwise conv and its ReLU6: the expanded widths 32 (t = 1), 48,
                    // 96, 96, 144.
                    pos(
                        "inner",
                        vec![At(32, 2), At(48, 3), At(96, 6), At(96, 6), At(144, 9)],
                    ),
                ],
                extra: None,
            }
        }
        // GoogLeNet layout: stem BasicConv2d 3→16, MaxPool, Inception 3a (16→8+12+4+4 = 28),
        // 3b (28→8+12+8+4 = 32), reduction (32→24+12+32 = 68), InceptionE (68→8+16+16+8 = 48,
        // its 1x3|3x1 Concats nested), Linear 48→10. Each module one inception block and stage.
        "inception_tiny" => {
            let hand = (3 * 16 * 9 + 16)
                // 3a: 1x1 16→8; 1x1 16→8, 3x3 8→12; 1x1 16→4, 3x3 4→4; pool, 1x1 16→4
                + (16 * 8 + 8) + (16 * 8 + 8) + (8 * 12 * 9 + 12)
                + (16 * 4 + 4) + (4 * 4 * 9 + 4) + (16 * 4 + 4)
                // 3b: 28→8; 28→8, 8→12; 28→4, 4→8; pool, 28→4
                + (28 * 8 + 8) + (28 * 8 + 8) + (8 * 12 * 9 + 12)
                + (28 * 4 + 4) + (4 * 8 * 9 + 8) + (28 * 4 + 4)
                // reduction: 3x3 s2 32→24; 1x1 32→8, 3x3 8→12, 3x3 s2 12→12; MaxPool
                + (32 * 24 * 9 + 24) + (32 * 8 + 8) + (8 * 12 * 9 + 12) + (12 * 12 * 9 + 12)
                // InceptionE: four 1x1 68→8, four 1x3 / 3x1 8→8, one 3x3 8→8
                + 4 * (68 * 8 + 8) + 4 * (8 * 8 * 3 + 8) + (8 * 8 * 9 + 8)
                + (48 * 10 + 10); // 17,214
            Fam {
                net: "inception_tiny",
                params_ts: hand,
                params_dynamo: hand, // the same tensors
                stages: vec![
                    ("inception", 1, 28),
                    ("inception", 1, 32),
                    ("inception", 1, 68),
                    ("inception", 1, 48),
                ],
                blocks: vec![
                    (1, "Concat", 28, false),
                    (2, "Concat", 32, false),
                    (3, "Concat", 68, false),
                    (4, "Concat", 48, false),
                ],
                gates: vec![],
                forced: None,
                positions: vec![
                    // 28/16 = 1.75 → 2; 68/16 = 4.25 → 4; 48/16 = 3.
                    pos("standard", vec![At(28, 2), At(32, 2), At(68, 4), At(48, 3)]),
                    // Module inputs: the stem MaxPool (16), 28, 32, 68.
                    pos("pre", vec![At(16, 1), At(28, 2), At(32, 2), At(68, 4)]),
                    pos("post", vec![At(28, 2), At(32, 2), At(68, 4), At(48, 3)]),
                    pos("identity", vec![Skip(NO_IDENTITY); 4]),
                    pos("inner", vec![Skip(NO_INNER); 4]),
                ],
                extra: None,
            }
        }
        // timm InceptionResnetV2 layout: conv 3x3 s2 3→16, conv 3x3 16→32, MaxPool, Mixed_5b
        // (32→12+8+12+8 = 40), two Block35 units on 40 (1x1 40→8; 1x1 40→8, 3x3 8→8; 1x1 40→8,
        // 3x3 8→12, 3x3 12→16; Concat 32, conv 1x1 32→40 with bias, ·0.17, + x; ReLU on the
        // first only), conv 1x1 40→64, Linear 64→10.
        "inception_resnet_tiny" => {
            let unit = (40 * 8 + 8) * 3
                + (8 * 8 * 9 + 8)
                + (8 * 12 * 9 + 12)
                + (12 * 16 * 9 + 16)
                + (32 * 40 + 40); // 5,508
            let hand = (3 * 16 * 9 + 16)
                + (16 * 32 * 9 + 32)
                // Mixed_5b: 1x1 32→12; 1x1 32→6, 5x5 6→8; 1x1 32→8, 3x3 8→12, 3x3 12→12;
                // AvgPool, 1x1 32→8
                + (32 * 12 + 12) + (32 * 6 + 6) + (6 * 8 * 25 + 8)
                + (32 * 8 + 8) + (8 * 12 * 9 + 12) + (12 * 12 * 9 + 12)
                + (32 * 8 + 8)
                + 2 * unit
                + (40 * 64 + 64)
                + (64 * 10 + 10); // 23,892
            Fam {
                net: "inception_resnet_tiny",
                params_ts: hand,
                // dynamo keeps the 0.17 scale as one scalar initializer both units share
                // (TorchScript: a Constant node per unit).
                params_dynamo: hand + 1,
                stages: vec![("inception", 1, 40), ("residual", 2, 40)],
                blocks: vec![
                    (1, "Concat", 40, false),
                    (2, "Add", 40, false),
                    (2, "Add", 40, false),
                ],
                gates: vec![],
                forced: None,
                positions: vec![
                    // 40/16 = 2.5 → 3 (half up).
                    pos("standard", vec![At(40, 3), At(40, 3), At(40, 3)]),
                    // Mixed_5b reads the MaxPool (32); each unit reads 40.
                    pos("pre", vec![At(32, 2), At(40, 3), At(40, 3)]),
                    // After the Concat; after the first unit's ReLU; after the second's Add.
                    pos("post", vec![At(40, 3), At(40, 3), At(40, 3)]),
                    pos("identity", vec![Skip(NO_IDENTITY), At(40, 3), At(40, 3)]),
                    // A unit's branch is three parallel paths with three spatial convs (3x3 8→8,
                    // 3x3 8→12, 3x3 12→16): no single "spatial conv of the branch", so inner is
                    // refused for the units too and nothing can take SE: exit 1.
                    pos(
                        "inner",
                        vec![Skip(NO_INNER), Skip(PARALLEL), Skip(PARALLEL)],
                    ),
                ],
                extra: None,
            }
        }
        // torchvision ShuffleNetV2([2,2,2], [8,16,32,64,128]): conv 3x3 s2 3→8, MaxPool,
        // three stages of a stride-2 unit (branch1: dw + 1x1; branch2: 1x1, dw s2, 1x1; each
        // C/2 wide) and a stride-1 unit (split in halves, branch2 on one), conv 1x1 64→128,
        // Linear 128→10. One shuffle block per unit; SE at standard on branch2 (C/2).
        "shufflenet_v2_tiny" => {
            let hand = (3 * 8 * 9 + 8)
                // stage 2 (C/2 = 8): unit s2 with input 8, unit s1
                + (8 * 9 + 8) + (8 * 8 + 8) + (8 * 8 + 8) + (8 * 9 + 8) + (8 * 8 + 8)
                + (8 * 8 + 8) + (8 * 9 + 8) + (8 * 8 + 8)
                // stage 3 (C/2 = 16), input 16
                + (16 * 9 + 16) + (16 * 16 + 16) + (16 * 16 + 16) + (16 * 9 + 16) + (16 * 16 + 16)
                + (16 * 16 + 16) + (16 * 9 + 16) + (16 * 16 + 16)
                // stage 4 (C/2 = 32), input 32
                + (32 * 9 + 32) + (32 * 32 + 32) + (32 * 32 + 32) + (32 * 9 + 32) + (32 * 32 + 32)
                + (32 * 32 + 32) + (32 * 9 + 32) + (32 * 32 + 32)
                + (64 * 128 + 128)
                + (128 * 10 + 10); // 18,514
            Fam {
                net: "shufflenet_v2_tiny",
                params_ts: hand,
                params_dynamo: hand, // the same tensors
                stages: vec![("shuffle", 2, 16), ("shuffle", 2, 32), ("shuffle", 2, 64)],
                blocks: vec![
                    (1, "Concat", 16, false),
                    (1, "Concat", 16, false),
                    (2, "Concat", 32, false),
                    (2, "Concat", 32, false),
                    (3, "Concat", 64, false),
                    (3, "Concat", 64, false),
                ],
                gates: vec![],
                forced: None,
                positions: vec![
                    // On branch2's output before the Concat: C/2.
                    pos(
                        "standard",
                        vec![
                            At(8, 1),
                            At(8, 1),
                            At(16, 1),
                            At(16, 1),
                            At(32, 2),
                            At(32, 2),
                        ],
                    ),
                    // What branch2 reads: the whole unit input of a stride-2 unit (the MaxPool's
                    // 8, then 16, 32), the split half of a stride-1 unit (8, 16, 32).
                    pos(
                        "pre",
                        vec![
                            At(8, 1),
                            At(8, 1),
                            At(16, 1),
                            At(16, 1),
                            At(32, 2),
                            At(32, 2),
                        ],
                    ),
                    // After the channel shuffle: C.
                    pos(
                        "post",
                        vec![
                            At(16, 1),
                            At(16, 1),
                            At(32, 2),
                            At(32, 2),
                            At(64, 4),
                            At(64, 4),
                        ],
                    ),
                    // The other half: branch1's output, or the untouched split half: C/2.
                    pos(
                        "identity",
                        vec![
                            At(8, 1),
                            At(8, 1),
                            At(16, 1),
                            At(16, 1),
                            At(32, 2),
                            At(32, 2),
                        ],
                    ),
                    // After branch2's depthwise conv (no activation follows it): C/2.
                    pos(
                        "inner",
                        vec![
                            At(8, 1),
                            At(8, 1),
                            At(16, 1),
                            At(16, 1),
                            At(32, 2),
                            At(32, 2),
                        ],
                    ),
                ],
                extra: Some(shuffle_extra),
            }
        }
        // torchvision DenseNet(growth 4, blocks (2, 2), init 8, bn_size 2): conv 7x7 s2 3→8
        // (+BN folded), MaxPool; dense block: layers (BN, ReLU, 1x1 →8 (+BN folded), ReLU,
        // 3x3 8→4) on 8 and 12 channels, Concat → 16; transition BN 16, ReLU, 1x1 16→8,
        // AvgPool; dense block 8 → 16; BN 16; Linear 16→10. BatchNorms before a ReLU stay
        // (4 tensors each).
        "densenet_tiny" => {
            let block = (4 * 8 + (8 * 8 + 8) + 8 * 4 * 9) + (4 * 12 + (12 * 8 + 8) + 8 * 4 * 9);
            let hand =
                (3 * 8 * 49 + 8) + block + (4 * 16 + 16 * 8) + block + 4 * 16 + (16 * 10 + 10); // 3,274
            Fam {
                net: "densenet_tiny",
                params_ts: hand,
                // torchvision zero-initialises the Linear bias; dynamo drops the zero bias.
                params_dynamo: hand - 10,
                stages: vec![("dense", 1, 16), ("dense", 1, 16)],
                blocks: vec![(1, "Concat", 16, false), (2, "Concat", 16, false)],
                gates: vec![],
                forced: None,
                positions: vec![
                    pos("standard", vec![At(16, 1), At(16, 1)]),
                    // Dense block inputs: 8 (MaxPool), 8 (transition).
                    pos("pre", vec![At(8, 1), At(8, 1)]),
                    // The Concat feeds a BatchNorm, not an activation: 16.
                    pos("post", vec![At(16, 1), At(16, 1)]),
                    pos("identity", vec![Skip(NO_IDENTITY); 2]),
                    pos("inner", vec![Skip(NO_INNER); 2]),
                ],
                extra: None,
            }
        }
        // timm ResNet(BasicBlock, (2, 1), channels (16, 32)), stem conv 7x7 s2 3→64 + MaxPool;
        // layer1.0 64→16 (projection), layer1.1 16→16, layer2.0 16→32 s2 (projection); timm
        // SEModule (rd 1/4: 16→4→16, 32→8→32, biases) before each Add; Linear 32→10.
        "se_resnet_tiny" => {
            let hand = (3 * 64 * 49 + 64)
                // layer1.0: conv1, conv2, SE fc1, fc2, projection
                + (64 * 16 * 9 + 16) + (16 * 16 * 9 + 16) + (16 * 4 + 4) + (4 * 16 + 16)
                + (64 * 16 + 16)
                // layer1.1: conv1, conv2, SE
                + 2 * (16 * 16 * 9 + 16) + (16 * 4 + 4) + (4 * 16 + 16)
                // layer2.0: conv1, conv2, SE, projection
                + (16 * 32 * 9 + 32) + (32 * 32 * 9 + 32) + (32 * 8 + 8) + (8 * 32 + 32)
                + (16 * 32 + 32)
                + (32 * 10 + 10); // 42,314
            Fam {
                net: "se_resnet_tiny",
                params_ts: hand,
                params_dynamo: hand, // the same tensors
                stages: vec![("residual", 2, 16), ("residual", 1, 32)],
                blocks: vec![
                    (1, "Add", 16, true),
                    (1, "Add", 16, true),
                    (2, "Add", 32, true),
                ],
                gates: vec![16, 16, 32],
                // With --force, on the block outputs (where the existing SE is): 16, 16, 32.
                forced: Some(vec![At(16, 1), At(16, 1), At(32, 2)]),
                // Every block holds an SE gate: without --force every position refuses them all.
                positions: vec![
                    pos("standard", vec![Skip(PRESENT); 3]),
                    pos("pre", vec![Skip(PRESENT); 3]),
                    pos("post", vec![Skip(PRESENT); 3]),
                    pos("identity", vec![Skip(PRESENT); 3]),
                    pos("inner", vec![Skip(PRESENT); 3]),
                ],
                extra: None,
            }
        }
        // torchvision MobileNetV3, bnecks (in, k, exp, out, SE, act, s): A (16,3,16,16,SE,RE,2)
        // without expansion, B (16,3,48,24,-,RE,2), C (24,5,64,24,SE,HS,1) with the Add,
        // D (24,5,64,32,SE,HS,2); SE squeeze _make_divisible(exp/4, 8): 16→8, 64→16; stem
        // 3x3 s2 3→16 (Hardswish), last 1x1 32→192, classifier Linear 192→64, Linear 64→10.
        "mobilenet_v3_tiny" => {
            let hand = (3 * 16 * 9 + 16)
                // A: dw 16, SE 16→8→16, project 16→16
                + (16 * 9 + 16) + (16 * 8 + 8) + (8 * 16 + 16) + (16 * 16 + 16)
                // B: expand 16→48, dw 48, project 48→24
                + (16 * 48 + 48) + (48 * 9 + 48) + (48 * 24 + 24)
                // C: expand 24→64, dw 5x5 64, SE 64→16→64, project 64→24
                + (24 * 64 + 64) + (64 * 25 + 64) + (64 * 16 + 16) + (16 * 64 + 64)
                + (64 * 24 + 24)
                // D: expand 24→64, dw 5x5 64, SE 64→16→64, project 64→32
                + (24 * 64 + 64) + (64 * 25 + 64) + (64 * 16 + 16) + (16 * 64 + 64)
                + (64 * 32 + 32)
                // last 1x1 32→192, Linear 192→64, Linear 64→10
                + (32 * 192 + 192)
                + (192 * 64 + 64)
                + (64 * 10 + 10); // 37,394
            Fam {
                net: "mobilenet_v3_tiny",
                // torchvision zero-initialises the SE and Linear biases. TorchScript keeps one
                // copy of equal initializers: zero [16] × 3 (A's fc2, C's and D's fc1) and zero
                // [64] × 3 (C's and D's fc2, the first Linear) keep one each.
                params_ts: hand - 2 * 16 - 2 * 64,
                // dynamo drops every zero bias: fc1 8 + 16 + 16, fc2 16 + 64 + 64, Linear 64, 10.
                params_dynamo: hand - (8 + 16 + 16) - (16 + 64 + 64) - 64 - 10,
                stages: vec![
                    ("inverted-residual", 1, 16),
                    ("inverted-residual", 2, 24),
                    ("inverted-residual", 1, 32),
                ],
                blocks: vec![
                    (1, "none", 16, true),
                    (2, "none", 24, false),
                    (2, "Add", 24, true),
                    (3, "none", 32, true),
                ],
                // On the depthwise output: A 16 (no expansion), C 64, D 64.
                gates: vec![16, 64, 64],
                forced: None,
                // A, C and D hold an SE gate: without --force every position refuses them; only
                // B (no SE, no shortcut) can take SE.
                positions: vec![
                    pos(
                        "standard",
                        vec![Skip(PRESENT), At(24, 2), Skip(PRESENT), Skip(PRESENT)],
                    ),
                    // B's input: A's output, 16.
                    pos(
                        "pre",
                        vec![Skip(PRESENT), At(16, 1), Skip(PRESENT), Skip(PRESENT)],
                    ),
                    pos(
                        "post",
                        vec![Skip(PRESENT), At(24, 2), Skip(PRESENT), Skip(PRESENT)],
                    ),
                    // Only C has a shortcut, and it holds SE: nothing can take SE, exit 1.
                    pos(
                        "identity",
                        vec![
                            Skip(NO_IDENTITY),
                            Skip(NO_IDENTITY),
                            Skip(PRESENT),
                            Skip(NO_IDENTITY),
                        ],
                    ),
                    // After B's depthwise conv and its ReLU: 48 wide. (The TorchScript export's
                    // Hardswish is x · HardSigmoid(x); C and D are refused all the same.)
                    pos(
                        "inner",
                        vec![Skip(PRESENT), At(48, 3), Skip(PRESENT), Skip(PRESENT)],
                    ),
                ],
                extra: None,
            }
        }
        // torchvision EfficientNet, MBConv (t, k, s, in, out, n): (1,3,1,16,8,1),
        // (6,3,2,8,16,2), (6,5,2,16,24,1), SiLU, SE squeeze max(1, in/4) in every MBConv;
        // stem 3x3 s2 3→16, last 1x1 24→96, Linear 96→10.
        "efficientnet_tiny" => {
            let hand = (3 * 16 * 9 + 16)
                // 16→8, no expansion: dw 16, SE 16→4→16, project
                + (16 * 9 + 16) + (16 * 4 + 4) + (4 * 16 + 16) + (16 * 8 + 8)
                // 8→16 s2, expand 48, SE 48→2→48
                + (8 * 48 + 48) + (48 * 9 + 48) + (48 * 2 + 2) + (2 * 48 + 48) + (48 * 16 + 16)
                // 16→16, expand 96, SE 96→4→96, Add
                + (16 * 96 + 96) + (96 * 9 + 96) + (96 * 4 + 4) + (4 * 96 + 96) + (96 * 16 + 16)
                // 16→24 s2, 5x5, expand 96, SE 96→4→96
                + (16 * 96 + 96) + (96 * 25 + 96) + (96 * 4 + 4) + (4 * 96 + 96) + (96 * 24 + 24)
                + (24 * 96 + 96)
                + (96 * 10 + 10); // 18,536
            Fam {
                net: "efficientnet_tiny",
                // torchvision zero-initialises the conv and Linear biases (the SE's). TorchScript
                // keeps one copy of equal initializers: zero [4] × 3 and zero [96] × 2.
                params_ts: hand - 2 * 4 - 96,
                // dynamo drops every zero bias: fc1 4 + 2 + 4 + 4, fc2 16 + 48 + 96 + 96, Linear 10.
                params_dynamo: hand - (4 + 2 + 4 + 4) - (16 + 48 + 96 + 96) - 10,
                stages: vec![
                    ("inverted-residual", 1, 8),
                    ("inverted-residual", 2, 16),
                    ("inverted-residual", 1, 24),
                ],
                blocks: vec![
                    (1, "none", 8, true),
                    (2, "none", 16, true),
                    (2, "Add", 16, true),
                    (3, "none", 24, true),
                ],
                gates: vec![16, 48, 96, 96],
                // With --force, on the block outputs: 8, 16, 16, 24.
                forced: Some(vec![At(8, 1), At(16, 1), At(16, 1), At(24, 2)]),
                // Every block holds an SE gate: without --force nothing can take SE anywhere.
                positions: vec![
                    pos("standard", vec![Skip(PRESENT); 4]),
                    pos("pre", vec![Skip(PRESENT); 4]),
                    pos("post", vec![Skip(PRESENT); 4]),
                    pos(
                        "identity",
                        vec![
                            Skip(NO_IDENTITY),
                            Skip(NO_IDENTITY),
                            Skip(PRESENT),
                            Skip(NO_IDENTITY),
                        ],
                    ),
                    pos("inner", vec![Skip(PRESENT); 4]),
                ],
                extra: None,
            }
        }
        other => panic!("no expectations for {other}"),
    }
}

// ------------------------------------------------------------------------------------------------
// Helpers

fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("'{key}' is not an array in {v}"))
}

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

/// The node producing each tensor.
fn producers(graph: &se_inject::onnx::GraphProto) -> HashMap<&str, &se_inject::onnx::NodeProto> {
    let mut m = HashMap::new();
    for n in &graph.node {
        for o in &n.output {
            m.insert(o.as_str(), n);
        }
    }
    m
}

/// Outputs of the SE scale nodes: a Mul one of whose inputs is a Sigmoid's output.
fn se_outputs(graph: &se_inject::onnx::GraphProto) -> HashSet<&str> {
    let prod = producers(graph);
    graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Mul"))
        .filter(|n| {
            n.input.iter().any(|i| {
                prod.get(i.as_str())
                    .is_some_and(|p| p.op_type.as_deref() == Some("Sigmoid"))
            })
        })
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect()
}

/// ShuffleNet: where SE sits relative to each unit's Concat (the Concat feeding the shuffle's
/// Reshape).
fn shuffle_extra(exporter: &str, position: &str, graph: &se_inject::onnx::GraphProto) {
    let what = format!("shufflenet_v2_tiny_{exporter} {position}");
    let prod = producers(graph);
    let se_out = se_outputs(graph);
    let readers: HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Reshape"))
        .map(|n| n.input[0].as_str())
        .collect();
    let units: Vec<&se_inject::onnx::NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Concat") && n.input.len() == 2)
        .filter(|n| readers.contains(n.output[0].as_str()))
        .collect();
    assert_eq!(units.len(), 6, "{what}: shuffle Concats");
    match position {
        // standard: branch2's output is gated; identity: the other half is. Either way exactly
        // one of the Concat's two inputs comes from an SE block.
        "standard" | "identity" => {
            for c in &units {
                let gated = c
                    .input
                    .iter()
                    .filter(|i| se_out.contains(i.as_str()))
                    .count();
                assert_eq!(gated, 1, "{what}: {:?}", c.name);
            }
        }
        // pre: SE feeds only the branch; the other half of a stride-1 unit keeps the raw input,
        // so no Concat input is a split half of an SE output.
        "pre" => {
            let halves_of_se = units
                .iter()
                .flat_map(|c| &c.input)
                .filter(|i| {
                    prod.get(i.as_str()).is_some_and(|p| {
                        matches!(p.op_type.as_deref(), Some("Split" | "Slice"))
                            && se_out.contains(p.input[0].as_str())
                    })
                })
                .count();
            assert_eq!(halves_of_se, 0, "{what}: the shortcut half is gated");
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------------
// The checks

/// Item 1: `--report params --format json`, nothing written, nothing validated.
fn check_report(fam: &Fam, exporter: &str) {
    let name = format!("{}_{exporter}", fam.net);
    let cwd = tempfile::tempdir().unwrap();
    let o = run_in(
        Some(cwd.path()),
        [
            fixture(&name).as_os_str(),
            "--report".as_ref(),
            "params".as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
        ],
    );
    let j = json_ok(&o);
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
    let added: u64 = standard
        .iter()
        .map(|l| if let At(c, h) = l { se(*c, *h) } else { 0 })
        .sum();
    let before = fam.params_before(exporter);
    assert_eq!(u(&j, "added_params"), added, "{name}");
    assert_eq!(u(&j, "params_before"), before, "{name}");
    assert_eq!(u(&j, "params_after"), before + added, "{name}");
    // The fixture itself holds that many float parameters.
    assert_eq!(
        float_params(load(&fixture(&name)).graph()),
        before,
        "{name}: float parameters in the fixture"
    );

    let gates: Vec<u64> = arr(&j, "existing_se")
        .iter()
        .map(|g| u(g, "channels"))
        .collect();
    assert_eq!(gates, fam.gates, "{name}: existing SE");
}

/// The stage rows against the family's stages and one position's landing: kind, blocks,
/// channels; the formula 2·N·C²/16 with N the stage's blocks that get SE; the parameters added
/// and the blocks injected. The total formula sums the stages'.
fn check_stages(j: &Value, fam: &Fam, lands: &[Land], what: &str) {
    let stages = arr(j, "stages");
    assert_eq!(stages.len(), fam.stages.len(), "{what}: stages {stages:?}");
    let mut formula_total = 0.0;
    for (i, (s, &(kind, n, c))) in stages.iter().zip(&fam.stages).enumerate() {
        let index = i as u64 + 1;
        let what = format!("{what}: stage {index} {s}");
        let mine = || {
            fam.blocks
                .iter()
                .zip(lands)
                .filter(|(b, _)| b.0 == index)
                .map(|(_, l)| *l)
        };
        let added: u64 = mine()
            .map(|l| if let At(c, h) = l { se(c, h) } else { 0 })
            .sum();
        let injected = mine().filter(|l| matches!(l, At(..))).count() as u64;
        let formula = (2 * injected * c * c) as f64 / 16.0;
        assert_eq!(u(s, "index"), index, "{what}");
        assert_eq!(s["kind"], kind, "{what}");
        assert_eq!(u(s, "blocks"), n, "{what}");
        assert_eq!(u(s, "channels"), c, "{what}");
        assert_eq!(f(s, "formula_params"), formula, "{what}");
        assert_eq!(u(s, "added_params"), added, "{what}");
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
        blocks.iter().zip(&fam.blocks).zip(lands).enumerate()
    {
        let what = format!("{what}: block {i} {b}");
        assert_eq!(u(b, "stage"), stage, "{what}");
        assert_eq!(b["kind"], fam.stages[stage as usize - 1].0, "{what}");
        assert_eq!(b["merge"], merge, "{what}");
        assert_eq!(b["existing_se"], Value::Bool(existing), "{what}");
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
                assert_eq!(u(b, "hidden"), 0, "{what}");
                assert_eq!(u(b, "added_params"), 0, "{what}");
            }
        }
    }
}

/// Item 2: one position with `--init identity`, written with -o into a fresh folder.
fn check_position(fam: &Fam, exporter: &str, p: &Pos) {
    let name = format!("{}_{exporter}", fam.net);
    let what = format!("{name} -p {}", p.name);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let o = run([
        fixture(&name).as_os_str(),
        "-p".as_ref(),
        p.name.as_ref(),
        "--init".as_ref(),
        "identity".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let injected = p.lands.iter().filter(|l| matches!(l, At(..))).count() as u64;
    if injected == 0 {
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
    check_blocks(&j, fam, p.lands.as_slice(), &what);
    let added: u64 = p
        .lands
        .iter()
        .map(|l| if let At(c, h) = l { se(*c, *h) } else { 0 })
        .sum();
    let before = fam.params_before(exporter);
    assert_eq!(u(&j, "added_params"), added, "{what}");
    assert_eq!(u(&j, "params_before"), before, "{what}");
    assert_eq!(u(&j, "params_after"), before + added, "{what}");
    check_stages(&j, fam, p.lands.as_slice(), &what);

    // Identity init keeps the function.
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

    // The files written: out.onnx, and its data file for the dynamo export.
    assert_eq!(j["output"].as_str(), out.to_str(), "{what}");
    let files: Vec<String> = if exporter == "dynamo" {
        vec!["out.onnx".into(), "out.onnx.data".into()]
    } else {
        vec!["out.onnx".into()]
    };
    assert_eq!(listing(dir.path()), files, "{what}: files written");

    // The written model, read back with the library.
    let written = load(&out);
    let graph = written.graph();
    check_well_formed(graph, &what);
    assert_eq!(
        float_params(graph),
        before + added,
        "{what}: float parameters in the written file"
    );
    // An SE block (avg squeeze, sigmoid) is 6 nodes: pool, fc1, ReLU, fc2, Sigmoid, Mul.
    let original = load(&fixture(&name));
    assert_eq!(
        graph.node.len() as u64,
        original.graph().node.len() as u64 + 6 * injected,
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
    let mut args = vec![
        fixture(&name).into_os_string(),
        "-o".into(),
        out.clone().into_os_string(),
        "--format".into(),
        "json".into(),
    ];
    if fam.forced.is_some() {
        args.push("--force".into());
    }
    let j = json_ok(&run(&args));
    let v = &j["validation"];
    assert_eq!(v["ok"], Value::Bool(true), "{name}: {v}");
    assert!(
        f(v, "max_abs_diff") > 0.0,
        "{name}: random init left the output unchanged"
    );
    assert!(out.exists(), "{name}: nothing written");
    if let Some(forced) = &fam.forced {
        check_blocks(&j, fam, forced, &format!("{name} --force"));
        let added: u64 = forced
            .iter()
            .map(|l| if let At(c, h) = l { se(*c, *h) } else { 0 })
            .sum();
        assert_eq!(u(&j, "added_params"), added, "{name} --force");
        check_well_formed(load(&out).graph(), &name);
    }
}

fn check_family(net: &str, exporter: &str) {
    let fam = family(net);
    check_report(&fam, exporter);
    for p in &fam.positions {
        check_position(&fam, exporter, p);
    }
    check_random_init(&fam, exporter);
}

// ------------------------------------------------------------------------------------------------
// One test per fixture

#[test]
fn vgg_tiny_ts() {
    check_family("vgg_tiny", "ts");
}

#[test]
fn vgg_tiny_dynamo() {
    check_family("vgg_tiny", "dynamo");
}

#[test]
fn mobilenet_v1_tiny_ts() {
    check_family("mobilenet_v1_tiny", "ts");
}

#[test]
fn mobilenet_v1_tiny_dynamo() {
    check_family("mobilenet_v1_tiny", "dynamo");
}

#[test]
fn mobilenet_v2_tiny_ts() {
    check_family("mobilenet_v2_tiny", "ts");
}

#[test]
fn mobilenet_v2_tiny_dynamo() {
    check_family("mobilenet_v2_tiny", "dynamo");
}

#[test]
fn inception_tiny_ts() {
    check_family("inception_tiny", "ts");
}

#[test]
fn inception_tiny_dynamo() {
    check_family("inception_tiny", "dynamo");
}

#[test]
fn inception_resnet_tiny_ts() {
    check_family("inception_resnet_tiny", "ts");
}

#[test]
fn inception_resnet_tiny_dynamo() {
    check_family("inception_resnet_tiny", "dynamo");
}

#[test]
fn shufflenet_v2_tiny_ts() {
    check_family("shufflenet_v2_tiny", "ts");
}

#[test]
fn shufflenet_v2_tiny_dynamo() {
    check_family("shufflenet_v2_tiny", "dynamo");
}

#[test]
fn densenet_tiny_ts() {
    check_family("densenet_tiny", "ts");
}

#[test]
fn densenet_tiny_dynamo() {
    check_family("densenet_tiny", "dynamo");
}

#[test]
fn se_resnet_tiny_ts() {
    check_family("se_resnet_tiny", "ts");
}

#[test]
fn se_resnet_tiny_dynamo() {
    check_family("se_resnet_tiny", "dynamo");
}

#[test]
fn mobilenet_v3_tiny_ts() {
    check_family("mobilenet_v3_tiny", "ts");
}

#[test]
fn mobilenet_v3_tiny_dynamo() {
    check_family("mobilenet_v3_tiny", "dynamo");
}

#[test]
fn efficientnet_tiny_ts() {
    check_family("efficientnet_tiny", "ts");
}

#[test]
fn efficientnet_tiny_dynamo() {
    check_family("efficientnet_tiny", "dynamo");
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
    let j = json_ok(&run([
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--no-validate".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
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
    let j32 = json_ok(&run([
        fixture("resnet_basic_ts").as_os_str(),
        "--report".as_ref(),
        "params".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
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
    assert!(original
        .graph()
        .initializer
        .iter()
        .filter(|t| matches!(t.data_type, Some(1 | 10 | 11 | 16)))
        .all(|t| t.data_type == Some(10)));
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
        let j = json_ok(&run([
            fixture("fp16_resnet_tiny_ts").as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--init".as_ref(),
            init.as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
        ]));
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
            written
                .graph()
                .initializer
                .iter()
                .filter(|t| matches!(t.data_type, Some(1 | 10 | 11 | 16)))
                .all(|t| t.data_type == Some(10)),
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
        let o = run([
            fixture(name).as_os_str(),
            "-p".as_ref(),
            p.as_ref(),
            "-o".as_ref(),
            once.as_os_str(),
            "--no-validate".as_ref(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{name} -p {p}: {}", stderr(&o));
        let o = run([
            once.as_os_str(),
            "-p".as_ref(),
            p.as_ref(),
            "-o".as_ref(),
            twice.as_os_str(),
            "--no-validate".as_ref(),
        ]);
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

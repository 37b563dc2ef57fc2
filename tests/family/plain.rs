//! Plain chains: VGG and MobileNet v1. One plain block per conv + ReLU (or depthwise-separable
//! pair); no shortcut and no inner position.

use super::Land::{At, Skip};
use super::{Fam, Pos, NO_IDENTITY, NO_INNER};

/// torchvision make_layers([8, 8, M, 16, 16, M, 32]), no BN, conv biases:
///   conv 3→8, 8→8 | MaxPool | 8→16, 16→16 | MaxPool | 16→32, Linear 32→10.
/// One plain block per conv + ReLU; stages split at the MaxPools.
const VGG_PARAMS: u64 = (3 * 8 * 9 + 8)
    + (8 * 8 * 9 + 8)
    + (8 * 16 * 9 + 16)
    + (16 * 16 * 9 + 16)
    + (16 * 32 * 9 + 32)
    + (32 * 10 + 10); // 9,266

pub const VGG_TINY: Fam = Fam {
    net: "vgg_tiny",
    params_ts: VGG_PARAMS,
    params_dynamo: VGG_PARAMS, // the same tensors
    stages: &[("plain", 2, 8), ("plain", 2, 16), ("plain", 1, 32)],
    blocks: &[
        (1, "none", 8, false),
        (1, "none", 8, false),
        (2, "none", 16, false),
        (2, "none", 16, false),
        (3, "none", 32, false),
    ],
    gates: &[],
    forced: None,
    positions: &[
        Pos {
            name: "standard",
            lands: &[At(8, 1), At(8, 1), At(16, 1), At(16, 1), At(32, 2)],
        },
        // Block inputs: the image (3), ReLU (8), MaxPool (8), ReLU (16), MaxPool (16).
        Pos {
            name: "pre",
            lands: &[At(3, 1), At(8, 1), At(8, 1), At(16, 1), At(16, 1)],
        },
        // After the activation, as standard (no Add).
        Pos {
            name: "post",
            lands: &[At(8, 1), At(8, 1), At(16, 1), At(16, 1), At(32, 2)],
        },
        Pos {
            name: "identity",
            lands: &[Skip(NO_IDENTITY); 5],
        },
        Pos {
            name: "inner",
            lands: &[Skip(NO_INNER); 5],
        },
    ],
    extra: None,
};

/// Stem conv 3x3 s2 3→8 + BN + ReLU, depthwise-separable pairs (dw3x3 + BN + ReLU,
/// pw1x1 + BN + ReLU) 8→16, 16→32 (s2), 32→32, 32→64 (s2), Linear 64→10. The stem is one
/// plain block, each pair one.
const MOBILENET_V1_PARAMS: u64 = (3 * 8 * 9 + 8)
    // (dw C→C with BN bias, pw C→C' with BN bias) per pair
    + (8 * 9 + 8) + (8 * 16 + 16)
    + (16 * 9 + 16) + (16 * 32 + 32)
    + (32 * 9 + 32) + (32 * 32 + 32)
    + (32 * 9 + 32) + (32 * 64 + 64)
    + (64 * 10 + 10); // 5,610

pub const MOBILENET_V1_TINY: Fam = Fam {
    net: "mobilenet_v1_tiny",
    params_ts: MOBILENET_V1_PARAMS,
    params_dynamo: MOBILENET_V1_PARAMS, // the same tensors
    stages: &[
        ("plain", 1, 8),
        ("plain", 1, 16),
        ("plain", 2, 32),
        ("plain", 1, 64),
    ],
    blocks: &[
        (1, "none", 8, false),
        (2, "none", 16, false),
        (3, "none", 32, false),
        (3, "none", 32, false),
        (4, "none", 64, false),
    ],
    gates: &[],
    forced: None,
    positions: &[
        Pos {
            name: "standard",
            lands: &[At(8, 1), At(16, 1), At(32, 2), At(32, 2), At(64, 4)],
        },
        Pos {
            name: "pre",
            lands: &[At(3, 1), At(8, 1), At(16, 1), At(32, 2), At(32, 2)],
        },
        Pos {
            name: "post",
            lands: &[At(8, 1), At(16, 1), At(32, 2), At(32, 2), At(64, 4)],
        },
        Pos {
            name: "identity",
            lands: &[Skip(NO_IDENTITY); 5],
        },
        Pos {
            name: "inner",
            lands: &[Skip(NO_INNER); 5],
        },
    ],
    extra: None,
};

//! Plain chains: VGG and MobileNet v1. One plain block per conv + ReLU (or depthwise-separable
//! pair); no shortcut and no inner position.

use super::Land::{self, At, Skip};
use super::{pos, Fam, NO_IDENTITY, NO_INNER};

/// torchvision make_layers([8, 8, M, 16, 16, M, 32]), no BN, conv biases:
///   conv 3→8, 8→8 | MaxPool | 8→16, 16→16 | MaxPool | 16→32, Linear 32→10.
/// One plain block per conv + ReLU; stages split at the MaxPools.
const VGG_PARAMS: u64 = (3 * 8 * 9 + 8)
    + (8 * 8 * 9 + 8)
    + (8 * 16 * 9 + 16)
    + (16 * 16 * 9 + 16)
    + (16 * 32 * 9 + 32)
    + (32 * 10 + 10); // 9,266

/// Each block's activation output: the standard and the post position.
const VGG_OUTPUTS: [Land; 5] = [At(8, 1), At(8, 1), At(16, 1), At(16, 1), At(32, 2)];

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
        pos("standard", &VGG_OUTPUTS),
        // Block inputs: the image (3), ReLU (8), MaxPool (8), ReLU (16), MaxPool (16).
        pos("pre", &[At(3, 1), At(8, 1), At(8, 1), At(16, 1), At(16, 1)]),
        // After the activation, as standard (no Add).
        pos("post", &VGG_OUTPUTS),
        pos("identity", &[Skip(NO_IDENTITY); 5]),
        pos("inner", &[Skip(NO_INNER); 5]),
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

/// Each block's activation output: the standard and the post position.
const MOBILENET_V1_OUTPUTS: [Land; 5] = [At(8, 1), At(16, 1), At(32, 2), At(32, 2), At(64, 4)];

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
        pos("standard", &MOBILENET_V1_OUTPUTS),
        pos(
            "pre",
            &[At(3, 1), At(8, 1), At(16, 1), At(32, 2), At(32, 2)],
        ),
        pos("post", &MOBILENET_V1_OUTPUTS),
        pos("identity", &[Skip(NO_IDENTITY); 5]),
        pos("inner", &[Skip(NO_INNER); 5]),
    ],
    extra: None,
};

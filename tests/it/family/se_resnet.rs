//! A residual net with SE already in every block: timm SE-ResNet.

use super::Land::{At, Skip};
use super::{pos, Fam, PRESENT};

/// timm ResNet(BasicBlock, (2, 1), channels (16, 32)), stem conv 7x7 s2 3→64 + MaxPool;
/// layer1.0 64→16 (projection), layer1.1 16→16, layer2.0 16→32 s2 (projection); timm
/// SEModule (rd 1/4: 16→4→16, 32→8→32, biases) before each Add; Linear 32→10.
const SE_RESNET_PARAMS: u64 = (3 * 64 * 49 + 64)
    // layer1.0: conv1, conv2, SE fc1, fc2, projection
    + (64 * 16 * 9 + 16) + (16 * 16 * 9 + 16) + (16 * 4 + 4) + (4 * 16 + 16)
    + (64 * 16 + 16)
    // layer1.1: conv1, conv2, SE
    + 2 * (16 * 16 * 9 + 16) + (16 * 4 + 4) + (4 * 16 + 16)
    // layer2.0: conv1, conv2, SE, projection
    + (16 * 32 * 9 + 32) + (32 * 32 * 9 + 32) + (32 * 8 + 8) + (8 * 32 + 32)
    + (16 * 32 + 32)
    + (32 * 10 + 10); // 42,314

pub const SE_RESNET_TINY: Fam = Fam {
    net: "se_resnet_tiny",
    params_ts: SE_RESNET_PARAMS,
    params_dynamo: SE_RESNET_PARAMS, // the same tensors
    stages: &[("residual", 2, 16), ("residual", 1, 32)],
    blocks: &[
        (1, "Add", 16, true),
        (1, "Add", 16, true),
        (2, "Add", 32, true),
    ],
    gates: &[16, 16, 32],
    // With --force, on the block outputs (where the existing SE is): 16, 16, 32.
    forced: Some(&[At(16, 1), At(16, 1), At(32, 2)]),
    // Every block holds an SE gate: without --force every position refuses them all.
    positions: &[
        pos("standard", &[Skip(PRESENT); 3]),
        pos("pre", &[Skip(PRESENT); 3]),
        pos("post", &[Skip(PRESENT); 3]),
        pos("identity", &[Skip(PRESENT); 3]),
        pos("inner", &[Skip(PRESENT); 3]),
    ],
    extra: None,
};

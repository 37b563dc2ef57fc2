//! Dense blocks: DenseNet.

use super::Land::{At, Skip};
use super::{pos, Fam, NO_IDENTITY, NO_INNER};

/// One dense block: layers (BN 4 tensors, 1x1 →8 with folded BN bias, 3x3 8→4) on 8 and 12
/// channels.
const DENSE_BLOCK_PARAMS: u64 =
    (4 * 8 + (8 * 8 + 8) + 8 * 4 * 9) + (4 * 12 + (12 * 8 + 8) + 8 * 4 * 9);

/// torchvision DenseNet(growth 4, blocks (2, 2), init 8, bn_size 2): conv 7x7 s2 3→8
/// (+BN folded), MaxPool; dense block: layers (BN, ReLU, 1x1 →8 (+BN folded), ReLU,
/// 3x3 8→4) on 8 and 12 channels, Concat → 16; transition BN 16, ReLU, 1x1 16→8,
/// AvgPool; dense block 8 → 16; BN 16; Linear 16→10. BatchNorms before a ReLU stay
/// (4 tensors each).
const DENSENET_PARAMS: u64 = (3 * 8 * 49 + 8)
    + DENSE_BLOCK_PARAMS
    + (4 * 16 + 16 * 8)
    + DENSE_BLOCK_PARAMS
    + 4 * 16
    + (16 * 10 + 10); // 3,274

pub const DENSENET_TINY: Fam = Fam {
    net: "densenet_tiny",
    params_ts: DENSENET_PARAMS,
    // torchvision zero-initialises the Linear bias; dynamo drops the zero bias.
    params_dynamo: DENSENET_PARAMS - 10,
    stages: &[("dense", 1, 16), ("dense", 1, 16)],
    blocks: &[(1, "Concat", 16, false), (2, "Concat", 16, false)],
    gates: &[],
    forced: None,
    positions: &[
        pos("standard", &[At(16, 1), At(16, 1)]),
        // Dense block inputs: 8 (MaxPool), 8 (transition).
        pos("pre", &[At(8, 1), At(8, 1)]),
        // The Concat feeds a BatchNorm, not an activation: 16.
        pos("post", &[At(16, 1), At(16, 1)]),
        pos("identity", &[Skip(NO_IDENTITY); 2]),
        pos("inner", &[Skip(NO_INNER); 2]),
    ],
    extra: None,
};

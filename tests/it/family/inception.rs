//! Inception modules: GoogLeNet / Inception v3 and Inception-ResNet.

use super::Land::{At, Skip};
use super::{pos, Fam, NO_IDENTITY, NO_INNER, PARALLEL};

/// GoogLeNet layout: stem BasicConv2d 3→16, MaxPool, Inception 3a (16→8+12+4+4 = 28),
/// 3b (28→8+12+8+4 = 32), reduction (32→24+12+32 = 68), InceptionE (68→8+16+16+8 = 48,
/// its 1x3|3x1 Concats nested), Linear 48→10. Each module one inception block and stage.
const INCEPTION_PARAMS: u64 = (3 * 16 * 9 + 16)
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

pub const INCEPTION_TINY: Fam = Fam {
    net: "inception_tiny",
    params_ts: INCEPTION_PARAMS,
    params_dynamo: INCEPTION_PARAMS, // the same tensors
    stages: &[
        ("inception", 1, 28),
        ("inception", 1, 32),
        ("inception", 1, 68),
        ("inception", 1, 48),
    ],
    blocks: &[
        (1, "Concat", 28, false),
        (2, "Concat", 32, false),
        (3, "Concat", 68, false),
        (4, "Concat", 48, false),
    ],
    gates: &[],
    forced: None,
    positions: &[
        // 28/16 = 1.75 → 2; 68/16 = 4.25 → 4; 48/16 = 3.
        pos("standard", &[At(28, 2), At(32, 2), At(68, 4), At(48, 3)]),
        // Module inputs: the stem MaxPool (16), 28, 32, 68.
        pos("pre", &[At(16, 1), At(28, 2), At(32, 2), At(68, 4)]),
        pos("post", &[At(28, 2), At(32, 2), At(68, 4), At(48, 3)]),
        pos("identity", &[Skip(NO_IDENTITY); 4]),
        pos("inner", &[Skip(NO_INNER); 4]),
    ],
    extra: None,
};

/// One Block35 unit on 40 channels: 1x1 40→8; 1x1 40→8, 3x3 8→8; 1x1 40→8, 3x3 8→12,
/// 3x3 12→16; Concat 32, conv 1x1 32→40 with bias.
const BLOCK35_PARAMS: u64 =
    (40 * 8 + 8) * 3 + (8 * 8 * 9 + 8) + (8 * 12 * 9 + 12) + (12 * 16 * 9 + 16) + (32 * 40 + 40); // 5,508

/// timm InceptionResnetV2 layout: conv 3x3 s2 3→16, conv 3x3 16→32, MaxPool, Mixed_5b
/// (32→12+8+12+8 = 40), two Block35 units on 40 (1x1 40→8; 1x1 40→8, 3x3 8→8; 1x1 40→8,
/// 3x3 8→12, 3x3 12→16; Concat 32, conv 1x1 32→40 with bias, ·0.17, + x; ReLU on the
/// first only), conv 1x1 40→64, Linear 64→10.
const INCEPTION_RESNET_PARAMS: u64 = (3 * 16 * 9 + 16)
    + (16 * 32 * 9 + 32)
    // Mixed_5b: 1x1 32→12; 1x1 32→6, 5x5 6→8; 1x1 32→8, 3x3 8→12, 3x3 12→12;
    // AvgPool, 1x1 32→8
    + (32 * 12 + 12) + (32 * 6 + 6) + (6 * 8 * 25 + 8)
    + (32 * 8 + 8) + (8 * 12 * 9 + 12) + (12 * 12 * 9 + 12)
    + (32 * 8 + 8)
    + 2 * BLOCK35_PARAMS
    + (40 * 64 + 64)
    + (64 * 10 + 10); // 23,892

pub const INCEPTION_RESNET_TINY: Fam = Fam {
    net: "inception_resnet_tiny",
    params_ts: INCEPTION_RESNET_PARAMS,
    // dynamo keeps the 0.17 scale as one scalar initializer both units share
    // (TorchScript: a Constant node per unit).
    params_dynamo: INCEPTION_RESNET_PARAMS + 1,
    stages: &[("inception", 1, 40), ("residual", 2, 40)],
    blocks: &[
        (1, "Concat", 40, false),
        (2, "Add", 40, false),
        (2, "Add", 40, false),
    ],
    gates: &[],
    forced: None,
    positions: &[
        // 40/16 = 2.5 → 3 (half up).
        pos("standard", &[At(40, 3), At(40, 3), At(40, 3)]),
        // Mixed_5b reads the MaxPool (32); each unit reads 40.
        pos("pre", &[At(32, 2), At(40, 3), At(40, 3)]),
        // After the Concat; after the first unit's ReLU; after the second's Add.
        pos("post", &[At(40, 3), At(40, 3), At(40, 3)]),
        pos("identity", &[Skip(NO_IDENTITY), At(40, 3), At(40, 3)]),
        // A unit's branch is three parallel paths with three spatial convs (3x3 8→8,
        // 3x3 8→12, 3x3 12→16): no single "spatial conv of the branch", so inner is
        // refused for the units too and nothing can take SE: exit 1.
        pos("inner", &[Skip(NO_INNER), Skip(PARALLEL), Skip(PARALLEL)]),
    ],
    extra: None,
};

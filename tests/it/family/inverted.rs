//! Inverted residuals: MobileNet v2, MobileNet v3 and EfficientNet (the last two with SE
//! already in most blocks).

use super::Land::{self, At, Skip};
use super::{pos, Fam, NO_IDENTITY, PRESENT};

/// torchvision MobileNetV2, setting [[1,8,1,1],[6,16,2,2],[6,24,2,2]]: stem 3x3 s2 3→32,
/// IR 32→8 (t=1: dw 32, project), IR 8→16 s2 (48), IR 16→16 (96, Add),
/// IR 16→24 s2 (96), IR 24→24 (144, Add), last 1x1 24→64, Linear 64→10 (replaced after
/// construction: default init, non-zero bias). ReLU6 is a Clip.
const MOBILENET_V2_PARAMS: u64 = (3 * 32 * 9 + 32)
    // (expand 1x1, dw 3x3, project 1x1) per block, each with its folded BN bias
    + (32 * 9 + 32) + (32 * 8 + 8)
    + (8 * 48 + 48) + (48 * 9 + 48) + (48 * 16 + 16)
    + (16 * 96 + 96) + (96 * 9 + 96) + (96 * 16 + 16)
    + (16 * 96 + 96) + (96 * 9 + 96) + (96 * 24 + 24)
    + (24 * 144 + 144) + (144 * 9 + 144) + (144 * 24 + 24)
    // last 1x1, Linear
    + (24 * 64 + 64)
    + (64 * 10 + 10); // 23,010

/// Each block's output (no activation follows the projection or the Add): the standard and
/// the post position.
const MOBILENET_V2_OUTPUTS: [Land; 5] = [At(8, 1), At(16, 1), At(16, 1), At(24, 2), At(24, 2)];

pub const MOBILENET_V2_TINY: Fam = Fam {
    net: "mobilenet_v2_tiny",
    params_ts: MOBILENET_V2_PARAMS,
    // dynamo keeps the Clip's min and max as two scalar float initializers (TorchScript
    // writes them as Constant nodes, which are not initializers).
    params_dynamo: MOBILENET_V2_PARAMS + 2,
    stages: &[
        ("inverted-residual", 1, 8),
        ("inverted-residual", 2, 16),
        ("inverted-residual", 2, 24),
    ],
    blocks: &[
        (1, "none", 8, false),
        (2, "none", 16, false),
        (2, "Add", 16, false),
        (3, "none", 24, false),
        (3, "Add", 24, false),
    ],
    gates: &[],
    forced: None,
    positions: &[
        pos("standard", &MOBILENET_V2_OUTPUTS),
        // Block inputs: stem 32, then 8, 16, 16 (the Add), 24.
        pos(
            "pre",
            &[At(32, 2), At(8, 1), At(16, 1), At(16, 1), At(24, 2)],
        ),
        // No activation after the projection or the Add: the block output.
        pos("post", &MOBILENET_V2_OUTPUTS),
        // Only the two blocks with an Add have a shortcut (the identity).
        pos(
            "identity",
            &[
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
            &[At(32, 2), At(48, 3), At(96, 6), At(96, 6), At(144, 9)],
        ),
    ],
    extra: None,
};

/// torchvision MobileNetV3, bnecks (in, k, exp, out, SE, act, s): A (16,3,16,16,SE,RE,2)
/// without expansion, B (16,3,48,24,-,RE,2), C (24,5,64,24,SE,HS,1) with the Add,
/// D (24,5,64,32,SE,HS,2); SE squeeze _make_divisible(exp/4, 8): 16→8, 64→16; stem
/// 3x3 s2 3→16 (Hardswish), last 1x1 32→192, classifier Linear 192→64, Linear 64→10.
const MOBILENET_V3_PARAMS: u64 = (3 * 16 * 9 + 16)
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

/// Only B takes SE, on its output: the standard and the post position.
const MOBILENET_V3_B_OUTPUT: [Land; 4] = [Skip(PRESENT), At(24, 2), Skip(PRESENT), Skip(PRESENT)];

/// Four blocks of which only the third has a shortcut, and it holds SE already: the identity
/// position of MobileNet v3 and EfficientNet.
const THIRD_SHORTCUT_HOLDS_SE: [Land; 4] = [
    Skip(NO_IDENTITY),
    Skip(NO_IDENTITY),
    Skip(PRESENT),
    Skip(NO_IDENTITY),
];

pub const MOBILENET_V3_TINY: Fam = Fam {
    net: "mobilenet_v3_tiny",
    // torchvision zero-initialises the SE and Linear biases. TorchScript keeps one
    // copy of equal initializers: zero [16] × 3 (A's fc2, C's and D's fc1) and zero
    // [64] × 3 (C's and D's fc2, the first Linear) keep one each.
    params_ts: MOBILENET_V3_PARAMS - 2 * 16 - 2 * 64,
    // dynamo drops every zero bias: fc1 8 + 16 + 16, fc2 16 + 64 + 64, Linear 64, 10.
    params_dynamo: MOBILENET_V3_PARAMS - (8 + 16 + 16) - (16 + 64 + 64) - 64 - 10,
    stages: &[
        ("inverted-residual", 1, 16),
        ("inverted-residual", 2, 24),
        ("inverted-residual", 1, 32),
    ],
    blocks: &[
        (1, "none", 16, true),
        (2, "none", 24, false),
        (2, "Add", 24, true),
        (3, "none", 32, true),
    ],
    // On the depthwise output: A 16 (no expansion), C 64, D 64.
    gates: &[16, 64, 64],
    forced: None,
    // A, C and D hold an SE gate: without --force every position refuses them; only
    // B (no SE, no shortcut) can take SE.
    positions: &[
        pos("standard", &MOBILENET_V3_B_OUTPUT),
        // B's input: A's output, 16.
        pos(
            "pre",
            &[Skip(PRESENT), At(16, 1), Skip(PRESENT), Skip(PRESENT)],
        ),
        pos("post", &MOBILENET_V3_B_OUTPUT),
        // Only C has a shortcut, and it holds SE: nothing can take SE, exit 1.
        pos("identity", &THIRD_SHORTCUT_HOLDS_SE),
        // After B's depthwise conv and its ReLU: 48 wide. (The TorchScript export's
        // Hardswish is x · HardSigmoid(x); C and D are refused all the same.)
        pos(
            "inner",
            &[Skip(PRESENT), At(48, 3), Skip(PRESENT), Skip(PRESENT)],
        ),
    ],
    extra: None,
};

/// torchvision EfficientNet, MBConv (t, k, s, in, out, n): (1,3,1,16,8,1),
/// (6,3,2,8,16,2), (6,5,2,16,24,1), SiLU, SE squeeze max(1, in/4) in every MBConv;
/// stem 3x3 s2 3→16, last 1x1 24→96, Linear 96→10.
const EFFICIENTNET_PARAMS: u64 = (3 * 16 * 9 + 16)
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

pub const EFFICIENTNET_TINY: Fam = Fam {
    net: "efficientnet_tiny",
    // torchvision zero-initialises the conv and Linear biases (the SE's). TorchScript
    // keeps one copy of equal initializers: zero [4] × 3 and zero [96] × 2.
    params_ts: EFFICIENTNET_PARAMS - 2 * 4 - 96,
    // dynamo drops every zero bias: fc1 4 + 2 + 4 + 4, fc2 16 + 48 + 96 + 96, Linear 10.
    params_dynamo: EFFICIENTNET_PARAMS - (4 + 2 + 4 + 4) - (16 + 48 + 96 + 96) - 10,
    stages: &[
        ("inverted-residual", 1, 8),
        ("inverted-residual", 2, 16),
        ("inverted-residual", 1, 24),
    ],
    blocks: &[
        (1, "none", 8, true),
        (2, "none", 16, true),
        (2, "Add", 16, true),
        (3, "none", 24, true),
    ],
    gates: &[16, 48, 96, 96],
    // With --force, on the block outputs: 8, 16, 16, 24.
    forced: Some(&[At(8, 1), At(16, 1), At(16, 1), At(24, 2)]),
    // Every block holds an SE gate: without --force nothing can take SE anywhere.
    positions: &[
        pos("standard", &[Skip(PRESENT); 4]),
        pos("pre", &[Skip(PRESENT); 4]),
        pos("post", &[Skip(PRESENT); 4]),
        pos("identity", &THIRD_SHORTCUT_HOLDS_SE),
        pos("inner", &[Skip(PRESENT); 4]),
    ],
    extra: None,
};

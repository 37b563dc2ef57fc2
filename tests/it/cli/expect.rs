//! The expected reports of the residual fixtures, by hand (see tests/it/cli.rs for the nets).

/// One expected stage row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub index: u64,
    pub blocks: u64,
    pub channels: u64,
    pub formula: f64,
    pub added: u64,
}

/// A stage row of N blocks on C channels at ratio r, whose formula is the paper's (2/r)·N·C²
/// = 2·N·C²/r: (index, N, C, r, added).
pub const fn stage(index: u64, n: u64, c: u64, r: u64, added: u64) -> Stage {
    Stage {
        index,
        blocks: n,
        channels: c,
        formula: (2 * n * c * c) as f64 / r as f64,
        added,
    }
}

/// One expected block row: (stage, channels, hidden, projection, added_params).
pub type Block = (u64, u64, u64, bool, u64);

/// The expected report of one run.
pub struct Expect {
    pub params_before: u64,
    pub stages: &'static [Stage],
    pub blocks: &'static [Block],
    pub formula: f64,
    pub added: u64,
}

/// resnet_basic, r = 16, with biases.
pub const RESNET_BASIC_R16: Expect = Expect {
    params_before: 39_450,
    stages: &[
        // C = 8: h = max(1, round(0.5)) = 1; formula 16, added 50
        stage(1, 2, 8, 16, 2 * (2 * 8 * 1 + 1 + 8)),
        // C = 16: h = 1; formula 32, added 49
        stage(2, 1, 16, 16, 2 * 16 * 1 + 1 + 16),
        // C = 32: h = 2; formula 256, added 324
        stage(3, 2, 32, 16, 2 * (2 * 32 * 2 + 2 + 32)),
    ],
    blocks: &[
        (1, 8, 1, false, 2 * 8 * 1 + 1 + 8),
        (1, 8, 1, false, 2 * 8 * 1 + 1 + 8),
        (2, 16, 1, true, 2 * 16 * 1 + 1 + 16),
        (3, 32, 2, true, 2 * 32 * 2 + 2 + 32),
        (3, 32, 2, false, 2 * 32 * 2 + 2 + 32),
    ],
    formula: 16.0 + 32.0 + 256.0,
    added: 50 + 49 + 324,
};

/// resnet_bottleneck, r = 16, with biases.
pub const RESNET_BOTTLENECK_R16: Expect = Expect {
    params_before: 10_314,
    stages: &[
        // C = 16: h = 1; formula 64, added 98
        stage(1, 2, 16, 16, 2 * (2 * 16 * 1 + 1 + 16)),
        // C = 32: h = 2; formula 256, added 324
        stage(2, 2, 32, 16, 2 * (2 * 32 * 2 + 2 + 32)),
        // C = 64: h = 4; formula 512, added 580
        stage(3, 1, 64, 16, 2 * 64 * 4 + 4 + 64),
    ],
    blocks: &[
        (1, 16, 1, true, 2 * 16 * 1 + 1 + 16),
        (1, 16, 1, false, 2 * 16 * 1 + 1 + 16),
        (2, 32, 2, true, 2 * 32 * 2 + 2 + 32),
        (2, 32, 2, false, 2 * 32 * 2 + 2 + 32),
        (3, 64, 4, true, 2 * 64 * 4 + 4 + 64),
    ],
    formula: 64.0 + 256.0 + 512.0,
    added: 98 + 324 + 580,
};

/// resnext_tiny, r = 16, with biases.
pub const RESNEXT_TINY_R16: Expect = Expect {
    params_before: 13_978,
    stages: &[
        // formula 32, added 49
        stage(1, 1, 16, 16, 2 * 16 * 1 + 1 + 16),
        // formula 128, added 162
        stage(2, 1, 32, 16, 2 * 32 * 2 + 2 + 32),
        // formula 512, added 580
        stage(3, 1, 64, 16, 2 * 64 * 4 + 4 + 64),
    ],
    blocks: &[
        (1, 16, 1, true, 2 * 16 * 1 + 1 + 16),
        (2, 32, 2, true, 2 * 32 * 2 + 2 + 32),
        (3, 64, 4, true, 2 * 64 * 4 + 4 + 64),
    ],
    formula: 32.0 + 128.0 + 512.0,
    added: 49 + 162 + 580,
};

/// r = 4 on resnet_basic: h = 8/4 = 2, 16/4 = 4, 32/4 = 8.
pub const RESNET_BASIC_R4: Expect = Expect {
    params_before: 39_450,
    stages: &[
        // formula 64, added 84
        stage(1, 2, 8, 4, 2 * (2 * 8 * 2 + 2 + 8)),
        // formula 128, added 148
        stage(2, 1, 16, 4, 2 * 16 * 4 + 4 + 16),
        // formula 1024, added 1104
        stage(3, 2, 32, 4, 2 * (2 * 32 * 8 + 8 + 32)),
    ],
    blocks: &[
        (1, 8, 2, false, 2 * 8 * 2 + 2 + 8),
        (1, 8, 2, false, 2 * 8 * 2 + 2 + 8),
        (2, 16, 4, true, 2 * 16 * 4 + 4 + 16),
        (3, 32, 8, true, 2 * 32 * 8 + 8 + 32),
        (3, 32, 8, false, 2 * 32 * 8 + 8 + 32),
    ],
    formula: 64.0 + 128.0 + 1024.0,
    added: 84 + 148 + 1104,
};

/// --no-bias on resnet_basic: only the 2·C·h weights; the formula is unchanged.
pub const RESNET_BASIC_NO_BIAS: Expect = Expect {
    params_before: 39_450,
    stages: &[
        // added 32
        stage(1, 2, 8, 16, 2 * (2 * 8 * 1)),
        // added 32
        stage(2, 1, 16, 16, 2 * 16 * 1),
        // added 256
        stage(3, 2, 32, 16, 2 * (2 * 32 * 2)),
    ],
    blocks: &[
        (1, 8, 1, false, 2 * 8 * 1),
        (1, 8, 1, false, 2 * 8 * 1),
        (2, 16, 1, true, 2 * 16 * 1),
        (3, 32, 2, true, 2 * 32 * 2),
        (3, 32, 2, false, 2 * 32 * 2),
    ],
    formula: 16.0 + 32.0 + 256.0,
    added: 32 + 32 + 256,
};

/// The residual fixtures' reports at r = 16, with biases, standard position.
pub const R16: [(&str, &Expect); 3] = [
    ("resnet_basic", &RESNET_BASIC_R16),
    ("resnet_bottleneck", &RESNET_BOTTLENECK_R16),
    ("resnext_tiny", &RESNEXT_TINY_R16),
];

/// r = 16, with biases, standard position.
pub fn expect_r16(net: &str) -> &'static Expect {
    R16.iter()
        .find(|(n, _)| *n == net)
        .map(|(_, e)| *e)
        .unwrap_or_else(|| panic!("no expectations for {net}"))
}

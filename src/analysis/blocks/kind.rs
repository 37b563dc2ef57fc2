//! The kinds of block, one row each: the name reports print, the one-line description, the
//! article the name takes, whether the kind has a path beside its transformation, and where
//! each position puts SE in it. Everything that speaks of a kind reads its row.

/// The kinds of block the analysis recognises, in the order of [`KINDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockKind {
    Residual,
    InvertedResidual,
    Inception,
    Dense,
    Shuffle,
    DualPath,
    Plain,
    Csp,
    PyramidPool,
    Named,
}

/// Where SE goes in a block, independently of any particular block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The transformation's output: before the merge when another path enters it (residual
    /// blocks, ShuffleNet units), else for every reader (after a Concat, after a chain's last
    /// activation).
    BranchOutput,
    /// The path beside the transformation, just before the merge: a residual block's shortcut
    /// after its projection, the half of a ShuffleNet unit the branch does not take.
    Shortcut,
    /// The block input, for the transformation's readers only.
    BlockInput,
    /// The half of the input the branch takes after a split (the whole input when the unit
    /// does not split it), for the branch's readers only.
    HalfInput,
    /// After the block's output and the activation that directly follows it.
    AfterMerge,
    /// After the transformation's first spatial convolution, its normalisation and activation.
    AfterSpatialConv,
    /// The position has no meaning for the kind.
    Skip,
}

impl Rule {
    /// The words the README's table starts each cell with.
    pub fn label(self) -> &'static str {
        match self {
            Rule::BranchOutput => "branch output",
            Rule::Shortcut => "shortcut",
            Rule::BlockInput => "block input",
            Rule::HalfInput => "half input",
            Rule::AfterMerge => "after the merge",
            Rule::AfterSpatialConv => "after the spatial conv",
            Rule::Skip => "skipped",
        }
    }
}

/// Where each position puts SE in a block of one kind (the positions of the paper's Fig. 5,
/// and inner, after the spatial convolution).
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub standard: Rule,
    pub pre: Rule,
    pub post: Rule,
    pub identity: Rule,
    pub inner: Rule,
}

/// One kind of block.
#[derive(Debug)]
pub struct KindRow {
    pub kind: BlockKind,
    /// The name reports, the JSON and the README print.
    pub name: &'static str,
    /// "a" or "an", as the name is spoken.
    pub article: &'static str,
    /// What a block of this kind is, in one line.
    pub describe: &'static str,
    /// Whether a path beside the transformation enters the merge (a shortcut, the other half).
    pub has_shortcut: bool,
    /// Whether blocks found inside it stay blocks of their own, nested in it (a CSP module's
    /// residual units), rather than parts of it.
    pub nests: bool,
    pub placement: Placement,
}

/// Every kind, in the order the README's table lists them.
#[rustfmt::skip]
pub const KINDS: [KindRow; 10] = {
    use Rule::*;
    const fn place(standard: Rule, pre: Rule, post: Rule, identity: Rule, inner: Rule) -> Placement {
        Placement { standard, pre, post, identity, inner }
    }
    [
        KindRow {
            kind: BlockKind::Residual, name: "residual", article: "a", has_shortcut: true, nests: false,
            describe: "a branch with convolutions and a shortcut merged by Add/Sum (ResNet, ResNeXt, RegNet)",
            placement: place(BranchOutput, BlockInput, AfterMerge, Shortcut, AfterSpatialConv),
        },
        KindRow {
            kind: BlockKind::InvertedResidual, name: "inverted-residual", article: "an", has_shortcut: true, nests: false,
            describe: "expand 1x1, depthwise, project 1x1, with or without the Add (MobileNet v2/v3, EfficientNet)",
            placement: place(BranchOutput, BlockInput, AfterMerge, Shortcut, AfterSpatialConv),
        },
        KindRow {
            kind: BlockKind::Inception, name: "inception", article: "an", has_shortcut: false, nests: false,
            describe: "branches from one input joined by a Concat (GoogLeNet, Inception v3/v4)",
            placement: place(BranchOutput, BlockInput, AfterMerge, Skip, Skip),
        },
        KindRow {
            kind: BlockKind::Dense, name: "dense", article: "a", has_shortcut: false, nests: false,
            describe: "layers concatenated onto one growing map, up to the Concat that gathers them (DenseNet)",
            placement: place(BranchOutput, BlockInput, AfterMerge, Skip, Skip),
        },
        KindRow {
            kind: BlockKind::Shuffle, name: "shuffle", article: "a", has_shortcut: true, nests: false,
            describe: "two halves, a Concat and a channel shuffle (ShuffleNet v2)",
            placement: place(BranchOutput, HalfInput, AfterMerge, Shortcut, AfterSpatialConv),
        },
        KindRow {
            kind: BlockKind::DualPath, name: "dual-path", article: "a", has_shortcut: true, nests: false,
            describe: "a branch and a shortcut each cut in two: first parts added, the rest concatenated (DPN)",
            placement: place(BranchOutput, BlockInput, AfterMerge, Shortcut, AfterSpatialConv),
        },
        KindRow {
            kind: BlockKind::Plain, name: "plain", article: "a", has_shortcut: false, nests: false,
            describe: "a convolution with its activation, or a depthwise-separable pair (VGG, MobileNet v1)",
            placement: place(BranchOutput, BlockInput, AfterMerge, Skip, Skip),
        },
        KindRow {
            kind: BlockKind::Csp, name: "csp", article: "a", has_shortcut: false, nests: true,
            describe: "one map split in two, units on one part, the parts gathered by a Concat and fused by a 1x1 conv (YOLO C2f / C3 / C3k2, CSPNet)",
            placement: place(BranchOutput, BlockInput, AfterMerge, Skip, Skip),
        },
        KindRow {
            kind: BlockKind::PyramidPool, name: "pyramid-pool", article: "a", has_shortcut: false, nests: false,
            describe: "a map and max pools of it gathered by a Concat and fused by a 1x1 conv (SPP, SPPF)",
            placement: place(BranchOutput, BlockInput, AfterMerge, Skip, Skip),
        },
        KindRow {
            kind: BlockKind::Named, name: "named", article: "a", has_shortcut: false, nests: false,
            describe: "a feature map named with --at, taken as it is: no detection",
            placement: place(BranchOutput, Skip, Skip, Skip, Skip),
        },
    ]
};

impl BlockKind {
    /// Every kind, in the order of [`KINDS`].
    pub const ALL: [BlockKind; KINDS.len()] = {
        let mut all = [BlockKind::Plain; KINDS.len()];
        let mut i = 0;
        while i < KINDS.len() {
            all[i] = KINDS[i].kind;
            i += 1;
        }
        all
    };

    /// The kind's row of [`KINDS`].
    pub fn row(self) -> &'static KindRow {
        &KINDS[self as usize]
    }

    /// What a block of this kind is, in one line.
    pub fn describe(self) -> &'static str {
        self.row().describe
    }

    /// "a" or "an", as the kind's name is spoken.
    pub fn article(self) -> &'static str {
        self.row().article
    }

    pub fn as_str(self) -> &'static str {
        self.row().name
    }

    /// Whether a path beside the transformation enters the merge.
    pub fn has_shortcut(self) -> bool {
        self.row().has_shortcut
    }

    /// Whether blocks found inside one of this kind stay blocks of their own, nested in it.
    pub fn nests(self) -> bool {
        self.row().nests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_sits_at_its_kind() {
        for (i, row) in KINDS.iter().enumerate() {
            assert_eq!(row.kind as usize, i, "{}", row.name);
            assert_eq!(row.kind.row().name, row.name);
        }
    }

    #[test]
    fn names_are_distinct_and_articles_spoken() {
        let mut names: Vec<&str> = KINDS.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        for r in &KINDS {
            assert!(matches!(r.article, "a" | "an"), "{}", r.name);
        }
    }
}

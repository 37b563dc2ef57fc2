//! Why a merge node is not a block: the reasons a detector gives, shown in the error when a
//! model has no block at all.

/// Why a merge node is not a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("its inputs have {0} and {1} channels")]
    ChannelMismatch(usize, usize),
    #[error("the channel count of its inputs is unknown")]
    UnknownChannels,
    #[error("the channel count of the unit is unknown")]
    UnknownUnitChannels,
    #[error("it has no dominator")]
    NoDominator,
    #[error("its inputs do not fork from one tensor")]
    NoCommonFork,
    #[error("its fork {node} has {outputs} feature outputs")]
    ForkOutputs { node: String, outputs: usize },
    #[error("it reaches its fork through a second output '{0}'")]
    SecondForkOutput(String),
    #[error("a path reaches graph input '{0}' without passing the fork")]
    PathAroundFork(String),
    #[error("its two paths share nodes")]
    SharedPaths,
    #[error("neither path is a shortcut (identity or projection)")]
    NoShortcut,
    #[error("its residual path holds no convolution")]
    NoConvInBranch,
    #[error("one of its branches is empty")]
    EmptyBranch,
    #[error("its branches hold no convolution")]
    NoConvInBranches,
    #[error("its Split has no input")]
    SplitWithoutInput,
    #[error("neither half of the unit holds a convolution")]
    NoConvInHalves,
    #[error("the analysis budget is spent")]
    Budget,
    /// A path into the merge brings a coarser map back up: a neck's or decoder's fusion of
    /// maps from different stages (FPN, PAN, a U-Net skip), not a block.
    #[error("it fuses maps from different resolutions (a path through {0})")]
    Fusion(String),
    /// Its map is read only to be laid out per position for a dense prediction (YOLO's Detect,
    /// a RetinaNet head): a head's, not a block.
    #[error("its map leaves the spatial domain for a prediction head")]
    Head,
}

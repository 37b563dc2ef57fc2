//! What a detected block is: its kind, the fields every block has, and what its kind adds.

use crate::graph::GraphView;
use crate::onnx::node_name;

/// The kinds of block the analysis recognises.
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
}

impl BlockKind {
    /// Every kind, in the order the README's table lists them.
    pub const ALL: [BlockKind; 7] = [
        BlockKind::Residual,
        BlockKind::InvertedResidual,
        BlockKind::Inception,
        BlockKind::Dense,
        BlockKind::Shuffle,
        BlockKind::DualPath,
        BlockKind::Plain,
    ];

    /// What a block of this kind is, in one line.
    pub fn describe(self) -> &'static str {
        match self {
            BlockKind::Residual => "a branch with convolutions and a shortcut merged by Add/Sum (ResNet, ResNeXt, RegNet)",
            BlockKind::InvertedResidual => "expand 1x1, depthwise, project 1x1, with or without the Add (MobileNet v2/v3, EfficientNet)",
            BlockKind::Inception => "branches from one input joined by a Concat (GoogLeNet, Inception v3/v4)",
            BlockKind::Dense => "layers concatenated onto one growing map, up to the Concat that gathers them (DenseNet)",
            BlockKind::Shuffle => "two halves, a Concat and a channel shuffle (ShuffleNet v2)",
            BlockKind::DualPath => "a branch and a shortcut each cut in two: first parts added, the rest concatenated (DPN)",
            BlockKind::Plain => "a convolution with its activation, or a depthwise-separable pair (VGG, MobileNet v1)",
        }
    }

    /// "a" or "an", as the kind's name is spoken.
    pub fn article(self) -> &'static str {
        match self {
            BlockKind::InvertedResidual | BlockKind::Inception => "an",
            _ => "a",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Residual => "residual",
            BlockKind::InvertedResidual => "inverted-residual",
            BlockKind::Inception => "inception",
            BlockKind::Dense => "dense",
            BlockKind::Shuffle => "shuffle",
            BlockKind::DualPath => "dual-path",
            BlockKind::Plain => "plain",
        }
    }
}

/// The path beside a block's transformation that enters the same merge: a residual block's
/// shortcut, or the half of a ShuffleNet unit that the branch does not take.
#[derive(Debug, Clone)]
pub struct Shortcut {
    /// Nodes of the path (empty when it passes the map on untouched), in topological order.
    pub nodes: Vec<usize>,
    /// The path's output and the merge input slot it enters.
    pub output: String,
    pub slot: usize,
    /// The merge input slot the transformation enters.
    pub branch_slot: usize,
    /// Whether the path holds a convolution (a projection) rather than passing the map on.
    pub projection: bool,
}

/// How a block's paths meet: what each kind has beyond the fields every block has.
#[derive(Debug, Clone)]
pub enum Form {
    /// A transformation and a shortcut merged elementwise (Add / Sum).
    Residual { merge: usize, shortcut: Shortcut },
    /// Branches joined by a Concat along channels: an inception module or a dense block.
    Concat { merge: usize },
    /// A ShuffleNet v2 unit: the branch and the other half joined by a Concat, then shuffled.
    /// After a split, the branch starts from its half, `branch_input`.
    Shuffle {
        merge: usize,
        other: Shortcut,
        branch_input: Option<String>,
    },
    /// A DPN block: the transformation and the shortcut each cut in two (`joins`: the Slices
    /// or Splits and the Add of the first parts), gathered by the Concat `merge`.
    DualPath {
        merge: usize,
        shortcut: Shortcut,
        joins: Vec<usize>,
    },
    /// A chain with no merge: a plain block, or an inverted residual without its Add.
    Chain,
}

/// One detected block.
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: BlockKind,
    /// A readable name derived from the merge node, used to name what is added for the block.
    pub name: String,
    /// The tensor the block starts from.
    pub input: String,
    /// The transformation's nodes in topological order: the residual branch, the module's
    /// branches, the chain (the merge itself excluded).
    pub nodes: Vec<usize>,
    /// The transformation's output, where SE goes at the standard position: the residual
    /// branch's output, the Concat's output, the chain's last activation.
    pub output: String,
    /// The block's final output (after the merge), before any activation that follows it.
    pub end: String,
    /// Output channels of the block.
    pub channels: usize,
    /// Element type of the block's feature maps.
    pub dtype: i32,
    pub form: Form,
}

impl Block {
    /// The merge node (Add / Sum / Concat), when the block has one.
    pub fn merge(&self) -> Option<usize> {
        match &self.form {
            Form::Residual { merge, .. }
            | Form::Concat { merge }
            | Form::Shuffle { merge, .. }
            | Form::DualPath { merge, .. } => Some(*merge),
            Form::Chain => None,
        }
    }

    /// The path beside the transformation that enters the merge, when there is one.
    pub fn shortcut(&self) -> Option<&Shortcut> {
        match &self.form {
            Form::Residual { shortcut, .. } | Form::DualPath { shortcut, .. } => Some(shortcut),
            Form::Shuffle { other, .. } => Some(other),
            Form::Concat { .. } | Form::Chain => None,
        }
    }

    /// Whether the shortcut is a projection rather than the identity.
    pub fn projection(&self) -> bool {
        self.shortcut().is_some_and(|s| s.projection)
    }

    /// Every node the block covers: transformation, shortcut and merge.
    pub fn covers(&self, n: usize) -> bool {
        self.merge() == Some(n)
            || self.nodes.contains(&n)
            || matches!(&self.form, Form::DualPath { joins, .. } if joins.contains(&n))
            || self.shortcut().is_some_and(|s| s.nodes.contains(&n))
    }

    /// Every node [`Block::covers`], listed (a node may appear twice).
    pub fn covered(&self) -> impl Iterator<Item = usize> + '_ {
        let joins = match &self.form {
            Form::DualPath { joins, .. } => joins.as_slice(),
            _ => &[],
        };
        self.merge()
            .into_iter()
            .chain(self.nodes.iter().copied())
            .chain(joins.iter().copied())
            .chain(
                self.shortcut()
                    .into_iter()
                    .flat_map(|s| s.nodes.iter().copied()),
            )
    }

    /// Name of the block's first node in topological order.
    pub fn first_node(&self, view: &GraphView) -> String {
        let merge = self.merge();
        self.nodes
            .iter()
            .chain(self.shortcut().iter().flat_map(|s| &s.nodes))
            .chain(&merge)
            .min_by_key(|&&n| view.rank[n])
            .map(|&n| node_name(view.node(n)).to_string())
            .unwrap_or_default()
    }
}

//! What a detected block is: its kind, the fields every block has, and what its kind adds.

use super::BlockKind;
use crate::graph::GraphView;
use crate::onnx::node_name;

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
    pub dtype: crate::onnx::tensor::ElemType,
    pub form: Form,
    /// The block this one is nested in (a CSP module holding its residual units), as an index
    /// into the detection's block list; None for a block nested in none.
    pub parent: Option<usize>,
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

//! Residual blocks: an elementwise merge (Add, or Sum as older converters write it) of two
//! feature maps forking from one tensor (the merge's immediate dominator produces it): a
//! residual branch with convolutions, and a shortcut that is the fork itself or a short linear
//! projection. A residual branch holding a depthwise convolution makes it an inverted residual.

use super::naming::merge_block_name;
use super::search::{Scope, Searcher};
use super::{Block, BlockKind, Cx, Form, Found, Rejection, Shortcut};
use crate::onnx::op::Op;
use std::collections::BTreeSet;

/// Whether a projection shortcut may hold `op`: a convolution, a normalisation, a pooling, a
/// padding, or an op that changes nothing.
fn in_shortcut(op: Op) -> bool {
    matches!(
        op,
        Op::Conv
            | Op::BatchNormalization
            | Op::AveragePool
            | Op::MaxPool
            | Op::Identity
            | Op::Cast
            | Op::Pad
    )
}

/// One input path of a merge: its nodes, the tensor it ends in and the merge slot it enters.
pub(super) struct Path<'t> {
    pub region: BTreeSet<usize>,
    pub tensor: &'t String,
    pub slot: usize,
}

/// Residual and inverted residual blocks, at elementwise merges.
pub(super) struct Residuals;

impl Searcher for Residuals {
    fn scope(&self) -> Scope {
        Scope::Adds
    }

    fn at_merge(&self, cx: &Cx, m: usize) -> Found {
        cx.residual(m)
    }
}

impl Cx<'_, '_> {
    /// The residual block whose merge is Add / Sum node `m`; Ok(None) when `m` adds a bias or
    /// a constant rather than merging two paths.
    pub(super) fn residual(&self, m: usize) -> Found {
        let node = self.view.node(m);
        let operands: Vec<(usize, &String)> = node
            .input
            .iter()
            .enumerate()
            .filter(|(_, i)| self.feats.is_feature(i))
            .collect();
        if operands.len() != 2 || node.input.len() != 2 {
            return Ok(None);
        }
        let (sa, a) = operands[0];
        let (sb, b) = operands[1];
        let channels = match (self.feats.channels(a), self.feats.channels(b)) {
            (Some(x), Some(y)) if x == y => x,
            (Some(x), Some(y)) => return Err(Rejection::ChannelMismatch(x, y)),
            _ => return Err(Rejection::UnknownChannels),
        };
        let (fork, fork_node) = self.fork(m, &[a, b])?;
        let pa = Path {
            region: self.region(a, &fork, fork_node)?,
            tensor: a,
            slot: sa,
        };
        let pb = Path {
            region: self.region(b, &fork, fork_node)?,
            tensor: b,
            slot: sb,
        };
        if pa.region.intersection(&pb.region).next().is_some() {
            return Err(Rejection::SharedPaths);
        }
        let (branch, short) = self.branch_and_shortcut(pa, pb)?;
        if self.convs(&branch.region) == 0 {
            return Err(Rejection::NoConvInBranch);
        }
        let kind = if branch.region.iter().any(|&n| self.is_depthwise(n)) {
            BlockKind::InvertedResidual
        } else {
            BlockKind::Residual
        };
        let shortcut = Shortcut {
            projection: self.convs(&short.region) > 0,
            nodes: self.order(short.region),
            output: short.tensor.clone(),
            slot: short.slot,
            branch_slot: branch.slot,
        };
        Ok(Some(Block {
            kind,
            name: merge_block_name(node, m),
            input: fork,
            nodes: self.order(branch.region),
            output: branch.tensor.clone(),
            end: node.output.first().cloned().unwrap_or_default(),
            channels,
            dtype: self.dtype(branch.tensor),
            form: Form::Residual { merge: m, shortcut },
            parent: None,
        }))
    }

    /// Whether a path is a shortcut: linear ops only (convolutions, normalisation, pooling,
    /// padding), as many as it takes (a depthwise + pointwise projection, as GhostNet's). An SE
    /// gate on it (the identity position) leaves it a shortcut.
    fn is_shortcut(&self, r: &BTreeSet<usize>) -> bool {
        r.iter()
            .filter(|n| !self.gate_nodes.contains(n))
            .all(|&n| in_shortcut(Op::of(self.view.node(n))))
    }

    /// The residual branch and the shortcut, in that order. When both paths are linear (a
    /// 3×3 and a 1×1 convolution merged, as RepVGG does), the branch is the longer one, with
    /// more convolutions on a tie.
    pub(super) fn branch_and_shortcut<'t>(
        &self,
        a: Path<'t>,
        b: Path<'t>,
    ) -> Result<(Path<'t>, Path<'t>), Rejection> {
        let a_is_branch = match (self.is_shortcut(&a.region), self.is_shortcut(&b.region)) {
            (true, true) => {
                a.region.len() > b.region.len()
                    || (a.region.len() == b.region.len()
                        && self.convs(&a.region) > self.convs(&b.region))
            }
            (false, true) => true,
            (true, false) => false,
            (false, false) => return Err(Rejection::NoShortcut),
        };
        Ok(if a_is_branch { (a, b) } else { (b, a) })
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::BlockKind;
    use crate::testutil::{analysis_of, kinds, GraphBuilder};

    /// RepVGG: three parallel paths of one input merged by two Adds, then the activation.
    ///
    /// ```text
    /// x ─┬─ conv 3×3 ─┐
    ///    ├─ conv 1×1 ─┴─ Add ─┐
    ///    └────────────────────┴─ Add ─ Relu
    /// ```
    /// One block: both convolutions and the inner Add are its branch, x its shortcut.
    #[test]
    fn parallel_paths_of_one_merge_are_one_block() {
        let mut g = GraphBuilder::new(8);
        let a = g.conv("input", 8, 8, 3, 1);
        let b = g.conv("input", 8, 8, 1, 1);
        let ab = g.add(&a, &b);
        let y = g.add(&ab, "input");
        let y = g.relu(&y);
        let g = g.finish(&y);
        let a = analysis_of(&g).expect("blocks");
        assert_eq!(a.blocks.len(), 1);
        assert_eq!(a.blocks[0].nodes.len(), 3);
        assert!(!a.blocks[0].projection());
    }

    /// GhostNet's bottleneck with a projection shortcut of a depthwise and a pointwise conv:
    ///
    /// ```text
    /// x(8) ─┬─ conv 1×1 (16) ─ relu ─ dw 3×3 ─ conv 1×1 (12) ─ Add
    ///       └─ dw 3×3 (8) ─ conv 1×1 (12) ───────────────────┘
    /// ```
    /// One residual block of 12 channels whose shortcut is the two linear convolutions.
    #[test]
    fn a_shortcut_of_several_linear_convs_is_a_projection() {
        let mut g = GraphBuilder::new(8);
        let e = g.conv("input", 8, 16, 1, 1);
        let e = g.relu(&e);
        let d = g.conv(&e, 16, 16, 3, 16);
        let p = g.conv(&d, 16, 12, 1, 1);
        let s = g.conv("input", 8, 8, 3, 8);
        let s = g.conv(&s, 8, 12, 1, 1);
        let y = g.add(&p, &s);
        let g = g.finish(&y);
        let a = analysis_of(&g).expect("blocks");
        let found = kinds(&a);
        assert_eq!(found, [(BlockKind::InvertedResidual, 12)]);
        let shortcut = a.blocks[0].shortcut().expect("a shortcut");
        assert_eq!(shortcut.nodes.len(), 2);
        assert!(shortcut.projection);
    }
}

//! Inverted residuals without a merge (MobileNet v2 / MnasNet stride-2 blocks): expand 1×1 →
//! depthwise → project 1×1, found around depthwise convolutions no other block covers. Each of
//! the three may be a convolution split in groups (MixNet).

use super::search::{Merged, Scope, Searcher};
use super::{tail, Block, BlockKind, Cx};
use crate::onnx::op::Op;
use petgraph::graph::NodeIndex;

/// Inverted residuals without a merge, in models where blocks were found at merges.
pub(super) struct InvertedWithoutMerge;

impl Searcher for InvertedWithoutMerge {
    fn scope(&self) -> Scope {
        Scope::Chains
    }

    fn in_chains(&self, cx: &Cx, merged: &Merged) -> Vec<Block> {
        if merged.blocks.is_empty() {
            return Vec::new();
        }
        cx.inverted_without_merge(merged)
    }
}

impl Cx<'_, '_> {
    /// The first convolution unit (a Conv, or the Concat of a split convolution) before unit
    /// `from` on every path to it; None when a merge or a split comes first.
    fn conv_before(&self, from: usize) -> Option<usize> {
        self.first_conv(self.doms, self.unit_start(from))
    }

    /// The first convolution unit after unit `from` on every path from it.
    fn conv_after(&self, from: usize) -> Option<usize> {
        self.first_conv(self.pdoms, from)
    }

    /// The first convolution unit up the dominator tree `doms` from node `from`.
    fn first_conv(&self, doms: &crate::graph::Dominators, from: usize) -> Option<usize> {
        let mut n = from;
        for _ in 0..64 {
            n = doms.immediate_dominator(NodeIndex::new(n))?.index();
            if n == self.root {
                return None;
            }
            match Op::of(self.view.node(n)) {
                Op::Conv => return Some(n),
                o @ (Op::Split | Op::Slice) => match self.opened_by(n) {
                    Some(unit) => return Some(unit),
                    None if o == Op::Split => return None,
                    None => {}
                },
                Op::Concat if self.split_conv(n).is_some() => return Some(n),
                o if o.merges() => return None,
                _ => {}
            }
        }
        None
    }

    /// Around each depthwise convolution no block covers: the projection is the first
    /// convolution that post-dominates it (so an SE gate or a decomposed activation in between
    /// is part of the block), the expansion the first convolution that dominates it, when that
    /// is a pointwise one nothing else reads.
    pub(super) fn inverted_without_merge(&self, merged: &Merged) -> Vec<Block> {
        let view = self.view;
        let covered = |n: usize| merged.covers(n);
        let mut out = Vec::new();
        for &d in &view.topo {
            if !self.is_depthwise(d) || covered(d) || self.in_unit(d) {
                continue;
            }
            let Some(p) = self
                .conv_after(d)
                .filter(|&p| self.is_pointwise(p) && !covered(p))
            else {
                continue;
            };
            let (Some(d_out), Some(p_in), Some(mut input)) = (
                view.node(d).output.first(),
                self.unit_input(p),
                self.unit_input(d),
            ) else {
                continue;
            };
            let Ok(middle) = self.region(&p_in, d_out, Some(d)) else {
                continue;
            };
            let mut nodes: Vec<usize> = vec![d];
            nodes.extend(self.unit_nodes(d));
            nodes.extend(middle);
            if let Some((expansion, before)) = self.expansion(d, &input, &covered) {
                nodes.extend(expansion);
                input = before;
            }
            let (pw_nodes, t, _) = tail(self.view, p);
            nodes.extend(pw_nodes);
            nodes.extend(self.unit_nodes(p));
            if let Some(b) = self.chain_block(BlockKind::InvertedResidual, nodes, input, t) {
                out.push(b);
            }
        }
        out
    }

    /// The pointwise expansion feeding depthwise unit `d` (which reads `d_in`) and nothing
    /// else: its nodes (up to `d`) and the tensor it reads.
    fn expansion(
        &self,
        d: usize,
        d_in: &str,
        covered: &impl Fn(usize) -> bool,
    ) -> Option<(Vec<usize>, String)> {
        let view = self.view;
        let e = self
            .conv_before(d)
            .filter(|&e| self.is_pointwise(e) && !covered(e))?;
        let e_out = view.node(e).output.first()?;
        let before = self.region(d_in, e_out, Some(e)).ok()?;
        let only_feeds_d = before.iter().all(|&n| Op::of(view.node(n)) != Op::Conv)
            && self.conv_after(e) == Some(d);
        if !only_feeds_d {
            return None;
        }
        let mut nodes = vec![e];
        nodes.extend(self.unit_nodes(e));
        nodes.extend(before);
        Some((nodes, self.unit_input(e)?))
    }
}

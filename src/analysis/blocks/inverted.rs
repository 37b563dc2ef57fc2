//! Inverted residuals without a merge (MobileNet v2 / MnasNet stride-2 blocks): expand 1×1 →
//! depthwise → project 1×1, found around depthwise convolutions no other block covers.

use super::{Block, BlockKind, Cx};
use crate::onnx::op;
use petgraph::algo::dominators::Dominators;
use petgraph::graph::NodeIndex;

impl Cx<'_, '_> {
    /// The first convolution up the dominator tree `doms` from node `from`; None when a merge
    /// or a split comes first.
    fn first_conv(&self, doms: &Dominators<NodeIndex>, from: usize) -> Option<usize> {
        let mut n = from;
        for _ in 0..64 {
            n = doms.immediate_dominator(NodeIndex::new(n))?.index();
            if n == self.root {
                return None;
            }
            if matches!(
                op(self.view.node(n)),
                "Conv" | "Concat" | "Add" | "Sum" | "Split"
            ) {
                return (op(self.view.node(n)) == "Conv").then_some(n);
            }
        }
        None
    }

    /// Around each depthwise convolution no block covers: the projection is the first
    /// convolution that post-dominates it (so an SE gate or a decomposed activation in between
    /// is part of the block), the expansion the first convolution that dominates it, when that
    /// is a pointwise one nothing else reads.
    pub(super) fn inverted_without_merge(&self, blocks: &[Block]) -> Vec<Block> {
        let view = self.view;
        let covered = |n: usize| blocks.iter().any(|b| b.covers(n));
        let mut out = Vec::new();
        for &d in &view.topo {
            if !self.is_depthwise(d) || covered(d) {
                continue;
            }
            let Some(p) = self
                .first_conv(self.pdoms, d)
                .filter(|&p| self.is_pointwise(p) && !covered(p))
            else {
                continue;
            };
            let (Some(d_out), Some(p_in)) =
                (view.node(d).output.first(), view.node(p).input.first())
            else {
                continue;
            };
            let Ok(middle) = self.region(p_in, d_out, Some(d)) else {
                continue;
            };
            let mut nodes: Vec<usize> = vec![d];
            nodes.extend(middle);
            let mut input = view.node(d).input[0].clone();
            if let Some((expansion, before)) = self.expansion(d, &covered) {
                nodes.extend(expansion);
                input = before;
            }
            let (pw_nodes, t, _) = self.tail(p);
            nodes.extend(pw_nodes);
            if let Some(b) = self.chain_block(BlockKind::InvertedResidual, nodes, input, t) {
                out.push(b);
            }
        }
        out
    }

    /// The pointwise expansion feeding depthwise convolution `d` and nothing else: its nodes
    /// (up to `d`) and the tensor it reads.
    fn expansion(
        &self,
        d: usize,
        covered: &impl Fn(usize) -> bool,
    ) -> Option<(Vec<usize>, String)> {
        let view = self.view;
        let e = self
            .first_conv(self.doms, d)
            .filter(|&e| self.is_pointwise(e) && !covered(e))?;
        let e_out = &view.node(e).output[0];
        let before = self.region(&view.node(d).input[0], e_out, Some(e)).ok()?;
        let only_feeds_d = before.iter().all(|&n| op(view.node(n)) != "Conv")
            && self.first_conv(self.pdoms, e) == Some(d);
        if !only_feeds_d {
            return None;
        }
        let mut nodes = vec![e];
        nodes.extend(before);
        Some((nodes, view.node(e).input[0].clone()))
    }
}

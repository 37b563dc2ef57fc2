//! Plain chains, in models with no other block (VGG, MobileNet v1): every convolution with its
//! activation; a depthwise convolution with its activation and the pointwise one after it make
//! one block.

use super::search::{Merged, Scope, Searcher};
use super::{next_if, tail, Block, BlockKind, Cx};
use crate::onnx::op::Op;
use std::collections::HashSet;

/// Plain chains, in models where no block was found at a merge.
pub(super) struct PlainChains;

impl Searcher for PlainChains {
    fn scope(&self) -> Scope {
        Scope::Chains
    }

    fn in_chains(&self, cx: &Cx, merged: &Merged) -> Vec<Block> {
        if !merged.blocks.is_empty() {
            return Vec::new();
        }
        cx.plain(merged)
    }
}

impl Cx<'_, '_> {
    /// Every plain block of the graph, in topological order.
    pub(super) fn plain(&self, merged: &Merged) -> Vec<Block> {
        let view = self.view;
        let mut used: HashSet<usize> = HashSet::new();
        let mut out = Vec::new();
        for &c in &view.topo {
            if Op::of(view.node(c)) != Op::Conv
                || used.contains(&c)
                || self.gate_nodes.contains(&c)
                || merged.covers(c)
            {
                continue;
            }
            let Some(input) = view.node(c).input.first().cloned() else {
                continue;
            };
            let (mut nodes, mut t, act) = tail(self.view, c);
            if !act {
                continue;
            }
            if self.is_depthwise(c) {
                if let Some(p) = next_if(self.view, &t, Op::Conv).filter(|&p| self.is_pointwise(p))
                {
                    let (pw, t2, act2) = tail(self.view, p);
                    if act2 {
                        nodes.extend(pw);
                        t = t2;
                    }
                }
            }
            used.extend(&nodes);
            if let Some(b) = self.chain_block(BlockKind::Plain, nodes, input, t) {
                out.push(b);
            }
        }
        out
    }
}

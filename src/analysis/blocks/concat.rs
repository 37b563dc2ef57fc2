//! Concatenation blocks. An inception module: a Concat along channels of branches that fork
//! from one tensor, none of which is the fork itself; a Concat nested in a bigger module, or
//! inside a residual branch (Inception-ResNet), is part of that block. A dense block (DenseNet):
//! a Concat that keeps its input; the block is the whole dense block, from its input to the
//! Concat that gathers every layer.

use super::naming::merge_block_name;
use super::search::{Scope, Searcher};
use super::{Block, BlockKind, Cx, Form, Found, Rejection};
use crate::graph::Inlet;
use crate::onnx::attr_i;

/// Inception modules and dense blocks, at Concats.
pub(super) struct Concats;

impl Searcher for Concats {
    fn scope(&self) -> Scope {
        Scope::Concats
    }

    fn at_merge(&self, cx: &Cx, m: usize) -> Found {
        cx.concat(m)
    }
}

impl Cx<'_, '_> {
    /// The feature inputs of Concat `m` when it joins feature maps along channels; Ok(None)
    /// for shape arithmetic, a concatenation along another axis, or one convolution split in
    /// groups.
    pub(super) fn channel_concat(&self, m: usize) -> Result<Option<Vec<&String>>, Rejection> {
        let node = self.view.node(m);
        let axis = attr_i(node, "axis").unwrap_or(1);
        let inputs: Vec<&String> = node
            .input
            .iter()
            .filter(|i| self.feats.is_feature(i))
            .collect();
        if inputs.len() < 2 || inputs.len() != node.input.len() || !(axis == 1 || axis == -3) {
            return Ok(None);
        }
        if self.split_conv(m).is_some() {
            return Ok(None); // one convolution split in groups, not a module
        }
        let Some(out) = node.output.first() else {
            return Ok(None);
        };
        if self.feats.channels(out).is_none() {
            return Err(Rejection::UnknownChannels);
        }
        Ok(Some(inputs))
    }

    /// The inception module or dense block whose Concat is node `m`; Ok(None) for shape
    /// arithmetic or a concatenation along another axis.
    pub(super) fn concat(&self, m: usize) -> Found {
        let Some(inputs) = self.channel_concat(m)? else {
            return Ok(None);
        };
        let node = self.view.node(m);
        let (fork, fork_node) = self.fork(m, &inputs)?;
        let dense = inputs.iter().any(|i| **i == fork);
        // The union of the paths from the fork to every input, in one walk: a dense block's
        // Concat reads every earlier layer, and a walk per input would cost layers × block.
        // Branches may share a stem (a 1×1 conv feeding both a 1×3 and a 3×1 whose outputs the
        // exporter concatenated straight into the module's Concat): such inputs are one branch.
        // An input's own path is empty only when it is the fork, which makes the block dense.
        let all = self.region_of(inputs.iter().map(|i| i.as_str()), &fork, fork_node)?;
        if self.convs(&all) == 0 {
            return Err(Rejection::NoConvInBranches);
        }
        let out = node.output.first().cloned().unwrap_or_default();
        let kind = if dense {
            BlockKind::Dense
        } else {
            BlockKind::Inception
        };
        let name = merge_block_name(node, m);
        let form = Form::Concat { merge: m };
        Ok(self.block_ending_at(kind, name, form, fork, all, out))
    }

    /// Dense blocks written one layer at a time (Keras: each layer concatenated onto the
    /// running map, `Concat(x, layer(x))`) joined into the whole dense block: a dense block
    /// whose input is the previous dense block's output, read by nothing else, continues it.
    /// `modules` are in any order; the result keeps every other block as it is.
    pub(super) fn join_dense_runs(&self, mut modules: Vec<Block>) -> Vec<Block> {
        modules.sort_by_key(|b| b.merge().map_or(0, |m| self.view.rank[m]));
        let mut out: Vec<Block> = Vec::with_capacity(modules.len());
        // Whether out's last block was joined to and its nodes need ordering (once, at the end
        // of its run: ordering at every join would cost layers² on a long run).
        let mut joined_last = false;
        for b in modules {
            match out.last_mut() {
                Some(prev) if self.continues(prev, &b) => {
                    self.charge(prev.nodes.len() + b.nodes.len());
                    let merge = prev.merge();
                    prev.nodes.extend(merge);
                    prev.nodes.extend(b.nodes.iter().copied());
                    joined_last = true;
                    prev.name = b.name;
                    prev.output = b.output;
                    prev.end = b.end;
                    prev.channels = b.channels;
                    prev.form = b.form;
                }
                _ => {
                    if let Some(prev) = out.last_mut().filter(|_| joined_last) {
                        prev.nodes = self.order(std::mem::take(&mut prev.nodes));
                    }
                    joined_last = false;
                    out.push(b);
                }
            }
        }
        if let Some(prev) = out.last_mut().filter(|_| joined_last) {
            prev.nodes = self.order(std::mem::take(&mut prev.nodes));
        }
        out
    }

    /// Whether dense block `b` grows the map dense block `prev` ends in.
    fn continues(&self, prev: &Block, b: &Block) -> bool {
        let dense = prev.kind == BlockKind::Dense && b.kind == BlockKind::Dense;
        dense
            && b.input == prev.end
            && !self.view.is_graph_output(&prev.end)
            && self
                .view
                .consumers(&prev.end)
                .iter()
                .all(|Inlet { node: n, .. }| b.covers(*n))
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::BlockKind;
    use crate::testutil::{analysis_of, kinds, GraphBuilder};

    /// A dense block written one layer at a time, as Keras writes DenseNet:
    ///
    /// ```text
    /// x(8) ─┬─ conv 3×3 (4) ─ Concat(12) ─┬─ conv 3×3 (4) ─ Concat(16) ─ conv 1×1 (8)
    ///       └────────────────┘            └────────────────┘
    /// ```
    /// One dense block of 16 channels from x, not two of 12 and 16.
    #[test]
    fn pairwise_concatenations_make_one_dense_block() {
        let mut g = GraphBuilder::new(8);
        let x = g.conv("input", 8, 8, 3, 1);
        let mut x = g.relu(&x);
        let start = x.clone();
        for cin in [8, 12] {
            let l = g.conv(&x, cin, 4, 3, 1);
            let l = g.relu(&l);
            x = g.concat(&[&x, &l]);
        }
        let t = g.conv(&x, 16, 8, 1, 1);
        let g = g.finish(&t);
        let a = analysis_of(&g).expect("blocks");
        let found = kinds(&a);
        assert_eq!(found, [(BlockKind::Dense, 16)]);
        assert_eq!(a.blocks[0].input, start);
        assert_eq!(a.blocks[0].end, x);
        // Two layers of conv + relu, and the first Concat.
        assert_eq!(a.blocks[0].nodes.len(), 5);
    }
}

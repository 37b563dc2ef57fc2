//! Concatenation blocks. An inception module: a Concat along channels of branches that fork
//! from one tensor, none of which is the fork itself; a Concat nested in a bigger module, or
//! inside a residual branch (Inception-ResNet), is part of that block. A dense block (DenseNet):
//! a Concat that keeps its input; the block is the whole dense block, from its input to the
//! Concat that gathers every layer.

use super::naming::merge_block_name;
use super::{BlockKind, Cx, Form, Found, Rejection};
use crate::onnx::attr_i;
use std::collections::BTreeSet;

impl Cx<'_, '_> {
    /// The inception module or dense block whose Concat is node `m`; Ok(None) for shape
    /// arithmetic or a concatenation along another axis.
    pub(super) fn concat(&self, m: usize) -> Found {
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
        if self.feats.channels(&node.output[0]).is_none() {
            return Err(Rejection::UnknownChannels);
        }
        let (fork, fork_node) = self.fork(m, &inputs)?;
        let dense = inputs.iter().any(|i| **i == fork);
        let mut all = BTreeSet::new();
        let mut regions = Vec::new();
        for i in &inputs {
            let r = self.region(i, &fork, fork_node)?;
            all.extend(r.iter().copied());
            regions.push(r);
        }
        // Branches may share a stem (a 1×1 conv feeding both a 1×3 and a 3×1 whose outputs the
        // exporter concatenated straight into the module's Concat): such inputs are one branch.
        if !dense && regions.iter().any(BTreeSet::is_empty) {
            return Err(Rejection::EmptyBranch);
        }
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
}

//! ShuffleNet v2 units: a Concat of two paths from the unit's input (split in halves, or both
//! transformed in a downsampling unit) followed by the channel shuffle
//! (Reshape → Transpose → Reshape). The path with more convolutions is the branch.

use super::naming::merge_block_name;
use super::search::{Scope, Searcher};
use super::{Block, BlockKind, Cx, Form, Found, Rejection, Shortcut};
use crate::graph::Inlet;
use crate::onnx::attr_i;
use crate::onnx::op::Op;
use std::collections::BTreeSet;

/// ShuffleNet v2 units, at Concats.
pub(super) struct ShuffleUnits;

impl Searcher for ShuffleUnits {
    fn scope(&self) -> Scope {
        Scope::Concats
    }

    fn at_merge(&self, cx: &Cx, m: usize) -> Found {
        cx.shuffle(m)
    }
}

impl Cx<'_, '_> {
    /// The ShuffleNet unit whose Concat is node `m`; Ok(None) when no channel shuffle follows.
    pub(super) fn shuffle(&self, m: usize) -> Found {
        let view = self.view;
        let node = view.node(m);
        let axis = attr_i(node, "axis").unwrap_or(1);
        if node.input.len() != 2
            || !node.input.iter().all(|i| self.feats.is_feature(i))
            || !(axis == 1 || axis == -3)
        {
            return Ok(None);
        }
        let Some(t) = node
            .output
            .first()
            .and_then(|o| self.channel_shuffle_after(o))
        else {
            return Ok(None);
        };
        let (fork, fork_node) = self.fork(m, &[&node.input[0], &node.input[1]])?;
        let ra = self.region(&node.input[0], &fork, fork_node)?;
        let rb = self.region(&node.input[1], &fork, fork_node)?;
        let a_is_branch = self.convs(&ra) >= self.convs(&rb);
        let (branch, bslot, other, oslot) = if a_is_branch {
            (ra, 0, rb, 1)
        } else {
            (rb, 1, ra, 0)
        };
        if self.convs(&branch) == 0 {
            return Err(Rejection::NoConvInHalves);
        }
        let branch_input = self.half_read_by(&branch, &fork);
        let channels = self
            .feats
            .channels(&t)
            .ok_or(Rejection::UnknownUnitChannels)?;
        let other = Shortcut {
            projection: self.convs(&other) > 0,
            nodes: self.order(other),
            output: node.input[oslot].clone(),
            slot: oslot,
            branch_slot: bslot,
        };
        Ok(Some(Block {
            kind: BlockKind::Shuffle,
            name: merge_block_name(node, m),
            input: fork,
            nodes: self.order(branch),
            output: node.input[bslot].clone(),
            dtype: self.dtype(&t),
            end: t,
            channels,
            form: Form::Shuffle {
                merge: m,
                other,
                branch_input,
            },
            parent: None,
        }))
    }

    /// The output of the channel shuffle (Reshape → Transpose → Reshape) reading `t`, when one
    /// does. Readers of the map's shape (the TorchScript export computes the Reshape's target
    /// shape at run time) are not readers of the map.
    fn channel_shuffle_after(&self, t: &str) -> Option<String> {
        let view = self.view;
        let mut t = t.to_string();
        for expect in [Op::Reshape, Op::Transpose, Op::Reshape] {
            let readers: Vec<&Inlet> = view
                .consumers(&t)
                .iter()
                .filter(|Inlet { node: c, .. }| !Op::of(view.node(*c)).reads_shape())
                .collect();
            let n = match readers.as_slice() {
                [Inlet { node: n, slot: 0 }]
                    if Op::of(view.node(*n)) == expect && !view.is_graph_output(&t) =>
                {
                    *n
                }
                _ => return None,
            };
            t = view.node(n).output[0].clone();
        }
        Some(t)
    }

    /// After a split, the half the branch starts from: the output of the Split or Slice of
    /// `fork` that a branch node reads.
    fn half_read_by(&self, branch: &BTreeSet<usize>, fork: &str) -> Option<String> {
        let view = self.view;
        let split = branch.iter().find(|&&n| {
            Op::of(view.node(n)).splits()
                && view.node(n).input.first().map(String::as_str) == Some(fork)
        })?;
        view.node(*split)
            .output
            .iter()
            .find(|o| {
                view.consumers(o)
                    .iter()
                    .any(|Inlet { node: c, .. }| branch.contains(c))
            })
            .cloned()
    }
}

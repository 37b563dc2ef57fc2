//! Groups consecutive blocks of equal kind and output channels into stages.

use super::{Block, BlockKind};
use crate::graph::GraphView;
use crate::onnx::node_name;

/// A stage: consecutive blocks of one kind with the same output channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 1-based, as the report prints it.
    pub index: usize,
    pub kind: BlockKind,
    pub channels: usize,
    /// Indices into the block list.
    pub blocks: Vec<usize>,
    /// Name of the first node of the stage (to find it in a graph viewer).
    pub first_node: String,
}

/// Groups `blocks` (in topological order) into stages.
pub fn group(view: &GraphView, blocks: &[Block]) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        match stages.last_mut() {
            Some(s) if s.kind == b.kind && s.channels == b.channels => s.blocks.push(i),
            _ => {
                let first = b
                    .branch
                    .iter()
                    .chain(&b.shortcut)
                    .min_by_key(|&&n| view.rank[n])
                    .map(|&n| node_name(view.node(n)).to_string())
                    .unwrap_or_default();
                stages.push(Stage {
                    index: stages.len() + 1,
                    kind: b.kind,
                    channels: b.channels,
                    blocks: vec![i],
                    first_node: first,
                });
            }
        }
    }
    stages
}

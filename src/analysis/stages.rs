//! Groups consecutive blocks of one kind and equal output channels into stages; a block that
//! downsamples (a strided convolution or pooling in it, or a pooling between it and the block
//! before) starts a new stage, as VGG's last two 512-channel stages show.

use super::{Block, BlockKind};
use crate::graph::GraphView;
use crate::onnx::{attr_ints, op};

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

fn strided(view: &GraphView, n: usize) -> bool {
    let node = view.node(n);
    match op(node) {
        "Conv" | "MaxPool" | "AveragePool" => {
            attr_ints(node, "strides").is_some_and(|s| s.iter().any(|&v| v > 1))
        }
        _ => false,
    }
}

/// Whether `b` downsamples relative to the block before it, `prev`.
fn downsamples(view: &GraphView, b: &Block, prev: &Block) -> bool {
    if b.nodes.iter().any(|&n| strided(view, n)) {
        return true;
    }
    // Walk back from the block's input to the previous block's output.
    let mut t = b.input.as_str();
    for _ in 0..16 {
        if t == prev.end {
            return false;
        }
        let Some(p) = view.producer_node(t) else {
            return false;
        };
        if strided(view, p) {
            return true;
        }
        t = match view.node(p).input.first() {
            Some(i) => i,
            None => return false,
        };
    }
    false
}

/// Groups `blocks` (in topological order) into stages.
pub fn group(view: &GraphView, blocks: &[Block]) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let same = |s: &Stage| {
            s.kind == b.kind && s.channels == b.channels && !downsamples(view, b, &blocks[i - 1])
        };
        match stages.last_mut() {
            Some(s) if same(s) => s.blocks.push(i),
            _ => stages.push(Stage {
                index: stages.len() + 1,
                kind: b.kind,
                channels: b.channels,
                blocks: vec![i],
                first_node: b.first_node(view),
            }),
        }
    }
    stages
}

//! Read-only analysis: feature maps and their channels, blocks, stages.
//!
//! What each phase costs, for a graph of N nodes and E edges (node inputs):
//! - shape inference ([`facts`], [`shapes`]) and feature maps ([`features`]): one pass in
//!   topological order, each node's rule reading its inputs once: O(N + E), plus the values of
//!   small integer tensors (at most [`ops::MAX_VALUES`] per tensor);
//! - SE gates already there ([`existing`]): per Mul of two maps a walk of at most 24 nodes: O(E);
//! - dominators and post-dominators ([`crate::graph::GraphView::dominators`]): one topological
//!   pass with binary-lifting common ancestors, O((N + E) · log N);
//! - block detection ([`blocks`]): per merge, walks of the paths into it from its fork. Every
//!   step is counted, and detection stops at [`MAX_ANALYSIS_WORK`] steps: that bound, not the
//!   graph's shape, is what limits it. The CNNs it was written for cost about one step per edge
//!   (nested residual blocks are walked once per merge, a dense block once in all);
//! - stages ([`stages`]): linear in the blocks' nodes, which detection walked.

pub mod blocks;
#[cfg(test)]
mod detect_tests;
pub mod existing;
pub mod facts;
pub mod features;
pub mod named;
pub mod ops;
pub mod shapes;
pub mod stages;

pub use blocks::{Block, BlockKind, Detection};
pub use features::Features;
pub use stages::Stage;

use crate::graph::GraphView;
use crate::onnx::op;
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// Everything the rewrite and the report need to know about a model.
pub struct Analysis {
    pub blocks: Vec<Block>,
    pub stages: Vec<Stage>,
    pub features: Features,
    /// SE gates already in the model.
    pub gates: Vec<existing::SeGate>,
    /// Steps of work block detection did ([`blocks::Detection::work`]).
    pub work: u64,
}

impl Analysis {
    /// Whether an SE gate already sits at `tensor`: it is a gate's output, or the map a gate
    /// scales.
    pub fn se_at(&self, tensor: &str) -> bool {
        self.gates
            .iter()
            .any(|g| g.output == tensor || g.input == tensor)
    }
}

/// Most steps of work block detection may do ([`blocks::Detection::work`]: nodes and edges
/// walked, nodes ordered): 20 million, about two seconds. Detection does about one step per
/// edge of the graph on the CNNs it was written for (every fixture between 0.1 and 3 steps per
/// edge; a 500-layer dense block written one Concat per layer, 2.8 MB and 127,750 edges,
/// 131,746 steps), so only a graph whose merges each walk most of the graph again (10,000 Adds
/// each merging the graph's input with the previous one's output: 2·n² steps) reaches it.
pub const MAX_ANALYSIS_WORK: u64 = 20_000_000;

/// Detects blocks and groups them into stages; an error when the model has no block at all,
/// saying what was found instead, or when detection would do more than [`MAX_ANALYSIS_WORK`].
pub fn analyse(view: &GraphView) -> Result<Analysis> {
    analyse_within(view, MAX_ANALYSIS_WORK)
}

/// [`analyse`] with a budget of `work` steps.
pub fn analyse_within(view: &GraphView, work: u64) -> Result<Analysis> {
    if view.feature_inputs().is_empty() {
        bail!("the graph has no input (every graph input is an initializer)");
    }
    let feats = Features::new(view);
    crate::graph::attributes::check_channels(view.graph, &|t| feats.dims(t))?;
    let gates = existing::find(view, &feats);
    let det = blocks::detect(view, &feats, &gates, work);
    if det.over_budget {
        bail!(
            "block detection stopped after {} steps of work, more than its budget ({work}), on a \
             graph of {} nodes whose merges each reach back over most of the graph",
            det.work,
            view.graph.node.len()
        );
    }
    if det.blocks.is_empty() {
        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &view.graph.node {
            *ops.entry(op(n)).or_default() += 1;
        }
        let found: Vec<String> = ops
            .iter()
            .map(|(k, v)| format!("{v} {}", crate::shown::shown(k)))
            .collect();
        let why = match det
            .rejected
            .first()
            .and_then(|(m, r)| Some((m, r.first()?)))
        {
            Some((m, reason)) => format!(
                "; {} merge(s) rejected, e.g. {}: {reason}",
                det.rejected.len(),
                crate::onnx::describe_node(view.node(*m)),
                reason = crate::shown::shown(&reason.to_string())
            ),
            None => String::new(),
        };
        bail!(
            "no block found (no residual merge, inception module, dense block or convolution with an activation{why}); the graph holds {}",
            found.join(", ")
        );
    }
    let stages = stages::group(view, &det.blocks);
    Ok(Analysis {
        blocks: det.blocks,
        stages,
        features: feats,
        gates,
        work: det.work,
    })
}

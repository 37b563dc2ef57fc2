//! Read-only analysis: feature maps and their channels, blocks, stages.

pub mod blocks;
#[cfg(test)]
mod detect_tests;
pub mod existing;
pub mod facts;
pub mod features;
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

/// Detects blocks and groups them into stages; an error when the model has no block at all,
/// saying what was found instead.
pub fn analyse(view: &GraphView) -> Result<Analysis> {
    if view.feature_inputs().is_empty() {
        bail!("the graph has no input (every graph input is an initializer)");
    }
    let feats = Features::new(view);
    crate::graph::attributes::check_channels(view.graph, &|t| feats.dims(t))?;
    let gates = existing::find(view, &feats);
    let det = blocks::detect(view, &feats, &gates);
    if det.blocks.is_empty() {
        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &view.graph.node {
            *ops.entry(op(n)).or_default() += 1;
        }
        let found: Vec<String> = ops
            .iter()
            .map(|(k, v)| format!("{v} {}", crate::shown::shown(k)))
            .collect();
        let why = match det.rejected.first() {
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
    })
}

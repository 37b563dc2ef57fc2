//! The compute of both graphs, node by node, set per stage. A node of the original belongs to
//! the first stage whose blocks cover it (the stem, the head and what lies between blocks belong
//! to none); what the rewrite added is each SE block's nodes, which belong to the stage of the
//! block the patch added them for.

use super::compute::{node_cost, Cost};
use crate::analysis::blocks::activation_after;
use crate::analysis::shapes::Shapes;
use crate::analysis::{Analysis, Features};
use crate::graph::GraphView;
use crate::onnx::op::Op;
use crate::onnx::tensor::{numel, ElemType};
use crate::onnx::{describe_node, op};
use std::collections::{HashMap, HashSet};

/// A graph's compute, node by node: None where a node computes but its shapes are unknown.
pub(super) struct GraphCost {
    /// By node index.
    costs: Vec<Option<Cost>>,
    /// Node indices in topological order.
    topo: Vec<usize>,
    /// Descriptions of the nodes, for the reasons.
    described: Vec<String>,
    ops: Vec<String>,
    stopped_at: Option<String>,
}

impl GraphCost {
    /// Counts every node of `view`, whose feature maps are `feats`, with shapes inferred from
    /// `input_shape` (or the declared input shape).
    pub fn count(view: &GraphView, feats: &Features, input_shape: Option<&[usize]>) -> Self {
        let shapes = Shapes::infer(view, feats, input_shape);
        let nodes = &view.graph.node;
        GraphCost {
            costs: nodes.iter().map(|n| node_cost(&shapes, feats, n)).collect(),
            topo: view.topo.clone(),
            described: nodes.iter().map(describe_node).collect(),
            ops: nodes.iter().map(|n| op(n).to_string()).collect(),
            stopped_at: shapes.stopped_at,
        }
    }

    /// Why node `n` cannot be counted.
    fn unknown(&self, n: usize) -> String {
        format!(
            "the shapes at {} are unknown{}",
            self.described[n],
            self.stopped_at.as_ref().map_or(String::new(), |s| format!(
                " (shape inference stopped at {s})"
            ))
        )
    }

    /// The sum over the nodes `keep` accepts, or the first of them that cannot be counted.
    fn sum_where(&self, keep: impl Fn(usize) -> bool) -> Result<Cost, String> {
        let mut total = Cost::default();
        for &n in self.topo.iter().filter(|&&n| keep(n)) {
            total += self.costs[n].ok_or_else(|| self.unknown(n))?;
        }
        Ok(total)
    }

    /// The multiply-accumulates of the convolutions and matrix products.
    pub fn macs(&self) -> Result<u64, String> {
        let counts_macs = |n: usize| Op::parse(&self.ops[n]).cost() == crate::onnx::op::Cost::Macs;
        self.sum_where(counts_macs).map(|c| c.macs)
    }

    /// The whole graph's compute.
    pub fn total(&self) -> Result<Cost, String> {
        self.sum_where(|_| true)
    }

    /// The compute of the nodes `keep` accepts, counted where known.
    pub fn known(&self, keep: impl Fn(usize) -> bool) -> Cost {
        (0..self.costs.len())
            .filter(|&n| keep(n))
            .filter_map(|n| self.costs[n])
            .sum()
    }

    /// Per op, the number of nodes and their compute (counted where known), sorted by op.
    pub fn by_op(&self) -> Vec<(String, usize, Cost)> {
        let mut map: HashMap<&str, (usize, Cost)> = HashMap::new();
        for (n, o) in self.ops.iter().enumerate() {
            let e = map.entry(o.as_str()).or_default();
            e.0 += 1;
            e.1 += self.costs[n].unwrap_or_default();
        }
        let mut rows: Vec<(String, usize, Cost)> = map
            .into_iter()
            .map(|(o, (k, c))| (o.to_string(), k, c))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }
}

/// The stage (a position in `analysis.stages`) of every node of the original graph, by node
/// index: the first stage with a block covering it, or whose merge the node activates.
pub(super) fn stage_of_nodes(view: &GraphView, analysis: &Analysis) -> Vec<Option<usize>> {
    let mut of = vec![None; view.graph.node.len()];
    for (s, stage) in analysis.stages.iter().enumerate() {
        for &b in &stage.blocks {
            let block = &analysis.blocks[b];
            let shortcut = block.shortcut().map_or(&[][..], |c| c.nodes.as_slice());
            let merge = block.merge();
            let activation = activation_after(view, &block.end).map(|(nodes, _)| nodes);
            let activation = activation.as_deref().unwrap_or(&[]);
            for &n in block
                .nodes
                .iter()
                .chain(shortcut)
                .chain(&merge)
                .chain(activation)
            {
                if let Some(slot) = of.get_mut(n).filter(|slot| slot.is_none()) {
                    *slot = Some(s);
                }
            }
        }
    }
    of
}

/// The stage (a position in `analysis.stages`) of every node the rewrite added, by its index in
/// the rewritten graph: the stage of the block its SE block serves, as the patch recorded it.
pub(super) fn stage_of_added(
    analysis: &Analysis,
    inserted: &[crate::rewrite::patch::Inserted],
) -> HashMap<usize, Option<usize>> {
    let stage_of_block = |b: usize| analysis.stages.iter().position(|s| s.blocks.contains(&b));
    inserted
        .iter()
        .flat_map(|ins| {
            let stage = stage_of_block(ins.block);
            ins.nodes.iter().map(move |&n| (n, stage))
        })
        .collect()
}

/// Float weights read by the nodes of each stage (a weight shared by stages counts in the
/// first), by stage position.
pub(super) fn stage_params(
    view: &GraphView,
    stage_of: &[Option<usize>],
    stages: usize,
) -> Vec<u64> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut params = vec![0u64; stages];
    for &n in &view.topo {
        let Some(s) = stage_of[n] else { continue };
        for t in &view.node(n).input {
            let Some(w) = view.constant(t) else { continue };
            let name = w.name.as_deref().unwrap_or(t.as_str());
            if ElemType::of_tensor(w).is_float() && seen.insert(name) {
                params[s] = params[s].saturating_add(numel(w));
            }
        }
    }
    params
}

//! SE gates already in a model (SE-ResNet, MobileNet v3, EfficientNet, RegNetY): a Mul of a
//! feature map `x` by a gate computed from a pooled copy of `x` through a short subgraph
//! (pool → FCs / 1×1 convs → activations). Not every Sigmoid-Mul pair is one: EfficientNet's
//! SiLU is `x · sigmoid(x)`, with no pooling between.

use super::features::Features;
use crate::graph::GraphView;
use crate::onnx::node_name;
use crate::onnx::op::Op;
use std::collections::{HashSet, VecDeque};

/// Largest gate subgraph looked through.
const MAX_GATE_NODES: usize = 24;

/// An SE gate found in the graph.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeGate {
    /// Name of the Mul node that scales the map.
    pub node: String,
    /// Index of the Mul node.
    #[serde(skip)]
    pub mul: usize,
    /// Every node of the gate: pooling, FCs, activations and the Mul.
    #[serde(skip)]
    pub nodes: Vec<usize>,
    /// The map being scaled.
    pub input: String,
    /// The scaled map.
    pub output: String,
    pub channels: Option<usize>,
}

/// Every SE gate in the graph, in topological order.
pub fn find(view: &GraphView, feats: &Features) -> Vec<SeGate> {
    let mut gates = Vec::new();
    for &n in &view.topo {
        let node = view.node(n);
        if Op::of(node) != Op::Mul
            || node.input.len() != 2
            || !node.input.iter().all(|i| feats.is_feature(i))
        {
            continue;
        }
        let (p, q) = (&node.input[0], &node.input[1]);
        for (x, g) in [(p, q), (q, p)] {
            if let Some(mut nodes) = gated_by_pool(view, feats, g, x) {
                nodes.push(n);
                nodes.sort_unstable();
                gates.push(SeGate {
                    node: node_name(node).to_string(),
                    mul: n,
                    nodes,
                    input: x.clone(),
                    output: node.output.first().cloned().unwrap_or_default(),
                    channels: feats.channels(x),
                });
                break;
            }
        }
    }
    gates
}

/// The Transposes that make `t` a transposed copy of `x` (none when `t` is `x`), if it is one:
/// an SE block on a channels-last map pools a channels-first copy of it.
fn transposes_from(view: &GraphView, x: &str, t: &str) -> Option<Vec<usize>> {
    let (mut t, mut nodes) = (t, Vec::new());
    while t != x {
        let n = view.producer_node(t)?;
        let node = view.node(n);
        if Op::of(node) != Op::Transpose || nodes.len() >= 8 {
            return None;
        }
        nodes.push(n);
        t = node.input.first()?;
    }
    Some(nodes)
}

/// The nodes computing `gate` from `x`, when that goes only through a pooling of `x`, within a
/// small subgraph.
fn gated_by_pool(view: &GraphView, feats: &Features, gate: &str, x: &str) -> Option<Vec<usize>> {
    let mut queue: VecDeque<&str> = VecDeque::from([gate]);
    let mut seen: HashSet<&str> = HashSet::new();
    let mut nodes = Vec::new();
    let mut pooled = false;
    while let Some(t) = queue.pop_front() {
        if !seen.insert(t) {
            continue;
        }
        if seen.len() > MAX_GATE_NODES || t == x {
            return None; // too big, or x reaches the gate without a pooling
        }
        let n = view.producer_node(t)?;
        nodes.push(n);
        let node = view.node(n);
        let inputs: Vec<&String> = node.input.iter().filter(|i| feats.is_feature(i)).collect();
        if Op::of(node).squeezes() && inputs.len() == 1 {
            if let Some(transposes) = transposes_from(view, x, inputs[0]) {
                nodes.extend(transposes);
                pooled = true;
                continue;
            }
        }
        queue.extend(inputs.into_iter().map(String::as_str));
    }
    pooled.then_some(nodes)
}

//! Residual block detection. A residual block is an elementwise merge (Add, or Sum as older
//! converters write it) of two feature maps that fork from one tensor: the merge's immediate
//! dominator produces it. One path (the residual branch) holds convolutions; the other (the
//! shortcut) is the fork tensor itself or a short linear projection (Conv, normalisation,
//! pooling).

use super::features::Features;
use crate::graph::{GraphView, Source};
use crate::onnx::{node_name, op};
use std::collections::{BTreeSet, HashSet, VecDeque};

/// The kinds of block the analysis recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    Residual,
}

impl BlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Residual => "residual",
        }
    }
}

/// One detected block.
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: BlockKind,
    /// A readable name derived from the merge node, used to name what is added for the block.
    pub name: String,
    /// Index of the merge node in `graph.node`.
    pub merge: usize,
    /// Op type of the merge (Add, Sum).
    pub merge_op: String,
    /// The tensor both paths start from.
    pub fork: String,
    /// Nodes of the residual branch, in topological order.
    pub branch: Vec<usize>,
    /// The residual branch's output and the merge input slot it enters.
    pub branch_out: String,
    pub branch_slot: usize,
    /// Nodes of the shortcut (empty for an identity shortcut), in topological order.
    pub shortcut: Vec<usize>,
    pub shortcut_out: String,
    pub shortcut_slot: usize,
    /// Output channels of the block.
    pub channels: usize,
    /// Element type of the block's feature maps.
    pub dtype: i32,
    /// Whether an SE gate already scales the residual branch output.
    pub has_se: bool,
}

impl Block {
    /// Whether the shortcut is a projection rather than the identity.
    pub fn projection(&self) -> bool {
        !self.shortcut.is_empty()
    }
}

/// Ops a projection shortcut may hold.
const SHORTCUT_OPS: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "AveragePool",
    "MaxPool",
    "Identity",
    "Pad",
];

/// What the detection found, including merges that did not qualify as blocks.
#[derive(Debug, Default)]
pub struct Detection {
    pub blocks: Vec<Block>,
    /// Merge nodes looked at and rejected, with the reason.
    pub rejected: Vec<(usize, String)>,
}

/// Finds the residual blocks of the graph, in topological order of their merge nodes.
pub fn detect(view: &GraphView, feats: &Features) -> Detection {
    let doms = view.dominators(|t| feats.is_feature(t));
    let root = view.graph.node.len();
    let mut det = Detection::default();
    let mut merges: Vec<usize> = (0..view.graph.node.len())
        .filter(|&n| matches!(op(view.node(n)), "Add" | "Sum"))
        .collect();
    merges.sort_by_key(|&n| view.rank[n]);
    for m in merges {
        match residual_block(view, feats, &doms, root, m) {
            Ok(Some(b)) => det.blocks.push(b),
            Ok(None) => {}
            Err(reason) => det.rejected.push((m, reason)),
        }
    }
    det
}

fn residual_block(
    view: &GraphView,
    feats: &Features,
    doms: &petgraph::algo::dominators::Dominators<petgraph::graph::NodeIndex>,
    root: usize,
    m: usize,
) -> Result<Option<Block>, String> {
    let node = view.node(m);
    let operands: Vec<(usize, &String)> = node
        .input
        .iter()
        .enumerate()
        .filter(|(_, i)| feats.is_feature(i))
        .collect();
    if operands.len() != 2 || node.input.len() != 2 {
        // A bias add or a broadcast with a constant: not a merge of two paths.
        return Ok(None);
    }
    let (sa, a) = operands[0];
    let (sb, b) = operands[1];
    let (ca, cb) = (feats.channels(a), feats.channels(b));
    let channels = match (ca, cb) {
        (Some(x), Some(y)) if x == y => x,
        (Some(x), Some(y)) => return Err(format!("its inputs have {x} and {y} channels")),
        _ => return Err("the channel count of its inputs is unknown".into()),
    };
    let idom = doms
        .immediate_dominator(petgraph::graph::NodeIndex::new(m))
        .map(|i| i.index())
        .ok_or("it has no dominator")?;
    let (fork, fork_node) = if idom == root {
        let inputs = view.feature_inputs();
        if inputs.len() != 1 {
            return Err("its inputs do not fork from one tensor".into());
        }
        (
            view.graph.input[inputs[0]].name.clone().unwrap_or_default(),
            None,
        )
    } else {
        let f = view.node(idom);
        let outs: Vec<&String> = f.output.iter().filter(|o| feats.is_feature(o)).collect();
        if outs.len() != 1 {
            return Err(format!(
                "its fork {} has {} feature outputs",
                crate::onnx::describe_node(f),
                outs.len()
            ));
        }
        (outs[0].clone(), Some(idom))
    };
    let ra = region(view, feats, a, &fork, fork_node)?;
    let rb = region(view, feats, b, &fork, fork_node)?;
    if ra.intersection(&rb).next().is_some() {
        return Err("its two paths share nodes".into());
    }
    let convs = |r: &BTreeSet<usize>| r.iter().filter(|&&n| op(view.node(n)) == "Conv").count();
    let is_shortcut = |r: &BTreeSet<usize>| {
        convs(r) <= 1 && r.len() <= 4 && r.iter().all(|&n| SHORTCUT_OPS.contains(&op(view.node(n))))
    };
    // The branch is the path with the convolutions; the shortcut the short linear one.
    let a_is_branch = match (is_shortcut(&ra), is_shortcut(&rb)) {
        (true, true) => ra.len() > rb.len() || (ra.len() == rb.len() && convs(&ra) > convs(&rb)),
        (false, true) => true,
        (true, false) => false,
        (false, false) => return Err("neither path is a shortcut (identity or projection)".into()),
    };
    let (branch, bout, bslot, short, sout, sslot) = if a_is_branch {
        (ra, a, sa, rb, b, sb)
    } else {
        (rb, b, sb, ra, a, sa)
    };
    if convs(&branch) == 0 {
        return Err("its residual path holds no convolution".into());
    }
    let order = |r: BTreeSet<usize>| {
        let mut v: Vec<usize> = r.into_iter().collect();
        v.sort_by_key(|&n| view.rank[n]);
        v
    };
    let dtype = feats.get(bout).map_or(1, |f| f.dtype);
    Ok(Some(Block {
        kind: BlockKind::Residual,
        name: block_name(&scope_name(node), m),
        merge: m,
        merge_op: op(node).to_string(),
        fork,
        has_se: is_se_gate(view, feats, bout),
        branch: order(branch),
        branch_out: bout.clone(),
        branch_slot: bslot,
        shortcut: order(short),
        shortcut_out: sout.clone(),
        shortcut_slot: sslot,
        channels,
        dtype,
    }))
}

/// The nodes on feature paths from `fork` to `tensor` (exclusive of the fork's producer).
fn region(
    view: &GraphView,
    feats: &Features,
    tensor: &str,
    fork: &str,
    fork_node: Option<usize>,
) -> Result<BTreeSet<usize>, String> {
    let mut seen = BTreeSet::new();
    if tensor == fork {
        return Ok(seen);
    }
    let mut queue: VecDeque<&str> = VecDeque::from([tensor]);
    let mut visited: HashSet<&str> = HashSet::new();
    while let Some(t) = queue.pop_front() {
        if t == fork || !visited.insert(t) {
            continue;
        }
        match view.producer(t) {
            Some(Source::Node { node, .. }) if Some(node) == fork_node => {
                return Err(format!("it reaches its fork through a second output '{t}'"));
            }
            Some(Source::Node { node, .. }) => {
                seen.insert(node);
                for i in &view.node(node).input {
                    if feats.is_feature(i) {
                        queue.push_back(i);
                    }
                }
            }
            _ => {
                return Err(format!(
                    "a path reaches graph input '{t}' without passing the fork"
                ))
            }
        }
    }
    Ok(seen)
}

/// The merge node's scoped name: its own name when it carries a scope (TorchScript exporter:
/// `/layer1/layer1.0/Add`), else the module path the dynamo exporter records in the node's
/// `pkg.torch.onnx.name_scopes` metadata (`['', 'layer1', 'layer1.0', 'add']` gives
/// `layer1.0/add`), else the bare node name.
fn scope_name(node: &crate::onnx::NodeProto) -> String {
    let name = node_name(node);
    if name.contains('/') {
        return name.to_string();
    }
    let scopes = node
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some("pkg.torch.onnx.name_scopes"))
        .and_then(|p| p.value.as_deref());
    if let Some(list) = scopes {
        let parts: Vec<&str> = list
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"'))
            .filter(|s| !s.is_empty())
            .collect();
        if parts.len() >= 2 {
            return format!("{}/{}", parts[parts.len() - 2], parts[parts.len() - 1]);
        }
    }
    name.to_string()
}

/// A readable block name from its merge node's name: `/layer1/layer1.0/Add` gives
/// `/layer1/layer1.0`; names without a scope are kept; an unnamed merge gives `block<n>`.
pub fn block_name(merge_name: &str, index: usize) -> String {
    if merge_name.is_empty() {
        return format!("block{index}");
    }
    match merge_name.rsplit_once('/') {
        Some((scope, _)) if !scope.is_empty() => scope.to_string(),
        _ => merge_name.to_string(),
    }
}

/// Pooling ops that start an SE squeeze.
const POOLS: &[&str] = &[
    "GlobalAveragePool",
    "ReduceMean",
    "GlobalMaxPool",
    "ReduceMax",
];

/// Whether `tensor` is the output of an SE gate: a Mul of a feature map `x` by a gate computed
/// from a pooled copy of `x` through a short chain (pool → convs/FCs → activation).
pub fn is_se_gate(view: &GraphView, feats: &Features, tensor: &str) -> bool {
    let Some(n) = view.producer_node(tensor) else {
        return false;
    };
    let node = view.node(n);
    if op(node) != "Mul" || node.input.len() != 2 {
        return false;
    }
    let (p, q) = (&node.input[0], &node.input[1]);
    [(p, q), (q, p)]
        .iter()
        .any(|(x, g)| gate_from(view, feats, g, x))
}

fn gate_from(view: &GraphView, feats: &Features, gate: &str, x: &str) -> bool {
    let mut t = gate;
    let mut pooled = false;
    for _ in 0..12 {
        let Some(n) = view.producer_node(t) else {
            return false;
        };
        let node = view.node(n);
        pooled |= POOLS.contains(&op(node));
        let inputs: Vec<&String> = node.input.iter().filter(|i| feats.is_feature(i)).collect();
        if inputs.len() != 1 {
            return false;
        }
        if inputs[0] == x {
            return pooled && POOLS.contains(&op(node));
        }
        t = inputs[0];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_blocks_from_merge_scope() {
        assert_eq!(block_name("/layer1/layer1.0/Add", 3), "/layer1/layer1.0");
        assert_eq!(block_name("node_add_12", 3), "node_add_12");
        assert_eq!(block_name("", 3), "block3");
        assert_eq!(block_name("/Add", 3), "/Add");
    }
}

//! Block detection.
//!
//! - residual: an elementwise merge (Add, or Sum as older converters write it) of two feature maps
//!   that fork from one tensor (the merge's immediate dominator produces it): a residual branch
//!   with convolutions, and a shortcut that is the fork itself or a short linear projection.
//!   A residual branch holding a depthwise convolution makes it an inverted residual.
//! - inverted residual without a merge (MobileNet v2 / MnasNet stride-2 blocks): expand 1×1 →
//!   depthwise → project 1×1, found around depthwise convolutions no other block covers.
//! - inception: a Concat along channels of branches that fork from one tensor, none of which is
//!   the fork itself; a Concat nested in a bigger module, or inside a residual branch
//!   (Inception-ResNet), is part of that block.
//! - dense: a Concat that keeps its input (DenseNet); the block is the whole dense block, from its
//!   input to the Concat that gathers every layer.
//! - plain: in models with none of the above (VGG, MobileNet v1), a convolution with its
//!   activation, or a depthwise-separable pair.

use super::features::{conv_weight, Features};
use crate::graph::{GraphView, Source};
use crate::onnx::{attr_i, node_name, op};
use petgraph::algo::dominators::Dominators;
use petgraph::graph::NodeIndex;
use std::collections::{BTreeSet, HashSet, VecDeque};

/// The kinds of block the analysis recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockKind {
    Residual,
    InvertedResidual,
    Inception,
    Dense,
    Shuffle,
    Plain,
}

impl BlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Residual => "residual",
            BlockKind::InvertedResidual => "inverted-residual",
            BlockKind::Inception => "inception",
            BlockKind::Dense => "dense",
            BlockKind::Shuffle => "shuffle",
            BlockKind::Plain => "plain",
        }
    }
}

/// The shortcut of a residual block.
#[derive(Debug, Clone)]
pub struct Shortcut {
    /// Nodes of the shortcut (empty for an identity shortcut), in topological order.
    pub nodes: Vec<usize>,
    /// The shortcut's output and the merge input slot it enters.
    pub output: String,
    pub slot: usize,
    /// The merge input slot the residual branch enters.
    pub branch_slot: usize,
    /// Whether the shortcut holds a convolution (a projection) rather than passing the map on.
    pub projection: bool,
}

/// One detected block.
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: BlockKind,
    /// A readable name derived from the merge node, used to name what is added for the block.
    pub name: String,
    /// Index of the merge node in `graph.node` (Add / Sum / Concat); None for a chain.
    pub merge: Option<usize>,
    /// The tensor the block starts from.
    pub input: String,
    /// The transformation's nodes in topological order: the residual branch, the module's
    /// branches, the chain (the merge itself excluded).
    pub nodes: Vec<usize>,
    /// The transformation's output, where SE goes at the standard position: the residual
    /// branch's output, the Concat's output, the chain's last activation.
    pub output: String,
    /// The block's final output (after the merge), before any activation that follows it.
    pub end: String,
    /// Residual blocks only.
    pub shortcut: Option<Shortcut>,
    /// Where the transformation starts when that is not `input` itself: the half a ShuffleNet
    /// unit's branch takes after the split (what `pre` scales, leaving the other half raw).
    pub branch_input: Option<String>,
    /// Output channels of the block.
    pub channels: usize,
    /// Element type of the block's feature maps.
    pub dtype: i32,
}

impl Block {
    /// Whether the shortcut is a projection rather than the identity.
    pub fn projection(&self) -> bool {
        self.shortcut.as_ref().is_some_and(|s| s.projection)
    }

    /// Every node the block covers: transformation, shortcut and merge.
    pub fn covers(&self, n: usize) -> bool {
        self.merge == Some(n)
            || self.nodes.contains(&n)
            || self.shortcut.as_ref().is_some_and(|s| s.nodes.contains(&n))
    }

    /// Name of the block's first node in topological order.
    pub fn first_node(&self, view: &GraphView) -> String {
        self.nodes
            .iter()
            .chain(self.shortcut.iter().flat_map(|s| &s.nodes))
            .chain(&self.merge)
            .min_by_key(|&&n| view.rank[n])
            .map(|&n| node_name(view.node(n)).to_string())
            .unwrap_or_default()
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

/// Activations that close a convolution in a chain.
pub const ACTIVATIONS: &[&str] = &[
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "HardSwish",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Gelu",
    "Mish",
];

/// Gates of the activations written as `x · gate(x)` (SiLU = x·sigmoid(x); HardSwish before
/// opset 14 = x·hardsigmoid(x)).
const GATED_ACTIVATIONS: &[&str] = &["Sigmoid", "HardSigmoid"];

/// The activation that directly follows `t`, when there is one: a single activation node
/// reading only `t`, or the pair `Mul(t, gate(t))` of a gated activation. Returns its nodes
/// and its output. Not for graph outputs, which keep their readers' meaning.
pub fn activation_after<'a>(view: &GraphView<'a>, t: &str) -> Option<(Vec<usize>, &'a str)> {
    if view.is_graph_output(t) {
        return None;
    }
    let out = |n: usize| view.node(n).output.first().map(String::as_str);
    match view.consumers(t) {
        [(n, 0)] if ACTIVATIONS.contains(&op(view.node(*n))) => Some((vec![*n], out(*n)?)),
        [(a, _), (b, _)] => {
            let (gate, mul) = if op(view.node(*a)) == "Mul" {
                (*b, *a)
            } else {
                (*a, *b)
            };
            let g_out = out(gate)?;
            let ok = GATED_ACTIVATIONS.contains(&op(view.node(gate)))
                && op(view.node(mul)) == "Mul"
                && view.node(gate).input.first().map(String::as_str) == Some(t)
                && view.node(mul).input.iter().any(|i| i == g_out)
                && view.node(mul).input.iter().any(|i| i == t)
                && matches!(view.consumers(g_out), [(m, _)] if *m == mul);
            ok.then_some((vec![gate, mul], out(mul)?))
        }
        _ => None,
    }
}

/// What the detection found, including merges that did not qualify as blocks.
#[derive(Debug, Default)]
pub struct Detection {
    pub blocks: Vec<Block>,
    /// Merge nodes looked at and rejected, with the reason.
    pub rejected: Vec<(usize, String)>,
}

/// Finds the blocks of the graph, in topological order of their outputs.
pub fn detect(view: &GraphView, feats: &Features, gates: &[super::existing::SeGate]) -> Detection {
    let doms = view.dominators(|t| feats.is_feature(t));
    let pdoms = view.post_dominators(|t| feats.is_feature(t));
    let cx = Cx {
        view,
        feats,
        gate_nodes: gates.iter().flat_map(|g| g.nodes.iter().copied()).collect(),
        doms: &doms,
        pdoms: &pdoms,
        root: view.graph.node.len(),
    };
    let mut det = Detection::default();
    let mut order: Vec<usize> = (0..view.graph.node.len()).collect();
    order.sort_by_key(|&n| view.rank[n]);
    for &m in &order {
        if matches!(op(view.node(m)), "Add" | "Sum") {
            match cx.residual(m) {
                Ok(Some(b)) => det.blocks.push(b),
                Ok(None) => {}
                Err(reason) => det.rejected.push((m, reason)),
            }
        }
    }
    let mut modules = Vec::new();
    for &m in &order {
        if op(view.node(m)) == "Concat" {
            if det.blocks.iter().any(|b| b.covers(m)) {
                continue; // a Concat inside a residual branch (Inception-ResNet) belongs to it
            }
            let found = match cx.shuffle(m) {
                Ok(None) => cx.concat(m),
                other => other,
            };
            match found {
                Ok(Some(b)) => modules.push(b),
                Ok(None) => {}
                Err(reason) => det.rejected.push((m, reason)),
            }
        }
    }
    // A module whose Concat lies inside a bigger module (Inception v3's split 1×3 / 3×1
    // branches), or a dense-layer Concat inside its dense block, is part of that block.
    let inside = |b: &Block, of: &Block| b.merge.is_some_and(|m| of.nodes.contains(&m));
    let outer: Vec<Block> = modules
        .iter()
        .filter(|b| !modules.iter().any(|o| inside(b, o)))
        .cloned()
        .collect();
    det.blocks.extend(outer);
    if !det.blocks.is_empty() {
        let more = cx.inverted_without_merge(&det.blocks);
        det.blocks.extend(more);
    } else {
        det.blocks = cx.plain();
    }
    det.blocks.sort_by_key(|b| {
        b.merge
            .map_or_else(|| end_rank(view, &b.end), |m| view.rank[m])
    });
    det
}

fn end_rank(view: &GraphView, t: &str) -> usize {
    view.producer_node(t).map_or(0, |n| view.rank[n])
}

struct Cx<'v, 'a> {
    view: &'v GraphView<'a>,
    feats: &'v Features,
    /// Nodes of SE gates already in the graph: transparent where a path is classified.
    gate_nodes: HashSet<usize>,
    doms: &'v Dominators<NodeIndex>,
    pdoms: &'v Dominators<NodeIndex>,
    /// The virtual root of `doms` and exit of `pdoms`.
    root: usize,
}

impl Cx<'_, '_> {
    fn order(&self, r: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut v: Vec<usize> = r.into_iter().collect();
        v.sort_by_key(|&n| self.view.rank[n]);
        v.dedup();
        v
    }

    /// The tensor the paths into merge node `m` fork from, and the node producing it.
    fn fork(&self, m: usize) -> Result<(String, Option<usize>), String> {
        let idom = self
            .doms
            .immediate_dominator(NodeIndex::new(m))
            .map(|i| i.index())
            .ok_or("it has no dominator")?;
        if idom == self.root {
            let inputs = self.view.feature_inputs();
            if inputs.len() != 1 {
                return Err("its inputs do not fork from one tensor".into());
            }
            return Ok((
                self.view.graph.input[inputs[0]]
                    .name
                    .clone()
                    .unwrap_or_default(),
                None,
            ));
        }
        let f = self.view.node(idom);
        let outs: Vec<&String> = f
            .output
            .iter()
            .filter(|o| self.feats.is_feature(o))
            .collect();
        if outs.len() != 1 {
            return Err(format!(
                "its fork {} has {} feature outputs",
                crate::onnx::describe_node(f),
                outs.len()
            ));
        }
        Ok((outs[0].clone(), Some(idom)))
    }

    /// The nodes on feature paths from `fork` to `tensor` (exclusive of the fork's producer).
    fn region(
        &self,
        tensor: &str,
        fork: &str,
        fork_node: Option<usize>,
    ) -> Result<BTreeSet<usize>, String> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([tensor]);
        let mut visited: HashSet<&str> = HashSet::new();
        while let Some(t) = queue.pop_front() {
            if t == fork || !visited.insert(t) {
                continue;
            }
            match self.view.producer(t) {
                Some(Source::Node { node, .. }) if Some(node) == fork_node => {
                    return Err(format!("it reaches its fork through a second output '{t}'"));
                }
                Some(Source::Node { node, .. }) => {
                    seen.insert(node);
                    for i in &self.view.node(node).input {
                        if self.feats.is_feature(i) {
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

    fn convs(&self, r: &BTreeSet<usize>) -> usize {
        r.iter()
            .filter(|&&n| op(self.view.node(n)) == "Conv")
            .count()
    }

    fn is_depthwise(&self, n: usize) -> bool {
        let node = self.view.node(n);
        op(node) == "Conv"
            && attr_i(node, "group").unwrap_or(1) > 1
            && conv_weight(self.view, n).is_some_and(|d| d.get(1) == Some(&1))
    }

    fn residual(&self, m: usize) -> Result<Option<Block>, String> {
        let view = self.view;
        let node = view.node(m);
        let operands: Vec<(usize, &String)> = node
            .input
            .iter()
            .enumerate()
            .filter(|(_, i)| self.feats.is_feature(i))
            .collect();
        if operands.len() != 2 || node.input.len() != 2 {
            // A bias add or a broadcast with a constant: not a merge of two paths.
            return Ok(None);
        }
        let (sa, a) = operands[0];
        let (sb, b) = operands[1];
        let channels = match (self.feats.channels(a), self.feats.channels(b)) {
            (Some(x), Some(y)) if x == y => x,
            (Some(x), Some(y)) => return Err(format!("its inputs have {x} and {y} channels")),
            _ => return Err("the channel count of its inputs is unknown".into()),
        };
        let (fork, fork_node) = self.fork(m)?;
        let ra = self.region(a, &fork, fork_node)?;
        let rb = self.region(b, &fork, fork_node)?;
        if ra.intersection(&rb).next().is_some() {
            return Err("its two paths share nodes".into());
        }
        let is_shortcut = |r: &BTreeSet<usize>| {
            // An SE gate on the shortcut (the identity position) leaves it a shortcut.
            let r: BTreeSet<usize> = r
                .iter()
                .copied()
                .filter(|n| !self.gate_nodes.contains(n))
                .collect();
            let r = &r;
            self.convs(r) <= 1
                && r.len() <= 4
                && r.iter().all(|&n| SHORTCUT_OPS.contains(&op(view.node(n))))
        };
        // The branch is the path with the convolutions; the shortcut the short linear one.
        let a_is_branch = match (is_shortcut(&ra), is_shortcut(&rb)) {
            (true, true) => {
                ra.len() > rb.len() || (ra.len() == rb.len() && self.convs(&ra) > self.convs(&rb))
            }
            (false, true) => true,
            (true, false) => false,
            (false, false) => {
                return Err("neither path is a shortcut (identity or projection)".into())
            }
        };
        let (branch, bout, bslot, short, sout, sslot) = if a_is_branch {
            (ra, a, sa, rb, b, sb)
        } else {
            (rb, b, sb, ra, a, sa)
        };
        if self.convs(&branch) == 0 {
            return Err("its residual path holds no convolution".into());
        }
        let kind = if branch.iter().any(|&n| self.is_depthwise(n)) {
            BlockKind::InvertedResidual
        } else {
            BlockKind::Residual
        };
        let end = node.output.first().cloned().unwrap_or_default();
        Ok(Some(Block {
            kind,
            name: block_name(&scope_name(node), m),
            merge: Some(m),
            input: fork,
            nodes: self.order(branch),
            output: bout.clone(),
            end,
            shortcut: Some(Shortcut {
                projection: self.convs(&short) > 0,
                nodes: self.order(short),
                output: sout.clone(),
                slot: sslot,
                branch_slot: bslot,
            }),
            branch_input: None,
            channels,
            dtype: self.feats.get(bout).map_or(1, |f| f.dtype),
        }))
    }

    fn concat(&self, m: usize) -> Result<Option<Block>, String> {
        let view = self.view;
        let node = view.node(m);
        let axis = attr_i(node, "axis").unwrap_or(1);
        let inputs: Vec<&String> = node
            .input
            .iter()
            .filter(|i| self.feats.is_feature(i))
            .collect();
        if inputs.len() < 2 || inputs.len() != node.input.len() || !(axis == 1 || axis == -3) {
            return Ok(None); // shape arithmetic, or a concatenation along another axis
        }
        if self.feats.channels(&node.output[0]).is_none() {
            return Err("the channel count of its inputs is unknown".into());
        }
        let (fork, fork_node) = self.fork(m)?;
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
            return Err("one of its branches is empty".into());
        }
        if self.convs(&all) == 0 {
            return Err("its branches hold no convolution".into());
        }
        let out = node.output.first().cloned().unwrap_or_default();
        let kind = if dense {
            BlockKind::Dense
        } else {
            BlockKind::Inception
        };
        let name = block_name(&scope_name(node), m);
        Ok(self.block_ending_at(kind, name, Some(m), fork, all, out))
    }

    /// The single consumer of `t` when it is one of `ops` (and `t` is not a graph output).
    fn next_if(&self, t: &str, ops: &[&str]) -> Option<usize> {
        if self.view.is_graph_output(t) {
            return None;
        }
        match self.view.consumers(t) {
            [(n, 0)] if ops.contains(&op(self.view.node(*n))) => Some(*n),
            _ => None,
        }
    }

    /// From the output of a convolution: optional normalisation, optional activation. Returns the
    /// nodes and the last tensor, and whether an activation closed the chain.
    fn tail(&self, conv: usize) -> (Vec<usize>, String, bool) {
        let mut nodes = vec![conv];
        let mut t = self.view.node(conv).output[0].clone();
        if let Some(bn) = self.next_if(&t, &["BatchNormalization"]) {
            nodes.push(bn);
            t = self.view.node(bn).output[0].clone();
        }
        if let Some((act, out)) = activation_after(self.view, &t) {
            nodes.extend(act);
            return (nodes, out.to_string(), true);
        }
        (nodes, t, false)
    }

    fn is_pointwise(&self, n: usize) -> bool {
        let node = self.view.node(n);
        op(node) == "Conv"
            && attr_i(node, "group").unwrap_or(1) == 1
            && conv_weight(self.view, n)
                .is_some_and(|d| d.len() > 2 && d.iter().skip(2).all(|&k| k == 1))
    }

    /// A block whose transformation ends in `out` itself (no shortcut): a module's Concat or a
    /// chain's last activation. None when `out`'s channels are unknown.
    fn block_ending_at(
        &self,
        kind: BlockKind,
        name: String,
        merge: Option<usize>,
        input: String,
        nodes: impl IntoIterator<Item = usize>,
        out: String,
    ) -> Option<Block> {
        Some(Block {
            kind,
            name,
            merge,
            input,
            nodes: self.order(nodes),
            channels: self.feats.channels(&out)?,
            dtype: self.feats.get(&out).map_or(1, |f| f.dtype),
            output: out.clone(),
            end: out,
            shortcut: None,
            branch_input: None,
        })
    }

    /// A chain block (no merge), named after its first node.
    fn chain_block(
        &self,
        kind: BlockKind,
        nodes: Vec<usize>,
        input: String,
        out: String,
    ) -> Option<Block> {
        let first = *nodes.iter().min_by_key(|&&n| self.view.rank[n])?;
        let name = block_name(&scope_name(self.view.node(first)), first);
        self.block_ending_at(kind, name, None, input, nodes, out)
    }

    /// Inverted residuals without a merge, around each depthwise convolution no block covers:
    /// the projection is the first convolution that post-dominates it (so an SE gate or a
    /// decomposed activation in between is part of the block), the expansion the first
    /// convolution that dominates it, when that is a pointwise one nothing else reads.
    fn inverted_without_merge(&self, blocks: &[Block]) -> Vec<Block> {
        let view = self.view;
        let covered = |n: usize| blocks.iter().any(|b| b.covers(n));
        let first_conv = |doms: &Dominators<NodeIndex>, from: usize| -> Option<usize> {
            let mut n = from;
            for _ in 0..64 {
                n = doms.immediate_dominator(NodeIndex::new(n))?.index();
                if n == self.root {
                    return None;
                }
                if matches!(
                    op(view.node(n)),
                    "Conv" | "Concat" | "Add" | "Sum" | "Split"
                ) {
                    return (op(view.node(n)) == "Conv").then_some(n);
                }
            }
            None
        };
        let mut out = Vec::new();
        for &d in &view.topo {
            if !self.is_depthwise(d) || covered(d) {
                continue;
            }
            let Some(p) =
                first_conv(self.pdoms, d).filter(|&p| self.is_pointwise(p) && !covered(p))
            else {
                continue;
            };
            let (Some(d_out), Some(p_in)) =
                (view.node(d).output.first(), view.node(p).input.first())
            else {
                continue;
            };
            let Ok(middle) = self.region(p_in, d_out, Some(d)) else {
                continue;
            };
            let mut nodes: Vec<usize> = vec![d];
            nodes.extend(middle);
            let mut input = view.node(d).input[0].clone();
            if let Some(e) =
                first_conv(self.doms, d).filter(|&e| self.is_pointwise(e) && !covered(e))
            {
                let e_out = &view.node(e).output[0];
                if let Ok(before) = self.region(&input, e_out, Some(e)) {
                    let only_feeds_d = before.iter().all(|&n| op(view.node(n)) != "Conv")
                        && first_conv(self.pdoms, e) == Some(d);
                    if only_feeds_d {
                        nodes.push(e);
                        nodes.extend(before);
                        input = view.node(e).input[0].clone();
                    }
                }
            }
            let (pw_nodes, t, _) = self.tail(p);
            nodes.extend(pw_nodes);
            if let Some(b) = self.chain_block(BlockKind::InvertedResidual, nodes, input, t) {
                out.push(b);
            }
        }
        out
    }

    /// A ShuffleNet v2 unit: a Concat of two paths from the unit's input (split in halves, or
    /// both transformed in a downsampling unit) followed by the channel shuffle
    /// (Reshape → Transpose → Reshape). The path with more convolutions is the branch.
    fn shuffle(&self, m: usize) -> Result<Option<Block>, String> {
        let view = self.view;
        let node = view.node(m);
        let axis = attr_i(node, "axis").unwrap_or(1);
        if node.input.len() != 2
            || !node.input.iter().all(|i| self.feats.is_feature(i))
            || !(axis == 1 || axis == -3)
        {
            return Ok(None);
        }
        let mut t = node.output[0].clone();
        let mut shuffle = Vec::new();
        for expect in ["Reshape", "Transpose", "Reshape"] {
            // Readers of the map's shape (the TorchScript export computes the Reshape's target
            // shape at run time) are not readers of the map.
            let readers: Vec<&(usize, usize)> = view
                .consumers(&t)
                .iter()
                .filter(|(c, _)| !matches!(op(view.node(*c)), "Shape" | "Size"))
                .collect();
            let n = match readers.as_slice() {
                [(n, 0)] if op(view.node(*n)) == expect && !view.is_graph_output(&t) => *n,
                _ => return Ok(None),
            };
            shuffle.push(n);
            t = view.node(n).output[0].clone();
        }
        let idom = self
            .doms
            .immediate_dominator(NodeIndex::new(m))
            .map(|i| i.index())
            .ok_or("it has no dominator")?;
        let (fork, fork_node) = if idom != self.root && op(view.node(idom)) == "Split" {
            let x = view
                .node(idom)
                .input
                .first()
                .cloned()
                .ok_or("its Split has no input")?;
            let p = view.producer_node(&x);
            (x, p)
        } else {
            self.fork(m)?
        };
        let ra = self.region(&node.input[0], &fork, fork_node)?;
        let rb = self.region(&node.input[1], &fork, fork_node)?;
        let a_is_branch = self.convs(&ra) >= self.convs(&rb);
        let (branch, bslot, other, oslot) = if a_is_branch {
            (&ra, 0, &rb, 1)
        } else {
            (&rb, 1, &ra, 0)
        };
        if self.convs(branch) == 0 {
            return Err("neither half of the unit holds a convolution".into());
        }
        // After a split, the branch starts from its half (the Split output or Slice it reads).
        let branch_input = branch
            .iter()
            .find(|&&n| {
                matches!(op(view.node(n)), "Split" | "Slice")
                    && view.node(n).input.first() == Some(&fork)
            })
            .and_then(|&n| {
                view.node(n)
                    .output
                    .iter()
                    .find(|o| {
                        self.view
                            .consumers(o)
                            .iter()
                            .any(|(c, _)| branch.contains(c))
                    })
                    .cloned()
            });
        let channels = self
            .feats
            .channels(&t)
            .ok_or("the channel count of the unit is unknown")?;
        Ok(Some(Block {
            kind: BlockKind::Shuffle,
            name: block_name(&scope_name(node), m),
            merge: Some(m),
            input: fork,
            nodes: self.order(branch.iter().copied()),
            output: node.input[bslot].clone(),
            end: t.clone(),
            shortcut: Some(Shortcut {
                projection: self.convs(other) > 0,
                nodes: self.order(other.iter().copied()),
                output: node.input[oslot].clone(),
                slot: oslot,
                branch_slot: bslot,
            }),
            branch_input,
            channels,
            dtype: self.feats.get(&t).map_or(1, |f| f.dtype),
        }))
    }

    /// Plain chains: every convolution with its activation; a depthwise convolution with its
    /// activation and the pointwise one after it make one block.
    fn plain(&self) -> Vec<Block> {
        let view = self.view;
        let mut used: HashSet<usize> = HashSet::new();
        let mut out = Vec::new();
        for &c in &view.topo {
            if op(view.node(c)) != "Conv" || used.contains(&c) || self.gate_nodes.contains(&c) {
                continue;
            }
            let input = view.node(c).input[0].clone();
            let (mut nodes, mut t, act) = self.tail(c);
            if !act {
                continue;
            }
            if self.is_depthwise(c) {
                if let Some(p) = self
                    .next_if(&t, &["Conv"])
                    .filter(|&p| self.is_pointwise(p))
                {
                    let (pw, t2, act2) = self.tail(p);
                    if act2 {
                        nodes.extend(pw);
                        t = t2;
                    }
                }
            }
            used.extend(&nodes);
            if let Some(b) = self.chain_block(BlockKind::Plain, nodes, input, t) {
                out.push(b);
            }
        }
        out
    }
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

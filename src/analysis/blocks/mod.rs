//! Block detection: one file per kind of block, each a method of the shared context [`Cx`].
//!
//! - [`residual`]: an elementwise merge (Add, or Sum as older converters write it) of a
//!   transformation and a shortcut forking from one tensor; an inverted residual when the
//!   transformation holds a depthwise convolution.
//! - [`concat`]: inception modules (branches joined by a Concat along channels) and dense blocks
//!   (a Concat that keeps its input).
//! - [`shuffle`]: ShuffleNet v2 units (two halves, a Concat and the channel shuffle).
//! - [`inverted`]: inverted residuals without a merge (MobileNet v2 stride-2 blocks).
//! - [`plain`]: in models with none of the above (VGG, MobileNet v1), a convolution with its
//!   activation, or a depthwise-separable pair.
//!
//! Each detector is a searcher registered in [`search`], which asks them in priority order at
//! each merge. A new kind of block is one more file here with its searcher, its entry in
//! `search::SEARCHERS`, its row in [`KINDS`] (name, description, shortcut, placement) and its
//! row in the README's table.
//!
//! Cost: a merge's block is found by walking the feature paths back from its inputs to its fork
//! (the merge's immediate dominator), each tensor and edge once per walk. A residual merge walks
//! its block; a Concat walks all its inputs in one walk, and Concats are looked at last first so
//! that those inside a module already found (a dense block's layers, an Inception module's split
//! branches) are not walked again: a dense block of n layers written one Concat per layer (n²/2
//! edges) costs one walk, where a walk per Concat and input cost n⁴. Filtering nested blocks
//! (`outermost`) and joining dense runs are linear in the blocks' nodes. Every step is counted
//! in [`Detection::work`] against a budget; a graph whose merges each reach back over most of it
//! (n Adds each merging the input with the previous one's output: n² steps) spends it and
//! detection stops.

mod activation;
mod block;
mod concat;
mod csp;
mod dual;
mod inverted;
mod kind;
mod naming;
mod plain;
mod rejection;
mod residual;
mod search;
mod shuffle;
mod units;

pub use units::{split_conv, unit_of_part};

pub use activation::{activation_after, after_activation, next_if, tail};
pub use block::{Block, Form, Shortcut};
pub use kind::{BlockKind, KindRow, Placement, Rule, KINDS};
pub use naming::block_name;
pub use rejection::Rejection;

use super::features::{conv_weight, Features};
use crate::graph::{GraphView, Source};
use crate::onnx::op::Op;
use crate::onnx::tensor::ElemType;
use crate::onnx::{attr_i, describe_node};
use petgraph::graph::NodeIndex;
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// What the detection found, including merges that did not qualify as blocks.
#[derive(Debug, Default)]
pub struct Detection {
    pub blocks: Vec<Block>,
    /// Merge nodes looked at and taken by no detector, with every detector's reason in the
    /// order the detectors were asked.
    pub rejected: Vec<(usize, Vec<Rejection>)>,
    /// Steps of work the detection did (tensors and edges walked, nodes ordered).
    pub work: u64,
    /// Whether it stopped because the work reached its budget (its blocks are then incomplete).
    pub over_budget: bool,
}

/// Finds the blocks of the graph, in topological order of their outputs, doing at most `budget`
/// steps of work (see [`Detection::work`]).
pub fn detect(
    view: &GraphView,
    feats: &Features,
    gates: &[super::existing::SeGate],
    budget: u64,
) -> Detection {
    detect_with(view, feats, gates, budget, &search::SEARCHERS)
}

/// [`detect`] with the searchers `searchers`, in their priority order.
fn detect_with(
    view: &GraphView,
    feats: &Features,
    gates: &[super::existing::SeGate],
    budget: u64,
    searchers: &[&dyn search::Searcher],
) -> Detection {
    let doms = view.dominators(|t| feats.is_feature(t));
    let pdoms = view.post_dominators(|t| feats.is_feature(t));
    let cx = Cx {
        view,
        feats,
        gate_nodes: gates.iter().flat_map(|g| g.nodes.iter().copied()).collect(),
        doms: &doms,
        pdoms: &pdoms,
        root: view.graph.node.len(),
        work: Cell::new(0),
        budget,
    };
    let mut order: Vec<usize> = (0..view.graph.node.len()).collect();
    order.sort_by_key(|&n| view.rank[n]);
    let found = search::search(&cx, searchers, &order);
    // Only feature maps SE can pool take SE: a block whose transformation ends in a map after a
    // global pool (a classifier's 1×1 convolution on a 1×1 map) or outside the spatial domain
    // is no block.
    let blocks: Vec<Block> = found
        .blocks
        .into_iter()
        .filter(|b| feats.poolable(&b.output).is_ok())
        .collect();
    let mut det = Detection {
        blocks,
        rejected: found.rejected,
        ..Detection::default()
    };
    det.blocks.sort_by_key(|b| {
        b.merge()
            .map_or_else(|| end_rank(view, &b.end), |m| view.rank[m])
    });
    nest(&mut det.blocks);
    det.work = cx.work.get();
    det.over_budget = det.work > budget;
    det
}

/// Sets each block's parent: the smallest block of a nesting kind (other than itself) whose
/// nodes hold the block's merge, or all of its nodes when it has no merge.
fn nest(blocks: &mut [Block]) {
    let holders: Vec<(usize, HashSet<usize>)> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| b.kind.nests())
        .map(|(i, b)| (i, b.nodes.iter().copied().collect()))
        .collect();
    if holders.is_empty() {
        return;
    }
    for (i, b) in blocks.iter_mut().enumerate() {
        let inside = |nodes: &HashSet<usize>| match b.merge() {
            Some(m) => nodes.contains(&m),
            None => !b.nodes.is_empty() && b.nodes.iter().all(|n| nodes.contains(n)),
        };
        b.parent = holders
            .iter()
            .filter(|(h, nodes)| *h != i && inside(nodes))
            .min_by_key(|(_, nodes)| nodes.len())
            .map(|(h, _)| *h);
    }
}

/// `blocks` without those whose merge lies in another one's transformation (with
/// `same_input`, another starting from the same tensor): they are part of it. A block of a
/// kind that nests blocks holds none as parts.
fn outermost(blocks: Vec<Block>, same_input: bool) -> Vec<Block> {
    // Per node, the inputs of the blocks whose transformation holds it (one pass over the
    // blocks' nodes, rather than every block against every other).
    let mut holders: HashMap<usize, HashSet<&str>> = HashMap::new();
    for o in blocks.iter().filter(|o| !o.kind.nests()) {
        for &n in &o.nodes {
            holders.entry(n).or_default().insert(o.input.as_str());
        }
    }
    let inside = |b: &Block| {
        let Some(held) = b.merge().and_then(|m| holders.get(&m)) else {
            return false;
        };
        !same_input || held.contains(b.input.as_str())
    };
    let keep: Vec<bool> = blocks.iter().map(|b| !inside(b)).collect();
    blocks
        .into_iter()
        .zip(keep)
        .filter_map(|(b, k)| k.then_some(b))
        .collect()
}

fn end_rank(view: &GraphView, t: &str) -> usize {
    view.producer_node(t).map_or(0, |n| view.rank[n])
}

/// What the detectors share: the view, the feature maps, the dominator trees over feature-map
/// edges, and the nodes of SE gates already in the graph.
struct Cx<'v, 'a> {
    view: &'v GraphView<'a>,
    feats: &'v Features,
    /// Nodes of SE gates already in the graph: transparent where a path is classified.
    gate_nodes: HashSet<usize>,
    doms: &'v crate::graph::Dominators,
    pdoms: &'v crate::graph::Dominators,
    /// The virtual root of `doms` and exit of `pdoms`.
    root: usize,
    /// Steps of work done so far (tensors and edges walked, nodes ordered), and the most the
    /// analysis may do.
    work: Cell<u64>,
    budget: u64,
}

/// A detector's answer for one merge node: a block, not a block, or rejected with a reason.
type Found = Result<Option<Block>, Rejection>;

impl Cx<'_, '_> {
    fn order(&self, r: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut v: Vec<usize> = r.into_iter().collect();
        self.charge(v.len());
        v.sort_by_key(|&n| self.view.rank[n]);
        v.dedup();
        v
    }

    /// The immediate dominator of node `m`, `self.root` for the virtual root.
    fn idom(&self, m: usize) -> Result<usize, Rejection> {
        self.doms
            .immediate_dominator(NodeIndex::new(m))
            .map(|i| i.index())
            .ok_or(Rejection::NoDominator)
    }

    /// The feature maps among `tensors`.
    fn features<'t>(&self, tensors: &'t [String]) -> Vec<&'t String> {
        tensors
            .iter()
            .filter(|t| self.feats.is_feature(t))
            .collect()
    }

    /// The tensor the paths into merge node `m` (its feature inputs `inputs`) fork from, and the
    /// node producing it. When that node has several outputs (a Split), the fork is the one
    /// output every path starts from; paths from different outputs fork from what it splits,
    /// and the Split is then part of the block.
    fn fork(&self, m: usize, inputs: &[&String]) -> Result<(String, Option<usize>), Rejection> {
        let idom = self.idom(m)?;
        if idom == self.root {
            let inputs = self.view.feature_inputs();
            if inputs.len() != 1 {
                return Err(Rejection::NoCommonFork);
            }
            let name = self.view.graph.input[inputs[0]].name.clone();
            return Ok((name.unwrap_or_default(), None));
        }
        let f = self.view.node(idom);
        let outs = self.features(&f.output);
        if let [one] = outs[..] {
            return Ok((one.clone(), Some(idom)));
        }
        let from_one = outs
            .iter()
            .find(|o| inputs.iter().all(|i| self.region(i, o, Some(idom)).is_ok()));
        if let Some(o) = from_one {
            return Ok(((*o).clone(), Some(idom)));
        }
        match self.features(&f.input)[..] {
            [x] if outs.len() > 1 => Ok((x.clone(), self.view.producer_node(x))),
            _ => Err(Rejection::ForkOutputs {
                node: describe_node(f),
                outputs: outs.len(),
            }),
        }
    }

    /// The nodes on feature paths from `fork` to `tensor` (exclusive of the fork's producer).
    fn region(
        &self,
        tensor: &str,
        fork: &str,
        fork_node: Option<usize>,
    ) -> Result<BTreeSet<usize>, Rejection> {
        self.region_of([tensor], fork, fork_node)
    }

    /// The nodes on feature paths from `fork` to any of `tensors` (exclusive of the fork's
    /// producer): one walk back from all of them, each tensor and edge visited once and charged
    /// to the analysis budget.
    fn region_of<'t>(
        &'t self,
        tensors: impl IntoIterator<Item = &'t str>,
        fork: &str,
        fork_node: Option<usize>,
    ) -> Result<BTreeSet<usize>, Rejection> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&str> = tensors.into_iter().collect();
        let mut visited: HashSet<&str> = HashSet::new();
        while let Some(t) = queue.pop_front() {
            if t == fork || !visited.insert(t) {
                continue;
            }
            match self.view.producer(t) {
                Some(Source::Node { node, .. }) if Some(node) == fork_node => {
                    return Err(Rejection::SecondForkOutput(t.to_string()));
                }
                Some(Source::Node { node, .. }) => {
                    seen.insert(node);
                    let inputs = &self.view.node(node).input;
                    if !self.charge(1 + inputs.len()) {
                        return Err(Rejection::Budget);
                    }
                    for i in inputs {
                        if self.feats.is_feature(i) {
                            queue.push_back(i);
                        }
                    }
                }
                _ => return Err(Rejection::PathAroundFork(t.to_string())),
            }
        }
        Ok(seen)
    }

    /// Adds `steps` to the work done; false once the analysis budget is spent.
    fn charge(&self, steps: usize) -> bool {
        let done = self.work.get().saturating_add(steps as u64);
        self.work.set(done);
        done <= self.budget
    }

    /// The first node of `b` that raises the resolution of a map not pooled, described: `b`'s
    /// merge then fuses maps from different resolutions. An upsampling of a pooled map (the
    /// image-level branch of an ASPP module, broadcast back to the map's size) is none.
    fn fusion(&self, b: &Block) -> Option<String> {
        b.covered().find_map(|n| {
            let node = self.view.node(n);
            let raises = Op::of(node).upsamples()
                && node
                    .input
                    .first()
                    .and_then(|i| self.feats.get(i))
                    .is_some_and(|f| !f.pooled);
            raises.then(|| describe_node(node))
        })
    }

    /// Whether block `b` is a prediction head's: its final map, through activations and
    /// further convolutions of one input (a head's branch of convolutions ending in the
    /// prediction conv), is read only by reshapes that lay it out per position for a dense
    /// prediction (fewer axes than the map, at least three: batch, a per-position channel axis,
    /// positions), as YOLO's Detect writes `view(batch, outputs, -1)` and RetinaNet's heads
    /// `(batch, -1, classes)`. A classifier's Flatten (two axes) is no such reshape.
    fn is_head(&self, b: &Block) -> bool {
        let t = after_activation(self.view, &b.end);
        self.feats
            .get(t)
            .is_some_and(|f| self.reaches_head(t, f.layout.rank, 8))
    }

    /// Whether every reader of map `t` (of `rank` axes) is a dense-prediction reshape, or a
    /// convolution (with its activation) whose map is in turn, at most `depth` deep.
    fn reaches_head(&self, t: &str, rank: usize, depth: usize) -> bool {
        let view = self.view;
        let readers = view.consumers(t);
        !readers.is_empty()
            && !view.is_graph_output(t)
            && readers.iter().all(|i| {
                let node = view.node(i.node);
                let Some(out) = node.output.first() else {
                    return false;
                };
                let out_rank = self.feats.get(out).map(|f| f.layout.rank);
                match Op::of(node) {
                    Op::Reshape => out_rank.is_some_and(|r| (3..rank).contains(&r)),
                    Op::Conv if depth > 0 && self.features(&node.input).len() == 1 => {
                        let (_, end, _) = tail(view, i.node);
                        self.reaches_head(&end, rank, depth - 1)
                    }
                    _ => false,
                }
            })
    }

    /// Convolutions in `r`, the FCs of SE gates already there not counted.
    fn convs(&self, r: &BTreeSet<usize>) -> usize {
        r.iter()
            .filter(|&&n| Op::of(self.view.node(n)) == Op::Conv && !self.gate_nodes.contains(&n))
            .count()
    }

    /// Whether unit `n` (a Conv, or the Concat of a split convolution) is depthwise.
    fn is_depthwise(&self, n: usize) -> bool {
        let depthwise = |c: usize| {
            let node = self.view.node(c);
            Op::of(node) == Op::Conv
                && attr_i(node, "group").unwrap_or(1) > 1
                && conv_weight(self.feats, self.view, c).is_some_and(|d| d.get(1) == Some(&1))
        };
        self.unit_convs(n).into_iter().all(depthwise)
    }

    /// Whether unit `n` (a Conv, or the Concat of a split convolution) is pointwise.
    fn is_pointwise(&self, n: usize) -> bool {
        let pointwise = |c: usize| {
            let node = self.view.node(c);
            Op::of(node) == Op::Conv
                && attr_i(node, "group").unwrap_or(1) == 1
                && conv_weight(self.feats, self.view, c)
                    .is_some_and(|d| d.len() > 2 && d.iter().skip(2).all(|&k| k == 1))
        };
        self.unit_convs(n).into_iter().all(pointwise)
    }

    /// Element type of feature map `t` (FLOAT when unknown).
    fn dtype(&self, t: &str) -> ElemType {
        self.feats.get(t).map_or(ElemType::FLOAT, |f| f.dtype)
    }

    /// A block whose transformation ends in `out` itself (no shortcut): a module's Concat or a
    /// chain's last activation. None when `out`'s channels are unknown.
    fn block_ending_at(
        &self,
        kind: BlockKind,
        name: String,
        form: Form,
        input: String,
        nodes: impl IntoIterator<Item = usize>,
        out: String,
    ) -> Option<Block> {
        Some(Block {
            kind,
            name,
            input,
            nodes: self.order(nodes),
            channels: self.feats.channels(&out)?,
            dtype: self.dtype(&out),
            output: out.clone(),
            end: out,
            form,
            parent: None,
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
        let name = naming::merge_block_name(self.view.node(first), first);
        self.block_ending_at(kind, name, Form::Chain, input, nodes, out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::analysis::features::Features;
    use crate::onnx::{AttributeProto, NodeProto};
    use crate::testutil::{analysis_of, kinds, GraphBuilder};

    /// Splits `x` in two halves of `half` channels along the channel axis with one Split node.
    pub(super) fn split_halves(g: &mut GraphBuilder, x: &str, half: i64) -> (String, String) {
        let sizes = g.weight(&[2]);
        g.graph
            .initializer
            .last_mut()
            .expect("just added")
            .data_type = Some(ElemType::INT64.code());
        g.graph
            .initializer
            .last_mut()
            .expect("just added")
            .int64_data = vec![half, half];
        let (a, b) = (format!("{x}_half0"), format!("{x}_half1"));
        g.graph.node.push(NodeProto {
            name: Some(format!("{x}_split")),
            op_type: Some(Op::Split.name().into()),
            input: vec![x.to_string(), sizes],
            output: vec![a.clone(), b.clone()],
            attribute: vec![AttributeProto {
                name: Some("axis".into()),
                i: Some(1),
                ..Default::default()
            }],
            ..Default::default()
        });
        (a, b)
    }

    /// A CSP stage as timm writes it, with one multi-output Split:
    ///
    /// ```text
    /// x(16) ─ conv 1×1 ─ Split ─┬─ xs(8) ─────────────────────────────┐
    ///                           └─ xb(8) ─ basic block ─ conv 1×1 ─── Concat(16) ─ conv 1×1
    /// ```
    /// The basic block forks from the Split's second output; the Concat's paths start from
    /// both outputs, so it forks from what the Split splits: one residual block (8 channels)
    /// nested in one CSP module of 16 channels, which runs from the pointwise convolution
    /// that makes the map it splits (only the module reads it) to the fusion convolution.
    #[test]
    fn a_split_with_several_outputs_forks_blocks() {
        let mut g = GraphBuilder::new(16);
        let x = g.conv("input", 16, 16, 1, 1);
        let x = g.relu(&x);
        let (xs, xb) = split_halves(&mut g, &x, 8);
        let y = g.basic(&xb, 8, 8, false);
        let y = g.conv(&y, 8, 8, 1, 1);
        let cat = g.concat(&[&xs, &y]);
        let out = g.conv(&cat, 16, 16, 1, 1);
        let g = g.finish(&out);
        let a = analysis_of(&g).expect("blocks");
        let found = kinds(&a);
        assert_eq!(found, [(BlockKind::Residual, 8), (BlockKind::Csp, 16)]);
        assert_eq!(a.blocks[0].input, xb);
        assert_eq!(a.blocks[1].input, "input");
        assert_eq!(a.blocks[1].output, out);
    }

    /// A VGG-like chain whose classifier is written as convolutions on the pooled map:
    /// `conv 3×3 ─ Relu ─ conv 3×3 ─ Relu ─ GlobalAveragePool ─ conv 1×1 ─ Relu`. The two
    /// convolutions before the pool are plain blocks; the one after it is none.
    #[test]
    fn a_convolution_after_the_global_pool_is_no_block() {
        let mut g = GraphBuilder::new(3);
        let x = g.conv("input", 3, 8, 3, 1);
        let x = g.relu(&x);
        let x = g.conv(&x, 8, 8, 3, 1);
        let x = g.relu(&x);
        let p = g.node(Op::GlobalAveragePool.name(), &[&x], vec![]);
        let h = g.conv(&p, 8, 32, 1, 1);
        let h = g.relu(&h);
        let g = g.finish(&h);
        let a = analysis_of(&g).expect("blocks");
        assert_eq!(kinds(&a), [(BlockKind::Plain, 8), (BlockKind::Plain, 8)]);
    }

    /// The top-down merges of an FPN and a U-Net decoder:
    ///
    /// ```text
    /// c1(8, 8×8) ─ conv s2 ─ Relu ─ c2(16, 4×4) ─ Resize ×2 ─ u(16, 8×8) ─┬─ Add ──── p (16)
    ///  └────────────── conv 1×1 8→16 (lateral) ───────────────────────────┘
    /// u ─ Concat(u, c1) (24) ─ conv 3×3 ─ Relu
    /// ```
    /// Both merge maps from two resolutions: fusions, no blocks, each rejected as such.
    #[test]
    fn merges_of_two_resolutions_are_fusions() {
        let mut g = GraphBuilder::new(8);
        let c1 = g.conv("input", 8, 8, 3, 1);
        let c1 = g.relu(&c1);
        let c2 = g.conv_s2(&c1, 8, 16);
        let c2 = g.relu(&c2);
        let u = g.upsample2(&c2);
        let lateral = g.conv(&c1, 8, 16, 1, 1);
        let p = g.add(&u, &lateral);
        let cat = g.concat(&[&u, &c1]);
        let d = g.conv(&cat, 24, 16, 3, 1);
        let d = g.relu(&d);
        let out = g.add(&p, &d);
        let g = g.finish(&out);
        let view = GraphView::new(&g).expect("view");
        let feats = Features::new(&view);
        let det = detect(&view, &feats, &[], u64::MAX);
        let fused: Vec<&str> = det
            .rejected
            .iter()
            .filter(|(_, r)| matches!(r.first(), Some(Rejection::Fusion(_))))
            .filter_map(|(m, _)| view.node(*m).op_type.as_deref())
            .collect();
        assert_eq!(fused, [Op::Add.name(), Op::Concat.name()]);
        assert!(
            det.blocks
                .iter()
                .all(|b| b.merge() != view.producer_node(&p)),
            "the FPN Add is no block"
        );
    }

    /// A prediction head as YOLO's Detect writes it, after one residual block:
    /// `p ─┬─ conv (4) ─┬─ Concat (8) ─ Reshape (1, 8, 64)`: the Concat gathers two branches
    ///     └─ conv (4) ─┘
    /// from one map, as an inception module would, but its map is laid out per position for
    /// the prediction: a head's, no block.
    #[test]
    fn a_concat_read_as_a_dense_prediction_is_a_head() {
        let mut g = GraphBuilder::new(8);
        let x = g.conv("input", 8, 8, 3, 1);
        let x = g.relu(&x);
        let p = g.basic(&x, 8, 8, false);
        let a = g.conv(&p, 8, 4, 3, 1);
        let b = g.conv(&p, 8, 4, 1, 1);
        let cat = g.concat(&[&a, &b]);
        let shape = g.ints(&[1, 8, 64]);
        let flat = g.node(Op::Reshape.name(), &[&cat, &shape], vec![]);
        let g = g.finish(&flat);
        let a = analysis_of(&g).expect("blocks");
        assert_eq!(kinds(&a), [(BlockKind::Residual, 8)]);
    }
}

//! A patch: new nodes placed after the producer of the tensor they read, new initializers,
//! consumer inputs rerouted, producer outputs renamed. Built against the read-only view, applied
//! once to a copy of the graph, whose node list is then written in a stable topological order and
//! checked (every input produced, no tensor produced twice, no cycle).

use super::names::Names;
use super::se::SeBlock;
use crate::graph::{GraphView, Source};
use crate::onnx::{GraphProto, NodeProto, TensorProto};
use anyhow::{bail, Context, Result};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Where an SE block attaches.
#[derive(Debug, Clone)]
pub enum Site {
    /// SE reads `tensor`; only these (node, input slot) consumers read its output instead.
    Only {
        tensor: String,
        consumers: Vec<(usize, usize)>,
        channels: usize,
    },
    /// SE reads `tensor`; every reader of `tensor` (graph outputs included) reads its output.
    All { tensor: String, channels: usize },
}

impl Site {
    pub fn channels(&self) -> usize {
        match self {
            Site::Only { channels, .. } | Site::All { channels, .. } => *channels,
        }
    }

    pub fn tensor(&self) -> &str {
        match self {
            Site::Only { tensor, .. } | Site::All { tensor, .. } => tensor,
        }
    }
}

/// Edits to apply in one step.
#[derive(Default)]
pub struct Patch {
    /// New nodes by the original node they follow (None: before every node).
    after: BTreeMap<Option<usize>, Vec<NodeProto>>,
    initializers: Vec<TensorProto>,
    /// (node, input slot) → tensor it reads instead.
    rewires: HashMap<(usize, usize), String>,
    /// (node, output slot) → new name of that output.
    renames: HashMap<(usize, usize), String>,
}

impl Patch {
    /// Prepares the wiring for an SE block at `site`: returns the tensor the block reads and,
    /// when the block must produce a given name, that name.
    pub fn attach(
        &mut self,
        view: &GraphView,
        site: &Site,
        names: &mut Names,
    ) -> Result<(String, Option<String>)> {
        match site {
            Site::Only { tensor, .. } => Ok((tensor.clone(), None)),
            Site::All { tensor, .. } => match view.producer(tensor) {
                Some(Source::Node { node, slot }) => {
                    // The producer writes a new name; the SE block takes over the old one, so every
                    // reader, graph outputs and value_info included, now sees the scaled map.
                    let pre = names.fresh(&format!("{tensor}/pre_se"));
                    if self.renames.insert((node, slot), pre.clone()).is_some() {
                        bail!("two SE blocks would both replace tensor '{tensor}'");
                    }
                    Ok((pre, Some(tensor.clone())))
                }
                _ => Ok((tensor.clone(), None)),
            },
        }
    }

    /// Adds an SE block's nodes and weights and reroutes the site's consumers to its output.
    pub fn insert(&mut self, view: &GraphView, site: &Site, se: SeBlock) -> Result<()> {
        let after = view.producer_node(site.tensor());
        let consumers: Vec<(usize, usize)> = match site {
            Site::Only { consumers, .. } => consumers.clone(),
            Site::All { tensor, .. } if after.is_none() => {
                if view.is_graph_output(tensor) {
                    bail!("cannot scale graph input '{tensor}' that is also a graph output");
                }
                view.consumers(tensor).to_vec()
            }
            Site::All { .. } => Vec::new(),
        };
        for c in consumers {
            if self.rewires.insert(c, se.output.clone()).is_some() {
                bail!(
                    "two SE blocks would both feed input {} of {}",
                    c.1,
                    crate::onnx::describe_node(view.node(c.0))
                );
            }
        }
        self.after.entry(after).or_default().extend(se.nodes);
        self.initializers.extend(se.initializers);
        Ok(())
    }

    /// Applies the patch to a copy of the view's graph and checks the result.
    pub fn apply(self, view: &GraphView) -> Result<GraphProto> {
        let mut graph = view.graph.clone();
        let old = std::mem::take(&mut graph.node);
        let mut after = self.after;
        let mut nodes: Vec<NodeProto> = after.remove(&None).unwrap_or_default();
        for (i, mut n) in old.into_iter().enumerate() {
            for (slot, inp) in n.input.iter_mut().enumerate() {
                if let Some(t) = self.rewires.get(&(i, slot)) {
                    *inp = t.clone();
                }
            }
            for (slot, out) in n.output.iter_mut().enumerate() {
                if let Some(t) = self.renames.get(&(i, slot)) {
                    *out = t.clone();
                }
            }
            nodes.push(n);
            nodes.extend(after.remove(&Some(i)).unwrap_or_default());
        }
        graph.node = topological(nodes)?;
        graph.initializer.extend(self.initializers);
        let check = GraphView::new(&graph).context("the rewritten graph is malformed")?;
        if !check.is_ordered() {
            bail!("the rewritten graph's node list is not in topological order");
        }
        Ok(graph)
    }
}

/// Orders `nodes` topologically, keeping the given order wherever the dependencies allow.
pub fn topological(nodes: Vec<NodeProto>) -> Result<Vec<NodeProto>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(o, i);
        }
    }
    let mut indeg = vec![0usize; nodes.len()];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for inp in &n.input {
            if let Some(&p) = producer.get(inp.as_str()) {
                if p != i {
                    succ[p].push(i);
                    indeg[i] += 1;
                }
            }
        }
    }
    let mut heap: BinaryHeap<Reverse<usize>> = (0..nodes.len())
        .filter(|&i| indeg[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = heap.pop() {
        order.push(i);
        for &s in &succ[i] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                heap.push(Reverse(s));
            }
        }
    }
    if order.len() != nodes.len() {
        bail!("the rewritten graph has a cycle");
    }
    let mut slots: Vec<Option<NodeProto>> = nodes.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

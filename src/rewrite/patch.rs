//! A patch: new nodes placed after the producer of the tensor they read, new initializers,
//! consumer inputs rerouted, producer outputs renamed. Planned against the read-only view and
//! applied once to a copy of the graph, where new names are settled; the node list is then
//! written in a stable topological order and checked (every input produced, no tensor produced
//! twice, no cycle).

use super::names::Names;
use super::se::SeBlock;
use crate::graph::{GraphView, Inlet, Source};
use crate::onnx::{GraphProto, NodeProto};
use anyhow::{bail, Context, Result};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Where an SE block attaches.
#[derive(Debug, Clone)]
pub enum Site {
    /// SE reads `tensor`; only these node inputs read its output instead.
    Only {
        tensor: String,
        consumers: Vec<Inlet>,
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

/// One SE block to splice in, and where.
struct Insert {
    /// The block of the analysis it serves.
    block: usize,
    site: Site,
    /// The original node the block's nodes follow (None: before every node).
    after: Option<usize>,
    /// The producer output the block takes the name of (a `Site::All` on a node's output).
    takes_name_of: Option<(usize, usize)>,
    se: SeBlock,
}

/// Edits planned against the read-only view and applied in one step.
#[derive(Default)]
pub struct Patch {
    inserts: Vec<Insert>,
    /// A node input → the insert whose output it reads instead.
    rewires: HashMap<Inlet, usize>,
}

/// The patched graph, the names of the initializers the patch added, and what each insert did.
pub struct Applied {
    pub graph: GraphProto,
    pub added_initializers: Vec<String>,
    pub inserted: Vec<Inserted>,
}

/// What one insert put in the graph: for which block, on which tensor, and its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The block of the analysis.
    pub block: usize,
    /// The tensor SE reads, as the original graph names it.
    pub tensor: String,
    /// The nodes it added, as indices into the rewritten graph's node list.
    pub nodes: Vec<usize>,
}

impl Patch {
    /// The insert (by the order they were planned) that already takes what an SE block at
    /// `site` would take: one of its readers, or the name of the tensor it scales.
    pub fn taken_by(&self, view: &GraphView, site: &Site) -> Option<usize> {
        match site {
            Site::Only { consumers, .. } => {
                consumers.iter().find_map(|c| self.rewires.get(c)).copied()
            }
            Site::All { tensor, .. } => match view.producer(tensor) {
                Some(Source::Node { node, slot }) => self
                    .inserts
                    .iter()
                    .position(|i| i.takes_name_of == Some((node, slot))),
                _ => view
                    .consumers(tensor)
                    .iter()
                    .find_map(|c| self.rewires.get(c))
                    .copied(),
            },
        }
    }

    /// Plans SE block `se` at `site`: which readers switch to its output and, for a site on a
    /// node's output, that the block takes over the output's name, so that every reader, graph
    /// outputs and value_info included, then sees the scaled map.
    pub fn insert(
        &mut self,
        view: &GraphView,
        block: usize,
        site: Site,
        se: SeBlock,
    ) -> Result<()> {
        let index = self.inserts.len();
        let after = view.producer_node(site.tensor());
        let mut takes_name_of = None;
        let consumers: Vec<Inlet> = match &site {
            Site::Only { consumers, .. } => consumers.clone(),
            Site::All { tensor, .. } => match view.producer(tensor) {
                Some(Source::Node { node, slot }) => {
                    let taken = self
                        .inserts
                        .iter()
                        .any(|i| i.takes_name_of == Some((node, slot)));
                    if taken {
                        bail!(
                            "two SE blocks would both replace tensor '{}'",
                            crate::shown::shown(tensor)
                        );
                    }
                    takes_name_of = Some((node, slot));
                    Vec::new()
                }
                _ if view.is_graph_output(tensor) => {
                    bail!(
                        "cannot scale graph input '{}' that is also a graph output",
                        crate::shown::shown(tensor)
                    )
                }
                _ => view.consumers(tensor).to_vec(),
            },
        };
        for c in consumers {
            if self.rewires.insert(c, index).is_some() {
                bail!(
                    "two SE blocks would both feed input {} of {}",
                    c.slot,
                    crate::onnx::describe_node(view.node(c.node))
                );
            }
        }
        self.inserts.push(Insert {
            block,
            site,
            after,
            takes_name_of,
            se,
        });
        Ok(())
    }

    /// Applies the patch to a copy of the view's graph and checks the result. New names are
    /// settled here, block after block in the order they were planned, against every name of
    /// the graph.
    pub fn apply(self, view: &GraphView) -> Result<Applied> {
        let mut names = Names::new(view.all_names());
        let mut after: BTreeMap<Option<usize>, Vec<NodeProto>> = BTreeMap::new();
        let mut renames: HashMap<(usize, usize), String> = HashMap::new();
        let mut outputs = Vec::with_capacity(self.inserts.len());
        let mut initializers = Vec::new();
        // Per insert: its block, its tensor and the names of its nodes.
        let mut made: Vec<(usize, String, Vec<String>)> = Vec::with_capacity(self.inserts.len());
        for ins in self.inserts {
            let tensor = ins.site.tensor();
            let (input, output) = match ins.takes_name_of {
                Some(slot) => {
                    let pre = names.fresh(&format!("{tensor}/pre_se"));
                    renames.insert(slot, pre.clone());
                    (pre, Some(tensor.to_string()))
                }
                None => (tensor.to_string(), None),
            };
            let (nodes, inits, out) = ins.se.settle(&input, output.as_deref(), &mut names);
            let node_names = nodes.iter().filter_map(|n| n.name.clone()).collect();
            made.push((ins.block, tensor.to_string(), node_names));
            after.entry(ins.after).or_default().extend(nodes);
            initializers.extend(inits);
            outputs.push(out);
        }
        let rewires: HashMap<Inlet, &str> = self
            .rewires
            .iter()
            .map(|(&c, &i)| (c, outputs[i].as_str()))
            .collect();
        let mut graph = view.graph.clone();
        let old = std::mem::take(&mut graph.node);
        let mut nodes: Vec<NodeProto> = after.remove(&None).unwrap_or_default();
        for (i, mut n) in old.into_iter().enumerate() {
            for (slot, inp) in n.input.iter_mut().enumerate() {
                if let Some(t) = rewires.get(&Inlet { node: i, slot }) {
                    *inp = t.to_string();
                }
            }
            for (slot, out) in n.output.iter_mut().enumerate() {
                if let Some(t) = renames.get(&(i, slot)) {
                    out.clone_from(t);
                }
            }
            nodes.push(n);
            nodes.extend(after.remove(&Some(i)).unwrap_or_default());
        }
        graph.node = topological(nodes)?;
        let added_initializers = initializers.iter().filter_map(|t| t.name.clone()).collect();
        graph.initializer.extend(initializers);
        let check = GraphView::new(&graph).context("the rewritten graph is malformed")?;
        if !check.is_ordered() {
            bail!("the rewritten graph's node list is not in topological order");
        }
        // New node names are fresh (settled against every name of the graph), so each names one
        // node of the result.
        let index: HashMap<&str, usize> = graph
            .node
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.name.as_deref()?, i)))
            .collect();
        let inserted = made
            .into_iter()
            .map(|(block, tensor, nodes)| Inserted {
                block,
                tensor,
                nodes: nodes
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect(),
            })
            .collect();
        Ok(Applied {
            graph,
            added_initializers,
            inserted,
        })
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

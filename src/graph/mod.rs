//! A read-only petgraph view of an ONNX graph: nodes are ONNX nodes, edges are tensors from a
//! producer's output to a consumer's input. Graph inputs and initializers are sources outside the
//! petgraph. Building the view checks the structure: every input has a producer, no tensor has
//! two producers, the graph is acyclic, windowed ops carry valid attributes (`attributes.rs`).
//! Constants behind names are in `constants.rs`, dominators and post-dominators in
//! `dominators.rs`.
//!
//! Building the view is O(N + E) for N nodes and E node inputs (hash maps of tensor names; each
//! node-to-node dependency added once, however many tensors carry it).

pub mod attributes;
mod constants;
mod dominators;

pub use dominators::Dominators;

use crate::onnx::{describe_node, GraphProto, NodeProto};
use crate::shown::shown;
use anyhow::{bail, Result};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{HashMap, HashSet};

/// Where a tensor comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The i-th graph input (that is not also an initializer).
    Input(usize),
    /// The i-th initializer.
    Initializer(usize),
    /// The i-th sparse initializer.
    SparseInitializer(usize),
    /// Output `slot` of node `node` (an index into `graph.node`).
    Node { node: usize, slot: usize },
}

/// Where a tensor is read: input `slot` of node `node` (an index into `graph.node`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inlet {
    pub node: usize,
    pub slot: usize,
}

/// The graph view. Node indices are indices into `graph.node`.
pub struct GraphView<'a> {
    pub graph: &'a GraphProto,
    /// Node-to-node dependencies; node `i` is `NodeIndex::new(i)`.
    pub dag: DiGraph<usize, ()>,
    producers: HashMap<&'a str, Source>,
    consumers: HashMap<&'a str, Vec<Inlet>>,
    /// Node indices in a topological order.
    pub topo: Vec<usize>,
    /// Position of each node in `topo`.
    pub rank: Vec<usize>,
}

/// Producer → consumer dependencies between nodes, and the readers of each tensor.
type Links<'a> = (DiGraph<usize, ()>, HashMap<&'a str, Vec<Inlet>>);

/// Where each tensor comes from, refusing a tensor defined twice.
fn producers_of(graph: &GraphProto) -> Result<HashMap<&str, Source>> {
    let mut producers: HashMap<&str, Source> = HashMap::new();
    for (i, t) in graph.initializer.iter().enumerate() {
        let name = t.name.as_deref().unwrap_or("");
        if producers.insert(name, Source::Initializer(i)).is_some() {
            bail!("initializer '{}' is defined twice", shown(name));
        }
    }
    for (i, t) in graph.sparse_initializer.iter().enumerate() {
        let name = t
            .values
            .as_ref()
            .and_then(|v| v.name.as_deref())
            .unwrap_or("");
        if producers
            .insert(name, Source::SparseInitializer(i))
            .is_some()
        {
            bail!("initializer '{}' is defined twice", shown(name));
        }
    }
    for (i, v) in graph.input.iter().enumerate() {
        let name = v.name.as_deref().unwrap_or("");
        // Before IR 4 every initializer is also listed as a graph input.
        producers.entry(name).or_insert(Source::Input(i));
    }
    for (n, node) in graph.node.iter().enumerate() {
        for (slot, out) in node.output.iter().enumerate() {
            if out.is_empty() {
                continue;
            }
            if let Some(prev) = producers.insert(out, Source::Node { node: n, slot }) {
                let by = match prev {
                    Source::Node { node, .. } => describe_node(&graph.node[node]),
                    Source::Input(_) => "a graph input".to_string(),
                    Source::Initializer(_) | Source::SparseInitializer(_) => {
                        "an initializer".to_string()
                    }
                };
                bail!(
                    "tensor '{}' is produced twice: by {by} and by {}",
                    shown(out),
                    describe_node(node)
                );
            }
        }
    }
    Ok(producers)
}

/// Links every node input to its producer, refusing an input nothing produces.
fn link<'a>(graph: &'a GraphProto, producers: &HashMap<&str, Source>) -> Result<Links<'a>> {
    let mut dag = DiGraph::with_capacity(graph.node.len(), graph.node.len() * 2);
    for i in 0..graph.node.len() {
        dag.add_node(i);
    }
    let mut consumers: HashMap<&str, Vec<Inlet>> = HashMap::new();
    // Each dependency once, in the order first seen (petgraph's update_edge would look through
    // the producer's edges on every input: a map read by n Concats costs n² there).
    let mut linked: HashSet<(usize, usize)> = HashSet::new();
    for (n, node) in graph.node.iter().enumerate() {
        for (slot, inp) in node.input.iter().enumerate() {
            if inp.is_empty() {
                continue; // an omitted optional input
            }
            match producers.get(inp.as_str()) {
                None => bail!(
                    "{} reads tensor '{}', which nothing produces",
                    describe_node(node),
                    shown(inp)
                ),
                Some(Source::Node { node: p, .. }) => {
                    if linked.insert((*p, n)) {
                        dag.add_edge(NodeIndex::new(*p), NodeIndex::new(n), ());
                    }
                }
                Some(_) => {}
            }
            consumers
                .entry(inp.as_str())
                .or_default()
                .push(Inlet { node: n, slot });
        }
    }
    Ok((dag, consumers))
}

impl<'a> GraphView<'a> {
    /// Builds the view, checking the structure.
    pub fn new(graph: &'a GraphProto) -> Result<Self> {
        let producers = producers_of(graph)?;
        let (dag, consumers) = link(graph, &producers)?;
        let initializer_dims = |name: &str| match producers.get(name) {
            Some(Source::Initializer(i)) => Some(graph.initializer[*i].dims.as_slice()),
            _ => None,
        };
        attributes::check_graph(graph, &initializer_dims)?;
        for out in &graph.output {
            let name = out.name.as_deref().unwrap_or("");
            if !producers.contains_key(name) {
                bail!("graph output '{}' is produced by no node", shown(name));
            }
        }
        let topo = match petgraph::algo::toposort(&dag, None) {
            Ok(order) => order.into_iter().map(|i| i.index()).collect::<Vec<_>>(),
            Err(cycle) => bail!(
                "the graph has a cycle through {}",
                describe_node(&graph.node[cycle.node_id().index()])
            ),
        };
        let mut rank = vec![0; topo.len()];
        for (pos, &n) in topo.iter().enumerate() {
            rank[n] = pos;
        }
        Ok(Self {
            graph,
            dag,
            producers,
            consumers,
            topo,
            rank,
        })
    }

    /// The node at index `i`.
    pub fn node(&self, i: usize) -> &'a NodeProto {
        &self.graph.node[i]
    }

    /// Where tensor `name` comes from.
    pub fn producer(&self, name: &str) -> Option<Source> {
        self.producers.get(name).copied()
    }

    /// The node producing `name`, if a node does.
    pub fn producer_node(&self, name: &str) -> Option<usize> {
        match self.producer(name)? {
            Source::Node { node, .. } => Some(node),
            _ => None,
        }
    }

    /// The node inputs reading tensor `name`.
    pub fn consumers(&self, name: &str) -> &[Inlet] {
        self.consumers.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `name` is one of the graph's outputs.
    pub fn is_graph_output(&self, name: &str) -> bool {
        self.graph
            .output
            .iter()
            .any(|o| o.name.as_deref() == Some(name))
    }

    /// Element type of a graph input, if declared.
    pub fn input_type(&self, i: usize) -> Option<crate::onnx::tensor::ElemType> {
        use crate::onnx::proto::type_proto::Value;
        match self.graph.input.get(i)?.r#type.as_ref()?.value.as_ref()? {
            Value::TensorType(t) => t.elem_type.map(crate::onnx::tensor::ElemType::of),
            _ => None,
        }
    }

    /// Declared dims of a graph input (None for a symbolic or missing dim).
    pub fn input_dims(&self, i: usize) -> Option<Vec<Option<i64>>> {
        use crate::onnx::proto::tensor_shape_proto::dimension::Value as D;
        use crate::onnx::proto::type_proto::Value;
        match self.graph.input.get(i)?.r#type.as_ref()?.value.as_ref()? {
            Value::TensorType(t) => Some(
                t.shape
                    .as_ref()?
                    .dim
                    .iter()
                    .map(|d| match d.value {
                        Some(D::DimValue(v)) => Some(v),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Indices of the graph inputs that are real inputs (not initializers listed as inputs).
    pub fn feature_inputs(&self) -> Vec<usize> {
        (0..self.graph.input.len())
            .filter(|&i| {
                let name = self.graph.input[i].name.as_deref().unwrap_or("");
                matches!(self.producer(name), Some(Source::Input(_)))
            })
            .collect()
    }

    /// Whether the node list is already in topological order (each input produced earlier).
    pub fn is_ordered(&self) -> bool {
        self.graph.node.iter().enumerate().all(|(n, node)| {
            node.input.iter().all(|i| match self.producer(i) {
                Some(Source::Node { node: p, .. }) => p < n,
                _ => true,
            })
        })
    }

    /// Every name used in the graph: nodes, tensors, initializers, inputs, outputs, value_info.
    pub fn all_names(&self) -> HashSet<String> {
        let g = self.graph;
        let mut names: HashSet<String> = HashSet::new();
        for n in &g.node {
            names.extend(n.name.iter().cloned());
            names.extend(n.input.iter().cloned());
            names.extend(n.output.iter().cloned());
        }
        names.extend(g.initializer.iter().filter_map(|t| t.name.clone()));
        for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
            names.extend(v.name.iter().cloned());
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::GraphBuilder;

    fn err(g: &GraphProto) -> String {
        match GraphView::new(g) {
            Ok(_) => panic!("accepted a malformed graph"),
            Err(e) => format!("{e:#}"),
        }
    }

    //  input → Relu → Relu → output
    fn chain() -> GraphProto {
        let mut b = GraphBuilder::new(2);
        let a = b.relu("input");
        let c = b.relu(&a);
        b.finish(&c)
    }

    #[test]
    fn orders_and_links_nodes() {
        let g = chain();
        let v = GraphView::new(&g).unwrap();
        assert_eq!(v.topo, vec![0, 1]);
        assert!(v.is_ordered());
        assert_eq!(v.consumers("input"), &[Inlet { node: 0, slot: 0 }]);
        assert_eq!(v.producer_node(&g.node[1].output[0]), Some(1));
        assert_eq!(v.feature_inputs(), vec![0]);
    }

    #[test]
    fn rejects_a_missing_producer() {
        let mut g = chain();
        g.node[1].input[0] = "ghost".into();
        let e = err(&g);
        assert!(e.contains("'ghost'") && e.contains("Relu_2"), "{e}");
    }

    #[test]
    fn rejects_two_producers() {
        let mut g = chain();
        g.node[1].output[0] = g.node[0].output[0].clone();
        g.node[1].input[0] = "input".into();
        assert!(err(&g).contains("produced twice"));
    }

    #[test]
    fn rejects_a_cycle_naming_a_node() {
        let mut g = chain();
        g.node[0].input[0] = g.node[1].output[0].clone();
        let e = err(&g);
        assert!(e.contains("cycle") && e.contains("Relu_"), "{e}");
    }

    #[test]
    fn rejects_an_unproduced_graph_output() {
        let mut g = chain();
        g.output[0].name = Some("nowhere".into());
        assert!(err(&g).contains("'nowhere'"));
    }
}

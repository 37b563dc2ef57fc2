//! A read-only petgraph view of an ONNX graph: nodes are ONNX nodes, edges are tensors from a
//! producer's output to a consumer's input. Graph inputs and initializers are sources outside the
//! petgraph. Building the view checks the structure: every input has a producer, no tensor has
//! two producers, the graph is acyclic.

use crate::onnx::{attr_t, describe_node, op, GraphProto, NodeProto, TensorProto};
use anyhow::{bail, Result};
use petgraph::algo::dominators::{simple_fast, Dominators};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{HashMap, HashSet};

/// Where a tensor comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The i-th graph input (that is not also an initializer).
    Input(usize),
    /// The i-th initializer.
    Initializer(usize),
    /// Output `slot` of node `node` (an index into `graph.node`).
    Node { node: usize, slot: usize },
}

/// The graph view. Node indices are indices into `graph.node`.
pub struct GraphView<'a> {
    pub graph: &'a GraphProto,
    /// Node-to-node dependencies; node `i` is `NodeIndex::new(i)`.
    pub dag: DiGraph<usize, ()>,
    producers: HashMap<&'a str, Source>,
    consumers: HashMap<&'a str, Vec<(usize, usize)>>,
    /// Node indices in a topological order.
    pub topo: Vec<usize>,
    /// Position of each node in `topo`.
    pub rank: Vec<usize>,
}

impl<'a> GraphView<'a> {
    /// Builds the view, checking the structure.
    pub fn new(graph: &'a GraphProto) -> Result<Self> {
        let mut producers: HashMap<&str, Source> = HashMap::new();
        for (i, t) in graph.initializer.iter().enumerate() {
            let name = t.name.as_deref().unwrap_or("");
            if producers.insert(name, Source::Initializer(i)).is_some() {
                bail!("initializer '{name}' is defined twice");
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
                        Source::Initializer(_) => "an initializer".to_string(),
                    };
                    bail!(
                        "tensor '{out}' is produced twice: by {by} and by {}",
                        describe_node(node)
                    );
                }
            }
        }
        let mut dag = DiGraph::with_capacity(graph.node.len(), graph.node.len() * 2);
        for i in 0..graph.node.len() {
            dag.add_node(i);
        }
        let mut consumers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        for (n, node) in graph.node.iter().enumerate() {
            for (slot, inp) in node.input.iter().enumerate() {
                if inp.is_empty() {
                    continue; // an omitted optional input
                }
                match producers.get(inp.as_str()) {
                    None => bail!(
                        "{} reads tensor '{inp}', which nothing produces",
                        describe_node(node)
                    ),
                    Some(Source::Node { node: p, .. }) => {
                        dag.update_edge(NodeIndex::new(*p), NodeIndex::new(n), ());
                    }
                    Some(_) => {}
                }
                consumers.entry(inp.as_str()).or_default().push((n, slot));
            }
        }
        for out in &graph.output {
            let name = out.name.as_deref().unwrap_or("");
            if !producers.contains_key(name) {
                bail!("graph output '{name}' is produced by no node");
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

    /// The (node, input slot) pairs reading tensor `name`.
    pub fn consumers(&self, name: &str) -> &[(usize, usize)] {
        self.consumers.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `name` is one of the graph's outputs.
    pub fn is_graph_output(&self, name: &str) -> bool {
        self.graph
            .output
            .iter()
            .any(|o| o.name.as_deref() == Some(name))
    }

    /// The constant tensor behind `name`: an initializer, a Constant node's value, or either of
    /// those seen through Identity / Cast nodes (as the TorchScript exporter writes weights).
    pub fn constant(&self, name: &str) -> Option<&'a TensorProto> {
        let mut name = name;
        for _ in 0..64 {
            match self.producer(name)? {
                Source::Initializer(i) => return Some(&self.graph.initializer[i]),
                Source::Input(_) => return None,
                Source::Node { node, .. } => {
                    let n = self.node(node);
                    match op(n) {
                        "Constant" => return attr_t(n, "value"),
                        "Identity" | "Cast" => name = n.input.first()?,
                        _ => return None,
                    }
                }
            }
        }
        None
    }

    /// Dims of the constant behind `name`: a stored tensor (through Identity / Cast), or one a
    /// small constant subgraph computes from it (Reshape with a constant shape, Transpose,
    /// Squeeze / Unsqueeze, DequantizeLinear), as older converters and quantizers write weights.
    pub fn constant_dims(&self, name: &str) -> Option<Vec<i64>> {
        self.constant_dims_at(name, 0)
    }

    fn constant_dims_at(&self, name: &str, depth: usize) -> Option<Vec<i64>> {
        if let Some(t) = self.constant(name) {
            return Some(t.dims.clone());
        }
        if depth > 16 {
            return None;
        }
        let n = self.node(self.producer_node(name)?);
        let x = || self.constant_dims_at(n.input.first()?, depth + 1);
        let ints = |i: usize| {
            n.input
                .get(i)
                .and_then(|s| self.constant(s))
                .and_then(crate::onnx::tensor::int_values)
        };
        match op(n) {
            "DequantizeLinear" | "QuantizeLinear" | "Identity" | "Cast" => x(),
            "Reshape" => {
                let x = x()?;
                let total = x.iter().try_fold(1i64, |a, &d| a.checked_mul(d))?;
                let mut out = ints(1)?;
                for (i, d) in out.iter_mut().enumerate() {
                    if *d == 0 {
                        *d = *x.get(i)?;
                    }
                }
                if let Some(p) = out.iter().position(|&d| d == -1) {
                    let rest = out
                        .iter()
                        .filter(|&&d| d != -1)
                        .try_fold(1i64, |a, &d| a.checked_mul(d))?;
                    out[p] = total.checked_div(rest)?;
                }
                (out.iter().try_fold(1i64, |a, &d| a.checked_mul(d)) == Some(total)
                    && out.iter().all(|&d| d >= 0))
                .then_some(out)
            }
            "Transpose" => {
                let x = x()?;
                match crate::onnx::attr_ints(n, "perm") {
                    Some(p) => p
                        .iter()
                        .map(|&i| usize::try_from(i).ok().and_then(|i| x.get(i).copied()))
                        .collect(),
                    None => Some(x.into_iter().rev().collect()),
                }
            }
            "Unsqueeze" | "Squeeze" => {
                let x = x()?;
                let axes = crate::onnx::attr_ints(n, "axes")
                    .map(<[i64]>::to_vec)
                    .or_else(|| ints(1));
                let norm = |a: i64, rank: usize| {
                    usize::try_from(if a < 0 { a + rank as i64 } else { a }).ok()
                };
                if op(n) == "Squeeze" {
                    let axes: Vec<usize> = match axes {
                        Some(a) => a.iter().map(|&a| norm(a, x.len())).collect::<Option<_>>()?,
                        None => (0..x.len()).filter(|&i| x[i] == 1).collect(),
                    };
                    Some(
                        x.iter()
                            .enumerate()
                            .filter(|(i, _)| !axes.contains(i))
                            .map(|(_, &d)| d)
                            .collect(),
                    )
                } else {
                    let rank = x.len() + axes.as_ref()?.len();
                    let axes: Vec<usize> = axes?
                        .iter()
                        .map(|&a| norm(a, rank))
                        .collect::<Option<_>>()?;
                    let mut rest = x.into_iter();
                    (0..rank)
                        .map(|i| {
                            if axes.contains(&i) {
                                Some(1)
                            } else {
                                rest.next()
                            }
                        })
                        .collect()
                }
            }
            _ => None,
        }
    }

    /// Element type of a graph input, if declared.
    pub fn input_type(&self, i: usize) -> Option<i32> {
        use crate::onnx::proto::type_proto::Value;
        match self.graph.input.get(i)?.r#type.as_ref()?.value.as_ref()? {
            Value::TensorType(t) => t.elem_type,
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

    /// The producer → consumer pairs of the tensors `keep` accepts, and for each node whether it
    /// reads a graph input through such a tensor.
    fn kept_edges(&self, keep: impl Fn(&str) -> bool) -> (Vec<(usize, usize)>, Vec<bool>) {
        let mut edges = Vec::new();
        let mut reads_input = vec![false; self.graph.node.len()];
        for (c, node) in self.graph.node.iter().enumerate() {
            for inp in node.input.iter().filter(|i| keep(i)) {
                match self.producer(inp) {
                    Some(Source::Node { node: p, .. }) => edges.push((p, c)),
                    Some(Source::Input(_)) => reads_input[c] = true,
                    _ => {}
                }
            }
        }
        (edges, reads_input)
    }

    /// A graph over the nodes plus one virtual node (index `graph.node.len()`), with `edges`.
    fn with_virtual(&self, edges: impl Iterator<Item = (usize, usize)>) -> DiGraph<(), ()> {
        let n = self.graph.node.len();
        let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n + 1, n * 2);
        for _ in 0..=n {
            g.add_node(());
        }
        for (a, b) in edges {
            g.update_edge(NodeIndex::new(a), NodeIndex::new(b), ());
        }
        g
    }

    /// Dominators of the node graph restricted to the tensors `keep` accepts (the feature maps:
    /// weights fed through Identity nodes must not count as paths), from a virtual root (index
    /// `graph.node.len()`) that feeds every node without a kept predecessor.
    pub fn dominators(&self, keep: impl Fn(&str) -> bool) -> Dominators<NodeIndex> {
        let n = self.graph.node.len();
        let (edges, reads_input) = self.kept_edges(keep);
        let mut from_root = vec![true; n];
        for &(_, c) in &edges {
            from_root[c] = false;
        }
        // The root stands for the graph inputs: it feeds every node reading one, and every node
        // with no kept predecessor at all.
        let root_edges = (0..n)
            .filter(|&c| from_root[c] || reads_input[c])
            .map(|c| (n, c));
        let g = self.with_virtual(edges.iter().copied().chain(root_edges));
        simple_fast(&g, NodeIndex::new(n))
    }

    /// Post-dominators over the same edges as [`GraphView::dominators`]: dominators of the
    /// reversed graph from a virtual exit (index `graph.node.len()`) that every node without a
    /// kept successor feeds.
    pub fn post_dominators(&self, keep: impl Fn(&str) -> bool) -> Dominators<NodeIndex> {
        let n = self.graph.node.len();
        let (edges, _) = self.kept_edges(keep);
        let mut to_exit = vec![true; n];
        for &(p, _) in &edges {
            to_exit[p] = false;
        }
        // The exit stands for the graph outputs: every producer of one feeds it, as does every
        // node with no kept successor.
        for out in &self.graph.output {
            if let Some(p) = out.name.as_deref().and_then(|o| self.producer_node(o)) {
                to_exit[p] = true;
            }
        }
        let exit_edges = (0..n).filter(|&p| to_exit[p]).map(|p| (n, p));
        let g = self.with_virtual(edges.iter().map(|&(p, c)| (c, p)).chain(exit_edges));
        simple_fast(&g, NodeIndex::new(n))
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
        assert_eq!(v.consumers("input"), &[(0, 0)]);
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

    #[test]
    fn follows_constant_subgraphs_for_dims() {
        //  w [4,18] → Reshape([4,2,3,3]) → Transpose(1,0,2,3) → Unsqueeze(0) → Squeeze(0)
        let mut b = GraphBuilder::new(2);
        let w = b.weight(&[4, 18]);
        let shape = b.weight(&[4]);
        b.graph.initializer.last_mut().unwrap().data_type = Some(7);
        b.graph.initializer.last_mut().unwrap().int64_data = vec![4, 2, 3, -1];
        let r = b.node("Reshape", &[&w, &shape], vec![]);
        let perm = crate::onnx::AttributeProto {
            name: Some("perm".into()),
            ints: vec![1, 0, 2, 3],
            ..Default::default()
        };
        let t = b.node("Transpose", &[&r], vec![perm]);
        let axes = |v: i64| crate::onnx::AttributeProto {
            name: Some("axes".into()),
            ints: vec![v],
            ..Default::default()
        };
        let u = b.node("Unsqueeze", &[&t], vec![axes(0)]);
        let s = b.node("Squeeze", &[&u], vec![axes(0)]);
        let q = b.node("DequantizeLinear", &[&s], vec![]);
        let c = b.node("Conv", &["input", &q], vec![]);
        let g = b.finish(&c);
        let v = GraphView::new(&g).unwrap();
        assert_eq!(v.constant_dims(&r), Some(vec![4, 2, 3, 3]));
        assert_eq!(v.constant_dims(&t), Some(vec![2, 4, 3, 3]));
        assert_eq!(v.constant_dims(&u), Some(vec![1, 2, 4, 3, 3]));
        assert_eq!(v.constant_dims(&q), Some(vec![2, 4, 3, 3]));
        // A map computed from the graph input is not a constant.
        assert_eq!(v.constant_dims(&c), None);
    }

    #[test]
    fn sees_weights_through_identity() {
        let mut b = GraphBuilder::new(2);
        let w = b.weight(&[4, 2, 3, 3]);
        let id = b.node("Identity", &[&w], vec![]);
        let c = b.node("Conv", &["input", &id], vec![]);
        let g = b.finish(&c);
        let v = GraphView::new(&g).unwrap();
        assert_eq!(v.constant_dims(&id), Some(vec![4i64, 2, 3, 3]));
        assert_eq!(v.constant_dims("input"), None);
    }
}

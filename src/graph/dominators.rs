//! Dominators and post-dominators of the node graph, restricted to the tensors a caller keeps
//! (the feature maps). Both are computed on a graph of the nodes plus one virtual node that
//! stands for the graph's inputs (dominators) or its outputs (post-dominators).

use super::{GraphView, Source};
use petgraph::algo::dominators::{simple_fast, Dominators};
use petgraph::graph::{DiGraph, NodeIndex};

impl GraphView<'_> {
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

    /// Dominators of the node graph restricted to the tensors `keep` accepts (the feature maps:
    /// weights fed through Identity nodes must not count as paths), from a virtual root (index
    /// `graph.node.len()`) that feeds every node without a kept predecessor.
    pub fn dominators(&self, keep: impl Fn(&str) -> bool) -> Dominators<NodeIndex> {
        let (edges, reads_input) = self.kept_edges(keep);
        // The root stands for the graph inputs: it feeds every node reading one, and every node
        // with no kept predecessor at all.
        from_virtual_root(edges, reads_input)
    }

    /// Post-dominators over the same edges as [`GraphView::dominators`]: dominators of the
    /// reversed graph from a virtual exit (index `graph.node.len()`) that every node without a
    /// kept successor feeds.
    pub fn post_dominators(&self, keep: impl Fn(&str) -> bool) -> Dominators<NodeIndex> {
        let (edges, _) = self.kept_edges(keep);
        // The exit stands for the graph outputs: every producer of one feeds it, as does every
        // node with no kept successor.
        let mut makes_output = vec![false; self.graph.node.len()];
        for out in &self.graph.output {
            if let Some(p) = out.name.as_deref().and_then(|o| self.producer_node(o)) {
                makes_output[p] = true;
            }
        }
        let reversed = edges.into_iter().map(|(p, c)| (c, p)).collect();
        from_virtual_root(reversed, makes_output)
    }
}

/// Dominators of the graph of `edges` over `linked.len()` nodes plus a virtual root (index
/// `linked.len()`) with an edge to every node that `linked` marks or that no edge reaches.
fn from_virtual_root(edges: Vec<(usize, usize)>, linked: Vec<bool>) -> Dominators<NodeIndex> {
    let n = linked.len();
    let mut from_root = linked;
    let mut reached = vec![false; n];
    for &(_, b) in &edges {
        reached[b] = true;
    }
    for (root, r) in from_root.iter_mut().zip(&reached) {
        *root |= !r;
    }
    let mut g: DiGraph<(), ()> = DiGraph::with_capacity(n + 1, n * 2);
    for _ in 0..=n {
        g.add_node(());
    }
    let root_edges = (0..n).filter(|&b| from_root[b]).map(|b| (n, b));
    for (a, b) in edges.into_iter().chain(root_edges) {
        g.update_edge(NodeIndex::new(a), NodeIndex::new(b), ());
    }
    simple_fast(&g, NodeIndex::new(n))
}

#[cfg(test)]
mod tests {
    use crate::graph::GraphView;
    use crate::testutil::GraphBuilder;
    use petgraph::graph::NodeIndex;

    //  input → Relu ─┬─ Relu ─┬─ Add → Relu
    //                └────────┘
    #[test]
    fn a_residual_add_is_dominated_by_its_fork_and_post_dominates_it() {
        let mut b = GraphBuilder::new(2);
        let fork = b.relu("input");
        let branch = b.relu(&fork);
        let add = b.node("Add", &[&fork, &branch], vec![]);
        let end = b.relu(&add);
        let g = b.finish(&end);
        let v = GraphView::new(&g).unwrap();
        let idom = |d: &petgraph::algo::dominators::Dominators<NodeIndex>, i: usize| {
            d.immediate_dominator(NodeIndex::new(i)).map(|n| n.index())
        };
        let doms = v.dominators(|_| true);
        assert_eq!(idom(&doms, 0), Some(4), "the virtual root");
        assert_eq!(idom(&doms, 2), Some(0));
        assert_eq!(idom(&doms, 3), Some(2));
        let pdoms = v.post_dominators(|_| true);
        assert_eq!(idom(&pdoms, 3), Some(4), "the virtual exit");
        assert_eq!(idom(&pdoms, 0), Some(2));
        assert_eq!(idom(&pdoms, 1), Some(2));
    }
}

//! Dominators and post-dominators of the node graph, restricted to the tensors a caller keeps
//! (the feature maps). Both are computed on a graph of the nodes plus one virtual node that
//! stands for the graph's inputs (dominators) or its outputs (post-dominators).
//!
//! The graph is acyclic, so a node's immediate dominator is the nearest common ancestor, in the
//! dominator tree of the nodes before it, of its predecessors: one pass in topological order,
//! each common ancestor found by binary lifting. That is O((nodes + edges) · log nodes) time and
//! O(nodes · log nodes) memory on any graph (the iterative algorithm this replaces walks the
//! tree one level at a time, quadratic on a chain of merges that each reach back to the input).

use super::{GraphView, Source};
use petgraph::graph::NodeIndex;
use std::collections::HashSet;

/// The immediate dominator of every node of a graph from its root.
#[derive(Debug, Clone)]
pub struct Dominators {
    /// Per node, its immediate dominator; the root's is itself.
    idom: Vec<u32>,
    root: usize,
}

impl Dominators {
    /// The immediate dominator of `n`; None for the root (or a node outside the graph).
    pub fn immediate_dominator(&self, n: NodeIndex) -> Option<NodeIndex> {
        let i = n.index();
        (i != self.root && i < self.idom.len()).then(|| NodeIndex::new(self.idom[i] as usize))
    }
}

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
    pub fn dominators(&self, keep: impl Fn(&str) -> bool) -> Dominators {
        let (edges, reads_input) = self.kept_edges(keep);
        // The root stands for the graph inputs: it feeds every node reading one, and every node
        // with no kept predecessor at all.
        from_virtual_root(edges, reads_input, self.topo.iter().copied())
    }

    /// Post-dominators over the same edges as [`GraphView::dominators`]: dominators of the
    /// reversed graph from a virtual exit (index `graph.node.len()`) that every node without a
    /// kept successor feeds.
    pub fn post_dominators(&self, keep: impl Fn(&str) -> bool) -> Dominators {
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
        from_virtual_root(reversed, makes_output, self.topo.iter().rev().copied())
    }
}

/// Dominators of the acyclic graph of `edges` over `linked.len()` nodes plus a virtual root
/// (index `linked.len()`) with an edge to every node that `linked` marks or that no edge
/// reaches; `order` lists the nodes in a topological order of `edges`.
fn from_virtual_root(
    edges: Vec<(usize, usize)>,
    linked: Vec<bool>,
    order: impl Iterator<Item = usize>,
) -> Dominators {
    let n = linked.len();
    let mut preds: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    for (a, b) in edges {
        if seen.insert((a, b)) {
            preds[b].push(a as u32);
        }
    }
    for (b, &l) in linked.iter().enumerate() {
        if l || preds[b].is_empty() {
            preds[b].push(n as u32);
        }
    }
    // up[k][v]: v's 2^k-th ancestor in the dominator tree (the root's is the root).
    let levels = (usize::BITS - (n + 1).leading_zeros()).max(1) as usize;
    let mut up: Vec<Vec<u32>> = vec![vec![n as u32; n + 1]; levels];
    let mut depth = vec![0u32; n + 1];
    let common = |up: &[Vec<u32>], depth: &[u32], mut a: usize, mut b: usize| {
        if depth[a] < depth[b] {
            std::mem::swap(&mut a, &mut b);
        }
        let rise = depth[a] - depth[b];
        for (k, level) in up.iter().enumerate() {
            if rise >> k & 1 == 1 {
                a = level[a] as usize;
            }
        }
        if a == b {
            return a;
        }
        for level in up.iter().rev() {
            if level[a] != level[b] {
                a = level[a] as usize;
                b = level[b] as usize;
            }
        }
        up[0][a] as usize
    };
    for v in order {
        let mut p = preds[v].iter().map(|&p| p as usize);
        let first = p.next().unwrap_or(n);
        let idom = p.fold(first, |d, q| common(&up, &depth, d, q));
        depth[v] = depth[idom] + 1;
        up[0][v] = idom as u32;
        for k in 1..levels {
            up[k][v] = up[k - 1][up[k - 1][v] as usize];
        }
    }
    Dominators {
        idom: up.swap_remove(0),
        root: n,
    }
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
        let idom = |d: &super::Dominators, i: usize| {
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

    /// On random acyclic graphs (up to 40 nodes, up to 3 predecessors each, some reading the
    /// root), the immediate dominators are petgraph's iterative algorithm's, in both directions.
    #[test]
    fn dominators_match_the_iterative_algorithm() {
        use petgraph::algo::dominators::simple_fast;
        use petgraph::graph::DiGraph;
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..300 {
            let n = rng.random_range(1..40);
            let mut edges = Vec::new();
            for c in 1..n {
                for _ in 0..rng.random_range(0..4) {
                    edges.push((rng.random_range(0..c), c));
                }
            }
            let linked: Vec<bool> = (0..n).map(|_| rng.random_bool(0.1)).collect();
            for reversed in [false, true] {
                let (edges, order): (Vec<(usize, usize)>, Vec<usize>) = if reversed {
                    (
                        edges.iter().map(|&(a, b)| (b, a)).collect(),
                        (0..n).rev().collect(),
                    )
                } else {
                    (edges.clone(), (0..n).collect())
                };
                let mine =
                    super::from_virtual_root(edges.clone(), linked.clone(), order.into_iter());
                let mut g: DiGraph<(), ()> = DiGraph::new();
                for _ in 0..=n {
                    g.add_node(());
                }
                let mut reached = vec![false; n];
                for &(a, b) in &edges {
                    reached[b] = true;
                    g.update_edge(NodeIndex::new(a), NodeIndex::new(b), ());
                }
                for b in (0..n).filter(|&b| linked[b] || !reached[b]) {
                    g.update_edge(NodeIndex::new(n), NodeIndex::new(b), ());
                }
                let theirs = simple_fast(&g, NodeIndex::new(n));
                for v in 0..=n {
                    let v = NodeIndex::new(v);
                    assert_eq!(mine.immediate_dominator(v), theirs.immediate_dominator(v));
                }
            }
        }
    }
}

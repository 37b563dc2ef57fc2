//! Convolutions split in groups: one map split (a Split, or Slices of it) into parts, one Conv
//! per part, their outputs concatenated along channels (MixNet's mixed depthwise convolutions
//! and grouped pointwise ones). The analysis sees the whole as one convolution, known by its
//! Concat: a unit. A plain Conv node is a unit of its own.

use super::Cx;
use crate::graph::GraphView;
use crate::graph::Inlet;
use crate::onnx::attr_i;
use crate::onnx::op::Op;

/// The parts of a split convolution.
pub struct SplitConv {
    /// The Conv node of each part.
    pub parts: Vec<usize>,
    /// The Split node, or the Slice nodes, that make the parts.
    pub splitters: Vec<usize>,
    /// The map that is split.
    pub input: String,
}

/// The split convolution Concat node `m` closes, if it closes one.
pub fn split_conv(view: &GraphView, m: usize) -> Option<SplitConv> {
    let node = view.node(m);
    let axis = attr_i(node, "axis").unwrap_or(1);
    if Op::of(node) != Op::Concat || node.input.len() < 2 || !(axis == 1 || axis == -3) {
        return None;
    }
    let mut parts = Vec::new();
    let mut splitters: Vec<usize> = Vec::new();
    for i in &node.input {
        let c = view.producer_node(i)?;
        let only_m = matches!(view.consumers(i), [Inlet { node: r, .. }] if *r == m);
        if Op::of(view.node(c)) != Op::Conv || !only_m || view.is_graph_output(i) {
            return None;
        }
        let s = view.producer_node(view.node(c).input.first()?)?;
        if !Op::of(view.node(s)).splits() {
            return None;
        }
        parts.push(c);
        if !splitters.contains(&s) {
            splitters.push(s);
        }
    }
    let inputs: Vec<&String> = splitters
        .iter()
        .filter_map(|&s| view.node(s).input.first())
        .collect();
    let one_input = inputs.len() == splitters.len() && inputs.windows(2).all(|w| w[0] == w[1]);
    let split = splitters.len() == 1 && Op::of(view.node(splitters[0])) == Op::Split;
    let slices = splitters.len() == parts.len()
        && splitters.iter().all(|&s| Op::of(view.node(s)) == Op::Slice);
    if !one_input || !(split || slices) || !splitters_feed_only(view, &splitters, &parts) {
        return None;
    }
    let input = inputs.first()?.to_string();
    Some(SplitConv {
        parts,
        splitters,
        input,
    })
}

/// Whether every output of `splitters` is read by `parts` only.
fn splitters_feed_only(view: &GraphView, splitters: &[usize], parts: &[usize]) -> bool {
    splitters.iter().all(|&s| {
        view.node(s).output.iter().all(|o| {
            !view.is_graph_output(o)
                && view
                    .consumers(o)
                    .iter()
                    .all(|Inlet { node: c, .. }| parts.contains(c))
        })
    })
}

/// Whether Conv `c` is a part of a split convolution, and the Concat closing it.
pub fn unit_of_part(view: &GraphView, c: usize) -> Option<usize> {
    let out = view.node(c).output.first()?;
    match view.consumers(out) {
        [Inlet { node: m, .. }] => split_conv(view, *m)
            .is_some_and(|sc| sc.parts.contains(&c))
            .then_some(*m),
        _ => None,
    }
}

impl Cx<'_, '_> {
    /// The split convolution Concat node `m` closes, if it closes one.
    pub(super) fn split_conv(&self, m: usize) -> Option<SplitConv> {
        split_conv(self.view, m)
    }

    /// The Concat of the split convolution that Split / Slice node `s` opens, if it opens one.
    pub(super) fn opened_by(&self, s: usize) -> Option<usize> {
        let out = self.view.node(s).output.first()?;
        let Inlet { node: part, .. } = *self.view.consumers(out).first()?;
        let part_out = self.view.node(part).output.first()?;
        let Inlet { node: m, .. } = *self.view.consumers(part_out).first()?;
        self.split_conv(m)
            .is_some_and(|sc| sc.splitters.contains(&s))
            .then_some(m)
    }

    /// Whether Conv `c` is a part of a split convolution.
    pub(super) fn in_unit(&self, c: usize) -> bool {
        unit_of_part(self.view, c).is_some()
    }

    /// The Conv nodes of unit `n`: its parts for a split convolution, else `n` itself.
    pub(super) fn unit_convs(&self, n: usize) -> Vec<usize> {
        self.split_conv(n).map_or_else(|| vec![n], |sc| sc.parts)
    }

    /// The map unit `n` reads.
    pub(super) fn unit_input(&self, n: usize) -> Option<String> {
        match self.split_conv(n) {
            Some(sc) => Some(sc.input),
            None => self.view.node(n).input.first().cloned(),
        }
    }

    /// The nodes of unit `n` besides `n` itself: the parts and the splitters of a split
    /// convolution, nothing for a plain Conv.
    pub(super) fn unit_nodes(&self, n: usize) -> Vec<usize> {
        self.split_conv(n)
            .map(|sc| sc.parts.into_iter().chain(sc.splitters).collect())
            .unwrap_or_default()
    }

    /// The node unit `n` starts at: its (first) splitter for a split convolution, else `n`.
    pub(super) fn unit_start(&self, n: usize) -> usize {
        self.split_conv(n)
            .and_then(|sc| sc.splitters.first().copied())
            .unwrap_or(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::split_halves;
    use crate::analysis::BlockKind;
    use crate::testutil::{analysis_of, kinds, GraphBuilder};

    /// A MixNet block without an Add: its depthwise convolution split in two groups of
    /// different kernels.
    ///
    /// ```text
    /// x(8) ─ conv 1×1 (16) ─ relu ─ Split ─┬─ dw 3×3 (8) ─┬─ Concat(16) ─ relu ─ conv 1×1 (12)
    ///                                      └─ dw 5×5 (8) ─┘
    /// ```
    /// Then a basic residual block (inverted residuals without a merge are looked for in
    /// models that have merges). One inverted residual of 12 channels holding every node up to
    /// the projection; the mixed convolution is not an inception module.
    #[test]
    fn a_convolution_split_in_groups_is_one_convolution() {
        let mut g = GraphBuilder::new(8);
        let e = g.conv("input", 8, 16, 1, 1);
        let e = g.relu(&e);
        let (a, b) = split_halves(&mut g, &e, 8);
        let a = g.conv(&a, 8, 8, 3, 8);
        let b = g.conv(&b, 8, 8, 5, 8);
        let d = g.concat(&[&a, &b]);
        let d = g.relu(&d);
        let p = g.conv(&d, 16, 12, 1, 1);
        let y = g.basic(&p, 12, 12, false);
        let g = g.finish(&y);
        let a = analysis_of(&g).expect("blocks");
        let found = kinds(&a);
        assert_eq!(
            found,
            [(BlockKind::InvertedResidual, 12), (BlockKind::Residual, 12)]
        );
        assert_eq!(a.blocks[0].input, "input");
        // conv, relu, Split, two parts, Concat, relu, conv.
        let mut nodes = a.blocks[0].nodes.clone();
        nodes.sort_unstable();
        assert_eq!(nodes, (0..8).collect::<Vec<_>>());
    }
}

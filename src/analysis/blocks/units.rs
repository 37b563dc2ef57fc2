//! Convolutions split in groups: one map split (a Split, or Slices of it) into parts, one Conv
//! per part, their outputs concatenated along channels (MixNet's mixed depthwise convolutions
//! and grouped pointwise ones). The analysis sees the whole as one convolution, known by its
//! Concat: a unit. A plain Conv node is a unit of its own.

use super::Cx;
use crate::onnx::{attr_i, op};

/// The parts of a split convolution.
pub(super) struct SplitConv {
    /// The Conv node of each part.
    pub parts: Vec<usize>,
    /// The Split node, or the Slice nodes, that make the parts.
    pub splitters: Vec<usize>,
    /// The map that is split.
    pub input: String,
}

impl Cx<'_, '_> {
    /// The split convolution Concat node `m` closes, if it closes one.
    pub(super) fn split_conv(&self, m: usize) -> Option<SplitConv> {
        let view = self.view;
        let node = view.node(m);
        let axis = attr_i(node, "axis").unwrap_or(1);
        if op(node) != "Concat" || node.input.len() < 2 || !(axis == 1 || axis == -3) {
            return None;
        }
        let mut parts = Vec::new();
        let mut splitters: Vec<usize> = Vec::new();
        for i in &node.input {
            let c = view.producer_node(i)?;
            let only_m = matches!(view.consumers(i), [(r, _)] if *r == m);
            if op(view.node(c)) != "Conv" || !only_m || view.is_graph_output(i) {
                return None;
            }
            let s = view.producer_node(view.node(c).input.first()?)?;
            if !matches!(op(view.node(s)), "Split" | "Slice") {
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
        let split = splitters.len() == 1 && op(view.node(splitters[0])) == "Split";
        let slices = splitters.len() == parts.len()
            && splitters.iter().all(|&s| op(view.node(s)) == "Slice");
        if !one_input || !(split || slices) || !self.splitters_feed_only(&splitters, &parts) {
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
    fn splitters_feed_only(&self, splitters: &[usize], parts: &[usize]) -> bool {
        splitters.iter().all(|&s| {
            self.view.node(s).output.iter().all(|o| {
                !self.view.is_graph_output(o)
                    && self
                        .view
                        .consumers(o)
                        .iter()
                        .all(|(c, _)| parts.contains(c))
            })
        })
    }

    /// The Concat of the split convolution that Split / Slice node `s` opens, if it opens one.
    pub(super) fn opened_by(&self, s: usize) -> Option<usize> {
        let out = self.view.node(s).output.first()?;
        let (part, _) = *self.view.consumers(out).first()?;
        let part_out = self.view.node(part).output.first()?;
        let (m, _) = *self.view.consumers(part_out).first()?;
        self.split_conv(m)
            .is_some_and(|sc| sc.splitters.contains(&s))
            .then_some(m)
    }

    /// Whether Conv `c` is a part of a split convolution.
    pub(super) fn in_unit(&self, c: usize) -> bool {
        let Some(out) = self.view.node(c).output.first() else {
            return false;
        };
        match self.view.consumers(out) {
            [(m, _)] => self.split_conv(*m).is_some_and(|sc| sc.parts.contains(&c)),
            _ => false,
        }
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

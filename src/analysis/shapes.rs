//! Static shapes of the tensors, derived by shape inference ([`super::facts`]) from the input
//! shape: symbolic input dimensions take 1 unless a concrete input shape is given. The report
//! counts compute from them.

use super::facts::{Facts, InputDims};
use super::features::Features;
use crate::graph::GraphView;
use crate::onnx::describe_node;
use std::collections::HashMap;

/// Shapes per tensor, where every dim is known.
pub struct Shapes {
    map: HashMap<String, Vec<usize>>,
    /// Why shapes stop, when they do: the first node computing a feature map whose output shape
    /// could not be derived.
    pub stopped_at: Option<String>,
}

/// The product of `dims`, or None on overflow (hostile dims must not wrap or panic).
pub(crate) fn product(dims: impl IntoIterator<Item = usize>) -> Option<usize> {
    dims.into_iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(d))
}

impl Shapes {
    /// Derives the shapes from the feature inputs' shape: `input_shape`, or the declared one
    /// with symbolic dims set to 1.
    pub fn infer(view: &GraphView, feats: &Features, input_shape: Option<&[usize]>) -> Self {
        let facts = Facts::infer(view, InputDims::Concrete(input_shape));
        let stopped_at = view
            .topo
            .iter()
            .map(|&n| view.node(n))
            .find(|node| {
                node.output.first().is_some_and(|o| feats.is_feature(o))
                    && node
                        .output
                        .iter()
                        .any(|o| !o.is_empty() && facts.known_dims(o).is_none())
            })
            .map(describe_node);
        let map = view
            .graph
            .node
            .iter()
            .flat_map(|n| n.output.iter())
            .chain(
                view.graph
                    .initializer
                    .iter()
                    .filter_map(|t| t.name.as_ref()),
            )
            .chain(view.graph.input.iter().filter_map(|i| i.name.as_ref()))
            .filter_map(|t| Some((t.clone(), facts.known_dims(t)?)))
            .collect();
        Self { map, stopped_at }
    }

    /// Shape of tensor `name`, if derived.
    pub fn get(&self, name: &str) -> Option<&[usize]> {
        self.map.get(name).map(Vec::as_slice)
    }
}

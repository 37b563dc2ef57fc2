//! Static shape inference with constant folding: the op rules of [`super::ops`] applied to every
//! node in topological order, from the stored tensors (initializers, Constant nodes) and the
//! graph inputs' declared shapes. Symbolic dims stay unknown unless a concrete input shape is
//! given.

use super::ops::{self, Dim, Fact};
use crate::graph::GraphView;
use std::collections::HashMap;

/// What the rules derive for every tensor of a graph.
pub struct Facts {
    map: HashMap<String, Fact>,
}

/// The dims the feature inputs start from.
#[derive(Debug, Clone, Copy)]
pub enum InputDims<'s> {
    /// As declared; symbolic dims unknown.
    Declared,
    /// As declared with symbolic dims set to 1, or the given shape for every feature input.
    Concrete(Option<&'s [usize]>),
}

impl Facts {
    /// Derives the facts of every tensor of `view`'s graph.
    pub fn infer(view: &GraphView, input: InputDims) -> Facts {
        let g = view.graph;
        let mut map: HashMap<String, Fact> = HashMap::new();
        for t in &g.initializer {
            map.insert(t.name.clone().unwrap_or_default(), Fact::of_tensor(t));
        }
        // A sparse initializer's dense dims.
        for t in &g.sparse_initializer {
            let name = t.values.as_ref().and_then(|v| v.name.clone());
            let dims = t
                .dims
                .iter()
                .map(|&d| usize::try_from(d).ok().map(Some))
                .collect();
            map.insert(
                name.unwrap_or_default(),
                Fact {
                    dims,
                    ..Fact::default()
                },
            );
        }
        let features = view.feature_inputs();
        for (i, vi) in g.input.iter().enumerate() {
            let name = vi.name.clone().unwrap_or_default();
            if map.contains_key(&name) {
                continue;
            }
            let declared = view.input_dims(i);
            let dims: Option<Vec<Dim>> = match input {
                InputDims::Concrete(Some(s)) if features.contains(&i) => {
                    Some(s.iter().copied().map(Some).collect())
                }
                InputDims::Concrete(_) => declared.map(|d| {
                    d.iter()
                        .map(|v| Some(v.map_or(1, |v| usize::try_from(v).unwrap_or(1))))
                        .collect()
                }),
                InputDims::Declared => declared.map(|d| {
                    d.iter()
                        .map(|v| v.and_then(|v| usize::try_from(v).ok()))
                        .collect()
                }),
            };
            map.insert(
                name,
                Fact {
                    dims,
                    ..Fact::default()
                },
            );
        }
        for &n in &view.topo {
            let node = view.node(n);
            let ins: Vec<Option<&Fact>> = node
                .input
                .iter()
                .map(|i| map.get(i.as_str()).filter(|_| !i.is_empty()))
                .collect();
            let outs = ops::apply(node, &ins).unwrap_or_default();
            for (o, f) in node.output.iter().zip(outs) {
                if !o.is_empty() {
                    map.insert(o.clone(), f);
                }
            }
        }
        Facts { map }
    }

    /// What is known of tensor `name`.
    pub fn get(&self, name: &str) -> Option<&Fact> {
        self.map.get(name)
    }

    /// The dims of `name`, each known or not.
    pub fn dims(&self, name: &str) -> Option<&[Dim]> {
        self.get(name)?.dims.as_deref()
    }

    /// The dims of `name`, all known.
    pub fn known_dims(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name)?.known_dims()
    }
}

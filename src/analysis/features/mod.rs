//! Which tensors are feature maps (computed from the graph's input rather than from constants),
//! with their element type and channel axis, propagated forward in topological order. Channels
//! are the size shape inference (`super::facts`) gives the channel axis, never value_info.

use super::facts::{Facts, InputDims};
use super::ops::Dim;
use crate::graph::GraphView;
use crate::onnx::op::Op;
use crate::onnx::tensor::ElemType;
use crate::onnx::{attr_i, attr_ints, NodeProto};
use std::collections::HashMap;

/// What is known about a feature-map tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Channel count (the size of the channel axis), when it can be derived.
    pub channels: Option<usize>,
    pub dtype: ElemType,
    pub layout: Layout,
    /// Whether it comes after a global pool: every feature input of its producer pooled, or the
    /// producer a global pool, a reduction or a window that leaves one position.
    pub pooled: bool,
}

/// Why SE cannot pool a tensor around its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotPoolable {
    #[error("it is not a feature map")]
    NotAMap,
    #[error("its channel axis is {axis} of rank {rank}, with no spatial axis beside it")]
    Axis { axis: usize, rank: usize },
    #[error("it comes after a global pool")]
    Pooled,
}

/// Where a map's channels are: axis 1 of 4 for NCHW; the last axis in a channels-last section
/// (ConvNeXt's permute → LayerNorm → Linear → permute back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub axis: usize,
    pub rank: usize,
}

impl Layout {
    pub const NCHW: Layout = Layout { axis: 1, rank: 4 };

    /// Whether ONNX axis `a` (negative: from the end) is the channel axis.
    pub fn is_channel_axis(self, a: i64) -> bool {
        let (axis, rank) = (self.axis as i64, self.rank as i64);
        a == axis || a.checked_add(rank) == Some(axis)
    }

    /// The layout after a Transpose by `perm`: the channel axis goes where `perm` puts it.
    fn permuted(self, perm: &[i64]) -> Option<Layout> {
        let axis = perm.iter().position(|&p| p == self.axis as i64)?;
        Some(Layout {
            axis,
            rank: perm.len(),
        })
    }
}

/// Feature facts per tensor name, with the facts shape inference derived for every tensor.
pub struct Features {
    map: HashMap<String, Feature>,
    facts: Facts,
}

impl Features {
    /// Propagates feature facts through the graph: which tensors are maps (computed from a
    /// graph input, shape arithmetic excepted), their element type and channel axis; the
    /// channels are the size shape inference gives that axis.
    pub fn new(view: &GraphView) -> Self {
        let facts = Facts::infer(view, InputDims::Declared);
        let mut map: HashMap<String, Feature> = HashMap::new();
        for i in view.feature_inputs() {
            let name = view.graph.input[i].name.clone().unwrap_or_default();
            let rank = facts.dims(&name).map_or(4, <[_]>::len);
            let dtype = view.input_type(i).unwrap_or(ElemType::FLOAT);
            let layout = Layout { axis: 1, rank };
            let channels = channels_at(&facts, &name, layout);
            map.insert(
                name,
                Feature {
                    channels,
                    dtype,
                    layout,
                    pooled: false,
                },
            );
        }
        for &n in &view.topo {
            let node = view.node(n);
            if Op::of(node).reads_shape() {
                continue; // metadata of a map, not a map: shape arithmetic is not a feature
            }
            let inputs: Vec<Feature> = node
                .input
                .iter()
                .filter_map(|i| map.get(i.as_str()).copied())
                .collect();
            let Some(&first) = inputs.first() else {
                continue;
            };
            let pooled = inputs.iter().all(|f| f.pooled);
            for o in node.output.iter().filter(|o| !o.is_empty()) {
                let mut f = output_feature(node, &facts, o, first);
                f.pooled = pooled || squeezes_to_one(node, &facts, o, first.layout);
                map.insert(o.clone(), f);
            }
        }
        Self { map, facts }
    }

    /// Facts about tensor `name`, if it is a feature map.
    pub fn get(&self, name: &str) -> Option<Feature> {
        self.map.get(name).copied()
    }

    /// Whether `name` is computed from a graph input (not a weight, shape or other constant).
    pub fn is_feature(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Channel count of `name`, if known.
    pub fn channels(&self, name: &str) -> Option<usize> {
        self.get(name).and_then(|f| f.channels)
    }

    /// Whether SE can pool `name` around its channels: a feature map whose channel axis is
    /// neither the batch axis nor beyond its rank, with at least one axis beside them, that does
    /// not come after a global pool. A classifier's 1×1 map after its global pool, a feature
    /// vector, or a head's map folded with its channels on axis 0 is not one; a map that is 1×1
    /// only because the input is small (strided convolutions on a tiny image) is.
    pub fn poolable(&self, name: &str) -> Result<(), NotPoolable> {
        let f = self.get(name).ok_or(NotPoolable::NotAMap)?;
        let Layout { axis, rank } = f.layout;
        if axis == 0 || axis >= rank || rank < 3 {
            return Err(NotPoolable::Axis { axis, rank });
        }
        if f.pooled {
            return Err(NotPoolable::Pooled);
        }
        Ok(())
    }

    /// The dims of any tensor (a weight, or a weight a constant subgraph computes), all known.
    pub fn dims(&self, name: &str) -> Option<Vec<usize>> {
        self.facts.known_dims(name)
    }
}

/// The size of the channel axis of `name` under `layout`, when shape inference knows it.
fn channels_at(facts: &Facts, name: &str, layout: Layout) -> Option<usize> {
    let dims = facts.dims(name)?;
    if dims.len() == layout.rank {
        dims.get(layout.axis).copied().flatten()
    } else {
        None
    }
}

/// The feature of output `o` of `node`, `first` being its first feature input: its element type
/// and where its channel axis is (moved by a Transpose, kept by a reshape that leaves it whole,
/// axis 1 after a convolution or any other reshape), and the size shape inference gives that
/// axis.
fn output_feature(node: &NodeProto, facts: &Facts, o: &str, first: Feature) -> Feature {
    let rank = facts.dims(o).map_or(first.layout.rank, <[_]>::len);
    let layout = match Op::of(node) {
        Op::Transpose => attr_ints(node, "perm").and_then(|p| first.layout.permuted(p)),
        // A convolution writes its channels on axis 1, whatever layout its input had.
        Op::Conv | Op::ConvInteger | Op::ConvTranspose => Some(Layout { axis: 1, rank }),
        // A reshape or flatten that leaves the channel axis whole (a Linear's folding of the
        // other axes into one, and its unfolding) keeps it; any other starts again from axis 1.
        Op::Reshape | Op::Flatten => {
            let input = node.input.first().and_then(|i| facts.dims(i));
            let kept = input
                .zip(facts.dims(o))
                .and_then(|(from, to)| reshaped_axis(from, first.layout, to));
            Some(Layout {
                axis: kept.unwrap_or(1),
                rank,
            })
        }
        _ => Some(first.layout),
    };
    let dtype = match Op::of(node) {
        Op::Cast => attr_i(node, "to").map_or(first.dtype, ElemType::of_attribute),
        _ => first.dtype,
    };
    let layout = layout.unwrap_or(first.layout);
    Feature {
        channels: channels_at(facts, o, layout),
        dtype,
        layout,
        pooled: false,
    }
}

/// The product of `dims` other than the batch axis and the channel axis of `layout`, when all
/// are known and the rank is the layout's.
fn spatial_extent(dims: &[Dim], layout: Layout) -> Option<usize> {
    if dims.len() != layout.rank {
        return None;
    }
    let mut extent = 1usize;
    for (i, d) in dims.iter().enumerate() {
        if i != 0 && i != layout.axis {
            extent = extent.saturating_mul((*d)?);
        }
    }
    Some(extent)
}

/// Whether `node` squeezes its map to one position per channel: a global pool, or a reduction
/// or pooling window whose output `o` has a spatial extent of 1 where its input's is larger.
fn squeezes_to_one(node: &NodeProto, facts: &Facts, o: &str, layout: Layout) -> bool {
    let op = Op::of(node);
    if op.class() == crate::onnx::op::Class::GlobalPool {
        return true;
    }
    let windowed = matches!(op, Op::AveragePool | Op::MaxPool | Op::LpPool);
    if !(windowed || op.class() == crate::onnx::op::Class::Reduction) {
        return false;
    }
    let extent = |t: &str| facts.dims(t).and_then(|d| spatial_extent(d, layout));
    let before = node.input.first().and_then(|i| extent(i));
    extent(o) == Some(1) && before.is_some_and(|e| e > 1)
}

/// Where a reshape from dims `from` to dims `to` puts the channel axis of `layout`, when it
/// leaves that axis whole: an axis of `to` of the same size, with as many elements after it
/// (and so, the count being kept, as many before it). The sizes compared must be known.
fn reshaped_axis(from: &[Dim], layout: Layout, to: &[Dim]) -> Option<usize> {
    if from.len() != layout.rank {
        return None;
    }
    let channels = from.get(layout.axis).copied().flatten()?;
    let after = |dims: &[Dim]| -> Option<usize> {
        dims.iter()
            .try_fold(1usize, |p, d| d.and_then(|d| p.checked_mul(d)))
    };
    let inner = after(&from[layout.axis + 1..])?;
    (0..to.len()).find(|&j| to[j] == Some(channels) && after(&to[j + 1..]) == Some(inner))
}

/// Dims of a Conv node's weight, wherever the weight is produced.
pub fn conv_weight(feats: &Features, view: &GraphView, n: usize) -> Option<Vec<usize>> {
    feats.dims(view.node(n).input.get(1)?)
}

/// Whether a Conv node is spatial (a kernel larger than 1×1).
pub fn is_spatial_conv(feats: &Features, view: &GraphView, n: usize) -> bool {
    let node = view.node(n);
    if Op::of(node) != Op::Conv {
        return false;
    }
    if let Some(k) = attr_ints(node, "kernel_shape") {
        return k.iter().any(|&k| k > 1);
    }
    conv_weight(feats, view, n).is_some_and(|d| d.iter().skip(2).any(|&k| k > 1))
}

#[cfg(test)]
mod tests;

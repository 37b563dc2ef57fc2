//! Which tensors are feature maps (computed from the graph's input rather than from constants),
//! with their channel count and element type, propagated forward in topological order. Channels
//! come from convolution weight shapes, never from value_info.

use crate::graph::{GraphView, Source};
use crate::onnx::tensor::int_values;
use crate::onnx::{attr_i, attr_ints, op};
use std::collections::HashMap;

/// What is known about a feature-map tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Channel count (the size of the channel axis), when it can be derived.
    pub channels: Option<usize>,
    /// ONNX element type code.
    pub dtype: i32,
    pub layout: Layout,
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

/// Feature facts per tensor name.
pub struct Features {
    map: HashMap<String, Feature>,
}

/// Ops whose output has the shape (so the channels) of their first input.
pub const SAME_SHAPE: &[&str] = &[
    "BatchNormalization",
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Elu",
    "Selu",
    "Celu",
    "Softplus",
    "Gelu",
    "Mish",
    "Erf",
    "Dropout",
    "Identity",
    "Cast",
    "LRN",
    "InstanceNormalization",
    "LayerNormalization",
    "Softmax",
    "LogSoftmax",
    "Sqrt",
    "Neg",
    "Exp",
    "Abs",
    "ThresholdedRelu",
    "Relu6",
    "Swish",
];

/// Elementwise ops with numpy broadcasting: a feature map keeps its channels through them.
pub const BROADCAST: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Pow",
];

/// Ops that keep the channels of their first input while changing the spatial size.
const SPATIAL: &[&str] = &[
    "MaxPool",
    "AveragePool",
    "LpPool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GlobalLpPool",
    "Pad",
    "Resize",
    "Upsample",
];

impl Features {
    /// Propagates feature facts through the graph.
    pub fn new(view: &GraphView) -> Self {
        let mut map: HashMap<String, Feature> = HashMap::new();
        for i in view.feature_inputs() {
            let name = view.graph.input[i].name.clone().unwrap_or_default();
            let dims = view.input_dims(i);
            let channels = dims
                .as_ref()
                .and_then(|d| d.get(1).copied().flatten())
                .and_then(|c| usize::try_from(c).ok());
            let dtype = view.input_type(i).unwrap_or(1);
            let rank = dims.map_or(4, |d| d.len());
            let layout = Layout { axis: 1, rank };
            map.insert(
                name,
                Feature {
                    channels,
                    dtype,
                    layout,
                },
            );
        }
        for &n in &view.topo {
            let node = view.node(n);
            if matches!(op(node), "Shape" | "Size") {
                continue; // metadata of a map, not a map: shape arithmetic is not a feature
            }
            let first = node.input.iter().find_map(|i| map.get(i.as_str()).copied());
            let Some(first) = first else { continue };
            if op(node) == "Split" {
                for (o, f) in node.output.iter().zip(split_features(view, n, first)) {
                    map.insert(o.clone(), f);
                }
                continue;
            }
            let out = node_feature(view, &map, n, first);
            for o in &node.output {
                if !o.is_empty() {
                    map.insert(o.clone(), out);
                }
            }
        }
        Self { map }
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
}

/// The feature node `n` outputs, `first` being its first feature input.
fn node_feature(
    view: &GraphView,
    map: &HashMap<String, Feature>,
    n: usize,
    first: Feature,
) -> Feature {
    let node = view.node(n);
    let mut out = Feature {
        channels: node_channels(view, map, n, first),
        ..first
    };
    match op(node) {
        "Cast" => out.dtype = attr_i(node, "to").map_or(first.dtype, |t| t as i32),
        "Transpose" => match attr_ints(node, "perm").and_then(|p| first.layout.permuted(p)) {
            Some(layout) => out.layout = layout,
            None => out.channels = None,
        },
        "Reshape" if out.channels.is_some() => out.layout = Layout::NCHW,
        // A convolution writes its channels on axis 1, whatever layout its input had.
        "Conv" | "ConvInteger" | "ConvTranspose" => {
            out.layout = Layout {
                axis: 1,
                rank: first.layout.rank,
            }
        }
        _ => {}
    }
    out
}

/// Channels of the output of node `n`, whose first feature input is `first`.
fn node_channels(
    view: &GraphView,
    map: &HashMap<String, Feature>,
    n: usize,
    first: Feature,
) -> Option<usize> {
    let node = view.node(n);
    let on_channels = |a: i64| first.layout.is_channel_axis(a);
    match op(node) {
        "Conv" | "ConvInteger" => conv_weight(view, n)
            .and_then(|d| d.first().copied())
            .and_then(to_usize),
        "ConvTranspose" => conv_weight(view, n)
            .and_then(|d| {
                let g = attr_i(node, "group").unwrap_or(1);
                d.get(1).copied().and_then(|c| c.checked_mul(g))
            })
            .and_then(to_usize),
        "Concat" => {
            if on_channels(attr_i(node, "axis").unwrap_or(1)) {
                node.input
                    .iter()
                    .map(|i| map.get(i.as_str()).and_then(|f| f.channels))
                    .try_fold(0usize, |acc, c| acc.checked_add(c?))
            } else {
                first.channels
            }
        }
        "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceSum" | "ReduceL2" => {
            let keep = attr_i(node, "keepdims").unwrap_or(1) == 1;
            match int_operand(view, n, "axes", 1) {
                Some(a) if keep && !a.is_empty() => match a.iter().any(|&x| on_channels(x)) {
                    // Over the channels (a LayerNorm written out): one channel, broadcast back.
                    true => Some(1),
                    false => first.channels,
                },
                _ => None,
            }
        }
        "MatMul" | "Gemm" => matmul_channels(view, n, first),
        "Reshape" => reshape_channels(view, map, n),
        "Slice" => slice_channels(view, n, first),
        "Transpose" => first.channels,
        o if BROADCAST.contains(&o) => broadcast_channels(view, map, n, first),
        o if SAME_SHAPE.contains(&o) || SPATIAL.contains(&o) => first.channels,
        _ => None,
    }
}

/// Channels after an elementwise op with numpy broadcasting: every operand's size on the
/// channel axis (feature maps by their channels, constants by their dims) broadcast together;
/// unknown when an operand's is unknown or they disagree.
fn broadcast_channels(
    view: &GraphView,
    map: &HashMap<String, Feature>,
    n: usize,
    first: Feature,
) -> Option<usize> {
    let from_end = first.layout.rank.checked_sub(first.layout.axis)?;
    let mut channels = 1usize;
    for i in &view.node(n).input {
        let c = match map.get(i.as_str()) {
            Some(f) if f.layout == first.layout => f.channels?,
            Some(_) => return None,
            None => {
                let dims = view.constant_dims(i)?;
                match dims.len().checked_sub(from_end) {
                    Some(k) => to_usize(dims[k])?,
                    None => 1,
                }
            }
        };
        channels = match (channels, c) {
            (a, b) if a == b || b == 1 => a,
            (1, b) => b,
            _ => return None,
        };
    }
    Some(channels)
}

/// Channels after a matrix product of a map by a constant weight: on a channels-last map the
/// weight's output width (the Linear layers of a channels-last section, Gemm after a
/// flatten); on other axes the channels are kept.
fn matmul_channels(view: &GraphView, n: usize, first: Feature) -> Option<usize> {
    let node = view.node(n);
    let map_first = node
        .input
        .first()
        .and_then(|i| view.constant_dims(i))
        .is_none();
    let w = view.constant_dims(node.input.get(1)?)?;
    if !map_first || w.len() != 2 {
        return None;
    }
    if first.layout.axis + 1 != first.layout.rank {
        return first.channels;
    }
    let trans_b = op(node) == "Gemm" && attr_i(node, "transB").unwrap_or(0) == 1;
    let (k, out) = if trans_b { (w[1], w[0]) } else { (w[0], w[1]) };
    if first.channels.is_some_and(|c| Some(c) != to_usize(k)) {
        return None;
    }
    to_usize(out)
}

/// Integers given as attribute `name` (older opsets) or as constant input `slot` (newer ones).
fn int_operand(view: &GraphView, n: usize, name: &str, slot: usize) -> Option<Vec<i64>> {
    let node = view.node(n);
    attr_ints(node, name).map(<[i64]>::to_vec).or_else(|| {
        node.input
            .get(slot)
            .and_then(|a| view.constant(a))
            .and_then(int_values)
    })
}

/// The features of a Split's outputs: each its share of the channels, from the `split` sizes
/// or in equal parts, when it splits the channel axis.
fn split_features(view: &GraphView, n: usize, first: Feature) -> Vec<Feature> {
    let node = view.node(n);
    let axis = attr_i(node, "axis").unwrap_or(0);
    let sizes = int_operand(view, n, "split", 1);
    let k = node.output.len();
    (0..k)
        .map(|i| {
            let channels = if first.layout.is_channel_axis(axis) {
                match &sizes {
                    Some(sz) => sz.get(i).and_then(|&v| to_usize(v)),
                    None => first
                        .channels
                        .filter(|c| k > 0 && c % k == 0)
                        .map(|c| c / k),
                }
            } else {
                first.channels
            };
            Feature { channels, ..first }
        })
        .collect()
}

/// Channels after a Slice: exact for constant bounds on the channel axis; for bounds computed at
/// run time, half the channels when the input is read by exactly two channel Slices (how the
/// TorchScript exporter writes `torch.chunk(x, 2, dim=1)`).
fn slice_channels(view: &GraphView, n: usize, first: Feature) -> Option<usize> {
    let (channels, layout) = (first.channels, first.layout);
    let node = view.node(n);
    let ints = |i: usize| {
        node.input
            .get(i)
            .and_then(|s| view.constant(s))
            .and_then(int_values)
    };
    let axes = ints(3);
    let on_channels = |axes: &Option<Vec<i64>>| {
        axes.as_ref()
            .is_some_and(|a| a.iter().any(|&x| layout.is_channel_axis(x)))
    };
    if !on_channels(&axes) {
        // Without axes every axis is sliced; without a channel slice the channels are kept.
        return if axes.is_some() { channels } else { None };
    }
    let pos = axes
        .as_ref()?
        .iter()
        .position(|&a| layout.is_channel_axis(a))?;
    let c = channels? as i64;
    if let (Some(st), Some(en)) = (ints(1), ints(2)) {
        let clamp = |v: i64| if v < 0 { (v + c).max(0) } else { v.min(c) };
        let (a, b) = (clamp(*st.get(pos)?), clamp(*en.get(pos)?));
        return to_usize(b - a).filter(|_| ints(4).is_none_or(|s| s.get(pos) == Some(&1)));
    }
    let x = node.input.first()?;
    let siblings = view
        .consumers(x)
        .iter()
        .filter(|(c, _)| op(view.node(*c)) == "Slice")
        .filter(|(c, _)| {
            let other = view.node(*c);
            let a = other
                .input
                .get(3)
                .and_then(|s| view.constant(s))
                .and_then(int_values);
            on_channels(&a)
        })
        .count();
    (siblings == 2 && c % 2 == 0).then_some((c / 2) as usize)
}

/// Channels after a Reshape: dimension 1 of a constant 4-d target shape, else the channels
/// before a channel shuffle (Reshape → Transpose → Reshape) when this Reshape closes one.
fn reshape_channels(view: &GraphView, map: &HashMap<String, Feature>, n: usize) -> Option<usize> {
    let node = view.node(n);
    let shape = node
        .input
        .get(1)
        .and_then(|s| view.constant(s))
        .and_then(int_values);
    if let Some(c) = shape
        .filter(|s| s.len() == 4)
        .and_then(|s| to_usize(s[1]))
        .filter(|&c| c > 0)
    {
        return Some(c);
    }
    let t = view.producer_node(node.input.first()?)?;
    let r = view.producer_node(view.node(t).input.first()?)?;
    if op(view.node(t)) != "Transpose" || op(view.node(r)) != "Reshape" {
        return None;
    }
    map.get(view.node(r).input.first()?.as_str())?.channels
}

fn to_usize(v: i64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// Dims of a Conv node's weight, wherever the weight is produced.
pub fn conv_weight(view: &GraphView, n: usize) -> Option<Vec<i64>> {
    let node = view.node(n);
    let w = node.input.get(1)?;
    view.constant_dims(w)
}

/// Whether a Conv node is spatial (a kernel larger than 1×1).
pub fn is_spatial_conv(view: &GraphView, n: usize) -> bool {
    let node = view.node(n);
    if op(node) != "Conv" {
        return false;
    }
    if let Some(k) = attr_ints(node, "kernel_shape") {
        return k.iter().any(|&k| k > 1);
    }
    conv_weight(view, n).is_some_and(|d| d.iter().skip(2).any(|&k| k > 1))
}

/// Whether `name` is produced by a node (as opposed to a graph input or initializer).
pub fn from_node(view: &GraphView, name: &str) -> bool {
    matches!(view.producer(name), Some(Source::Node { .. }))
}

#[cfg(test)]
mod tests;

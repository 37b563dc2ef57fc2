//! The one table of op rules: for each op the CNNs use, the dims of its outputs from its inputs'
//! dims, and the values of the small integer tensors that shape arithmetic computes (Shape →
//! Gather → Concat → Reshape, as the TorchScript exporter writes a channel shuffle or a chunk).
//! Feature channels, the shapes the report counts compute from and the dims of weights that a
//! constant subgraph computes all come from these rules, applied in topological order by
//! [`super::facts`].

mod arith;
mod shape;
mod values;

use crate::onnx::op::{Op, Shape as OpShape};
use crate::onnx::tensor::{int_values, ElemType};
use crate::onnx::{attr_i, attr_ints, attr_t, NodeProto, TensorProto};

/// A dimension: its size when known (None: symbolic, or not derivable).
pub type Dim = Option<usize>;

/// The most values of an integer tensor that are tracked (shape vectors, axes, split sizes).
pub const MAX_VALUES: usize = 1024;

/// What is known about one tensor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fact {
    /// Its dims; None when not even the rank is known.
    pub dims: Option<Vec<Dim>>,
    /// The values of a small integer tensor, flattened, each known or not; None when not tracked.
    pub ints: Option<Vec<Option<i64>>>,
    /// The values of a small stored float tensor (Resize scales); None when not tracked.
    pub floats: Option<Vec<f64>>,
}

impl Fact {
    /// A tensor of known dims, values untracked.
    pub fn of_dims(dims: Vec<Dim>) -> Fact {
        Fact {
            dims: Some(dims),
            ..Fact::default()
        }
    }

    /// A stored tensor (an initializer or a Constant's value): its dims, and its values when it
    /// is a small integer or float tensor.
    pub fn of_tensor(t: &TensorProto) -> Fact {
        let dims: Option<Vec<Dim>> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).ok().map(Some))
            .collect();
        let small = dims
            .as_ref()
            .and_then(|d| values::known_product(d))
            .is_some_and(|n| n <= MAX_VALUES);
        let ints = small
            .then(|| int_values(t))
            .flatten()
            .map(|v| v.into_iter().map(Some).collect());
        let floats = small.then(|| float_values(t)).flatten();
        Fact { dims, ints, floats }
    }

    /// The dims, all known.
    pub fn known_dims(&self) -> Option<Vec<usize>> {
        self.dims.as_ref()?.iter().copied().collect()
    }

    /// The integer values, all known.
    pub fn known_ints(&self) -> Option<Vec<i64>> {
        self.ints.as_ref()?.iter().copied().collect()
    }

    /// A 1-D integer tensor of these values.
    fn of_ints(values: Vec<Option<i64>>) -> Fact {
        Fact {
            dims: Some(vec![Some(values.len())]),
            ints: Some(values),
            floats: None,
        }
    }
}

/// The float values of a FLOAT or DOUBLE tensor stored inline.
fn float_values(t: &TensorProto) -> Option<Vec<f64>> {
    match ElemType::of_tensor(t) {
        ElemType::FLOAT => match &t.raw_data {
            Some(raw) => Some(
                raw.chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            None => Some(t.float_data.iter().map(|&v| f64::from(v)).collect()),
        },
        ElemType::DOUBLE => match &t.raw_data {
            Some(raw) => Some(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            None => Some(t.double_data.clone()),
        },
        _ => None,
    }
}

/// One node and what is known of its inputs.
pub struct At<'a> {
    pub node: &'a NodeProto,
    /// Per input, what is known (None: an omitted optional input, or nothing known).
    pub ins: &'a [Option<&'a Fact>],
}

/// The outputs of one node, one per output as far as they can be derived (fewer than the node's
/// outputs, or None, when the rest cannot).
pub type Outs = Option<Vec<Fact>>;

impl<'a> At<'a> {
    /// What is known of input `i`.
    fn input(&self, i: usize) -> Option<&'a Fact> {
        self.ins.get(i).copied().flatten()
    }

    /// The dims of input `i`.
    fn dims(&self, i: usize) -> Option<&'a [Dim]> {
        self.input(i)?.dims.as_deref()
    }

    /// The integer values of input `i`, all known.
    fn ints(&self, i: usize) -> Option<Vec<i64>> {
        self.input(i)?.known_ints()
    }

    /// An integer list from the attribute `name` (older opsets) or else from input `i`.
    fn ints_or_input(&self, name: &str, i: usize) -> Option<Vec<i64>> {
        attr_ints(self.node, name)
            .map(<[i64]>::to_vec)
            .or_else(|| self.ints(i))
    }

    /// The integer attribute `name`, or `default`.
    fn attr(&self, name: &str, default: i64) -> i64 {
        attr_i(self.node, name).unwrap_or(default)
    }

    /// Shape `dims` for every output.
    fn each(&self, dims: &[Dim]) -> Outs {
        Some(
            self.node
                .output
                .iter()
                .map(|_| Fact::of_dims(dims.to_vec()))
                .collect(),
        )
    }
}

/// The rules, by op: what a node's outputs are, from what is known of its inputs.
pub fn apply(node: &NodeProto, ins: &[Option<&Fact>]) -> Outs {
    let at = At { node, ins };
    let kind = Op::of(node);
    match kind {
        Op::Constant => constant(node),
        Op::Identity => Some(vec![at.input(0)?.clone()]),
        Op::Cast => arith::cast(&at),
        Op::Shape => arith::shape_of(&at),
        Op::Size => arith::size_of(&at),
        Op::ConstantOfShape => arith::constant_of_shape(&at),
        Op::Gather => arith::gather(&at),
        Op::Range => arith::range(&at),
        Op::Concat => arith::concat(&at),
        Op::Slice => arith::slice(&at),
        Op::Reshape | Op::Flatten | Op::Squeeze | Op::Unsqueeze => arith::rearranged(&at),
        Op::RandomNormal | Op::RandomUniform => shape::random(&at),
        Op::OneHot => shape::one_hot(&at),
        Op::Conv | Op::ConvInteger => shape::conv(&at),
        Op::ConvTranspose => shape::conv_transpose(&at),
        Op::Split => shape::split(&at),
        Op::Transpose => shape::transpose(&at),
        Op::Expand => shape::expand(&at),
        Op::Tile => shape::tile(&at),
        Op::MatMul | Op::MatMulInteger | Op::Gemm => shape::matrix_product(&at),
        Op::Einsum => shape::einsum(&at),
        Op::Pad => shape::pad(&at),
        Op::Resize | Op::Upsample => shape::resize(&at),
        Op::DepthToSpace | Op::SpaceToDepth => shape::depth_space(&at),
        _ => match kind.shape() {
            OpShape::Broadcast => arith::elementwise(&at),
            OpShape::Same if kind.folds_ints() => arith::unary(&at),
            OpShape::Same => at.each(at.dims(0)?),
            OpShape::Window => shape::pool(&at),
            OpShape::Global => shape::global_pool(&at),
            OpShape::Reduce => shape::reduce(&at),
            OpShape::Own | OpShape::Unknown => None,
        },
    }
}

/// A Constant node's value: a tensor, or one of the value_* attributes of opset 12 on.
fn constant(node: &NodeProto) -> Outs {
    if let Some(t) = attr_t(node, "value") {
        return Some(vec![Fact::of_tensor(t)]);
    }
    if let Some(v) = attr_ints(node, "value_ints").filter(|v| !v.is_empty()) {
        return Some(vec![Fact::of_ints(v.iter().copied().map(Some).collect())]);
    }
    let a = node
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("value_int"))?;
    Some(vec![Fact {
        dims: Some(vec![]),
        ints: Some(vec![a.i]),
        floats: None,
    }])
}

/// Axes `a` (negative: from the end) of a rank-`rank` tensor, counted from the front.
pub fn axes_of(a: &[i64], rank: usize) -> Option<Vec<usize>> {
    a.iter().map(|&v| axis_of(v, rank)).collect()
}

/// Axis `a` (negative: from the end) of a rank-`rank` tensor, counted from the front.
pub fn axis_of(a: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    let a = if a < 0 { a.checked_add(r)? } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

#[cfg(test)]
mod tests;

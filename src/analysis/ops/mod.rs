//! The one table of op rules: for each op the CNNs use, the dims of its outputs from its inputs'
//! dims, and the values of the small integer tensors that shape arithmetic computes (Shape →
//! Gather → Concat → Reshape, as the TorchScript exporter writes a channel shuffle or a chunk).
//! Feature channels, the shapes the report counts compute from and the dims of weights that a
//! constant subgraph computes all come from these rules, applied in topological order by
//! [`super::facts`].

mod arith;
mod shape;

use crate::onnx::tensor::int_values;
use crate::onnx::{attr_i, attr_ints, attr_t, op, NodeProto, TensorProto};

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
            .and_then(|d| shape::known_product(d))
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
    match t.data_type? {
        1 => match &t.raw_data {
            Some(raw) => Some(
                raw.chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            None => Some(t.float_data.iter().map(|&v| f64::from(v)).collect()),
        },
        11 => match &t.raw_data {
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

/// Ops whose first output has the shape of their first input (activations, normalisations,
/// dropout, casts, quantisation, unary math).
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
    "Log",
    "Abs",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "ThresholdedRelu",
    "Relu6",
    "Swish",
    "QuantizeLinear",
    "DequantizeLinear",
    "Sign",
    "Not",
    "IsNaN",
    "IsInf",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Softsign",
    "Shrink",
    "Hardmax",
    "MeanVarianceNormalization",
    "GroupNormalization",
    "CumSum",
    "Trilu",
    "BitwiseNot",
    "RandomNormalLike",
    "RandomUniformLike",
    "EyeLike",
    "Bernoulli",
];

/// The unary ops among [`SAME_SHAPE`] whose integer values are folded (a shape computed through
/// them stays known).
pub const INTEGER_UNARY: &[&str] = &["Abs", "Neg", "Relu", "Sign", "Floor", "Ceil", "Round"];

/// Elementwise ops with numpy broadcasting.
pub const BROADCAST: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Sum",
    "Max",
    "Min",
    "Mean",
    "Pow",
    "Where",
    "Equal",
    "Less",
    "Greater",
    "And",
    "Or",
    "Mod",
    "GreaterOrEqual",
    "LessOrEqual",
    "Xor",
    "BitShift",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
];

/// The ops that slide a window over the spatial axes.
pub const POOLS: &[&str] = &["MaxPool", "AveragePool", "LpPool"];

/// The ops that pool each channel's whole map to one value.
pub const GLOBAL_POOLS: &[&str] = &["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"];

/// The reductions, over given axes or all.
pub const REDUCTIONS: &[&str] = &[
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceSum",
    "ReduceL2",
    "ReduceL1",
    "ReduceProd",
];

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
    match op(node) {
        "Constant" => constant(node),
        "Identity" => Some(vec![at.input(0)?.clone()]),
        "Cast" => arith::cast(&at),
        "Shape" => arith::shape_of(&at),
        "Size" => arith::size_of(&at),
        "ConstantOfShape" => arith::constant_of_shape(&at),
        "Gather" => arith::gather(&at),
        "Range" => arith::range(&at),
        o if BROADCAST.contains(&o) => arith::elementwise(&at),
        o if INTEGER_UNARY.contains(&o) => arith::unary(&at),
        o if SAME_SHAPE.contains(&o) => at.each(at.dims(0)?),
        "RandomNormal" | "RandomUniform" => shape::random(&at),
        "OneHot" => shape::one_hot(&at),
        "Conv" | "ConvInteger" => shape::conv(&at),
        "ConvTranspose" => shape::conv_transpose(&at),
        o if POOLS.contains(&o) => shape::pool(&at),
        o if GLOBAL_POOLS.contains(&o) => shape::global_pool(&at),
        o if REDUCTIONS.contains(&o) => shape::reduce(&at),
        "Concat" => arith::concat(&at),
        "Split" => shape::split(&at),
        "Slice" => arith::slice(&at),
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => arith::rearranged(&at),
        "Transpose" => shape::transpose(&at),
        "Expand" => shape::expand(&at),
        "Tile" => shape::tile(&at),
        "MatMul" | "MatMulInteger" | "Gemm" => shape::matrix_product(&at),
        "Einsum" => shape::einsum(&at),
        "Pad" => shape::pad(&at),
        "Resize" | "Upsample" => shape::resize(&at),
        "DepthToSpace" | "SpaceToDepth" => shape::depth_space(&at),
        _ => None,
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

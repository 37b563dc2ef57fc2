//! The one table of ONNX ops: what each op se-inject reads is, in one row. A node's `op_type` is
//! parsed once into an [`Op`] (an op not in the table is [`Op::Other`]), and every question about
//! an op (is it an activation, does it stride, does it mix channels, what does it cost, which
//! shape rule gives its outputs) is answered from its row. Nothing outside this table and the
//! builders that emit nodes names an op by its string.
//!
//! The variant names are the ONNX op names, so a row states its name once. Ops are matched by
//! name alone, whatever their domain, as exporters put standard ops in custom domains too.

use std::collections::HashMap;
use std::sync::LazyLock;

/// What kind of computation an op is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A pointwise nonlinearity that closes a convolution (Relu, Sigmoid, HardSwish, ...).
    Activation,
    /// A per-channel normalisation (BatchNormalization, LayerNormalization, LRN, ...).
    Normalization,
    /// A product that mixes channels and is counted in multiply-accumulates (Conv, Gemm, ...).
    Linear,
    /// A window slid over the spatial axes (MaxPool, AveragePool, LpPool).
    Pool,
    /// Each channel's whole map pooled to one value (GlobalAveragePool, ...).
    GlobalPool,
    /// A reduction over given axes (ReduceMean, ...).
    Reduction,
    /// Arithmetic between inputs, numpy broadcasting (Add, Mul, Where, ...).
    Elementwise,
    /// Unary math, one value in, one out (Sqrt, Exp, Softmax, ...).
    Math,
    /// Moves, selects or re-labels elements without computing on them (Reshape, Concat, ...).
    Movement,
    /// Computes a shape, a constant or a generated tensor rather than a feature map.
    Source,
    /// Runs subgraphs (If, Loop, Scan).
    Control,
    /// Not in the table.
    Other,
}

/// Which shape rule gives an op's outputs (the rules are in `analysis::ops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The first output has the first input's shape.
    Same,
    /// Numpy broadcasting of the inputs.
    Broadcast,
    /// A window over the spatial axes.
    Window,
    /// Spatial axes pooled to 1.
    Global,
    /// Given axes reduced.
    Reduce,
    /// A rule of the op's own.
    Own,
    /// Not derived.
    Unknown,
}

/// How an op's compute is counted (see `report::compute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Nothing: it moves elements or computes shapes.
    Free,
    /// Multiply-accumulates (and a bias add per output element when it has one).
    Macs,
    /// Per output element, times (inputs − 1) for ops of several inputs; each weighing `w` in the
    /// profiler convention.
    Output(u64),
    /// Per output element whatever its inputs (the others are parameters, not operands).
    OutputOnce(u64),
    /// Per element of the first input: reductions and global pools.
    Input(u64),
    /// Per output element times the window's size: windowed pools.
    Window(u64),
}

/// An op's row beyond its class, shape rule and cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// Its `strides` attribute changes the resolution (convolutions, windowed pools).
    pub strides: bool,
    /// A gate: the sigmoid of an attention module, or of an activation written as `x · gate(x)`.
    pub gate: bool,
    /// A unary op whose integer values shape arithmetic folds (a shape computed through it stays
    /// known).
    pub folds: bool,
    /// It raises the resolution (interpolation, transposed convolution, depth to space): a path
    /// through it brings a coarser map back up, as the top-down paths of FPN, U-Net decoders and
    /// YOLO necks do.
    pub upsamples: bool,
}

const NONE: Flags = Flags {
    strides: false,
    gate: false,
    folds: false,
    upsamples: false,
};
const UPSAMPLES: Flags = Flags {
    upsamples: true,
    ..NONE
};
const STRIDES_UP: Flags = Flags {
    strides: true,
    upsamples: true,
    ..NONE
};
const STRIDES: Flags = Flags {
    strides: true,
    ..NONE
};
const GATE: Flags = Flags { gate: true, ..NONE };
const FOLDS: Flags = Flags {
    folds: true,
    ..NONE
};

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub op: Op,
    pub name: &'static str,
    pub class: Class,
    pub shape: Shape,
    pub cost: Cost,
    pub flags: Flags,
}

macro_rules! ops {
    ($($op:ident: $class:ident, $shape:ident, $cost:expr, $flags:expr;)*) => {
        /// An ONNX op, parsed from a node's `op_type` ([`Op::parse`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op {
            $($op,)*
            /// An op not in the table.
            Other,
        }

        /// The table, one row per op, in the order of [`Op`].
        pub static TABLE: &[Row] = &[
            $(Row {
                op: Op::$op,
                name: stringify!($op),
                class: Class::$class,
                shape: Shape::$shape,
                cost: $cost,
                flags: $flags,
            },)*
        ];
    };
}

use Cost::{Free, Input, Macs, Output, OutputOnce, Window};

// The profiler weights: an add or comparison 1, a division 4, an exponential 32, composed from
// these unit costs where onnx-tool does not weigh an op (see `report::compute`).
ops! {
    // Activations.
    Relu: Activation, Same, Output(1), FOLDS;
    Clip: Activation, Same, OutputOnce(2), NONE;
    LeakyRelu: Activation, Same, Output(2), NONE;
    PRelu: Activation, Same, OutputOnce(2), NONE;
    Relu6: Activation, Same, Output(2), NONE;
    ThresholdedRelu: Activation, Same, Output(1), NONE;
    Elu: Activation, Same, Output(35), NONE;
    Selu: Activation, Same, Output(36), NONE;
    Celu: Activation, Same, Output(36), NONE;
    Sigmoid: Activation, Same, Output(32), GATE;
    HardSigmoid: Activation, Same, Output(4), GATE;
    HardSwish: Activation, Same, Output(5), NONE;
    Swish: Activation, Same, Output(33), NONE;
    Tanh: Activation, Same, Output(76), NONE;
    Softplus: Activation, Same, Output(76), NONE;
    Softsign: Math, Same, Free, NONE;
    Shrink: Math, Same, Free, NONE;
    Gelu: Activation, Same, Output(34), NONE;
    Mish: Activation, Same, Output(115), NONE;
    // Normalisations.
    BatchNormalization: Normalization, Same, OutputOnce(31), NONE;
    InstanceNormalization: Normalization, Same, OutputOnce(14), NONE;
    LayerNormalization: Normalization, Same, OutputOnce(7), NONE;
    LRN: Normalization, Same, Output(1), NONE;
    MeanVarianceNormalization: Normalization, Same, Free, NONE;
    GroupNormalization: Normalization, Same, Free, NONE;
    // Channel-mixing products.
    Conv: Linear, Own, Macs, STRIDES;
    ConvInteger: Linear, Own, Macs, STRIDES;
    ConvTranspose: Linear, Own, Macs, STRIDES_UP;
    MatMul: Linear, Own, Macs, NONE;
    MatMulInteger: Linear, Own, Macs, NONE;
    Gemm: Linear, Own, Macs, NONE;
    Einsum: Linear, Own, Macs, NONE;
    QLinearConv: Linear, Unknown, Macs, STRIDES;
    DeformConv: Linear, Unknown, Macs, STRIDES;
    // Pools and reductions.
    MaxPool: Pool, Window, Window(1), STRIDES;
    AveragePool: Pool, Window, Window(1), STRIDES;
    LpPool: Pool, Window, Window(1), STRIDES;
    MaxUnpool: Pool, Unknown, Free, STRIDES_UP;
    GlobalAveragePool: GlobalPool, Global, Input(1), NONE;
    GlobalMaxPool: GlobalPool, Global, Input(1), NONE;
    GlobalLpPool: GlobalPool, Global, Input(1), NONE;
    ReduceMean: Reduction, Reduce, Input(1), NONE;
    ReduceMax: Reduction, Reduce, Input(1), NONE;
    ReduceMin: Reduction, Reduce, Input(1), NONE;
    ReduceSum: Reduction, Reduce, Input(1), NONE;
    ReduceProd: Reduction, Reduce, Input(1), NONE;
    ReduceL1: Reduction, Reduce, Input(2), NONE;
    ReduceL2: Reduction, Reduce, Input(25), NONE;
    // Element-wise arithmetic.
    Add: Elementwise, Broadcast, Output(1), NONE;
    Sub: Elementwise, Broadcast, Output(1), NONE;
    Mul: Elementwise, Broadcast, Output(1), NONE;
    Div: Elementwise, Broadcast, Output(4), NONE;
    Sum: Elementwise, Broadcast, Output(1), NONE;
    Mean: Elementwise, Broadcast, Output(1), NONE;
    Max: Elementwise, Broadcast, Output(1), NONE;
    Min: Elementwise, Broadcast, Output(1), NONE;
    Pow: Elementwise, Broadcast, Output(32), NONE;
    Mod: Elementwise, Broadcast, Free, NONE;
    Where: Elementwise, Broadcast, Free, NONE;
    Equal: Elementwise, Broadcast, Free, NONE;
    Less: Elementwise, Broadcast, Free, NONE;
    Greater: Elementwise, Broadcast, Free, NONE;
    And: Elementwise, Broadcast, Free, NONE;
    Or: Elementwise, Broadcast, Free, NONE;
    Xor: Elementwise, Broadcast, Free, NONE;
    GreaterOrEqual: Elementwise, Broadcast, Free, NONE;
    LessOrEqual: Elementwise, Broadcast, Free, NONE;
    BitShift: Elementwise, Broadcast, Free, NONE;
    BitwiseAnd: Elementwise, Broadcast, Free, NONE;
    BitwiseOr: Elementwise, Broadcast, Free, NONE;
    BitwiseXor: Elementwise, Broadcast, Free, NONE;
    // Unary math.
    Erf: Math, Same, Output(0), NONE;
    Exp: Math, Same, Output(32), NONE;
    Log: Math, Same, Output(43), NONE;
    Sqrt: Math, Same, Output(24), NONE;
    Reciprocal: Math, Same, Output(4), NONE;
    Neg: Math, Same, Output(1), FOLDS;
    Abs: Math, Same, Output(1), FOLDS;
    Sign: Math, Same, Free, FOLDS;
    Floor: Math, Same, Free, FOLDS;
    Ceil: Math, Same, Free, FOLDS;
    Round: Math, Same, Free, FOLDS;
    Not: Math, Same, Free, NONE;
    BitwiseNot: Math, Same, Free, NONE;
    IsNaN: Math, Same, Free, NONE;
    IsInf: Math, Same, Free, NONE;
    Sin: Math, Same, Free, NONE;
    Cos: Math, Same, Free, NONE;
    Tan: Math, Same, Free, NONE;
    Asin: Math, Same, Free, NONE;
    Acos: Math, Same, Free, NONE;
    Atan: Math, Same, Free, NONE;
    Sinh: Math, Same, Free, NONE;
    Cosh: Math, Same, Free, NONE;
    Asinh: Math, Same, Free, NONE;
    Acosh: Math, Same, Free, NONE;
    Atanh: Math, Same, Free, NONE;
    Hardmax: Math, Same, Free, NONE;
    CumSum: Math, Same, Free, NONE;
    Softmax: Math, Same, Output(36), NONE;
    LogSoftmax: Math, Same, Output(80), NONE;
    QuantizeLinear: Math, Same, Free, NONE;
    DequantizeLinear: Math, Same, Free, NONE;
    // Movement.
    Identity: Movement, Own, Free, NONE;
    Dropout: Movement, Same, Free, NONE;
    Cast: Movement, Own, Free, NONE;
    Concat: Movement, Own, Free, NONE;
    Split: Movement, Own, Free, NONE;
    Slice: Movement, Own, Free, NONE;
    Gather: Movement, Own, Free, NONE;
    Reshape: Movement, Own, Free, NONE;
    Flatten: Movement, Own, Free, NONE;
    Squeeze: Movement, Own, Free, NONE;
    Unsqueeze: Movement, Own, Free, NONE;
    Transpose: Movement, Own, Free, NONE;
    Expand: Movement, Own, Free, NONE;
    Tile: Movement, Own, Free, NONE;
    Pad: Movement, Own, Free, NONE;
    DepthToSpace: Movement, Own, Free, UPSAMPLES;
    SpaceToDepth: Movement, Own, Free, NONE;
    Trilu: Movement, Same, Free, NONE;
    Resize: Movement, Own, OutputOnce(1), UPSAMPLES;
    Upsample: Movement, Own, OutputOnce(1), UPSAMPLES;
    // Shapes, constants and generated tensors.
    Constant: Source, Own, Free, NONE;
    Shape: Source, Own, Free, NONE;
    Size: Source, Own, Free, NONE;
    ConstantOfShape: Source, Own, Free, NONE;
    Range: Source, Own, Free, NONE;
    RandomNormal: Source, Own, Free, NONE;
    RandomUniform: Source, Own, Free, NONE;
    RandomNormalLike: Source, Same, Free, NONE;
    RandomUniformLike: Source, Same, Free, NONE;
    EyeLike: Source, Same, Free, NONE;
    Bernoulli: Source, Same, Free, NONE;
    OneHot: Source, Own, Free, NONE;
    // Subgraphs.
    If: Control, Unknown, Free, NONE;
    Loop: Control, Unknown, Free, NONE;
    Scan: Control, Unknown, Free, NONE;
}

/// The row of [`Op::Other`].
static OTHER: Row = Row {
    op: Op::Other,
    name: "",
    class: Class::Other,
    shape: Shape::Unknown,
    cost: Free,
    flags: NONE,
};

static BY_NAME: LazyLock<HashMap<&'static str, Op>> =
    LazyLock::new(|| TABLE.iter().map(|r| (r.name, r.op)).collect());

impl Op {
    /// The op an `op_type` names; [`Op::Other`] for one not in the table.
    pub fn parse(op_type: &str) -> Op {
        BY_NAME.get(op_type).copied().unwrap_or(Op::Other)
    }

    /// The op of a node.
    pub fn of(node: &super::NodeProto) -> Op {
        Op::parse(node.op_type.as_deref().unwrap_or(""))
    }

    /// Its row.
    pub fn row(self) -> &'static Row {
        TABLE.get(self as usize).unwrap_or(&OTHER)
    }

    /// Its ONNX name ("" for [`Op::Other`]).
    pub fn name(self) -> &'static str {
        self.row().name
    }

    pub fn class(self) -> Class {
        self.row().class
    }

    pub fn shape(self) -> Shape {
        self.row().shape
    }

    pub fn cost(self) -> Cost {
        self.row().cost
    }

    /// Whether it closes a convolution in a chain.
    pub fn is_activation(self) -> bool {
        self.class() == Class::Activation
    }

    /// Whether it can gate a map: the sigmoid of SE, or of a gated activation `x · gate(x)`.
    pub fn is_gate(self) -> bool {
        self.row().flags.gate
    }

    /// Whether it mixes channels (every output channel reads many input channels).
    pub fn mixes_channels(self) -> bool {
        self.class() == Class::Linear
    }

    /// Whether its `strides` attribute changes the resolution of the map.
    pub fn strides(self) -> bool {
        self.row().flags.strides
    }

    /// Whether it is a convolution: a window of weights over the spatial axes, its weight's dims
    /// and its `group` checked against its input.
    pub fn is_convolution(self) -> bool {
        self.mixes_channels() && self.strides()
    }

    /// Whether it raises the resolution (Resize, Upsample, ConvTranspose, DepthToSpace, MaxUnpool).
    pub fn upsamples(self) -> bool {
        self.row().flags.upsamples
    }

    /// Whether shape arithmetic folds its integer values (a unary op on a shape).
    pub fn folds_ints(self) -> bool {
        self.row().flags.folds
    }

    /// Whether it squeezes a map to one value per channel: a global pool, or a mean or max
    /// reduction (the squeeze of an SE block already there).
    pub fn squeezes(self) -> bool {
        self.class() == Class::GlobalPool || matches!(self, Op::ReduceMean | Op::ReduceMax)
    }

    /// Whether it merges the maps of several paths by adding them.
    pub fn adds(self) -> bool {
        matches!(self, Op::Add | Op::Sum)
    }

    /// Whether it merges several paths (adding or concatenating them).
    pub fn merges(self) -> bool {
        self.adds() || self == Op::Concat
    }

    /// Whether it cuts a map into parts along an axis.
    pub fn splits(self) -> bool {
        matches!(self, Op::Split | Op::Slice)
    }

    /// Whether it computes a tensor's shape or size rather than reading its values.
    pub fn reads_shape(self) -> bool {
        matches!(self, Op::Shape | Op::Size)
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_is_its_ops_and_names_parse_back() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.op as usize, i, "{} out of order", row.name);
            assert_eq!(Op::parse(row.name), row.op);
            assert_eq!(row.op.name(), row.name);
        }
        assert_eq!(Op::parse("NoSuchOp"), Op::Other);
        assert_eq!(Op::parse(""), Op::Other);
        assert_eq!(Op::Other.class(), Class::Other);
        assert_eq!(Op::parse("Conv").to_string(), "Conv");
    }

    /// The classes agree with the questions asked of them: every activation has a per-element
    /// cost, every op that mixes channels counts MACs, every strided op is a convolution or a
    /// windowed pool.
    #[test]
    fn classes_costs_and_flags_agree() {
        for r in TABLE {
            if r.class == Class::Activation {
                assert!(matches!(r.cost, Output(_) | OutputOnce(_)), "{}", r.name);
                assert_eq!(r.shape, Shape::Same, "{}", r.name);
            }
            assert_eq!(r.class == Class::Linear, r.cost == Macs, "{}", r.name);
            if r.flags.strides {
                assert!(matches!(r.class, Class::Linear | Class::Pool), "{}", r.name);
            }
            if r.flags.gate {
                assert_eq!(r.class, Class::Activation, "{}", r.name);
            }
            if r.flags.folds {
                assert_eq!(r.shape, Shape::Same, "{}", r.name);
            }
        }
        let strided: Vec<&str> = TABLE
            .iter()
            .filter(|r| r.flags.strides)
            .map(|r| r.name)
            .collect();
        assert_eq!(
            strided,
            [
                "Conv",
                "ConvInteger",
                "ConvTranspose",
                "QLinearConv",
                "DeformConv",
                "MaxPool",
                "AveragePool",
                "LpPool",
                "MaxUnpool"
            ]
        );
    }
}

#[cfg(test)]
mod names_stay_here {
    use super::TABLE;
    use std::path::Path;

    /// Files that emit nodes and so spell the ops they emit, besides the table itself.
    const BUILDERS: [&str; 3] = ["onnx/op.rs", "rewrite/se.rs", "testutil/"];

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// No op name is written as a string outside the table and the builders: everything else
    /// asks the table. Test code (files of tests, and what follows `#[cfg(test)]`) builds
    /// graphs and may spell ops.
    #[test]
    fn no_op_name_is_spelt_outside_the_table() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut found = Vec::new();
        for f in files {
            let rel = f
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if BUILDERS.iter().any(|b| rel.starts_with(b)) || rel.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for row in TABLE {
                if code.contains(&format!("\"{}\"", row.name)) {
                    found.push(format!("{rel}: \"{}\"", row.name));
                }
            }
        }
        assert!(found.is_empty(), "op names outside the table: {found:#?}");
    }
}

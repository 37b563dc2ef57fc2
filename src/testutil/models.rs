//! Whole models and their parts: value infos, tensors with data, nodes, the residual model
//! tract can run and the few-node float models the validator runs.

use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::tensor_shape_proto::{dimension, Dimension};
use crate::onnx::proto::{type_proto, OperatorSetIdProto, TensorShapeProto, ValueInfoProto};
use crate::onnx::tensor::ElemType;
use crate::onnx::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

/// A tensor's value info with these element type and dims.
pub fn value_info(name: &str, elem: ElemType, dims: &[i64]) -> ValueInfoProto {
    crate::onnx::tensor_value_info(name, elem, dims)
}

/// One dimension of a declared shape.
#[derive(Debug, Clone, Copy)]
pub enum Dim<'a> {
    /// A number (`dim_value`).
    Fixed(i64),
    /// A symbol such as a batch size `N` (`dim_param`).
    Named(&'a str),
    /// Neither set.
    Unknown,
}

impl Dim<'_> {
    fn proto(self) -> Dimension {
        let value = match self {
            Dim::Fixed(v) => Some(dimension::Value::DimValue(v)),
            Dim::Named(s) => Some(dimension::Value::DimParam(s.into())),
            Dim::Unknown => None,
        };
        Dimension {
            value,
            ..Default::default()
        }
    }
}

/// A tensor's value info whose shape is absent (`None`) or these dims.
pub fn value_info_shape(name: &str, elem: ElemType, dims: Option<&[Dim]>) -> ValueInfoProto {
    let mut info = value_info(name, elem, &[]);
    if let Some(type_proto::Value::TensorType(t)) =
        info.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = dims.map(|dims| TensorShapeProto {
            dim: dims.iter().map(|&d| d.proto()).collect(),
        });
    }
    info
}

/// A FLOAT scalar (no dims) holding `v` in `float_data`.
pub fn float_scalar(name: &str, v: f32) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(DataType::Float as i32),
        float_data: vec![v],
        ..Default::default()
    }
}

/// A weight of element type `elem` holding small pseudo-random values (from `seed`) around 0.
pub fn tensor(name: &str, dims: &[i64], elem: ElemType, seed: u32) -> TensorProto {
    let n: i64 = dims.iter().product();
    let vals =
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32 - 0.5);
    let raw: Vec<u8> = match elem {
        ElemType::DOUBLE => vals.flat_map(|v| f64::from(v).to_le_bytes()).collect(),
        // bfloat16: the upper half of the f32 bits.
        ElemType::BFLOAT16 => vals
            .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
        _ => vals.flat_map(|v| v.to_le_bytes()).collect(),
    };
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(elem.code()),
        raw_data: Some(raw.into()),
        ..Default::default()
    }
}

/// A node `name` of type `op` reading `inputs`, writing `output`.
pub fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn ints_attr(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: ints.to_vec(),
        r#type: Some(7),
        ..Default::default()
    }
}

/// A model around `graph` at this IR version, importing the default domain at `opset`.
pub fn model(graph: GraphProto, ir_version: i64, opset: i64) -> ModelProto {
    ModelProto {
        ir_version: Some(ir_version),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("se-inject-test".into()),
        graph: Some(graph),
        ..Default::default()
    }
}

/// One residual block with weights of element type `elem`:
/// `x [1,4,8,8] → conv → relu → conv → Add(·, x) → relu → y`.
pub fn residual_graph(elem: ElemType) -> GraphProto {
    let conv = |name: &str, x: &str, w: &str, b: &str, out: &str| {
        let mut n = node(name, "Conv", &[x, w, b], out);
        n.attribute.push(ints_attr("pads", &[1, 1, 1, 1]));
        n
    };
    GraphProto {
        name: Some("residual".into()),
        node: vec![
            conv("/b/conv1/Conv", "x", "w1", "b1", "c1"),
            node("/b/relu1/Relu", "Relu", &["c1"], "r1"),
            conv("/b/conv2/Conv", "r1", "w2", "b2", "c2"),
            node("/b/Add", "Add", &["c2", "x"], "s"),
            node("/b/relu2/Relu", "Relu", &["s"], "y"),
        ],
        initializer: vec![
            tensor("w1", &[4, 4, 3, 3], elem, 1),
            tensor("b1", &[4], elem, 2),
            tensor("w2", &[4, 4, 3, 3], elem, 3),
            tensor("b2", &[4], elem, 4),
        ],
        input: vec![value_info("x", elem, &[1, 4, 8, 8])],
        output: vec![value_info("y", elem, &[1, 4, 8, 8])],
        ..Default::default()
    }
}

/// [`residual_graph`] as an IR 8, opset 13 model.
pub fn residual_model(elem: ElemType) -> ModelProto {
    model(residual_graph(elem), 8, 13)
}

/// A float model `g` (IR 8, opset 13) of these nodes, inputs and initializers, with output `y` of
/// undeclared shape and a stale [7, 7] shape declared for `r`, which readers must ignore.
pub fn small_model(
    node: Vec<NodeProto>,
    input: Vec<ValueInfoProto>,
    initializer: Vec<TensorProto>,
) -> ModelProto {
    let graph = GraphProto {
        name: Some("g".into()),
        node,
        input,
        initializer,
        output: vec![value_info_shape("y", ElemType::FLOAT, None)],
        value_info: vec![value_info("r", ElemType::FLOAT, &[7, 7])],
        ..Default::default()
    };
    model(graph, 8, 13)
}

/// The float input `x` [1, 2, 3, 3] of the small models.
pub fn small_input() -> ValueInfoProto {
    value_info("x", ElemType::FLOAT, &[1, 2, 3, 3])
}

/// `x → Relu → y`, reading the input `x`.
pub fn relu_on(x: ValueInfoProto) -> ModelProto {
    small_model(vec![node("Relu_y", "Relu", &["x"], "y")], vec![x], vec![])
}

/// `x → Relu → r → Mul(r, k) → y` with the scalar initializer `k`, declaring `inputs`.
pub fn relu_mul_on(inputs: Vec<ValueInfoProto>, k: f32) -> ModelProto {
    let nodes = vec![
        node("Relu_r", "Relu", &["x"], "r"),
        node("Mul_y", "Mul", &["r", "k"], "y"),
    ];
    small_model(nodes, inputs, vec![float_scalar("k", k)])
}

/// A Constant node `name` writing `output`: a 1-D INT64 tensor of `values`, or a scalar when
/// `values` has one value and `scalar` is set.
pub fn int_constant(name: &str, output: &str, values: &[i64], scalar: bool) -> NodeProto {
    let dims = vector_dims(values.len(), scalar);
    constant_node(
        name,
        output,
        TensorProto {
            dims,
            data_type: Some(DataType::Int64 as i32),
            int64_data: values.to_vec(),
            ..Default::default()
        },
    )
}

/// A Constant node `name` writing `output`: a FLOAT tensor of `values`, a scalar when `values`
/// has one value and `scalar` is set.
pub fn float_constant(name: &str, output: &str, values: &[f32], scalar: bool) -> NodeProto {
    let dims = vector_dims(values.len(), scalar);
    constant_node(
        name,
        output,
        TensorProto {
            dims,
            data_type: Some(DataType::Float as i32),
            float_data: values.to_vec(),
            ..Default::default()
        },
    )
}

/// A Constant node holding `value`.
/// The dims of `len` values: a scalar's (none) when `scalar`, else one axis of `len`.
fn vector_dims(len: usize, scalar: bool) -> Vec<i64> {
    if scalar {
        vec![]
    } else {
        vec![len as i64]
    }
}

fn constant_node(name: &str, output: &str, value: TensorProto) -> NodeProto {
    let mut n = node(name, "Constant", &[], output);
    n.attribute.push(AttributeProto {
        name: Some("value".into()),
        t: Some(value),
        r#type: Some(4),
        ..Default::default()
    });
    n
}

/// A DenseNet block of `layers` layers written one Concat per layer, runnable in tract: `x`
/// [1, 4, 8, 8]; layer i reads `Concat(x, l1, …, li−1)` (x alone for the first) and is a 1×1
/// convolution to 2 channels (weights with data) and a Relu; the output `y` is the Concat of
/// every map, 4 + 2·layers wide. Its size grows as layers² (each Concat lists every map before
/// it): 500 layers are about 3 MB.
pub fn dense_concat_model(layers: usize) -> ModelProto {
    let elem = ElemType::FLOAT;
    let mut maps = vec!["x".to_string()];
    let (mut nodes, mut weights) = (Vec::new(), Vec::new());
    let concat = |name: &str, inputs: &[String], out: &str| {
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let mut n = node(name, "Concat", &refs, out);
        n.attribute.push(AttributeProto {
            name: Some("axis".into()),
            i: Some(1),
            r#type: Some(2),
            ..Default::default()
        });
        n
    };
    for i in 0..layers {
        let input = if i == 0 {
            "x".to_string()
        } else {
            let out = format!("cat{i}");
            nodes.push(concat(&format!("/dense/{i}/Concat"), &maps, &out));
            out
        };
        let cin = 4 + 2 * i as i64;
        let (w, b, c, r) = (
            format!("w{i}"),
            format!("b{i}"),
            format!("c{i}"),
            format!("l{i}"),
        );
        weights.push(tensor(&w, &[2, cin, 1, 1], elem, i as u32));
        weights.push(tensor(&b, &[2], elem, i as u32 + 1));
        nodes.push(node(
            &format!("/dense/{i}/Conv"),
            "Conv",
            &[&input, &w, &b],
            &c,
        ));
        nodes.push(node(&format!("/dense/{i}/Relu"), "Relu", &[&c], &r));
        maps.push(r);
    }
    nodes.push(concat("/dense/out/Concat", &maps, "y"));
    let c = 4 + 2 * layers as i64;
    let graph = GraphProto {
        name: Some("dense".into()),
        node: nodes,
        initializer: weights,
        input: vec![value_info("x", elem, &[1, 4, 8, 8])],
        output: vec![value_info("y", elem, &[1, c, 8, 8])],
        ..Default::default()
    };
    model(graph, 8, 13)
}

//! Conversion of FLOAT16, BFLOAT16 and DOUBLE models to FLOAT before they run in
//! tract, whose support for those types is incomplete (no Sigmoid in DOUBLE).

use crate::onnx::op::Op;
use crate::onnx::tensor::ElemType;
use tract_onnx::pb;

/// The ONNX name of `elem` when it is a float type converted to FLOAT, else `None`.
fn narrowed_type(elem: ElemType) -> Option<&'static str> {
    match elem {
        ElemType::FLOAT16 => Some("FLOAT16"),
        ElemType::BFLOAT16 => Some("BFLOAT16"),
        ElemType::DOUBLE => Some("DOUBLE"),
        _ => None,
    }
}

/// Whether tensors of type `elem` are converted to FLOAT before running.
pub(super) fn narrowed(elem: ElemType) -> bool {
    narrowed_type(elem).is_some()
}

/// Converts a FLOAT16 / BFLOAT16 / DOUBLE model to FLOAT in place: initializers, Constant
/// values, graph input and output types, and Cast targets. Returns the type it converted from.
pub(super) fn to_float(proto: &mut pb::ModelProto) -> Option<&'static str> {
    let float = ElemType::FLOAT.code();
    let graph = proto.graph.as_mut()?;
    let mut from = None;
    for t in graph.initializer.iter_mut() {
        from = tensor_to_float(t).or(from);
    }
    for node in graph.node.iter_mut() {
        for a in node.attribute.iter_mut() {
            if let Some(t) = a.t.as_mut() {
                from = tensor_to_float(t).or(from);
            }
            let narrowed = narrowed(ElemType::of_attribute(a.i));
            if Op::parse(&node.op_type) == Op::Cast && a.name == "to" && narrowed {
                a.i = i64::from(float);
            }
        }
    }
    for v in graph.input.iter_mut().chain(graph.output.iter_mut()) {
        if let Some(pb::type_proto::Value::TensorType(t)) =
            v.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            if let Some(name) = narrowed_type(ElemType::of(t.elem_type)) {
                from.get_or_insert(name);
                t.elem_type = float;
            }
        }
    }
    from
}

/// Rewrites the values of a FLOAT16 / BFLOAT16 / DOUBLE tensor as FLOAT raw data;
/// returns the type it converted from, or `None` for a tensor of any other type.
fn tensor_to_float(t: &mut pb::TensorProto) -> Option<&'static str> {
    let elem = ElemType::of(t.data_type);
    let from = narrowed_type(elem)?;
    let values: Vec<f32> = if elem == ElemType::DOUBLE {
        if t.raw_data.is_empty() {
            t.double_data.iter().map(|&v| v as f32).collect()
        } else {
            t.raw_data
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect()
        }
    } else {
        let half = elem == ElemType::FLOAT16;
        let widen = |bits: u16| {
            if half {
                half::f16::from_bits(bits).to_f32()
            } else {
                half::bf16::from_bits(bits).to_f32()
            }
        };
        if t.raw_data.is_empty() {
            t.int32_data.iter().map(|&v| widen(v as u16)).collect()
        } else {
            t.raw_data
                .chunks_exact(2)
                .map(|c| widen(u16::from_le_bytes([c[0], c[1]])))
                .collect()
        }
    };
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.int32_data.clear();
    t.double_data.clear();
    t.data_type = ElemType::FLOAT.code();
    Some(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::tensor_proto::DataType;

    fn tensor(data_type: DataType) -> pb::TensorProto {
        pb::TensorProto {
            data_type: data_type as i32,
            dims: vec![2],
            ..Default::default()
        }
    }

    fn floats(t: &pb::TensorProto) -> Vec<f32> {
        assert_eq!(t.data_type, DataType::Float as i32);
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn half_bfloat_and_double_tensors_become_float() {
        let mut h = tensor(DataType::Float16);
        h.raw_data = [1.5f32, -2.0]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        assert_eq!(tensor_to_float(&mut h), Some("FLOAT16"));
        assert_eq!(floats(&h), [1.5, -2.0]);

        let mut b = tensor(DataType::Bfloat16);
        b.int32_data = vec![i32::from(half::bf16::from_f32(0.25).to_bits()); 2];
        assert_eq!(tensor_to_float(&mut b), Some("BFLOAT16"));
        assert_eq!(floats(&b), [0.25, 0.25]);
        assert!(b.int32_data.is_empty());

        let mut d = tensor(DataType::Double);
        d.double_data = vec![3.0, 0.5];
        assert_eq!(tensor_to_float(&mut d), Some("DOUBLE"));
        assert_eq!(floats(&d), [3.0, 0.5]);
        assert!(d.double_data.is_empty());
    }

    #[test]
    fn other_types_are_left_alone() {
        let mut f = tensor(DataType::Float);
        f.float_data = vec![1.0, 2.0];
        let mut i = tensor(DataType::Int64);
        i.int64_data = vec![1, 2];
        let (f0, i0) = (f.clone(), i.clone());
        assert_eq!(tensor_to_float(&mut f), None);
        assert_eq!(tensor_to_float(&mut i), None);
        assert_eq!((f, i), (f0, i0));
    }
}

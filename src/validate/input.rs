//! The single image input of a model: its name, element type and concrete shape,
//! and the seeded random tensor fed to it.

use std::collections::HashSet;

use crate::onnx::tensor::ElemType;
use anyhow::{bail, Context};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// Largest input validation feeds a model (2^28 elements, 1 GiB of f32).
const MAX_INPUT_ELEMENTS: usize = 1 << 28;

/// The resolved single input of a model.
pub(super) struct InputSpec {
    pub name: String,
    pub datum_type: DatumType,
    pub shape: Vec<usize>,
}

/// Finds the single non-initializer graph input and its concrete type/shape.
pub(super) fn resolve_input(
    proto: &pb::ModelProto,
    shape_override: Option<&[usize]>,
) -> anyhow::Result<InputSpec> {
    let graph = proto.graph.as_ref().context("the model has no graph")?;
    let input = single_input(graph)?;
    let name = input.name.clone();
    // The name as messages print it.
    let named = crate::shown::shown(&name);
    let pb::type_proto::Value::TensorType(tensor_type) = input
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .with_context(|| format!("input `{named}` has no tensor type"))?;
    let datum_type = datum_type(&name, ElemType::of(tensor_type.elem_type))?;
    let shape = match shape_override {
        Some(shape) => override_shape(&name, shape, tensor_type.shape.as_ref())?,
        None => declared_shape(&name, tensor_type.shape.as_ref())?,
    };
    let elements = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_INPUT_ELEMENTS);
    if elements.is_none() {
        bail!(
            "input `{named}` of shape {shape:?} is larger than validation runs ({MAX_INPUT_ELEMENTS} \
             elements at most); pass a smaller --input-shape or --no-validate"
        );
    }
    Ok(InputSpec {
        name,
        datum_type,
        shape,
    })
}

/// The one graph input that is not an initializer.
fn single_input(graph: &pb::GraphProto) -> anyhow::Result<&pb::ValueInfoProto> {
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    match inputs.as_slice() {
        [one] => Ok(*one),
        [] => bail!("the model has no graph input (exactly one image input is supported)"),
        many => bail!(
            "the model has {} graph inputs ({}); exactly one image input is supported",
            many.len(),
            many.iter()
                .map(|i| format!("`{}`", crate::shown::shown(&i.name)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The tract type of input `name` with ONNX element type `elem_type`: FLOAT, FLOAT16 or DOUBLE.
fn datum_type(name: &str, elem: ElemType) -> anyhow::Result<DatumType> {
    let name = crate::shown::shown(name);
    Ok(match elem {
        ElemType::FLOAT => DatumType::F32,
        ElemType::FLOAT16 => DatumType::F16,
        ElemType::DOUBLE => DatumType::F64,
        other if other.known().is_some() => bail!(
            "input `{name}` has element type {}; only FLOAT, FLOAT16 and DOUBLE inputs are \
             supported",
            other.name()
        ),
        other => bail!("input `{name}` has unknown element type {}", other.code()),
    })
}

/// The shape given for input `name`, checked against the rank it declares.
fn override_shape(
    name: &str,
    shape: &[usize],
    declared: Option<&pb::TensorShapeProto>,
) -> anyhow::Result<Vec<usize>> {
    let name = crate::shown::shown(name);
    if let Some(decl) = declared.filter(|d| d.dim.len() != shape.len()) {
        bail!(
            "input shape {shape:?} has rank {} but input `{name}` has rank {}",
            shape.len(),
            decl.dim.len()
        );
    }
    if shape.contains(&0) {
        bail!("input shape {shape:?} has a zero dimension");
    }
    Ok(shape.to_vec())
}

/// The shape input `name` declares, with every symbolic dimension set to 1.
fn declared_shape(
    name: &str,
    declared: Option<&pb::TensorShapeProto>,
) -> anyhow::Result<Vec<usize>> {
    use pb::tensor_shape_proto::dimension::Value;
    let name = crate::shown::shown(name);
    let Some(decl) = declared else {
        bail!("input `{name}` has no declared shape; pass --input-shape")
    };
    decl.dim
        .iter()
        .enumerate()
        .map(|(axis, d)| match &d.value {
            Some(Value::DimValue(v)) if *v > 0 => usize::try_from(*v)
                .with_context(|| format!("input `{name}` axis {axis}: dim {v} too large")),
            Some(Value::DimParam(p)) if !p.is_empty() => Ok(1),
            _ => bail!("input `{name}` axis {axis} has an unknown dimension; pass --input-shape"),
        })
        .collect()
}

/// Builds the seeded standard-normal input tensor.
pub(super) fn random_input(spec: &InputSpec, seed: u64) -> anyhow::Result<TValue> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len: usize = spec.shape.iter().product();
    let data: Vec<f32> = (0..len).map(|_| StandardNormal.sample(&mut rng)).collect();
    let tensor = Tensor::from_shape(&spec.shape, &data)?;
    let tensor = tensor.cast_to_dt(spec.datum_type)?.into_owned();
    Ok(tensor.into_tvalue())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_input() {
        let spec = InputSpec {
            name: "x".into(),
            datum_type: DatumType::F32,
            shape: vec![2, 3],
        };
        let a = random_input(&spec, 7).unwrap();
        let b = random_input(&spec, 7).unwrap();
        let c = random_input(&spec, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

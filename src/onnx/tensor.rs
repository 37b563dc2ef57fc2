//! Tensor helpers: element types, element counts, and building float tensors in a given type.

use super::proto::tensor_proto::DataType;
use super::TensorProto;
use anyhow::{bail, Result};

/// An element type, as ONNX codes it (`TensorProto.DataType`). The code is kept as read, so a
/// type this build does not know passes through and is named by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElemType(i32);

impl ElemType {
    pub const UNDEFINED: ElemType = ElemType(DataType::Undefined as i32);
    pub const FLOAT: ElemType = ElemType(DataType::Float as i32);
    pub const DOUBLE: ElemType = ElemType(DataType::Double as i32);
    pub const FLOAT16: ElemType = ElemType(DataType::Float16 as i32);
    pub const BFLOAT16: ElemType = ElemType(DataType::Bfloat16 as i32);
    pub const INT32: ElemType = ElemType(DataType::Int32 as i32);
    pub const INT64: ElemType = ElemType(DataType::Int64 as i32);

    /// The type of code `code`.
    pub const fn of(code: i32) -> ElemType {
        ElemType(code)
    }

    /// The element type of tensor `t` (UNDEFINED when it has none).
    pub fn of_tensor(t: &TensorProto) -> ElemType {
        ElemType(t.data_type.unwrap_or(0))
    }

    /// The type an attribute names (Cast's `to`); UNDEFINED for a number no type has.
    pub fn of_attribute(v: i64) -> ElemType {
        i32::try_from(v).map_or(ElemType::UNDEFINED, ElemType)
    }

    /// The code ONNX writes.
    pub const fn code(self) -> i32 {
        self.0
    }

    /// The type as the ONNX enum, when this build knows it.
    pub fn known(self) -> Option<DataType> {
        DataType::try_from(self.0).ok()
    }

    /// Size in bytes of one element, for types with a fixed size.
    pub fn size(self) -> Option<usize> {
        Some(match self.known()? {
            DataType::Float | DataType::Int32 | DataType::Uint32 => 4,
            DataType::Uint8 | DataType::Int8 | DataType::Bool => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Float16 | DataType::Bfloat16 => 2,
            DataType::Int64 | DataType::Uint64 | DataType::Double | DataType::Complex64 => 8,
            DataType::Complex128 => 16,
            DataType::Float8e4m3fn
            | DataType::Float8e4m3fnuz
            | DataType::Float8e5m2
            | DataType::Float8e5m2fnuz
            | DataType::Float8e8m0 => 1,
            _ => return None,
        })
    }

    /// Whether it is a floating-point type whose elements count as parameters.
    pub fn is_float(self) -> bool {
        matches!(
            self.known(),
            Some(DataType::Float | DataType::Float16 | DataType::Bfloat16 | DataType::Double)
        )
    }

    /// The name ONNX spells it by (`FLOAT`, `FLOAT16`, ...), or `type N` for a code it has not.
    pub fn name(self) -> String {
        self.known()
            .map(|d| d.as_str_name().to_string())
            .unwrap_or_else(|| format!("type {}", self.0))
    }
}

/// Number of elements of a tensor with these dims; an error for negative dims or an overflow.
pub fn element_count(dims: &[i64]) -> Result<u64> {
    let mut n: u64 = 1;
    for &d in dims {
        if d < 0 {
            bail!("negative dimension {d} in {dims:?}");
        }
        n = n
            .checked_mul(d as u64)
            .ok_or_else(|| anyhow::anyhow!("dimensions {dims:?} overflow"))?;
    }
    Ok(n)
}

/// Number of elements of a tensor (0 for malformed dims: callers that need to reject those call
/// [`element_count`]).
pub fn numel(t: &TensorProto) -> u64 {
    element_count(&t.dims).unwrap_or(0)
}

/// Builds a tensor named `name` with `dims` holding `values`, stored as raw data in the float
/// type `elem` (FLOAT, FLOAT16, BFLOAT16 or DOUBLE).
pub fn float_tensor(
    name: &str,
    dims: &[i64],
    values: &[f32],
    elem: ElemType,
) -> Result<TensorProto> {
    let raw: Vec<u8> = match elem.known() {
        Some(DataType::Float) => le_bytes(values, f32::to_le_bytes),
        Some(DataType::Double) => le_bytes(values, |v| f64::from(v).to_le_bytes()),
        Some(DataType::Float16) => le_bytes(values, |v| half::f16::from_f32(v).to_le_bytes()),
        Some(DataType::Bfloat16) => le_bytes(values, |v| half::bf16::from_f32(v).to_le_bytes()),
        _ => bail!(
            "cannot build tensor '{}' in element type {}: not a float type",
            crate::shown::shown(name),
            elem.name()
        ),
    };
    Ok(TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(elem.code()),
        raw_data: Some(raw.into()),
        ..Default::default()
    })
}

/// `values` as little-endian bytes of `N` bytes each, written into one allocation.
fn le_bytes<const N: usize>(values: &[f32], encode: impl Fn(f32) -> [u8; N]) -> Vec<u8> {
    let mut raw = vec![0u8; values.len() * N];
    for (chunk, &v) in raw.chunks_exact_mut(N).zip(values) {
        chunk.copy_from_slice(&encode(v));
    }
    raw
}

/// Reads a tensor's integer values (INT64 or INT32, raw or typed), as ONNX stores shapes and axes.
pub fn int_values(t: &TensorProto) -> Option<Vec<i64>> {
    let dt = ElemType::of_tensor(t).known()?;
    match (dt, &t.raw_data) {
        (DataType::Int64, Some(raw)) => Some(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        (DataType::Int32, Some(raw)) => Some(
            raw.chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        (DataType::Int64, None) => Some(t.int64_data.clone()),
        (DataType::Int32, None) => Some(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rejects_bad_dims() {
        assert_eq!(element_count(&[2, 3, 4]).unwrap(), 24);
        assert_eq!(element_count(&[]).unwrap(), 1);
        assert!(element_count(&[2, -1]).is_err());
        assert!(element_count(&[i64::MAX, i64::MAX]).is_err());
    }

    #[test]
    fn builds_float_tensors_in_each_type() {
        let f32t = float_tensor("a", &[2], &[1.0, -2.0], ElemType::FLOAT).unwrap();
        assert_eq!(f32t.raw_data.unwrap().len(), 8);
        let f16t = float_tensor("b", &[2], &[1.0, 20.0], ElemType::FLOAT16).unwrap();
        let raw = f16t.raw_data.unwrap();
        assert_eq!(raw.len(), 4);
        assert_eq!(half::f16::from_le_bytes([raw[2], raw[3]]).to_f32(), 20.0);
        let f64t = float_tensor("c", &[1], &[0.5], ElemType::DOUBLE).unwrap();
        assert_eq!(f64t.raw_data.unwrap().as_ref(), &0.5f64.to_le_bytes());
        assert!(float_tensor("d", &[1], &[0.5], ElemType::INT64).is_err());
    }

    #[test]
    fn reads_int_values() {
        let t = TensorProto {
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(bytes::Bytes::from(
                [2i64, -1]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<_>>(),
            )),
            ..Default::default()
        };
        assert_eq!(int_values(&t), Some(vec![2, -1]));
    }
}

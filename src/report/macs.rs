//! Multiply-accumulates (MACs) of one convolution or matrix product, from the shapes shape
//! inference derives.

use crate::analysis::shapes::{product, Shapes};
use crate::onnx::{attr_i, op, NodeProto};

/// MACs of one counted node; None when its shapes are unknown or the count overflows.
pub(super) fn node_macs(shapes: &Shapes, node: &NodeProto) -> Option<usize> {
    let out = || node.output.first().and_then(|o| shapes.get(o));
    let dims = |d: &[usize]| product(d.iter().copied());
    match op(node) {
        // Every output element sums C_in/group · kernel products.
        "Conv" => {
            let w = shapes.get(node.input.get(1)?)?;
            product(out()?.iter().copied())?.checked_mul(dims(w.get(1..)?)?)
        }
        // Every input element spreads over C_out/group · kernel outputs.
        "ConvTranspose" => {
            let w = shapes.get(node.input.get(1)?)?;
            let x = shapes.get(node.input.first()?)?;
            product(x.iter().copied())?.checked_mul(dims(w.get(1..)?)?)
        }
        _ => {
            let a = shapes.get(node.input.first()?)?;
            let k = if op(node) == "Gemm" && attr_i(node, "transA").unwrap_or(0) == 1 {
                *a.first()?
            } else {
                *a.last()?
            };
            product(out()?.iter().copied())?.checked_mul(k)
        }
    }
}

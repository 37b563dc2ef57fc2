//! Multiply-accumulates (MACs) of one convolution or matrix product, from the shapes shape
//! inference derives.

use crate::analysis::shapes::{product, Shapes};
use crate::onnx::op::Op;
use crate::onnx::{attr_i, NodeProto};

/// MACs of one counted node; None when its shapes are unknown or the count overflows.
pub(super) fn node_macs(shapes: &Shapes, node: &NodeProto) -> Option<usize> {
    let out = || node.output.first().and_then(|o| shapes.get(o));
    let dims = |d: &[usize]| product(d.iter().copied());
    match Op::of(node) {
        // Every output element sums C_in/group · kernel products.
        Op::Conv | Op::ConvInteger | Op::DeformConv | Op::QLinearConv => {
            // QLinearConv reads (x, x_scale, x_zero_point, w, ...).
            let at = if Op::of(node) == Op::QLinearConv {
                3
            } else {
                1
            };
            let w = shapes.get(node.input.get(at)?)?;
            product(out()?.iter().copied())?.checked_mul(dims(w.get(1..)?)?)
        }
        // Every input element spreads over C_out/group · kernel outputs.
        Op::ConvTranspose => {
            let w = shapes.get(node.input.get(1)?)?;
            let x = shapes.get(node.input.first()?)?;
            product(x.iter().copied())?.checked_mul(dims(w.get(1..)?)?)
        }
        Op::Einsum => einsum_macs(shapes, node),
        op => {
            let a = shapes.get(node.input.first()?)?;
            let k = if op == Op::Gemm && attr_i(node, "transA").unwrap_or(0) == 1 {
                *a.first()?
            } else {
                *a.last()?
            };
            product(out()?.iter().copied())?.checked_mul(k)
        }
    }
}

/// MACs of an Einsum: one per combination of its indices' values (the output's and the summed
/// ones), read from the equation and its inputs' shapes; None with an ellipsis, or when an index
/// has two sizes.
fn einsum_macs(shapes: &Shapes, node: &NodeProto) -> Option<usize> {
    let equation = node
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("equation"))
        .and_then(|a| a.s.as_deref())?;
    let equation = std::str::from_utf8(equation).ok()?;
    let lhs = equation.split("->").next()?;
    if lhs.contains('.') {
        return None;
    }
    let mut size: std::collections::BTreeMap<char, usize> = Default::default();
    for (term, input) in lhs.split(',').zip(&node.input) {
        let dims = shapes.get(input)?;
        let letters: Vec<char> = term.trim().chars().collect();
        if letters.len() != dims.len() {
            return None;
        }
        for (c, &d) in letters.into_iter().zip(dims) {
            if *size.entry(c).or_insert(d) != d {
                return None;
            }
        }
    }
    product(size.into_values())
}

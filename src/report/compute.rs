//! The compute of one node, in three conventions side by side:
//!
//! - `macs`: multiply-accumulates of the convolutions and matrix products (each output element
//!   sums C_in/group · kernel products, or K for a matrix product);
//! - `element_ops`: one operation per output element of an elementwise op or activation ((n − 1)
//!   per element for an op of n inputs), one per element read by a reduction or a global pool, and
//!   one per window element for a windowed pool;
//! - `profiler`: the total a profiler reports, counted the way onnx-tool does: the MACs plus one
//!   add per output element for a bias, and each element operation weighted by what it costs
//!   (an exponential 32, a division 4, a comparison or an add 1; ops onnx-tool does not weigh
//!   take weights composed from the same unit costs).
//!
//! Ops that only move or re-label elements (Reshape, Concat, Transpose, Pad, Identity, ...) and
//! nodes computing shapes rather than feature maps cost nothing.

use super::macs::node_macs;
use crate::analysis::shapes::{product, Shapes};
use crate::analysis::Features;
use crate::onnx::op::{Cost as OpCost, Op};
use crate::onnx::{attr_ints, NodeProto};
use serde::Serialize;

/// Compute in the three conventions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// Multiply-accumulates of convolutions and matrix products.
    pub macs: u64,
    /// Element operations of pooling, reductions, elementwise ops and activations.
    pub element_ops: u64,
    /// Both, weighted the way profilers (onnx-tool) count them.
    pub profiler: u64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            macs: self.macs.saturating_add(o.macs),
            element_ops: self.element_ops.saturating_add(o.element_ops),
            profiler: self.profiler.saturating_add(o.profiler),
        }
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::default(), |a, b| a + b)
    }
}

impl Cost {
    /// What `self` has beyond `before`, per convention (never below zero).
    pub fn minus(self, before: Cost) -> Cost {
        Cost {
            macs: self.macs.saturating_sub(before.macs),
            element_ops: self.element_ops.saturating_sub(before.element_ops),
            profiler: self.profiler.saturating_sub(before.profiler),
        }
    }
}

/// The compute of one node; None when it computes but its shapes are unknown.
pub fn node_cost(shapes: &Shapes, feats: &Features, node: &NodeProto) -> Option<Cost> {
    let kind = Op::of(node);
    let (per, weight) = match kind.cost() {
        OpCost::Free => return Some(Cost::default()),
        OpCost::Macs => {
            let macs = node_macs(shapes, node)? as u64;
            let bias = if has_bias(node) {
                elements(shapes, node.output.first()?)?
            } else {
                0
            };
            return Some(Cost {
                macs,
                element_ops: 0,
                profiler: macs.saturating_add(bias),
            });
        }
        OpCost::Output(w) => (OpCost::Output(w), w),
        OpCost::OutputOnce(w) => (OpCost::OutputOnce(w), w),
        OpCost::Input(w) => (OpCost::Input(w), w),
        OpCost::Window(w) => (OpCost::Window(w), w),
    };
    if !node.output.first().is_some_and(|o| feats.is_feature(o)) {
        return Some(Cost::default());
    }
    let out = || elements(shapes, node.output.first()?);
    let ops = match per {
        OpCost::Output(_) => {
            let arity = node.input.iter().filter(|i| !i.is_empty()).count();
            out()?.saturating_mul(arity.saturating_sub(1).max(1) as u64)
        }
        OpCost::Input(_) => elements(shapes, node.input.first()?)?,
        OpCost::Window(_) => {
            let window = product(
                attr_ints(node, "kernel_shape")?
                    .iter()
                    .map(|&k| usize::try_from(k).unwrap_or(0)),
            )?;
            out()?.saturating_mul(window as u64)
        }
        _ => out()?,
    };
    let profiler = ops
        .saturating_mul(weight)
        .saturating_add(extra(kind, node, shapes)?);
    Some(Cost {
        macs: 0,
        element_ops: ops,
        profiler,
    })
}

/// What the profiler convention counts beyond the weighted element operations: the division of
/// a global average, the per-row normalisation of a LayerNormalization.
fn extra(kind: Op, node: &NodeProto, shapes: &Shapes) -> Option<u64> {
    let out = || elements(shapes, node.output.first()?);
    match kind {
        // One division (weight 4) per averaged channel.
        Op::GlobalAveragePool => Some(out()?.saturating_mul(4)),
        // Per row (the elements over the normalised axis): an add, a square root, a division.
        Op::LayerNormalization => {
            let x = shapes.get(node.input.first()?)?;
            let axis = crate::onnx::attr_i(node, "axis").unwrap_or(-1);
            let axis = if axis < 0 {
                axis + x.len() as i64
            } else {
                axis
            };
            let along = *x.get(usize::try_from(axis).ok()?)?;
            let rows = out()?.checked_div(along as u64)?;
            Some(rows.saturating_mul(29))
        }
        _ => Some(0),
    }
}

/// Whether a convolution or Gemm adds a bias (its third input is given).
fn has_bias(node: &NodeProto) -> bool {
    matches!(Op::of(node), Op::Conv | Op::ConvTranspose | Op::Gemm)
        && node.input.get(2).is_some_and(|b| !b.is_empty())
}

/// Elements of tensor `name`, when its shape is known.
fn elements(shapes: &Shapes, name: &str) -> Option<u64> {
    product(shapes.get(name)?.iter().copied()).map(|n| n as u64)
}

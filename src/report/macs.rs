//! Multiply-accumulates (MACs) of a graph's convolutions and matrix products, counted from the
//! shapes shape inference derives.

use super::Report;
use crate::analysis::shapes::{product, Shapes};
use crate::analysis::Features;
use crate::graph::GraphView;
use crate::onnx::{attr_i, describe_node, op, GraphProto, NodeProto};
use anyhow::Context;

/// The ops whose MACs are counted.
const COUNTED: &[&str] = &["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// MACs of a graph whose feature maps are `feats`, with shapes inferred from `input_shape` (or
/// the declared input shape), or why they cannot be counted.
fn count(view: &GraphView, feats: &Features, input_shape: Option<&[usize]>) -> Result<u64, String> {
    macs(view, &Shapes::infer(view, feats, input_shape))
}

/// Multiply-accumulates of the graph's convolutions and matrix products, or the first node whose
/// count cannot be derived (its shapes are unknown).
pub fn macs(view: &GraphView, shapes: &Shapes) -> Result<u64, String> {
    let mut total: u64 = 0;
    for &n in &view.topo {
        let node = view.node(n);
        if !COUNTED.contains(&op(node)) {
            continue;
        }
        match node_macs(shapes, node) {
            Some(c) => total = total.saturating_add(c as u64),
            None => {
                return Err(format!(
                    "the shapes at {} are unknown{}",
                    describe_node(node),
                    shapes
                        .stopped_at
                        .as_ref()
                        .map_or(String::new(), |s| format!(
                            " (shape inference stopped at {s})"
                        ))
                ))
            }
        }
    }
    Ok(total)
}

/// MACs of one counted node; None when its shapes are unknown or the count overflows.
fn node_macs(shapes: &Shapes, node: &NodeProto) -> Option<usize> {
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

impl Report {
    /// Counts the MACs of the original graph (`view`, whose feature maps are `feats`) and of the
    /// rewritten one, and records them; fails only when the rewritten graph is malformed.
    pub fn count_macs(
        &mut self,
        view: &GraphView,
        feats: &Features,
        after: &GraphProto,
        input_shape: Option<&[usize]>,
    ) -> anyhow::Result<()> {
        let before = count(view, feats, input_shape);
        let after_view = GraphView::new(after).context("the rewritten graph")?;
        let after = count(&after_view, &Features::new(&after_view), input_shape);
        self.set_macs(before, after);
        Ok(())
    }

    /// Records the MAC counts, or why they could not be made.
    pub fn set_macs(&mut self, before: Result<u64, String>, after: Result<u64, String>) {
        match (before, after) {
            (Ok(b), Ok(a)) => {
                self.macs_before = Some(b);
                self.macs_after = Some(a);
            }
            (Err(e), _) => self.macs_note = Some(format!("original: {e}")),
            (_, Err(e)) => self.macs_note = Some(format!("rewritten: {e}")),
        }
    }
}

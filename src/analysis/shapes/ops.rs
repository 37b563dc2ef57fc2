//! Output shapes per op family: sliding and global windows, elementwise ops (same shape or
//! broadcasting), concat / split / slice, reductions, the ops that rearrange elements (flatten,
//! reshape, transpose, squeeze), matrix products and padding.

use super::{axis_of, broadcast, product, window};
use crate::analysis::features::{Features, BROADCAST, SAME_SHAPE};
use crate::graph::GraphView;
use crate::onnx::tensor::int_values;
use crate::onnx::{attr_i, attr_ints, op, NodeProto};
use std::collections::HashMap;

/// The shapes of a node's outputs, one per output, when they can be derived.
pub(super) type Outs = Option<Vec<Vec<usize>>>;

/// A node's single output shape.
fn one(s: Vec<usize>) -> Outs {
    Some(vec![s])
}

/// Dims as sizes; None when one is negative.
fn sizes(v: &[i64]) -> Option<Vec<usize>> {
    v.iter().map(|&k| usize::try_from(k).ok()).collect()
}

/// One node whose output shapes are being derived, with what they are derived from: the shapes
/// found so far and the constants of the graph.
pub(super) struct Node<'v, 'a> {
    pub view: &'v GraphView<'a>,
    pub feats: &'v Features,
    pub map: &'v HashMap<String, Vec<usize>>,
    pub node: &'a NodeProto,
}

impl Node<'_, '_> {
    /// Shape of a tensor: derived so far, or a constant's dims.
    fn shape_of(&self, t: &str) -> Option<Vec<usize>> {
        self.map.get(t).cloned().or_else(|| {
            self.view
                .constant_dims(t)
                .map(|d| d.iter().map(|&v| usize::try_from(v).unwrap_or(0)).collect())
        })
    }

    /// The integers of the constant at input `i`, when it is given and constant.
    fn ints_of(&self, i: usize) -> Option<Vec<i64>> {
        self.node
            .input
            .get(i)
            .filter(|s| !s.is_empty())
            .and_then(|s| self.view.constant(s))
            .and_then(int_values)
    }

    /// An integer list from the attribute `name` (older opsets) or else the constant input `i`.
    fn ints_or_input(&self, name: &str, i: usize) -> Option<Vec<i64>> {
        attr_ints(self.node, name)
            .map(<[i64]>::to_vec)
            .or_else(|| self.ints_of(i))
    }

    /// Shape `s` for every output.
    fn each(&self, s: &[usize]) -> Outs {
        Some(self.node.output.iter().map(|_| s.to_vec()).collect())
    }

    /// The output shapes, by op family; None for an op outside them or shapes not derivable.
    pub fn output_shapes(&self) -> Outs {
        if op(self.node) == "Reshape" && self.ints_of(1).is_none() {
            return self.shuffle_reshape();
        }
        let x = self.shape_of(self.node.input.first()?)?;
        match op(self.node) {
            "Conv" | "MaxPool" | "AveragePool" | "LpPool" | "GlobalAveragePool"
            | "GlobalMaxPool" | "GlobalLpPool" => self.windowed(&x),
            o if SAME_SHAPE.contains(&o) => self.each(&x),
            o if BROADCAST.contains(&o) => {
                let all: Option<Vec<Vec<usize>>> =
                    self.node.input.iter().map(|i| self.shape_of(i)).collect();
                one(broadcast(&all?)?)
            }
            "Concat" => self.concat(x),
            "Split" => self.split(&x),
            "Slice" => self.slice(x),
            "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceSum" | "ReduceL2" => self.reduce(&x),
            "Flatten" | "Reshape" | "Transpose" | "Squeeze" | "Unsqueeze" => self.reshaped(&x),
            "Gemm" | "MatMul" => self.matrix_product(x),
            "Pad" => self.padded(&x),
            _ => None,
        }
    }

    /// A Reshape whose target is computed at run time: the closing Reshape of a channel shuffle
    /// (Reshape → Transpose → Reshape) restores the shape the shuffle started from.
    fn shuffle_reshape(&self) -> Outs {
        let view = self.view;
        let t = view.producer_node(self.node.input.first()?)?;
        let r = view.producer_node(view.node(t).input.first()?)?;
        if op(view.node(t)) != "Transpose" || op(view.node(r)) != "Reshape" {
            return None;
        }
        one(self.map.get(view.node(r).input.first()?.as_str())?.clone())
    }

    /// Sliding and global windows: Conv, the pools, the global pools.
    fn windowed(&self, x: &[usize]) -> Outs {
        let node = self.node;
        match op(node) {
            "Conv" => {
                let w = self.view.constant_dims(node.input.get(1)?)?;
                let kernel = sizes(w.get(2..)?)?;
                let mut out = vec![*x.first()?, usize::try_from(w[0]).ok()?];
                out.extend(window(node, x, &kernel)?);
                one(out)
            }
            "MaxPool" | "AveragePool" | "LpPool" => {
                let kernel = sizes(attr_ints(node, "kernel_shape")?)?;
                let mut out = x.get(..2)?.to_vec();
                out.extend(window(node, x, &kernel)?);
                self.each(&out)
            }
            _ => {
                let mut out = x.get(..2)?.to_vec();
                out.extend(std::iter::repeat_n(1, x.len().saturating_sub(2)));
                one(out)
            }
        }
    }

    /// Concat: the inputs' sizes along the axis add up.
    fn concat(&self, mut x: Vec<usize>) -> Outs {
        let axis = axis_of(attr_i(self.node, "axis")?, x.len())?;
        let all: Vec<Vec<usize>> = self
            .node
            .input
            .iter()
            .map(|i| self.shape_of(i))
            .collect::<Option<_>>()?;
        x[axis] = all
            .iter()
            .map(|s| s.get(axis).copied())
            .try_fold(0usize, |acc, d| acc.checked_add(d?))?;
        one(x)
    }

    /// Split: the given sizes along the axis, or equal parts.
    fn split(&self, x: &[usize]) -> Outs {
        let axis = axis_of(attr_i(self.node, "axis").unwrap_or(0), x.len())?;
        let k = self.node.output.len();
        let parts: Vec<usize> = match self.ints_or_input("split", 1) {
            Some(s) => sizes(&s)?,
            None if k > 0 && x[axis].is_multiple_of(k) => vec![x[axis] / k; k],
            None => return None,
        };
        Some(
            parts
                .iter()
                .map(|&s| {
                    let mut o = x.to_vec();
                    o[axis] = s;
                    o
                })
                .collect(),
        )
    }

    /// Slice with unit steps; bounds computed at run time only for a channel chunk the feature
    /// analysis sized.
    fn slice(&self, x: Vec<usize>) -> Outs {
        let (starts, ends) = (self.ints_of(1), self.ints_of(2));
        let axes = self
            .ints_of(3)
            .unwrap_or_else(|| (0..x.len() as i64).collect());
        let steps = self.ints_of(4).unwrap_or_else(|| vec![1; axes.len()]);
        let mut out = x.clone();
        match (starts, ends) {
            (Some(st), Some(en)) => {
                for (j, &a) in axes.iter().enumerate() {
                    let a = axis_of(a, x.len())?;
                    let dim = x[a] as i64;
                    let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
                    if *steps.get(j)? != 1 {
                        return None;
                    }
                    out[a] = usize::try_from(clamp(*en.get(j)?) - clamp(*st.get(j)?)).ok()?;
                }
            }
            _ => *out.get_mut(1)? = self.feats.channels(self.node.output.first()?)?,
        }
        one(out)
    }

    /// Reductions over the given axes (all without them), kept as 1 or dropped.
    fn reduce(&self, x: &[usize]) -> Outs {
        let keep = attr_i(self.node, "keepdims").unwrap_or(1) == 1;
        let axes: Vec<usize> = match self.ints_or_input("axes", 1) {
            Some(a) => a
                .iter()
                .map(|&v| axis_of(v, x.len()))
                .collect::<Option<_>>()?,
            None => (0..x.len()).collect(),
        };
        let out: Vec<usize> = (0..x.len())
            .filter_map(|i| match (axes.contains(&i), keep) {
                (true, true) => Some(1),
                (true, false) => None,
                _ => Some(x[i]),
            })
            .collect();
        one(out)
    }

    /// The ops that rearrange the same elements: Flatten, Reshape, Transpose, Squeeze,
    /// Unsqueeze.
    fn reshaped(&self, x: &[usize]) -> Outs {
        let node = self.node;
        match op(node) {
            "Flatten" => {
                let axis = axis_of(attr_i(node, "axis").unwrap_or(1), x.len() + 1)?;
                one(vec![
                    product(x[..axis].iter().copied())?,
                    product(x[axis..].iter().copied())?,
                ])
            }
            "Reshape" => {
                let allow_zero = attr_i(node, "allowzero").unwrap_or(0) != 0;
                Some(vec![reshape(x, &self.ints_of(1)?, allow_zero)?])
            }
            "Transpose" => {
                let perm = match attr_ints(node, "perm") {
                    Some(p) => sizes(p)?,
                    None => (0..x.len()).rev().collect(),
                };
                one(perm
                    .iter()
                    .map(|&p| x.get(p).copied())
                    .collect::<Option<_>>()?)
            }
            "Squeeze" => {
                let drop: Vec<usize> = self
                    .ints_or_input("axes", 1)?
                    .iter()
                    .map(|&a| axis_of(a, x.len()))
                    .collect::<Option<_>>()?;
                one((0..x.len())
                    .filter(|i| !drop.contains(i))
                    .map(|i| x[i])
                    .collect())
            }
            _ => {
                let axes = self.ints_or_input("axes", 1)?;
                let rank = x.len() + axes.len();
                let add: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis_of(a, rank))
                    .collect::<Option<_>>()?;
                let mut rest = x.iter();
                one((0..rank)
                    .map(|i| {
                        if add.contains(&i) {
                            Some(1)
                        } else {
                            rest.next().copied()
                        }
                    })
                    .collect::<Option<_>>()?)
            }
        }
    }

    /// Gemm (2-D, optionally transposed) and MatMul (the last dim becomes B's).
    fn matrix_product(&self, mut x: Vec<usize>) -> Outs {
        let node = self.node;
        let b = self.shape_of(node.input.get(1)?)?;
        if op(node) == "MatMul" {
            *x.last_mut()? = *b.last()?;
            return one(x);
        }
        let ta = attr_i(node, "transA").unwrap_or(0) == 1;
        let tb = attr_i(node, "transB").unwrap_or(0) == 1;
        let m = if ta { *x.get(1)? } else { *x.first()? };
        let n = if tb { *b.first()? } else { *b.get(1)? };
        one(vec![m, n])
    }

    /// Pad: each dim grows by its pads at both ends.
    fn padded(&self, x: &[usize]) -> Outs {
        let pads = self.ints_or_input("pads", 1)?;
        let r = x.len();
        one((0..r)
            .map(|i| {
                usize::try_from(
                    (x[i] as i64)
                        .checked_add(*pads.get(i)?)?
                        .checked_add(*pads.get(i + r)?)?,
                )
                .ok()
            })
            .collect::<Option<_>>()?)
    }
}

/// Shape `x` reshaped to `target`: 0 keeps the input dim (unless `allow_zero`), -1 takes what
/// is left; None when the element counts differ.
fn reshape(x: &[usize], target: &[i64], allow_zero: bool) -> Option<Vec<usize>> {
    let total = product(x.iter().copied())?;
    let mut out: Vec<usize> = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 if !allow_zero => out.push(*x.get(i)?),
            -1 => {
                infer = Some(i);
                out.push(1);
            }
            t => out.push(usize::try_from(t).ok()?),
        }
    }
    if let Some(i) = infer {
        let rest = product(out.iter().copied())?;
        out[i] = total.checked_div(rest)?;
    }
    (product(out.iter().copied())? == total).then_some(out)
}

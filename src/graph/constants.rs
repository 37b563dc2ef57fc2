//! Constants seen through the graph: the tensor behind a name when it is stored (an initializer
//! or a Constant node, possibly behind Identity / Cast), and the dims of weights that a small
//! constant subgraph reshapes, transposes or dequantizes before use.

use super::{GraphView, Source};
use crate::onnx::tensor::int_values;
use crate::onnx::{attr_ints, attr_t, op, NodeProto, TensorProto};

/// How many nodes a constant subgraph may chain before its dims are given up on.
const MAX_DEPTH: usize = 16;

impl<'a> GraphView<'a> {
    /// The constant tensor behind `name`: an initializer, a Constant node's value, or either of
    /// those seen through Identity / Cast nodes (as the TorchScript exporter writes weights).
    pub fn constant(&self, name: &str) -> Option<&'a TensorProto> {
        let mut name = name;
        for _ in 0..64 {
            match self.producer(name)? {
                Source::Initializer(i) => return Some(&self.graph.initializer[i]),
                Source::Input(_) => return None,
                Source::Node { node, .. } => {
                    let n = self.node(node);
                    match op(n) {
                        "Constant" => return attr_t(n, "value"),
                        "Identity" | "Cast" => name = n.input.first()?,
                        _ => return None,
                    }
                }
            }
        }
        None
    }

    /// Dims of the constant behind `name`: a stored tensor (through Identity / Cast), or one a
    /// small constant subgraph computes from it (Reshape with a constant shape, Transpose,
    /// Squeeze / Unsqueeze, DequantizeLinear), as older converters and quantizers write weights.
    pub fn constant_dims(&self, name: &str) -> Option<Vec<i64>> {
        self.constant_dims_at(name, 0)
    }

    fn constant_dims_at(&self, name: &str, depth: usize) -> Option<Vec<i64>> {
        if let Some(t) = self.constant(name) {
            return Some(t.dims.clone());
        }
        if depth > MAX_DEPTH {
            return None;
        }
        let n = self.node(self.producer_node(name)?);
        let x = || self.constant_dims_at(n.input.first()?, depth + 1);
        let ints = |i: usize| {
            n.input
                .get(i)
                .and_then(|s| self.constant(s))
                .and_then(int_values)
        };
        match op(n) {
            "DequantizeLinear" | "QuantizeLinear" | "Identity" | "Cast" => x(),
            "Reshape" => reshaped(&x()?, ints(1)?),
            "Transpose" => transposed(n, x()?),
            "Squeeze" => squeezed(n, x()?, ints(1)),
            "Unsqueeze" => unsqueezed(n, x()?, ints(1)),
            _ => None,
        }
    }
}

/// Product of `dims`, or None on overflow.
fn total(dims: &[i64]) -> Option<i64> {
    dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d))
}

/// Dims `x` reshaped to `target` (0 keeps the input dim, -1 takes what is left).
fn reshaped(x: &[i64], mut target: Vec<i64>) -> Option<Vec<i64>> {
    let all = total(x)?;
    for (i, d) in target.iter_mut().enumerate() {
        if *d == 0 {
            *d = *x.get(i)?;
        }
    }
    if let Some(p) = target.iter().position(|&d| d == -1) {
        let rest = target
            .iter()
            .filter(|&&d| d != -1)
            .try_fold(1i64, |a, &d| a.checked_mul(d))?;
        target[p] = all.checked_div(rest)?;
    }
    (total(&target) == Some(all) && target.iter().all(|&d| d >= 0)).then_some(target)
}

/// Dims `x` permuted by the node's `perm` (reversed without one).
fn transposed(n: &NodeProto, x: Vec<i64>) -> Option<Vec<i64>> {
    match attr_ints(n, "perm") {
        Some(p) => p
            .iter()
            .map(|&i| usize::try_from(i).ok().and_then(|i| x.get(i).copied()))
            .collect(),
        None => Some(x.into_iter().rev().collect()),
    }
}

/// The axes of a Squeeze / Unsqueeze: the attribute (older opsets) or the second input.
fn axes_of(n: &NodeProto, input: Option<Vec<i64>>) -> Option<Vec<i64>> {
    attr_ints(n, "axes").map(<[i64]>::to_vec).or(input)
}

/// Axis `a` of a rank-`rank` tensor counted from the front.
fn from_front(a: i64, rank: usize) -> Option<usize> {
    usize::try_from(if a < 0 { a + rank as i64 } else { a }).ok()
}

/// Dims `x` without the squeezed axes (every 1 without axes).
fn squeezed(n: &NodeProto, x: Vec<i64>, input: Option<Vec<i64>>) -> Option<Vec<i64>> {
    let axes: Vec<usize> = match axes_of(n, input) {
        Some(a) => a
            .iter()
            .map(|&a| from_front(a, x.len()))
            .collect::<Option<_>>()?,
        None => (0..x.len()).filter(|&i| x[i] == 1).collect(),
    };
    Some(
        x.iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect(),
    )
}

/// Dims `x` with a 1 inserted at each of the axes.
fn unsqueezed(n: &NodeProto, x: Vec<i64>, input: Option<Vec<i64>>) -> Option<Vec<i64>> {
    let axes = axes_of(n, input)?;
    let rank = x.len() + axes.len();
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| from_front(a, rank))
        .collect::<Option<_>>()?;
    let mut rest = x.into_iter();
    (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                Some(1)
            } else {
                rest.next()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::GraphBuilder;

    #[test]
    fn follows_constant_subgraphs_for_dims() {
        //  w [4,18] → Reshape([4,2,3,3]) → Transpose(1,0,2,3) → Unsqueeze(0) → Squeeze(0)
        let mut b = GraphBuilder::new(2);
        let w = b.weight(&[4, 18]);
        let shape = b.weight(&[4]);
        b.graph.initializer.last_mut().unwrap().data_type = Some(7);
        b.graph.initializer.last_mut().unwrap().int64_data = vec![4, 2, 3, -1];
        let r = b.node("Reshape", &[&w, &shape], vec![]);
        let perm = crate::onnx::AttributeProto {
            name: Some("perm".into()),
            ints: vec![1, 0, 2, 3],
            ..Default::default()
        };
        let t = b.node("Transpose", &[&r], vec![perm]);
        let axes = |v: i64| crate::onnx::AttributeProto {
            name: Some("axes".into()),
            ints: vec![v],
            ..Default::default()
        };
        let u = b.node("Unsqueeze", &[&t], vec![axes(0)]);
        let s = b.node("Squeeze", &[&u], vec![axes(0)]);
        let q = b.node("DequantizeLinear", &[&s], vec![]);
        let c = b.node("Conv", &["input", &q], vec![]);
        let g = b.finish(&c);
        let v = GraphView::new(&g).unwrap();
        assert_eq!(v.constant_dims(&r), Some(vec![4, 2, 3, 3]));
        assert_eq!(v.constant_dims(&t), Some(vec![2, 4, 3, 3]));
        assert_eq!(v.constant_dims(&u), Some(vec![1, 2, 4, 3, 3]));
        assert_eq!(v.constant_dims(&q), Some(vec![2, 4, 3, 3]));
        // A map computed from the graph input is not a constant.
        assert_eq!(v.constant_dims(&c), None);
    }

    #[test]
    fn sees_weights_through_identity() {
        let mut b = GraphBuilder::new(2);
        let w = b.weight(&[4, 2, 3, 3]);
        let id = b.node("Identity", &[&w], vec![]);
        let c = b.node("Conv", &["input", &id], vec![]);
        let g = b.finish(&c);
        let v = GraphView::new(&g).unwrap();
        assert_eq!(v.constant_dims(&id), Some(vec![4i64, 2, 3, 3]));
        assert_eq!(v.constant_dims("input"), None);
    }
}

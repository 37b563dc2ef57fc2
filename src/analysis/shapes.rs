//! Static shapes of the feature maps, propagated from the input shape through the ops CNNs use,
//! and the multiply-accumulates (MACs) of the convolutions and matrix products they imply.
//! Symbolic input dimensions take 1 unless a concrete input shape is given.

use super::features::{Features, BROADCAST, SAME_SHAPE};
use crate::graph::GraphView;
use crate::onnx::tensor::int_values;
use crate::onnx::{attr_i, attr_ints, describe_node, op, NodeProto};
use std::collections::HashMap;

/// Shapes per feature-map tensor.
pub struct Shapes {
    map: HashMap<String, Vec<usize>>,
    /// Why shapes stop, when they do: the first node whose output shape could not be derived.
    pub stopped_at: Option<String>,
}

/// The product of `dims`, or None on overflow (hostile dims must not wrap or panic).
fn product(dims: impl IntoIterator<Item = usize>) -> Option<usize> {
    dims.into_iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(d))
}

fn axis_of(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

fn broadcast(shapes: &[Vec<usize>]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(Vec::len).max()?;
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// Output spatial size of a sliding window, as ONNX defines it for Conv and pooling.
fn window(node: &NodeProto, input: &[usize], kernel: &[usize]) -> Option<Vec<usize>> {
    let n = kernel.len();
    let spatial = input.get(2..)?;
    if spatial.len() != n {
        return None;
    }
    let ints = |name: &str, default: i64| -> Vec<i64> {
        attr_ints(node, name).map_or_else(|| vec![default; n], <[i64]>::to_vec)
    };
    let (strides, dilations) = (ints("strides", 1), ints("dilations", 1));
    let pads = attr_ints(node, "pads").map_or_else(|| vec![0; 2 * n], <[i64]>::to_vec);
    let auto_pad = node
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("auto_pad"))
        .and_then(|a| a.s.as_deref())
        .unwrap_or(b"NOTSET");
    let ceil = attr_i(node, "ceil_mode").unwrap_or(0) == 1;
    (0..n)
        .map(|i| {
            // In i128: hostile attributes (pads or strides near i64::MAX) must not overflow.
            let (x, k) = (spatial[i] as i128, kernel[i] as i128);
            let s = i128::from(*strides.get(i)?.max(&1));
            let d = i128::from(*dilations.get(i)?.max(&1));
            let out = match auto_pad {
                b"SAME_UPPER" | b"SAME_LOWER" => (x + s - 1) / s,
                b"VALID" => (x - d * (k - 1) - 1).div_euclid(s) + 1,
                _ => {
                    let pad = i128::from(*pads.get(i)?) + i128::from(*pads.get(i + n)?);
                    let span = x + pad - d * (k - 1) - 1;
                    if ceil {
                        (span + s - 1).div_euclid(s) + 1
                    } else {
                        span.div_euclid(s) + 1
                    }
                }
            };
            usize::try_from(out).ok().filter(|&o| o > 0)
        })
        .collect()
}

impl Shapes {
    /// Propagates shapes from the single feature input; `input_shape` replaces its declared
    /// shape (symbolic dims are 1 otherwise).
    pub fn infer(view: &GraphView, feats: &Features, input_shape: Option<&[usize]>) -> Self {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        let mut stopped_at = None;
        for i in view.feature_inputs() {
            let name = view.graph.input[i].name.clone().unwrap_or_default();
            let declared = view.input_dims(i);
            let shape = match (input_shape, declared) {
                (Some(s), _) => Some(s.to_vec()),
                (None, Some(d)) => Some(
                    d.iter()
                        .map(|v| v.map_or(1, |v| usize::try_from(v).unwrap_or(1)))
                        .collect(),
                ),
                (None, None) => None,
            };
            if let Some(s) = shape {
                map.insert(name, s);
            }
        }
        for &n in &view.topo {
            let node = view.node(n);
            if !node.output.first().is_some_and(|o| feats.is_feature(o)) {
                continue;
            }
            let outs = Self::node_shapes(view, feats, &map, node);
            match outs {
                Some(outs) => {
                    for (o, s) in node.output.iter().zip(outs) {
                        map.insert(o.clone(), s);
                    }
                }
                None => {
                    stopped_at.get_or_insert_with(|| describe_node(node));
                }
            }
        }
        Self { map, stopped_at }
    }

    /// Shape of tensor `name`, if derived.
    pub fn get(&self, name: &str) -> Option<&[usize]> {
        self.map.get(name).map(Vec::as_slice)
    }

    fn node_shapes(
        view: &GraphView,
        feats: &Features,
        map: &HashMap<String, Vec<usize>>,
        node: &NodeProto,
    ) -> Option<Vec<Vec<usize>>> {
        let shape_of = |t: &str| -> Option<Vec<usize>> {
            map.get(t).cloned().or_else(|| {
                view.constant_dims(t)
                    .map(|d| d.iter().map(|&v| usize::try_from(v).unwrap_or(0)).collect())
            })
        };
        let ints_of = |i: usize| {
            node.input
                .get(i)
                .filter(|s| !s.is_empty())
                .and_then(|s| view.constant(s))
                .and_then(int_values)
        };
        let one = |s: Vec<usize>| Some(vec![s]);
        if op(node) == "Reshape" && ints_of(1).is_none() {
            // A target computed at run time: the closing Reshape of a channel shuffle
            // (Reshape → Transpose → Reshape) restores the shape the shuffle started from.
            let t = view.producer_node(node.input.first()?)?;
            let r = view.producer_node(view.node(t).input.first()?)?;
            if op(view.node(t)) != "Transpose" || op(view.node(r)) != "Reshape" {
                return None;
            }
            return one(map.get(view.node(r).input.first()?.as_str())?.clone());
        }
        let x = shape_of(node.input.first()?)?;
        match op(node) {
            "Conv" => {
                let w = view.constant_dims(node.input.get(1)?)?;
                let kernel: Vec<usize> = w
                    .get(2..)?
                    .iter()
                    .map(|&k| usize::try_from(k).ok())
                    .collect::<Option<_>>()?;
                let mut out = vec![*x.first()?, usize::try_from(w[0]).ok()?];
                out.extend(window(node, &x, &kernel)?);
                one(out)
            }
            "MaxPool" | "AveragePool" | "LpPool" => {
                let kernel: Vec<usize> = attr_ints(node, "kernel_shape")?
                    .iter()
                    .map(|&k| usize::try_from(k).ok())
                    .collect::<Option<_>>()?;
                let mut out = x.get(..2)?.to_vec();
                out.extend(window(node, &x, &kernel)?);
                Some(node.output.iter().map(|_| out.clone()).collect())
            }
            "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => {
                let mut out = x.get(..2)?.to_vec();
                out.extend(std::iter::repeat_n(1, x.len().saturating_sub(2)));
                one(out)
            }
            o if SAME_SHAPE.contains(&o) => Some(node.output.iter().map(|_| x.clone()).collect()),
            o if BROADCAST.contains(&o) => {
                let all: Option<Vec<Vec<usize>>> = node.input.iter().map(|i| shape_of(i)).collect();
                one(broadcast(&all?)?)
            }
            "Concat" => {
                let axis = axis_of(attr_i(node, "axis")?, x.len())?;
                let all: Vec<Vec<usize>> = node
                    .input
                    .iter()
                    .map(|i| shape_of(i))
                    .collect::<Option<_>>()?;
                let mut out = x.clone();
                out[axis] = all
                    .iter()
                    .map(|s| s.get(axis).copied())
                    .try_fold(0usize, |acc, d| acc.checked_add(d?))?;
                one(out)
            }
            "Split" => {
                let axis = axis_of(attr_i(node, "axis").unwrap_or(0), x.len())?;
                let k = node.output.len();
                let sizes: Vec<usize> = match attr_ints(node, "split")
                    .map(<[i64]>::to_vec)
                    .or_else(|| ints_of(1))
                {
                    Some(s) => s
                        .iter()
                        .map(|&v| usize::try_from(v).ok())
                        .collect::<Option<_>>()?,
                    None if k > 0 && x[axis] % k == 0 => vec![x[axis] / k; k],
                    None => return None,
                };
                Some(
                    sizes
                        .iter()
                        .map(|&s| {
                            let mut o = x.clone();
                            o[axis] = s;
                            o
                        })
                        .collect(),
                )
            }
            "Slice" => {
                let (starts, ends) = (ints_of(1), ints_of(2));
                let axes = ints_of(3).unwrap_or_else(|| (0..x.len() as i64).collect());
                let steps = ints_of(4).unwrap_or_else(|| vec![1; axes.len()]);
                let mut out = x.clone();
                match (starts, ends) {
                    (Some(st), Some(en)) => {
                        for (j, &a) in axes.iter().enumerate() {
                            let a = axis_of(a, x.len())?;
                            let dim = x[a] as i64;
                            let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
                            let step = *steps.get(j)?;
                            if step != 1 {
                                return None;
                            }
                            out[a] =
                                usize::try_from(clamp(*en.get(j)?) - clamp(*st.get(j)?)).ok()?;
                        }
                    }
                    // Bounds computed at run time: only a channel chunk the feature analysis sized.
                    _ => *out.get_mut(1)? = feats.channels(node.output.first()?)?,
                }
                one(out)
            }
            "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceSum" | "ReduceL2" => {
                let keep = attr_i(node, "keepdims").unwrap_or(1) == 1;
                let axes: Vec<usize> = match attr_ints(node, "axes")
                    .map(<[i64]>::to_vec)
                    .or_else(|| ints_of(1))
                {
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
            "Flatten" => {
                let axis = axis_of(attr_i(node, "axis").unwrap_or(1), x.len() + 1)?;
                one(vec![
                    product(x[..axis].iter().copied())?,
                    product(x[axis..].iter().copied())?,
                ])
            }
            "Reshape" => {
                let target = ints_of(1)?;
                let total = product(x.iter().copied())?;
                let mut out: Vec<usize> = Vec::with_capacity(target.len());
                let mut infer = None;
                for (i, &t) in target.iter().enumerate() {
                    match t {
                        0 if attr_i(node, "allowzero").unwrap_or(0) == 0 => out.push(*x.get(i)?),
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
                (product(out.iter().copied())? == total).then(|| vec![out])
            }
            "Transpose" => {
                let perm: Vec<usize> = match attr_ints(node, "perm") {
                    Some(p) => p
                        .iter()
                        .map(|&v| usize::try_from(v).ok())
                        .collect::<Option<_>>()?,
                    None => (0..x.len()).rev().collect(),
                };
                one(perm
                    .iter()
                    .map(|&p| x.get(p).copied())
                    .collect::<Option<_>>()?)
            }
            "Gemm" => {
                let b = shape_of(node.input.get(1)?)?;
                let ta = attr_i(node, "transA").unwrap_or(0) == 1;
                let tb = attr_i(node, "transB").unwrap_or(0) == 1;
                let m = if ta { *x.get(1)? } else { *x.first()? };
                let n = if tb { *b.first()? } else { *b.get(1)? };
                one(vec![m, n])
            }
            "MatMul" => {
                let b = shape_of(node.input.get(1)?)?;
                let mut out = x.clone();
                *out.last_mut()? = *b.last()?;
                one(out)
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = attr_ints(node, "axes")
                    .map(<[i64]>::to_vec)
                    .or_else(|| ints_of(1))?;
                if op(node) == "Squeeze" {
                    let drop: Vec<usize> = axes
                        .iter()
                        .map(|&a| axis_of(a, x.len()))
                        .collect::<Option<_>>()?;
                    one((0..x.len())
                        .filter(|i| !drop.contains(i))
                        .map(|i| x[i])
                        .collect())
                } else {
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
            "Pad" => {
                let pads = attr_ints(node, "pads")
                    .map(<[i64]>::to_vec)
                    .or_else(|| ints_of(1))?;
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
            _ => None,
        }
    }
}

/// Multiply-accumulates of the graph's convolutions and matrix products, or the first node whose
/// count cannot be derived (its shapes are unknown).
pub fn macs(view: &GraphView, shapes: &Shapes) -> Result<u64, String> {
    let mut total: u64 = 0;
    for &n in &view.topo {
        let node = view.node(n);
        let out = || node.output.first().and_then(|o| shapes.get(o));
        let dims = |d: &[i64]| product(d.iter().map(|&v| usize::try_from(v).unwrap_or(usize::MAX)));
        let count: Option<usize> = match op(node) {
            // Every output element sums C_in/group · kernel products.
            "Conv" => (|| {
                let w = view.constant_dims(node.input.get(1)?)?;
                product(out()?.iter().copied())?.checked_mul(dims(w.get(1..)?)?)
            })(),
            // Every input element spreads over C_out/group · kernel outputs.
            "ConvTranspose" => (|| {
                let w = view.constant_dims(node.input.get(1)?)?;
                let x = shapes.get(node.input.first()?)?;
                product(x.iter().copied())?.checked_mul(dims(w.get(1..)?)?)
            })(),
            "Gemm" | "MatMul" => (|| {
                let a = shapes.get(node.input.first()?)?;
                let k = if op(node) == "Gemm" && attr_i(node, "transA").unwrap_or(0) == 1 {
                    *a.first()?
                } else {
                    *a.last()?
                };
                product(out()?.iter().copied())?.checked_mul(k)
            })(),
            _ => continue,
        };
        match count {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::AttributeProto;

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn node(attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            attribute: attrs,
            ..Default::default()
        }
    }

    #[test]
    fn sliding_windows_follow_the_onnx_formulas() {
        // 7×7 stride 2 pad 3 on 224: (224 + 6 − 7) / 2 + 1 = 112.
        let conv = node(vec![ints("strides", &[2, 2]), ints("pads", &[3, 3, 3, 3])]);
        assert_eq!(
            window(&conv, &[1, 3, 224, 224], &[7, 7]),
            Some(vec![112, 112])
        );
        // 3×3 stride 2 pad 1 max pool on 112: 56.
        let pool = node(vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])]);
        assert_eq!(
            window(&pool, &[1, 64, 112, 112], &[3, 3]),
            Some(vec![56, 56])
        );
        // ceil_mode: 3×3 stride 2 on 14 gives 7 rather than 6.
        let mut ceil = node(vec![ints("strides", &[2, 2])]);
        ceil.attribute.push(AttributeProto {
            name: Some("ceil_mode".into()),
            i: Some(1),
            ..Default::default()
        });
        assert_eq!(window(&ceil, &[1, 8, 14, 14], &[3, 3]), Some(vec![7, 7]));
        // SAME_UPPER: ceil(15 / 2) = 8; dilation 2 on a 3×3 without pads: 15 − 4 = 11.
        let mut same = node(vec![ints("strides", &[2, 2])]);
        same.attribute.push(AttributeProto {
            name: Some("auto_pad".into()),
            s: Some(b"SAME_UPPER".to_vec()),
            ..Default::default()
        });
        assert_eq!(window(&same, &[1, 8, 15, 15], &[3, 3]), Some(vec![8, 8]));
        let dilated = node(vec![ints("dilations", &[2, 2])]);
        assert_eq!(
            window(&dilated, &[1, 8, 15, 15], &[3, 3]),
            Some(vec![11, 11])
        );
        // A kernel larger than the padded input has no output.
        assert_eq!(window(&node(vec![]), &[1, 8, 2, 2], &[3, 3]), None);
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast(&[vec![1, 8, 4, 4], vec![1, 8, 1, 1]]),
            Some(vec![1, 8, 4, 4])
        );
        assert_eq!(
            broadcast(&[vec![1, 8, 4, 4], vec![]]),
            Some(vec![1, 8, 4, 4])
        );
        assert_eq!(broadcast(&[vec![8, 4], vec![3, 4]]), None);
    }
}

//! The rules that derive dims only: convolutions and pools (sliding windows), reductions,
//! splits, transposes, broadcasting, matrix products, padding and resizing.

use super::values::{broadcast, one, pick_values};
use super::{axes_of, axis_of, At, Dim, Fact, Outs};
use crate::onnx::op::Op;
use crate::onnx::{attr_ints, NodeProto};

/// Dims as sizes; None when one is negative.
fn sizes(v: &[i64]) -> Option<Vec<usize>> {
    v.iter().map(|&k| usize::try_from(k).ok()).collect()
}

/// Output spatial size of a sliding window, as ONNX defines it for Conv and the pools.
fn window(node: &NodeProto, input: &[Dim], kernel: &[usize]) -> Option<Vec<Dim>> {
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
    let ceil = crate::onnx::attr_i(node, "ceil_mode").unwrap_or(0) == 1;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // In i128: hostile attributes (pads or strides near i64::MAX) must not overflow.
        let s = i128::from(*strides.get(i)?.max(&1));
        let d = i128::from(*dilations.get(i)?.max(&1));
        let pad = i128::from(*pads.get(i)?) + i128::from(*pads.get(i + n)?);
        let Some(x) = spatial[i] else {
            out.push(None);
            continue;
        };
        let (x, k) = (x as i128, kernel[i] as i128);
        let size = match auto_pad {
            b"SAME_UPPER" | b"SAME_LOWER" => (x + s - 1) / s,
            b"VALID" => (x - d * (k - 1) - 1).div_euclid(s) + 1,
            _ => {
                let span = x + pad - d * (k - 1) - 1;
                if ceil {
                    (span + s - 1).div_euclid(s) + 1
                } else {
                    span.div_euclid(s) + 1
                }
            }
        };
        // An empty or negative window leaves the dim unknown (the counts stop there).
        out.push(usize::try_from(size).ok().filter(|&o| o > 0));
    }
    Some(out)
}

/// Conv: [N, the weight's output channels, the window's spatial size]; on an input of unknown
/// shape the channels are still the weight's.
pub(super) fn conv(at: &At) -> Outs {
    let w = at.input(1)?.known_dims()?;
    let kernel = w.get(2..)?;
    let mut out = vec![None, Some(*w.first()?)];
    match at.dims(0) {
        Some(x) if x.len() == kernel.len() + 2 => {
            out[0] = x[0];
            out.extend(window(at.node, x, kernel)?);
        }
        _ => out.extend(std::iter::repeat_n(None, kernel.len())),
    }
    one(out)
}

/// ConvTranspose: [N, weight dim 1 · group, stride·(x − 1) + output_padding + dilated kernel −
/// pads] (or the `output_shape` attribute).
pub(super) fn conv_transpose(at: &At) -> Outs {
    let x = at.dims(0)?;
    let w = at.input(1)?.known_dims()?;
    let group = usize::try_from(at.attr("group", 1)).ok()?;
    let mut out = vec![*x.first()?, Some(w.get(1)?.checked_mul(group)?)];
    let kernel = w.get(2..)?;
    let n = kernel.len();
    if let Some(shape) = attr_ints(at.node, "output_shape") {
        out.extend(
            sizes(shape.get(shape.len().checked_sub(n)?..)?)?
                .into_iter()
                .map(Some),
        );
        return one(out);
    }
    let get = |name: &str, i: usize, default: i64| {
        attr_ints(at.node, name).map_or(Some(default), |v| v.get(i).copied())
    };
    for (i, &k) in kernel.iter().enumerate() {
        let size = x.get(2 + i)?.and_then(|x| {
            let (s, d) = (get("strides", i, 1)?, get("dilations", i, 1)?);
            let pads = get("pads", i, 0)?.checked_add(get("pads", i + n, 0)?)?;
            let v = s
                .checked_mul(i64::try_from(x).ok()? - 1)?
                .checked_add(get("output_padding", i, 0)?)?
                .checked_add(d.checked_mul(i64::try_from(k).ok()? - 1)? + 1)?
                .checked_sub(pads)?;
            usize::try_from(v).ok()
        });
        out.push(size);
    }
    one(out)
}

/// MaxPool, AveragePool, LpPool: the channels kept, the window's spatial size (MaxPool's
/// indices output has the same shape).
pub(super) fn pool(at: &At) -> Outs {
    let x = at.dims(0)?;
    let kernel = sizes(attr_ints(at.node, "kernel_shape")?)?;
    let mut out = x.get(..2)?.to_vec();
    out.extend(window(at.node, x, &kernel)?);
    at.each(&out)
}

/// The global pools: [N, C, 1, …].
pub(super) fn global_pool(at: &At) -> Outs {
    let x = at.dims(0)?;
    let mut out = x.get(..2)?.to_vec();
    out.extend(std::iter::repeat_n(Some(1), x.len().saturating_sub(2)));
    one(out)
}

/// Reductions over the given axes (all without them, unless `noop_with_empty_axes`), kept as 1
/// or dropped.
pub(super) fn reduce(at: &At) -> Outs {
    let x = at.dims(0)?;
    let keep = at.attr("keepdims", 1) == 1;
    let axes: Vec<usize> = match at.ints_or_input("axes", 1) {
        Some(a) if !a.is_empty() => axes_of(&a, x.len())?,
        _ if at.attr("noop_with_empty_axes", 0) == 1 => return one(x.to_vec()),
        _ if at.node.input.get(1).is_some_and(|s| !s.is_empty()) => return None,
        _ => (0..x.len()).collect(),
    };
    one((0..x.len())
        .filter_map(|i| match (axes.contains(&i), keep) {
            (true, true) => Some(Some(1)),
            (true, false) => None,
            _ => Some(x[i]),
        })
        .collect())
}

/// Split: the given sizes along the axis, or equal parts (the last one smaller with
/// `num_outputs`, as opset 18 defines it).
pub(super) fn split(at: &At) -> Outs {
    let x = at.dims(0)?;
    let axis = axis_of(at.attr("axis", 0), x.len())?;
    let k = at.node.output.len();
    let parts: Vec<Dim> = match at.ints_or_input("split", 1) {
        Some(s) => sizes(&s)?.into_iter().map(Some).collect(),
        None => match x[axis] {
            Some(d) if k > 0 => {
                let part = d.div_ceil(k);
                (0..k)
                    .map(|i| Some(part.min(d.saturating_sub(i * part))))
                    .collect()
            }
            None if k > 0 => vec![None; k],
            _ => return None,
        },
    };
    Some(
        parts
            .into_iter()
            .map(|p| {
                let mut o = x.to_vec();
                o[axis] = p;
                Fact::of_dims(o)
            })
            .collect(),
    )
}

/// Transpose by `perm` (reversed without one); the values of a small integer tensor move too.
pub(super) fn transpose(at: &At) -> Outs {
    let x = at.dims(0)?;
    let perm = match attr_ints(at.node, "perm") {
        Some(p) => sizes(p)?,
        None => (0..x.len()).rev().collect(),
    };
    if perm.len() != x.len() {
        return None;
    }
    let dims: Vec<Dim> = perm
        .iter()
        .map(|&p| x.get(p).copied())
        .collect::<Option<_>>()?;
    let ints = at.input(0)?.ints.as_ref().and_then(|v| {
        let from = to_known(x)?;
        // Output axis i is input axis perm[i].
        pick_values(v, &from, &to_known(&dims)?, |o| {
            let mut k = vec![0; o.len()];
            for (i, &p) in perm.iter().enumerate() {
                k[p] = o[i];
            }
            Some(k)
        })
    });
    Some(vec![Fact {
        dims: Some(dims),
        ints,
        floats: None,
    }])
}

/// The dims, all known.
fn to_known(dims: &[Dim]) -> Option<Vec<usize>> {
    dims.iter().copied().collect()
}

/// Expand: the input broadcast with the target shape.
pub(super) fn expand(at: &At) -> Outs {
    let x = at.dims(0)?;
    let target: Vec<Dim> = at
        .input(1)?
        .ints
        .as_ref()?
        .iter()
        .map(|v| v.and_then(|v| usize::try_from(v).ok()))
        .collect();
    one(broadcast([x, target.as_slice()])?)
}

/// Tile: each dim times its repeat count.
pub(super) fn tile(at: &At) -> Outs {
    let x = at.dims(0)?;
    let reps = sizes(&at.ints(1)?)?;
    if reps.len() != x.len() {
        return None;
    }
    one(x
        .iter()
        .zip(reps)
        .map(|(d, r)| d.and_then(|d| d.checked_mul(r)))
        .collect())
}

/// RandomNormal / RandomUniform: the dims of the `shape` attribute.
pub(super) fn random(at: &At) -> Outs {
    let dims = sizes(attr_ints(at.node, "shape")?)?;
    one(dims.into_iter().map(Some).collect())
}

/// OneHot: the indices' dims with the depth (input 1's value) inserted at `axis` (default −1,
/// the end).
pub(super) fn one_hot(at: &At) -> Outs {
    let idx = at.dims(0)?;
    let depth = at.input(1)?;
    let depth = match depth.known_ints() {
        Some(v) => *v.first()?,
        None => {
            let f = *depth.floats.as_ref()?.first()?;
            (f.is_finite() && f.abs() < i64::MAX as f64).then_some(f as i64)?
        }
    };
    let depth = usize::try_from(depth).ok()?;
    let axis = axis_of(at.attr("axis", -1), idx.len() + 1)?;
    let mut dims = idx.to_vec();
    dims.insert(axis, Some(depth));
    one(dims)
}

/// MatMul (numpy: batch dims broadcast, [.., M, K] × [.., K, N]) and Gemm (2-D, optionally
/// transposed).
pub(super) fn matrix_product(at: &At) -> Outs {
    let (a, b) = (at.dims(0)?, at.dims(1)?);
    if Op::of(at.node) == Op::Gemm {
        let m = if at.attr("transA", 0) == 1 {
            a.get(1)?
        } else {
            a.first()?
        };
        let n = if at.attr("transB", 0) == 1 {
            b.first()?
        } else {
            b.get(1)?
        };
        return one(vec![*m, *n]);
    }
    match (a.len(), b.len()) {
        (0, _) | (_, 0) => None,
        (_, 1) => one(a[..a.len() - 1].to_vec()),
        (1, _) => {
            let mut out = b[..b.len() - 2].to_vec();
            out.push(b[b.len() - 1]);
            one(out)
        }
        (ra, rb) => {
            let mut out = broadcast([&a[..ra - 2], &b[..rb - 2]])?;
            out.extend([a[ra - 2], b[rb - 1]]);
            one(out)
        }
    }
}

/// Einsum with an explicit output (`bhwc,cd->bhwd`, a Linear layer on a channels-last map): each
/// output letter takes the size its inputs give that letter. Ellipses are not followed.
pub(super) fn einsum(at: &At) -> Outs {
    let a = at
        .node
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("equation"))?;
    let equation: String = String::from_utf8_lossy(a.s.as_deref()?)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let (ins, out) = equation.split_once("->")?;
    if equation.contains('.') {
        return None;
    }
    let mut sizes: std::collections::HashMap<char, Dim> = std::collections::HashMap::new();
    for (i, letters) in ins.split(',').enumerate() {
        let dims = at.dims(i)?;
        if dims.len() != letters.chars().count() {
            return None;
        }
        for (l, &d) in letters.chars().zip(dims) {
            let known = sizes.entry(l).or_insert(d);
            match (*known, d) {
                (Some(x), Some(y)) if x != y && x != 1 && y != 1 => return None,
                (None, d) | (Some(1), d) => *known = d,
                _ => {}
            }
        }
    }
    one(out
        .chars()
        .map(|l| sizes.get(&l).copied())
        .collect::<Option<_>>()?)
}

/// Pad: each dim grows by its pads at both ends (pads of the given axes only, from opset 18).
pub(super) fn pad(at: &At) -> Outs {
    let x = at.dims(0)?;
    let pads = at.ints_or_input("pads", 1)?;
    let r = x.len();
    let axes: Vec<usize> = match at.ints(3) {
        Some(a) => axes_of(&a, r)?,
        None => (0..r).collect(),
    };
    let k = axes.len();
    if pads.len() != 2 * k {
        return None;
    }
    let mut out = x.to_vec();
    for (j, &a) in axes.iter().enumerate() {
        out[a] = out[a].and_then(|d| {
            let v = i64::try_from(d)
                .ok()?
                .checked_add(pads[j])?
                .checked_add(pads[j + k])?;
            usize::try_from(v).ok()
        });
    }
    one(out)
}

/// Resize / Upsample: the `sizes` input, or each dim times its scale (rounded down).
pub(super) fn resize(at: &At) -> Outs {
    let x = at.dims(0)?;
    let scales_at = if Op::of(at.node) == Op::Upsample {
        1
    } else {
        2
    };
    if let Some(s) = at.ints(3) {
        if s.len() == x.len() {
            return one(sizes(&s)?.into_iter().map(Some).collect());
        }
    }
    let scales = at.input(scales_at).and_then(|f| f.floats.clone());
    match scales.filter(|s| s.len() == x.len()) {
        Some(s) => one(x
            .iter()
            .zip(s)
            .map(|(d, s)| {
                let v = ((*d)? as f64 * s).floor();
                (v.is_finite() && v >= 0.0 && v < usize::MAX as f64).then_some(v as usize)
            })
            .collect()),
        // Unknown scales: the batch and the channels are kept.
        None => {
            let mut out = x.get(..2)?.to_vec();
            out.extend(std::iter::repeat_n(None, x.len().saturating_sub(2)));
            one(out)
        }
    }
}

/// DepthToSpace / SpaceToDepth: channels divided (or multiplied) by blocksize², each spatial dim
/// multiplied (or divided) by blocksize.
pub(super) fn depth_space(at: &At) -> Outs {
    let x = at.dims(0)?;
    let b = usize::try_from(at.attr("blocksize", 0))
        .ok()
        .filter(|&b| b > 0)?;
    let to_space = Op::of(at.node) == Op::DepthToSpace;
    let bb = b.checked_mul(b)?;
    type Scale = fn(usize, usize) -> Option<usize>;
    let (c, sp): (Scale, Scale) = if to_space {
        (usize::checked_div, usize::checked_mul)
    } else {
        (usize::checked_mul, usize::checked_div)
    };
    let mut out = vec![*x.first()?, x.get(1)?.and_then(|d| c(d, bb))];
    out.extend(x.get(2..)?.iter().map(|d| d.and_then(|d| sp(d, b))));
    one(out)
}

#[cfg(test)]
pub(super) fn window_for_tests(
    node: &NodeProto,
    input: &[usize],
    kernel: &[usize],
) -> Option<Vec<usize>> {
    let input: Vec<Dim> = input.iter().copied().map(Some).collect();
    window(node, &input, kernel)?.into_iter().collect()
}

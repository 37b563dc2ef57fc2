//! The rules that derive values as well as dims: shape arithmetic (Shape, Gather, Concat,
//! elementwise integer math, Cast, Range, ConstantOfShape) and the ops that rearrange or select
//! elements (Reshape, Flatten, Squeeze, Unsqueeze, Slice), which carry values along.

use super::values::{broadcast, known_product, one, pick_values};
use super::{axes_of, axis_of, At, Dim, Fact, Outs, MAX_VALUES};
use crate::onnx::op::Op;
use crate::onnx::{attr_i, attr_ints, attr_t};

/// The ONNX integer element types (values are tracked through Casts to these).
const INTEGER_TYPES: &[i64] = &[2, 3, 4, 5, 6, 7, 12, 13];

/// The ONNX float element types.
const FLOAT_TYPES: &[i64] = &[1, 10, 11, 16];

/// Values derived for a tensor of `dims`, kept only when it is small.
fn small<T>(dims: &[Dim], values: Option<Vec<T>>) -> Option<Vec<T>> {
    let n = known_product(dims)?;
    values.filter(|v| n <= MAX_VALUES && v.len() == n)
}

/// Cast: the same dims; integer values to an integer type, values as floats to a float type.
pub(super) fn cast(at: &At) -> Outs {
    let x = at.input(0)?;
    let to = attr_i(at.node, "to").unwrap_or(0);
    let mut out = Fact::of_dims(x.dims.clone()?);
    if INTEGER_TYPES.contains(&to) {
        out.ints = x.ints.clone().or_else(|| {
            let f = x.floats.as_ref()?;
            Some(
                f.iter()
                    .map(|v| v.is_finite().then_some(v.trunc() as i64))
                    .collect(),
            )
        });
    } else if FLOAT_TYPES.contains(&to) {
        out.floats = x
            .floats
            .clone()
            .or_else(|| Some(x.known_ints()?.iter().map(|&v| v as f64).collect()));
    }
    Some(vec![out])
}

/// Shape: the input's dims as values (between `start` and `end` from opset 15).
pub(super) fn shape_of(at: &At) -> Outs {
    let x = at.dims(0)?;
    let r = x.len() as i64;
    let bound = |name: &str, default: i64| {
        let v = attr_i(at.node, name).unwrap_or(default);
        let v = if v < 0 { v.saturating_add(r) } else { v };
        v.clamp(0, r) as usize
    };
    let (start, end) = (bound("start", 0), bound("end", r));
    let values = x
        .get(start..end.max(start))?
        .iter()
        .map(|d| d.and_then(|d| i64::try_from(d).ok()))
        .collect();
    Some(vec![Fact::of_ints(values)])
}

/// Size: the input's element count, a scalar.
pub(super) fn size_of(at: &At) -> Outs {
    let n = known_product(at.dims(0)?).and_then(|n| i64::try_from(n).ok());
    Some(vec![Fact {
        dims: Some(vec![]),
        ints: Some(vec![n]),
        floats: None,
    }])
}

/// ConstantOfShape: dims from the input's values, filled with the `value` attribute.
pub(super) fn constant_of_shape(at: &At) -> Outs {
    let dims: Vec<Dim> = at
        .input(0)?
        .ints
        .as_ref()?
        .iter()
        .map(|v| v.and_then(|v| usize::try_from(v).ok()))
        .collect();
    let value = attr_t(at.node, "value").map(Fact::of_tensor);
    let n = known_product(&dims).filter(|&n| n <= MAX_VALUES);
    let fill = |v: Option<&Vec<Option<i64>>>| Some(vec![*v?.first()?; n?]);
    let (ints, floats) = match &value {
        Some(v) => (
            fill(v.ints.as_ref()),
            v.floats.as_ref().and_then(|f| Some(vec![*f.first()?; n?])),
        ),
        None => (None, n.map(|n| vec![0.0; n])),
    };
    Some(vec![Fact {
        dims: Some(dims),
        ints,
        floats,
    }])
}

/// Gather: data dims before the axis, the indices' dims, data dims after; the values when the
/// data is a small 1-D integer tensor and the indices are known.
pub(super) fn gather(at: &At) -> Outs {
    let (data, idx) = (at.input(0)?, at.input(1)?);
    let d = data.dims.as_ref()?;
    let i = idx.dims.as_ref()?;
    let axis = axis_of(at.attr("axis", 0), d.len())?;
    let mut dims = d[..axis].to_vec();
    dims.extend_from_slice(i);
    dims.extend_from_slice(&d[axis + 1..]);
    let ints = match (&data.ints, idx.known_ints()) {
        (Some(v), Some(ix)) if d.len() == 1 => ix
            .iter()
            .map(|&k| {
                let k = if k < 0 {
                    k.checked_add(v.len() as i64)?
                } else {
                    k
                };
                usize::try_from(k).ok().and_then(|k| v.get(k).copied())
            })
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    Some(vec![Fact {
        ints: small(&dims, ints),
        dims: Some(dims),
        floats: None,
    }])
}

/// Range: start, start + delta, … up to limit; over integers with the values, over floats the
/// length alone (max(0, ceil((limit − start) / delta)), as ONNX defines it).
pub(super) fn range(at: &At) -> Outs {
    let scalar = |i: usize| at.ints(i).and_then(|v| v.first().copied());
    let (start, limit, delta) = (scalar(0), scalar(1), scalar(2));
    let n = match (start, limit, delta) {
        (Some(s), Some(l), Some(d)) if d != 0 => {
            let span = i128::from(l) - i128::from(s);
            let n = (span + i128::from(d) - i128::from(d.signum())) / i128::from(d);
            Some(usize::try_from(n.max(0)).ok()?)
        }
        _ => float_range_len(at),
    };
    let ints = n.filter(|&n| n <= MAX_VALUES).and_then(|n| {
        let (s, d) = (start?, delta?);
        (0..n as i64)
            .map(|k| k.checked_mul(d).and_then(|v| v.checked_add(s)).map(Some))
            .collect()
    });
    Some(vec![Fact {
        dims: Some(vec![n]),
        ints,
        floats: None,
    }])
}

/// A unary op whose integer values are folded ([`Op::folds_ints`]): the input's dims, and its integer values mapped.
pub(super) fn unary(at: &At) -> Outs {
    let x = at.input(0)?;
    let f: fn(i64) -> Option<i64> = match Op::of(at.node) {
        Op::Abs => i64::checked_abs,
        Op::Neg => i64::checked_neg,
        Op::Relu => |v| Some(v.max(0)),
        Op::Sign => |v| Some(v.signum()),
        _ => Some,
    };
    let ints = x
        .ints
        .as_ref()
        .map(|v| v.iter().map(|v| v.and_then(f)).collect());
    Some(vec![Fact {
        dims: Some(x.dims.clone()?),
        ints,
        floats: None,
    }])
}

/// The length of a Range over float scalars whose values are known; None when not known or
/// not finite.
fn float_range_len(at: &At) -> Option<usize> {
    let scalar = |i: usize| at.input(i)?.floats.as_ref()?.first().copied();
    let (s, l, d) = (scalar(0)?, scalar(1)?, scalar(2)?);
    let n = ((l - s) / d).ceil().max(0.0);
    (n.is_finite() && d != 0.0 && n < usize::MAX as f64).then_some(n as usize)
}

/// Elementwise ops: numpy broadcasting of every operand's dims; for integer arithmetic of two
/// small operands, the values.
pub(super) fn elementwise(at: &At) -> Outs {
    let all: Vec<&[Dim]> = at
        .node
        .input
        .iter()
        .enumerate()
        .map(|(i, _)| at.dims(i))
        .collect::<Option<_>>()?;
    let dims = broadcast(all)?;
    let ints = match (
        at.input(0).and_then(|f| f.ints.as_ref()),
        at.input(1).and_then(|f| f.ints.as_ref()),
    ) {
        (Some(a), Some(b)) if at.node.input.len() == 2 => integer_math(Op::of(at.node), a, b),
        _ => None,
    };
    Some(vec![Fact {
        ints: small(&dims, ints),
        dims: Some(dims),
        floats: None,
    }])
}

/// `a op b` elementwise, one operand repeated when it has a single value.
fn integer_math(o: Op, a: &[Option<i64>], b: &[Option<i64>]) -> Option<Vec<Option<i64>>> {
    let n = a.len().max(b.len());
    if (a.len() != n && a.len() != 1) || (b.len() != n && b.len() != 1) {
        return None;
    }
    let f: fn(i64, i64) -> Option<i64> = match o {
        Op::Add => i64::checked_add,
        Op::Sub => i64::checked_sub,
        Op::Mul => i64::checked_mul,
        Op::Div => i64::checked_div,
        Op::Mod => i64::checked_rem_euclid,
        Op::Max => |x, y| Some(x.max(y)),
        Op::Min => |x, y| Some(x.min(y)),
        _ => return None,
    };
    let at = |v: &[Option<i64>], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    Some((0..n).map(|i| f(at(a, i)?, at(b, i)?)).collect())
}

/// Concat: the sizes along the axis add up; other dims from whichever input knows them; 1-D
/// values are concatenated.
pub(super) fn concat(at: &At) -> Outs {
    let all: Vec<&Fact> = (0..at.node.input.len())
        .map(|i| at.input(i))
        .collect::<Option<_>>()?;
    let first = all.first()?.dims.as_ref()?;
    let axis = axis_of(attr_i(at.node, "axis")?, first.len())?;
    let mut dims = first.clone();
    let mut sum = Some(0usize);
    for f in &all {
        let d = f.dims.as_ref().filter(|d| d.len() == first.len())?;
        for (i, (o, &v)) in dims.iter_mut().zip(d).enumerate() {
            if i != axis && o.is_none() {
                *o = v;
            }
        }
        sum = sum.zip(d[axis]).and_then(|(s, v)| s.checked_add(v));
    }
    dims[axis] = sum;
    let ints = all
        .iter()
        .map(|f| f.ints.clone())
        .collect::<Option<Vec<_>>>()
        .map(|v| v.concat());
    Some(vec![Fact {
        ints: small(&dims, ints),
        dims: Some(dims),
        floats: None,
    }])
}

/// The bounds of one sliced axis of size `d`, as ONNX clamps them: (start, length).
fn slice_bounds(d: usize, start: i64, end: i64, step: i64) -> Option<(i64, usize)> {
    let d = i64::try_from(d).ok()?;
    let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (wrap(start), wrap(end));
    let (s, e) = if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(0, (d - 1).max(0)), e.clamp(-1, d - 1))
    };
    let span = i128::from(e) - i128::from(s);
    let step = i128::from(step);
    let n = if step > 0 {
        (span + step - 1) / step
    } else {
        (span + step + 1) / step
    };
    Some((s, usize::try_from(n.max(0)).ok()?))
}

/// Slice: each sliced axis by its clamped bounds (starts / ends / axes / steps as inputs, or as
/// attributes before opset 10); the values of a sliced 1-D integer tensor.
pub(super) fn slice(at: &At) -> Outs {
    let x = at.input(0)?;
    let dims = x.dims.as_ref()?;
    let r = dims.len();
    let (starts, ends) = (at.ints_or_input("starts", 1)?, at.ints_or_input("ends", 2)?);
    let axes = match attr_ints(at.node, "axes")
        .map(<[i64]>::to_vec)
        .or_else(|| at.ints(3))
    {
        Some(a) => a,
        None if at.node.input.get(3).is_some_and(|s| !s.is_empty()) => return None,
        None => (0..r as i64).collect(),
    };
    let steps = match at.ints(4) {
        Some(s) => s,
        None if at.node.input.get(4).is_some_and(|s| !s.is_empty()) => return None,
        None => vec![1; axes.len()],
    };
    let mut out = dims.clone();
    // Per axis, the first index taken and the step (untouched axes: 0 and 1).
    let mut picks: Vec<(i64, i64)> = vec![(0, 1); r];
    for (j, &a) in axes.iter().enumerate() {
        let a = axis_of(a, r)?;
        let step = *steps.get(j).filter(|&&s| s != 0)?;
        let bounds = out[a].and_then(|d| slice_bounds(d, *starts.get(j)?, *ends.get(j)?, step));
        out[a] = bounds.map(|(_, n)| n);
        picks[a] = (bounds.map_or(0, |(s, _)| s), step);
    }
    let ints = x.ints.as_ref().and_then(|v| {
        let from: Vec<usize> = dims.iter().copied().collect::<Option<_>>()?;
        let to: Vec<usize> = out.iter().copied().collect::<Option<_>>()?;
        pick_values(v, &from, &to, |o| {
            o.iter()
                .zip(&picks)
                .map(|(&o, &(s, step))| {
                    let k = s.checked_add(i64::try_from(o).ok()?.checked_mul(step)?)?;
                    usize::try_from(k).ok()
                })
                .collect()
        })
    });
    Some(vec![Fact {
        ints: small(&out, ints),
        dims: Some(out),
        floats: None,
    }])
}

/// The ops that keep the elements in order and change the dims: Reshape, Flatten, Squeeze,
/// Unsqueeze; the values come along.
pub(super) fn rearranged(at: &At) -> Outs {
    let x = at.input(0)?;
    let dims = x.dims.as_ref()?;
    let out = match Op::of(at.node) {
        Op::Reshape => reshape(
            dims,
            at.input(1)?.ints.as_ref()?,
            at.attr("allowzero", 0) != 0,
        )?,
        Op::Flatten => {
            let axis = axis_of(at.attr("axis", 1), dims.len() + 1)?;
            let part = |d: &[Dim]| d.iter().try_fold(1usize, |a, v| a.checked_mul((*v)?));
            vec![part(&dims[..axis]), part(&dims[axis..])]
        }
        Op::Squeeze => squeeze(dims, at.ints_or_input("axes", 1))?,
        _ => {
            let axes = at.ints_or_input("axes", 1)?;
            let rank = dims.len() + axes.len();
            let add = axes_of(&axes, rank)?;
            let mut rest = dims.iter();
            (0..rank)
                .map(|i| {
                    if add.contains(&i) {
                        Some(Some(1))
                    } else {
                        rest.next().copied()
                    }
                })
                .collect::<Option<_>>()?
        }
    };
    let mut f = one(out)?;
    f[0].ints = x.ints.clone();
    f[0].floats = x.floats.clone();
    Some(f)
}

/// Dims without the squeezed axes (without axes: every dim known to be 1).
fn squeeze(dims: &[Dim], axes: Option<Vec<i64>>) -> Option<Vec<Dim>> {
    let drop: Vec<usize> = match axes {
        Some(a) => axes_of(&a, dims.len())?,
        None if dims.iter().all(Option::is_some) => {
            (0..dims.len()).filter(|&i| dims[i] == Some(1)).collect()
        }
        None => return None,
    };
    Some(
        (0..dims.len())
            .filter(|i| !drop.contains(i))
            .map(|i| dims[i])
            .collect(),
    )
}

/// Dims `x` reshaped to `target`: 0 keeps the input dim (unless `allow_zero`), -1 takes what is
/// left, an unknown target value gives an unknown dim. None when known counts disagree.
pub(super) fn reshape(x: &[Dim], target: &[Option<i64>], allow_zero: bool) -> Option<Vec<Dim>> {
    let mut out: Vec<Dim> = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            Some(0) if !allow_zero => out.push(*x.get(i)?),
            Some(-1) if infer.is_none() => {
                infer = Some(i);
                out.push(Some(1));
            }
            Some(t) => out.push(Some(usize::try_from(t).ok()?)),
            None => out.push(None),
        }
    }
    let total = known_product(x);
    if let Some(i) = infer {
        out[i] = match (total, known_product(&out)) {
            (Some(t), Some(rest)) if rest > 0 && t % rest == 0 => Some(t / rest),
            (Some(_), Some(_)) => return None,
            _ => None,
        };
    }
    match (total, known_product(&out)) {
        (Some(a), Some(b)) if a != b => None,
        _ => Some(out),
    }
}

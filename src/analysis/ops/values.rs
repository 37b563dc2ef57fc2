//! What both families of rules share: a node's single output, the product of known dims,
//! numpy broadcasting, and picking integer values by index. Neither `arith.rs` nor `shape.rs`
//! imports the other; both import this.

use super::{Dim, Fact, Outs, MAX_VALUES};

/// A node's single output.
pub(super) fn one(dims: Vec<Dim>) -> Outs {
    Some(vec![Fact::of_dims(dims)])
}

/// The product of `dims` when all are known, or None (unknown, or overflow).
pub fn known_product(dims: &[Dim]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, d| acc.checked_mul((*d)?))
}

/// Numpy broadcasting of `shapes`; an unknown dim takes the other operands' size when theirs is
/// not 1. None when two known sizes disagree.
pub(super) fn broadcast<'s>(shapes: impl IntoIterator<Item = &'s [Dim]>) -> Option<Vec<Dim>> {
    let shapes: Vec<&[Dim]> = shapes.into_iter().collect();
    let rank = shapes.iter().map(|s| s.len()).max()?;
    let mut out: Vec<Dim> = vec![Some(1); rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            *o = match (*o, d) {
                (Some(1), d) | (d, Some(1)) => d,
                (Some(a), Some(b)) if a != b => return None,
                (Some(a), _) | (_, Some(a)) => Some(a),
                (None, None) => None,
            };
        }
    }
    Some(out)
}

/// The values of a tensor of dims `to` taken from `values` (dims `from`, both row-major): the
/// element at output index `o` (one index per axis) is the input's at `index(o)`.
pub(super) fn pick_values(
    values: &[Option<i64>],
    from: &[usize],
    to: &[usize],
    index: impl Fn(&[usize]) -> Option<Vec<usize>>,
) -> Option<Vec<Option<i64>>> {
    let count = |d: &[usize]| d.iter().try_fold(1usize, |acc, &v| acc.checked_mul(v));
    let n = count(to)?;
    if n > MAX_VALUES || values.len() != count(from)? {
        return None;
    }
    let mut o = vec![0usize; to.len()];
    (0..n)
        .map(|flat| {
            let mut rest = flat;
            for i in (0..to.len()).rev() {
                o[i] = rest % to[i];
                rest /= to[i];
            }
            let k = index(&o)?;
            let mut at = 0usize;
            for (j, &kj) in k.iter().enumerate() {
                at = at * from.get(j)? + Some(kj).filter(|&v| v < from[j])?;
            }
            values.get(at).copied()
        })
        .collect()
}

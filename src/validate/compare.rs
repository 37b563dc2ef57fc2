//! Comparison of the rewritten model's outputs with the original's: output count and
//! shapes, finite values, the largest difference; identity holds each output to its own scale.

use anyhow::Context;
use tract_onnx::prelude::tract_ndarray::ArrayD;
use tract_onnx::prelude::*;

use crate::errors::error_line;

/// Relative tolerance for "same function" (`expect_identical`).
const IDENTICAL_TOL: f64 = 1e-4;
/// Relative threshold below which outputs count as unchanged.
const LIVE_TOL: f64 = 1e-6;

/// The original model's outputs on the seeded input, and what they say about the model.
pub(super) struct Reference {
    /// The outputs, as f64, in the graph's output order.
    pub outputs: Vec<ArrayD<f64>>,
    /// Largest absolute value among the outputs.
    pub scale: f64,
    /// How much the outputs move with the input: the largest difference from the outputs
    /// on a second input. A model with random weights can give nearly the same output for
    /// any input, and then no change inside it shows either.
    pub sensitivity: f64,
}

impl Reference {
    /// The reference of `outputs`, with `other` the outputs on a second input.
    pub fn new(outputs: Vec<ArrayD<f64>>, other: &[ArrayD<f64>]) -> Reference {
        let scale = outputs.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        let sensitivity = largest_diff(&outputs, other);
        Reference {
            outputs,
            scale,
            sensitivity,
        }
    }
}

/// What the comparison of the rewritten model's outputs found.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    /// Largest absolute difference over all outputs; `None` when the outputs did not
    /// have the original's shapes or were not all finite.
    pub max_abs_diff: Option<f64>,
    /// Why the rewritten model fails the checks; `None` when it passes.
    pub reason: Option<String>,
    /// What the checks could not tell, when they passed without seeing everything.
    pub note: Option<String>,
}

/// Checks the rewritten model's outputs `new_out` (named `new_names`) against the original's.
/// With `expect_identical` they must match; otherwise they must differ, unless the
/// original's outputs hardly depend on its input (then the verdict carries a note).
pub(super) fn compare(
    reference: &Reference,
    new_out: &[TValue],
    new_names: &[String],
    expect_identical: bool,
) -> Verdict {
    let new_vals = match checked_outputs(reference, new_out, new_names) {
        Ok(vals) => vals,
        Err(reason) => {
            return Verdict {
                reason: Some(reason),
                ..Verdict::default()
            }
        }
    };
    let max_diff = largest_diff(&reference.outputs, &new_vals);
    let judged = if expect_identical {
        judge_identical(reference, &new_vals, new_names)
    } else {
        judge_changed(reference, max_diff)
    };
    let (reason, note) = match judged {
        Ok(note) => (None, note),
        Err(reason) => (Some(reason), None),
    };
    Verdict {
        max_abs_diff: Some(max_diff),
        reason,
        note,
    }
}

/// The rewritten model's outputs as f64, once their count and shapes match the original's
/// and every value is finite; otherwise the failure reason.
fn checked_outputs(
    reference: &Reference,
    new_out: &[TValue],
    new_names: &[String],
) -> Result<Vec<ArrayD<f64>>, String> {
    let orig = &reference.outputs;
    if new_out.len() != orig.len() {
        return Err(format!(
            "the rewritten model has {} outputs, the original has {}",
            new_out.len(),
            orig.len()
        ));
    }
    for (ix, (orig, new)) in orig.iter().zip(new_out).enumerate() {
        if new.shape() != orig.shape() {
            return Err(format!(
                "{} has shape {:?}, the original's has shape {:?}",
                output_label(ix, new_names),
                new.shape(),
                orig.shape()
            ));
        }
    }
    let new_vals = outputs_as_f64(new_out, new_names).map_err(|e| error_line(&e))?;
    if let Some((ix, bad)) = first_non_finite(&new_vals) {
        return Err(format!(
            "{} contains non-finite values (e.g. {bad})",
            output_label(ix, new_names)
        ));
    }
    Ok(new_vals)
}

/// Whether every output of the rewritten model, `new_vals`, matches the original's within the
/// tolerance of its own scale: a detector's box coordinates (hundreds) and its class scores
/// (below 1) are each held to their own magnitude. `Err` names the first output that does not.
fn judge_identical(
    reference: &Reference,
    new_vals: &[ArrayD<f64>],
    new_names: &[String],
) -> Result<Option<String>, String> {
    for (ix, (orig, new)) in reference.outputs.iter().zip(new_vals).enumerate() {
        let scale = orig.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let diff = orig
            .iter()
            .zip(new)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        let tol = IDENTICAL_TOL * scale.max(1.0);
        if diff > tol {
            return Err(format!(
                "{} differs from the original by up to {diff:.3e} (tolerance {tol:.3e}) \
                 although the rewrite should compute the same function",
                output_label(ix, new_names)
            ));
        }
    }
    Ok(None)
}

/// Whether a rewrite that should change the function (random init) did: a difference of
/// `max_diff` over every output passes with an optional note, or `Err` with the reason.
fn judge_changed(reference: &Reference, max_diff: f64) -> Result<Option<String>, String> {
    let scale = reference.scale;
    // Relative to the outputs' own magnitude, however small (random-weight models).
    let tol = LIVE_TOL * scale;
    if max_diff > tol {
        return Ok(None);
    }
    let sensitivity = reference.sensitivity;
    if sensitivity <= tol {
        Ok(Some(format!(
            "the original's outputs hardly depend on its input (two inputs differ by \
             {sensitivity:.1e}), so whether the SE blocks act cannot be seen at the output"
        )))
    } else {
        Err(format!(
            "outputs identical to the original (max abs diff {max_diff:.3e} <= {tol:.3e}): \
             the SE blocks have no effect"
        ))
    }
}

/// The largest absolute difference between two sets of outputs.
fn largest_diff(a: &[ArrayD<f64>], b: &[ArrayD<f64>]) -> f64 {
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| {
        x.iter().zip(y).fold(m, |m, (x, y)| m.max((x - y).abs()))
    })
}

/// The index of the first output holding a NaN or an infinity, and that value.
pub(super) fn first_non_finite(outputs: &[ArrayD<f64>]) -> Option<(usize, f64)> {
    outputs
        .iter()
        .enumerate()
        .find_map(|(ix, vals)| vals.iter().find(|v| !v.is_finite()).map(|&bad| (ix, bad)))
}

/// Converts outputs to f64 arrays of the same shapes.
pub(super) fn outputs_as_f64(
    outputs: &[TValue],
    names: &[String],
) -> anyhow::Result<Vec<ArrayD<f64>>> {
    outputs
        .iter()
        .enumerate()
        .map(|(ix, t)| {
            let cast = t.cast_to::<f64>().with_context(|| {
                format!(
                    "{} of type {:?} is not numeric",
                    output_label(ix, names),
                    t.datum_type()
                )
            })?;
            Ok(cast.to_plain_array_view::<f64>()?.to_owned())
        })
        .collect()
}

/// `output 0 (`name`)`, or `output 0` when the name is unknown.
pub(super) fn output_label(ix: usize, names: &[String]) -> String {
    match names.get(ix) {
        Some(n) if !n.is_empty() => format!("output {ix} (`{n}`)"),
        _ => format!("output {ix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &[f32]) -> TValue {
        tract_onnx::prelude::Tensor::from_shape(&[v.len()], v)
            .expect("shape fits")
            .into_tvalue()
    }

    fn f64s(v: &[f32]) -> ArrayD<f64> {
        ArrayD::from_shape_vec(vec![v.len()], v.iter().map(|&x| f64::from(x)).collect())
            .expect("shape fits")
    }

    /// A detector's outputs: boxes in the hundreds, scores below 1. A change of 0.01 in the
    /// scores is far above their tolerance though far below the boxes' scale.
    #[test]
    fn identity_holds_each_output_to_its_own_scale() {
        let (boxes, scores) = ([600.0, 320.0], [0.25, 0.5]);
        let reference = Reference::new(vec![f64s(&boxes), f64s(&scores)], &[]);
        let names = vec!["boxes".to_string(), "scores".to_string()];
        let same = compare(&reference, &[value(&boxes), value(&scores)], &names, true);
        assert_eq!(same.reason, None);
        let moved = compare(
            &reference,
            &[value(&boxes), value(&[0.26, 0.5])],
            &names,
            true,
        );
        let reason = moved.reason.expect("the scores moved");
        assert!(reason.contains("scores"), "{reason}");
    }
}

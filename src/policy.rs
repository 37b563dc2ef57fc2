//! Rules a run applies to a splice before writing it: what older ONNX IR versions ask of new
//! weights, and when a splice has nothing to write.

use crate::onnx::{self, Model};
use crate::report::skip_reason;
use crate::rewrite::{Decision, Splice};
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// Lists the splice's new weights as graph inputs when `model` is older than IR 4, which
/// requires every initializer to be a graph input too.
pub fn list_new_weights_as_inputs(model: &Model, splice: &mut Splice) {
    if model.proto.ir_version.is_some_and(|v| v < 4) {
        onnx::list_as_inputs(&mut splice.graph, &splice.added_initializers);
    }
}

/// The first opset whose Mul broadcasts as numpy does: before it, Mul broadcasts only with the
/// `broadcast` attribute and a B matching A's dims from `axis` on, which an SE gate's
/// [N, C, 1, 1] does not.
const NUMPY_BROADCAST_OPSET: i64 = 7;

/// Fails, naming the opset, when `model` imports the default domain at an opset whose Mul lacks
/// the broadcasting the SE block's scaling needs.
pub fn ensure_broadcasting_mul(model: &Model, shown: &str) -> Result<()> {
    match onnx::opset::default_opset(&model.proto.opset_import) {
        Some(v) if v < NUMPY_BROADCAST_OPSET => bail!(
            "'{shown}': opset {v} is older than {NUMPY_BROADCAST_OPSET}, whose Mul broadcasts the SE \
             gate over the map; convert the model to opset {NUMPY_BROADCAST_OPSET} or later first \
             (onnx.version_converter)"
        ),
        _ => Ok(()),
    }
}

/// Fails when no block of `shown` can take SE at `position`, naming each reason with the number
/// of blocks it stopped (reasons in alphabetical order).
pub fn ensure_some_block_takes_se(
    decisions: &[Decision],
    shown: &str,
    position: &str,
) -> Result<()> {
    if !decisions.iter().all(|d| d.skipped.is_some()) {
        return Ok(());
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for d in decisions {
        *reasons
            .entry(skip_reason(d).unwrap_or_default())
            .or_default() += 1;
    }
    let why: Vec<String> = reasons
        .iter()
        .map(|(r, n)| format!("{n} block(s): {}", crate::shown::shown(r)))
        .collect();
    bail!(
        "'{shown}': no block can take SE at position {position} ({})",
        why.join("; ")
    );
}

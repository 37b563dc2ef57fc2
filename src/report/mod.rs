//! What a run did, in numbers: per stage the paper's formula (2/r)·N_s·C_s², the parameters
//! actually added and the compute before and after, per block the decision, and the model's float
//! parameters and compute counted before and after (`cost.rs`, from the per-node counts of
//! `compute.rs` set per stage in `breakdown.rs`). Rendered as JSON here, as text tables in
//! `text.rs`, as a picture in `plot.rs`.

mod breakdown;
mod compute;
mod cost;
#[cfg(test)]
mod cost_tests;
mod cost_text;
mod macs;
pub mod plot;
mod text;

pub use compute::Cost;
pub use cost::{percent, Change, Compute, OpCompute, Percent};
pub use text::{group, spelled};

use crate::analysis::Analysis;
use crate::graph::GraphView;
use crate::onnx::tensor::{numel, ElemType};
use crate::onnx::{op, GraphProto};
use crate::rewrite::{Decision, SeOptions, Splice};
use crate::validate::Validation;
use serde::{Serialize, Serializer};
use std::path::Path;

/// A parameter count from the formula: a whole number when it is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Formula(pub f64);

impl Serialize for Formula {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            s.serialize_i64(self.0 as i64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub index: usize,
    pub kind: &'static str,
    pub blocks: usize,
    pub channels: usize,
    /// (2/r)·N_s·C_s², N_s counting the stage's blocks that get SE.
    pub formula_params: Formula,
    /// Parameters counted in the initializers added to this stage's blocks.
    pub added_params: u64,
    /// Blocks of the stage that received SE.
    pub injected: usize,
    pub first_node: String,
    /// Hidden width of the stage's first SE block (0 when none got SE).
    pub hidden: usize,
    /// Float weights the stage's nodes read before the rewrite.
    pub params_before: u64,
    /// The stage's share of all added parameters, in percent.
    pub params_share_pct: f64,
    /// The stage's compute before and after; absent when shapes could not be derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute: Option<Change>,
    /// The stage's share of all added compute (profiler convention), in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_share_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockRow {
    pub stage: usize,
    pub name: String,
    pub kind: &'static str,
    pub merge: String,
    /// Channels where SE lands (the block's output channels at the standard position).
    pub channels: usize,
    pub hidden: usize,
    pub projection: bool,
    pub existing_se: bool,
    pub injected: bool,
    pub added_params: u64,
    pub skipped: Option<String>,
    /// The name of the block this one is nested in (a CSP module, for its residual units).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// The whole report, as `--format json` prints it. Scripts read these fields, so fields are only
/// ever added, never renamed or removed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub ratio: usize,
    pub position: crate::rewrite::Position,
    pub bias: bool,
    pub init: crate::rewrite::Init,
    pub squeeze: crate::rewrite::Squeeze,
    pub gate: crate::rewrite::Gate,
    /// The `--only` and `--exclude` patterns, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    /// The feature maps `--at` named, when given (then nothing was detected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Vec<String>>,
    /// Which of the nested blocks took SE (`--level`), when any block is nested in another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<crate::rewrite::Level>,
    pub stages: Vec<StageRow>,
    pub blocks: Vec<BlockRow>,
    /// (2/r)·Σ N_s·C_s² over the stages that got SE.
    pub formula_params: Formula,
    /// Counted: float initializer elements after minus before.
    pub added_params: i64,
    pub params_before: u64,
    pub params_after: u64,
    /// Multiply-accumulates of the convolutions and matrix products, before and after; absent
    /// when shapes could not be derived (`macs_note` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macs_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macs_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macs_note: Option<String>,
    /// Compute in three conventions before and after, per op and outside the stages; absent
    /// when shapes could not be derived (`compute_note` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute: Option<Compute>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_note: Option<String>,
    /// SE gates the model already had.
    pub existing_se: Vec<crate::analysis::existing::SeGate>,
    pub output: Option<String>,
    /// The data file written beside the output model, when its weights are external.
    pub data_file: Option<String>,
    pub validation: Option<Validation>,
}

/// Float parameters of a graph: elements of its float initializers and of the float tensors of
/// rank ≥ 1 its Constant nodes hold (weights written as nodes, as some converters do; the
/// scalars of a Clip's bounds or an activation's formula are not parameters).
pub fn count_params(graph: &GraphProto) -> u64 {
    let constants = graph
        .node
        .iter()
        .filter(|n| crate::onnx::op::Op::of(n) == crate::onnx::op::Op::Constant)
        .filter_map(|n| crate::onnx::attr_t(n, "value"))
        .filter(|t| !t.dims.is_empty());
    graph
        .initializer
        .iter()
        .chain(constants)
        .filter(|t| ElemType::of_tensor(t).is_float())
        .map(numel)
        .fold(0u64, u64::saturating_add)
}

/// The paper's formula for one stage: (2/r)·N·C².
pub fn formula(ratio: usize, blocks: usize, channels: usize) -> f64 {
    2.0 / ratio as f64 * blocks as f64 * (channels as f64).powi(2)
}

/// Why a block got no SE, as the report words it; None when it got SE. The one place a
/// decision's skip reason becomes text.
pub fn skip_reason(d: &Decision) -> Option<String> {
    d.skipped.as_ref().map(ToString::to_string)
}

/// One row per block: where it is, what it is, and what was decided for it.
fn block_rows(view: &GraphView, analysis: &Analysis, decisions: &[Decision]) -> Vec<BlockRow> {
    let mut blocks = Vec::new();
    for (i, (b, d)) in analysis.blocks.iter().zip(decisions).enumerate() {
        let stage = analysis
            .stages
            .iter()
            .find(|s| s.blocks.contains(&i))
            .map_or(0, |s| s.index);
        blocks.push(BlockRow {
            stage,
            name: b.name.clone(),
            kind: b.kind.as_str(),
            merge: b.merge().map_or("none", |m| op(view.node(m))).to_string(),
            channels: d.channels,
            hidden: d.hidden,
            projection: b.projection(),
            existing_se: analysis
                .gates
                .iter()
                .any(|g| b.nodes.contains(&g.mul) || g.output == b.output),
            injected: d.skipped.is_none(),
            added_params: d.params,
            skipped: skip_reason(d),
            module: b
                .parent
                .and_then(|p| analysis.blocks.get(p))
                .map(|m| m.name.clone()),
        });
    }
    blocks
}

/// One row per stage, from the rows of its blocks and the weights its nodes read.
fn stage_rows(
    view: &GraphView,
    analysis: &Analysis,
    blocks: &[BlockRow],
    ratio: usize,
) -> Vec<StageRow> {
    let params = breakdown::stage_params(
        view,
        &breakdown::stage_of_nodes(view, analysis),
        analysis.stages.len(),
    );
    let added: u64 = blocks.iter().map(|b| b.added_params).sum();
    analysis
        .stages
        .iter()
        .zip(params)
        .map(|(s, params_before)| {
            let rows = || s.blocks.iter().map(|&i| &blocks[i]);
            let added_params = rows().map(|b| b.added_params).sum();
            StageRow {
                index: s.index,
                kind: s.kind.as_str(),
                blocks: s.blocks.len(),
                channels: s.channels,
                formula_params: Formula(formula(
                    ratio,
                    rows().filter(|b| b.injected).count(),
                    s.channels,
                )),
                added_params,
                injected: rows().filter(|b| b.injected).count(),
                first_node: s.first_node.clone(),
                hidden: rows().find(|b| b.injected).map_or(0, |b| b.hidden),
                params_before,
                params_share_pct: percent(added_params, added),
                compute: None,
                compute_share_pct: None,
            }
        })
        .collect()
}

/// What a report is made of, each part from the step of the run that knows it.
pub struct Parts<'a> {
    /// The model's path, as given.
    pub model: &'a str,
    pub view: &'a GraphView<'a>,
    pub analysis: &'a Analysis,
    pub splice: &'a Splice,
    pub opts: &'a SeOptions,
    /// The input shape compute is counted at (None: the declared one).
    pub input_shape: Option<&'a [usize]>,
    pub validation: Option<Validation>,
    /// The output model and its data file, once they are known.
    pub output: Option<&'a Path>,
    pub data_file: Option<&'a Path>,
}

impl Report {
    /// The report of a run, built in one place from its parts: the options, the blocks and
    /// stages with their decisions, the parameters, the compute (both graphs counted), the
    /// output and the validation. Fails only when the rewritten graph is malformed.
    pub fn new(parts: Parts<'_>) -> anyhow::Result<Self> {
        let Parts {
            model,
            view,
            analysis,
            splice,
            opts,
            input_shape,
            validation,
            output,
            data_file,
        } = parts;
        let blocks = block_rows(view, analysis, &splice.decisions);
        let stages = stage_rows(view, analysis, &blocks, opts.ratio);
        let total = stages.iter().map(|s| s.formula_params.0).sum();
        let before = count_params(view.graph);
        let after_count = count_params(&splice.graph);
        let mut report = Report {
            model: model.to_string(),
            ratio: opts.ratio,
            position: opts.position,
            bias: opts.bias,
            init: opts.init,
            squeeze: opts.squeeze,
            gate: opts.gate,
            only: opts.names.only.as_ref().map(|r| r.as_str().to_string()),
            exclude: opts.names.exclude.as_ref().map(|r| r.as_str().to_string()),
            at: opts.at.clone(),
            level: analysis
                .blocks
                .iter()
                .any(|b| b.parent.is_some())
                .then_some(opts.level),
            stages,
            blocks,
            formula_params: Formula(total),
            added_params: (i128::from(after_count) - i128::from(before))
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            params_before: before,
            params_after: after_count,
            macs_before: None,
            macs_after: None,
            macs_note: None,
            compute: None,
            compute_note: None,
            existing_se: analysis.gates.clone(),
            output: output.map(|p| p.display().to_string()),
            data_file: data_file.map(|p| p.display().to_string()),
            validation,
        };
        report.count_compute(view, analysis, splice, input_shape)?;
        Ok(report)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_formula_for_resnet50() {
        let stages = [(3, 256), (4, 512), (6, 1024), (3, 2048)];
        let per: Vec<f64> = stages.iter().map(|&(n, c)| formula(16, n, c)).collect();
        assert_eq!(per, vec![24_576.0, 131_072.0, 786_432.0, 1_572_864.0]);
        assert_eq!(per.iter().sum::<f64>(), 2_514_944.0);
    }

    #[test]
    fn formula_serializes_whole_numbers_as_integers() {
        assert_eq!(
            serde_json::to_string(&Formula(2_514_944.0)).unwrap(),
            "2514944"
        );
        assert_eq!(serde_json::to_string(&Formula(0.5)).unwrap(), "0.5");
    }
}

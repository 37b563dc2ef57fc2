//! What a run did, in numbers: per stage the paper's formula (2/r)·N_s·C_s² and the parameters
//! actually added, per block the decision, and the model's float parameters counted before and
//! after. Rendered as a text table or as JSON.

use crate::analysis::Analysis;
use crate::graph::GraphView;
use crate::onnx::tensor::{is_float, numel};
use crate::onnx::{op, GraphProto};
use crate::rewrite::{Decision, SeOptions};
use crate::validate::Validation;
use serde::{Serialize, Serializer};
use std::fmt::Write;

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
}

/// The whole report (the JSON contract of the design notes; fields are only ever added).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub ratio: usize,
    pub position: crate::rewrite::Position,
    pub bias: bool,
    pub init: crate::rewrite::Init,
    pub squeeze: crate::rewrite::Squeeze,
    pub gate: crate::rewrite::Gate,
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
    /// SE gates the model already had.
    pub existing_se: Vec<crate::analysis::existing::SeGate>,
    pub output: Option<String>,
    pub validation: Option<Validation>,
}

/// Float parameters of a graph: elements of its float initializers.
pub fn count_params(graph: &GraphProto) -> u64 {
    graph
        .initializer
        .iter()
        .filter(|t| is_float(t.data_type.unwrap_or(0)))
        .map(numel)
        .fold(0u64, u64::saturating_add)
}

/// The paper's formula for one stage: (2/r)·N·C².
pub fn formula(ratio: usize, blocks: usize, channels: usize) -> f64 {
    2.0 / ratio as f64 * blocks as f64 * (channels as f64).powi(2)
}

impl Report {
    /// Builds the report of a splice.
    pub fn new(
        model: &str,
        view: &GraphView,
        analysis: &Analysis,
        decisions: &[Decision],
        after: &GraphProto,
        opts: &SeOptions,
    ) -> Self {
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
                skipped: d.skipped.as_ref().map(ToString::to_string),
            });
        }
        let stages: Vec<StageRow> = analysis
            .stages
            .iter()
            .map(|s| {
                let rows = || s.blocks.iter().map(|&i| &blocks[i]);
                StageRow {
                    index: s.index,
                    kind: s.kind.as_str(),
                    blocks: s.blocks.len(),
                    channels: s.channels,
                    formula_params: Formula(formula(
                        opts.ratio,
                        rows().filter(|b| b.injected).count(),
                        s.channels,
                    )),
                    added_params: rows().map(|b| b.added_params).sum(),
                    injected: rows().filter(|b| b.injected).count(),
                    first_node: s.first_node.clone(),
                }
            })
            .collect();
        let total = stages.iter().map(|s| s.formula_params.0).sum();
        let before = count_params(view.graph);
        let after_count = count_params(after);
        Report {
            model: model.to_string(),
            ratio: opts.ratio,
            position: opts.position,
            bias: opts.bias,
            init: opts.init,
            squeeze: opts.squeeze,
            gate: opts.gate,
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
            existing_se: analysis.gates.clone(),
            output: None,
            validation: None,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The per-stage parameter table.
    pub fn params_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>5}  {:<17} {:>6} {:>8} {:>16} {:>12}  first node",
            "stage", "kind", "blocks", "channels", "(2/r)·N·C²", "added"
        );
        for r in &self.stages {
            let _ = writeln!(
                s,
                "{:>5}  {:<17} {:>6} {:>8} {:>16} {:>12}  {}",
                r.index,
                r.kind,
                if r.injected == r.blocks {
                    r.blocks.to_string()
                } else {
                    format!("{}/{}", r.injected, r.blocks)
                },
                r.channels,
                fmt_formula(r.formula_params.0),
                group(r.added_params),
                r.first_node
            );
        }
        let blocks: usize = self.stages.iter().map(|r| r.injected).sum();
        let _ = writeln!(
            s,
            "{:>5}  {:<17} {:>6} {:>8} {:>16} {:>12}",
            "total",
            "",
            blocks,
            "",
            fmt_formula(self.formula_params.0),
            group(self.added_params.max(0) as u64)
        );
        s
    }

    /// The per-block list.
    pub fn blocks_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>5}  {:<40} {:>8} {:>6}  {:<10} SE",
            "stage", "block", "channels", "hidden", "shortcut"
        );
        for b in &self.blocks {
            let se = match &b.skipped {
                None => format!("added ({} params)", group(b.added_params)),
                Some(why) => format!("skipped: {why}"),
            };
            let _ = writeln!(
                s,
                "{:>5}  {:<40} {:>8} {:>6}  {:<10} {}",
                b.stage,
                b.name,
                b.channels,
                b.hidden,
                if b.projection {
                    "projection"
                } else {
                    "identity"
                },
                se
            );
        }
        s
    }

    /// The closing summary lines.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let pct = if self.params_before > 0 {
            100.0 * self.added_params as f64 / self.params_before as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "parameters: {} before, {} after ({}{} counted, {pct:+.2}%; formula {})",
            group(self.params_before),
            group(self.params_after),
            if self.added_params < 0 { "-" } else { "+" },
            group(self.added_params.unsigned_abs()),
            fmt_formula(self.formula_params.0)
        );
        s.push_str(&self.macs_line());
        if !self.existing_se.is_empty() {
            let _ = writeln!(
                s,
                "existing SE gates: {} (first: {})",
                self.existing_se.len(),
                self.existing_se[0].node
            );
        }
        let skipped = self.blocks.iter().filter(|b| !b.injected).count();
        if skipped > 0 {
            let _ = writeln!(
                s,
                "blocks skipped: {skipped} of {} (see --report stages)",
                self.blocks.len()
            );
        }
        if let Some(v) = &self.validation {
            let diff = v
                .max_abs_diff
                .map_or("n/a".to_string(), |d| format!("{d:.3e}"));
            let _ = writeln!(
                s,
                "validation (tract): {}; max |diff| {diff}; median run {:.2} ms before, {:.2} ms after",
                if v.ok { "ok".to_string() } else { format!("FAILED: {}", v.reason.as_deref().unwrap_or("")) },
                v.ms_before,
                v.ms_after
            );
            if let Some(from) = v.converted_from {
                let _ = writeln!(
                    s,
                    "validation ran the {from} model converted to FLOAT (tract's {from} support is incomplete)"
                );
            }
            if let Some(note) = &v.note {
                let _ = writeln!(s, "validation note: {note}");
            }
        }
        if let Some(o) = &self.output {
            let _ = writeln!(s, "written: {o}");
        }
        s
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

    /// The MAC line: before, after and the increase, or why they are not counted.
    pub fn macs_line(&self) -> String {
        match (self.macs_before, self.macs_after, &self.macs_note) {
            (Some(b), Some(a), _) => format!(
                "MACs (convolutions and matrix products): {} before, {} after (+{}, {:+.3}%)\n",
                group(b),
                group(a),
                group(a.saturating_sub(b)),
                if b > 0 {
                    100.0 * (a as f64 - b as f64) / b as f64
                } else {
                    0.0
                }
            ),
            (_, _, Some(note)) => format!("MACs not counted: {note}\n"),
            _ => String::new(),
        }
    }

    /// The position as the command line spells it.
    pub fn position_name(&self) -> String {
        spelled(self.position)
    }

    /// The header line naming the model and the options.
    pub fn header(&self) -> String {
        format!(
            "{}: position {}, r = {}, {}, squeeze {}, gate {}, init {}\n",
            self.model,
            spelled(self.position),
            self.ratio,
            if self.bias {
                "with biases"
            } else {
                "no biases"
            },
            spelled(self.squeeze),
            spelled(self.gate),
            spelled(self.init),
        )
    }
}

/// How an option value is spelled on the command line (its serde name).
fn spelled<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// 2514944 → "2,514,944".
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn fmt_formula(v: f64) -> String {
    if v.fract() == 0.0 && (0.0..9.0e15).contains(&v) {
        return group(v as u64);
    }
    let text = format!("{v:.1}");
    match text.split_once('.') {
        Some((whole, tenth)) if !whole.starts_with('-') => match whole.parse::<u64>() {
            Ok(w) => format!("{}.{tenth}", group(w)),
            Err(_) => text,
        },
        _ => text,
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
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(2_514_944), "2,514,944");
        assert_eq!(fmt_formula(12.5), "12.5");
        assert_eq!(fmt_formula(68_541.5), "68,541.5");
        assert_eq!(fmt_formula(1_999.96), "2,000.0");
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

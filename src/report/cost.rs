//! The compute section of the report: both graphs counted node by node (`compute.rs`), in total,
//! per op and per stage (`breakdown.rs`), with the relative increase.

use super::breakdown::{stage_of_added, stage_of_nodes, GraphCost};
use super::compute::Cost;
use super::Report;
use crate::analysis::{Analysis, Features};
use crate::graph::GraphView;
use crate::rewrite::Splice;
use anyhow::Context;
use serde::Serialize;
use std::collections::HashMap;

/// Compute before and after the rewrite, and the difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Change {
    pub before: Cost,
    pub after: Cost,
    pub added: Cost,
}

/// A relative increase in percent, per convention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percent {
    pub macs: f64,
    pub element_ops: f64,
    pub profiler: f64,
}

/// The nodes of one op and their compute, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpCompute {
    pub op: String,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub before: Cost,
    pub after: Cost,
}

/// The whole graph's compute before and after, per op, and outside every stage (the stem, the
/// head, what lies between blocks); the stages' own shares are in the stage rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compute {
    pub before: Cost,
    pub after: Cost,
    pub added: Cost,
    pub increase_pct: Percent,
    pub outside_stages: Change,
    pub by_op: Vec<OpCompute>,
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl Change {
    fn new(before: Cost, added: Cost) -> Self {
        Change {
            before,
            after: before + added,
            added,
        }
    }
}

impl Compute {
    fn new(before: Cost, after: Cost, outside: Change, by_op: Vec<OpCompute>) -> Self {
        let added = after.minus(before);
        Compute {
            before,
            after,
            added,
            increase_pct: Percent {
                macs: percent(added.macs, before.macs),
                element_ops: percent(added.element_ops, before.element_ops),
                profiler: percent(added.profiler, before.profiler),
            },
            outside_stages: outside,
            by_op,
        }
    }
}

/// Per op, the rows of both graphs joined.
fn by_op(before: &GraphCost, after: &GraphCost) -> Vec<OpCompute> {
    let mut rows: Vec<OpCompute> = Vec::new();
    for (o, k, c) in before.by_op() {
        rows.push(OpCompute {
            op: o,
            nodes_before: k,
            nodes_after: 0,
            before: c,
            after: Cost::default(),
        });
    }
    for (o, k, c) in after.by_op() {
        match rows.iter_mut().find(|r| r.op == o) {
            Some(r) => (r.nodes_after, r.after) = (k, c),
            None => rows.push(OpCompute {
                op: o,
                nodes_before: 0,
                nodes_after: k,
                before: Cost::default(),
                after: c,
            }),
        }
    }
    rows.sort_by(|a, b| a.op.cmp(&b.op));
    rows
}

impl Report {
    /// Counts the compute of the original graph (`view`) and of the rewritten one, in total, per
    /// op and per stage, and records it with the MAC counts; fails only when the rewritten graph
    /// is malformed.
    pub(super) fn count_compute(
        &mut self,
        view: &GraphView,
        analysis: &Analysis,
        splice: &Splice,
        input_shape: Option<&[usize]>,
    ) -> anyhow::Result<()> {
        let before = GraphCost::count(view, &analysis.features, input_shape);
        let after_view = GraphView::new(&splice.graph).context("the rewritten graph")?;
        let after_cost = GraphCost::count(&after_view, &Features::new(&after_view), input_shape);
        self.set_macs(before.macs(), after_cost.macs());
        let (b, a) = match both(before.total(), after_cost.total()) {
            Ok(totals) => totals,
            Err(note) => {
                self.compute_note = Some(note);
                return Ok(());
            }
        };
        let stage_of = stage_of_nodes(view, analysis);
        let added: HashMap<usize, Option<usize>> = stage_of_added(analysis, &splice.inserted);
        let added_in = |s: Option<usize>| after_cost.known(|n| added.get(&n) == Some(&s));
        let outside = Change::new(before.known(|n| stage_of[n].is_none()), added_in(None));
        let total = Compute::new(b, a, outside, by_op(&before, &after_cost));
        for (s, row) in self.stages.iter_mut().enumerate() {
            let change = Change::new(before.known(|n| stage_of[n] == Some(s)), added_in(Some(s)));
            row.compute_share_pct = Some(percent(change.added.profiler, total.added.profiler));
            row.compute = Some(change);
        }
        self.compute = Some(total);
        Ok(())
    }

    /// Records the MAC counts, or why they could not be made.
    pub fn set_macs(&mut self, before: Result<u64, String>, after: Result<u64, String>) {
        match both(before, after) {
            Ok((b, a)) => {
                self.macs_before = Some(b);
                self.macs_after = Some(a);
            }
            Err(note) => self.macs_note = Some(note),
        }
    }
}

/// Both counts, or why the first that failed could not be made, naming its graph.
fn both<T>(before: Result<T, String>, after: Result<T, String>) -> Result<(T, T), String> {
    let b = before.map_err(|e| format!("original: {e}"))?;
    let a = after.map_err(|e| format!("rewritten: {e}"))?;
    Ok((b, a))
}

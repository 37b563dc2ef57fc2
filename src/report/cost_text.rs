//! The compute as text: the summary line, and the tables `--report macs` prints (per stage in
//! the three conventions, per op).

use super::compute::Cost;
use super::text::{group, pct};
use super::{percent, Report};
use crate::shown::shown;
use std::fmt::Write;

/// One row of the per-stage compute table: before and added in each convention.
fn stage_line(label: &str, before: Cost, added: Cost, share: Option<f64>) -> String {
    let line = format!(
        "{label:>7} {:>15} {:>11} {:>13} {:>11} {:>15} {:>11} {:>6}",
        group(before.macs),
        group(added.macs),
        group(before.element_ops),
        group(added.element_ops),
        group(before.profiler),
        group(added.profiler),
        share.map_or(String::new(), pct)
    );
    format!("{}\n", line.trim_end())
}

impl Report {
    /// The compute line of the summary: the profiler total before and after, with the
    /// increase, or why it is not counted.
    pub fn compute_line(&self) -> String {
        match (&self.compute, &self.compute_note) {
            (Some(c), _) => format!(
                "compute (profiler total: MACs, bias adds, weighted element ops): {} before, {} after (+{}, {:+.3}%)\n",
                group(c.before.profiler),
                group(c.after.profiler),
                group(c.added.profiler),
                c.increase_pct.profiler
            ),
            (_, Some(note)) => format!("compute not counted: {}\n", shown(note)),
            _ => String::new(),
        }
    }

    /// The compute per stage in the three conventions, and per op.
    pub fn compute_tables(&self) -> String {
        let Some(c) = &self.compute else {
            return String::new();
        };
        let mut s = format!(
            "{:>7} {:>15} {:>11} {:>13} {:>11} {:>15} {:>11} {:>6}\n",
            "stage", "MACs", "+MACs", "element ops", "+ops", "profiler", "+profiler", "share"
        );
        for r in &self.stages {
            if let Some(k) = r.compute {
                s.push_str(&stage_line(
                    &r.index.to_string(),
                    k.before,
                    k.added,
                    r.compute_share_pct,
                ));
            }
        }
        let o = c.outside_stages;
        let share = percent(o.added.profiler, c.added.profiler);
        s.push_str(&stage_line("other", o.before, o.added, Some(share)));
        s.push_str(&stage_line("total", c.before, c.added, None));
        let p = c.increase_pct;
        let _ = writeln!(
            s,
            "{:>7} {:>15} {:>11} {:>13} {:>11} {:>15} {:>11}",
            "+%",
            "",
            format!("{:+.3}%", p.macs),
            "",
            format!("{:+.2}%", p.element_ops),
            "",
            format!("{:+.3}%", p.profiler)
        );
        s.push('\n');
        s.push_str(&self.op_table());
        s
    }

    /// Per op that computes: nodes and compute (profiler convention) before and after.
    fn op_table(&self) -> String {
        let Some(c) = &self.compute else {
            return String::new();
        };
        let mut s = format!(
            "{:<20} {:>13} {:>15} {:>15}\n",
            "op", "nodes", "profiler before", "after"
        );
        for r in c.by_op.iter().filter(|r| r.after.profiler > 0) {
            let _ = writeln!(
                s,
                "{:<20} {:>13} {:>15} {:>15}",
                shown(&r.op),
                format!("{} → {}", r.nodes_before, r.nodes_after),
                group(r.before.profiler),
                group(r.after.profiler)
            );
        }
        s
    }
}

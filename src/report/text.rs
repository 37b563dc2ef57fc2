//! The report as text: the per-stage parameter table, the per-block list, the header and the
//! closing summary, with thousands grouped (the compute tables are in `cost_text.rs`). Every
//! text the model or the command line gave (paths, node names, reasons naming tensors) is
//! printed [`shown`], its control characters escaped, so that none can forge lines or reach a
//! terminal raw.

use super::Report;
use crate::shown::shown;
use crate::validate::{Timing, Validation};
use serde::Serialize;
use std::fmt::Write;

impl Report {
    /// The whole text report: the header, the table `kind` asks for (the parameter table when
    /// none), and the summary (which carries the MAC counts).
    pub fn to_text(&self, kind: Option<crate::ReportKind>) -> String {
        let mut out = self.header();
        out.push('\n');
        match kind {
            Some(crate::ReportKind::Stages) => out.push_str(&self.blocks_table()),
            Some(crate::ReportKind::Macs) => out.push_str(&self.compute_tables()),
            Some(crate::ReportKind::All) => {
                out.push_str(&self.params_table());
                out.push('\n');
                out.push_str(&self.blocks_table());
                if self.compute.is_some() {
                    out.push('\n');
                    out.push_str(&self.compute_tables());
                }
            }
            Some(crate::ReportKind::Params) | None => out.push_str(&self.params_table()),
        }
        out.push('\n');
        out.push_str(&self.summary());
        out
    }

    /// The per-stage table: the paper's formula, the parameters added and their share, the
    /// hidden width, the compute added (profiler convention) and its share.
    pub fn params_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>5}  {:<17} {:>6} {:>8} {:>16} {:>12} {:>6} {:>6} {:>12} {:>6}  first node",
            "stage",
            "kind",
            "blocks",
            "channels",
            "(2/r)·N·C²",
            "added",
            "share",
            "hidden",
            "+compute",
            "share"
        );
        for r in &self.stages {
            let _ = writeln!(
                s,
                "{:>5}  {:<17} {:>6} {:>8} {:>16} {:>12} {:>6} {:>6} {:>12} {:>6}  {}",
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
                pct(r.params_share_pct),
                r.hidden,
                r.compute.map_or("-".into(), |c| group(c.added.profiler)),
                r.compute_share_pct.map_or("-".into(), pct),
                shown(&r.first_node)
            );
        }
        let blocks: usize = self.stages.iter().map(|r| r.injected).sum();
        let _ = writeln!(
            s,
            "{:>5}  {:<17} {:>6} {:>8} {:>16} {:>12} {:>6} {:>6} {:>12}",
            "total",
            "",
            blocks,
            "",
            fmt_formula(self.formula_params.0),
            group(self.added_params.max(0) as u64),
            "",
            "",
            self.compute
                .as_ref()
                .map_or("-".into(), |c| group(c.added.profiler)),
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
                Some(why) => format!("skipped: {}", shown(why)),
            };
            let _ = writeln!(
                s,
                "{:>5}  {:<40} {:>8} {:>6}  {:<10} {}",
                b.stage,
                // A nested block's name is indented under the module it belongs to.
                format!(
                    "{}{}",
                    if b.module.is_some() { "  " } else { "" },
                    shown(&b.name)
                ),
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
        s.push_str(&self.compute_line());
        if !self.existing_se.is_empty() {
            let _ = writeln!(
                s,
                "existing SE gates: {} (first: {})",
                self.existing_se.len(),
                shown(&self.existing_se[0].node)
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
            s.push_str(&validation_lines(v));
        }
        match (&self.output, &self.data_file) {
            (Some(o), Some(d)) => {
                let _ = writeln!(s, "written: {} (its weights in {})", shown(o), shown(d));
            }
            (Some(o), None) => {
                let _ = writeln!(s, "written: {}", shown(o));
            }
            _ => {}
        }
        s
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
            (_, _, Some(note)) => format!("MACs not counted: {}\n", shown(note)),
            _ => String::new(),
        }
    }

    /// The position as the command line spells it.
    pub fn position_name(&self) -> String {
        spelled(self.position)
    }

    /// The header line naming the model and the options, and the selection when one was made.
    pub fn header(&self) -> String {
        let mut selection = String::new();
        if let Some(at) = &self.at {
            let names: Vec<String> = at.iter().map(|t| format!("'{}'", shown(t))).collect();
            selection += &format!("; at {}", names.join(", "));
        }
        if let Some(r) = &self.only {
            selection += &format!("; only /{}/", shown(r));
        }
        if let Some(r) = &self.exclude {
            selection += &format!("; exclude /{}/", shown(r));
        }
        if let Some(level) = self.level {
            selection += &format!("; level {}", level.as_str());
        }
        format!(
            "{}: position {}, r = {}, {}, squeeze {}, gate {}, init {}{selection}\n",
            shown(&self.model),
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

/// The validation lines of the summary.
fn validation_lines(v: &Validation) -> String {
    let mut s = String::new();
    let diff = v
        .max_abs_diff
        .map_or("n/a".to_string(), |d| format!("{d:.3e}"));
    let _ = writeln!(
        s,
        "validation (tract): {}; max |diff| {diff}; median run {:.2} ms before, {:.2} ms after",
        if v.ok {
            "ok".to_string()
        } else {
            format!("FAILED: {}", shown(v.reason.as_deref().unwrap_or("")))
        },
        v.ms_before,
        v.ms_after
    );
    if let Some(t) = &v.timing {
        s.push_str(&timing_line(t));
    }
    if let Some(from) = v.converted_from {
        let _ = writeln!(
            s,
            "validation ran the {from} model converted to FLOAT (tract's {from} support is incomplete)"
        );
    }
    if let Some(note) = &v.note {
        let _ = writeln!(s, "validation note: {}", shown(note));
    }
    s
}

/// The timing line: the machine, the runs, the medians, the overhead and the spread.
fn timing_line(t: &Timing) -> String {
    let m = &t.machine;
    let cores = m.cores.map_or("unknown".into(), |c| c.to_string());
    let threads = if m.threads == 1 { "thread" } else { "threads" };
    let head = format!(
        "timing (tract, {} {threads}; {}, {cores} cores): ",
        m.threads,
        shown(&m.cpu)
    );
    match t.after {
        Some(a) => format!(
            "{head}{} runs before, {} after; median {:.2} → {:.2} ms ({:+.2}%); min {:.2} / {:.2} ms, max {:.2} / {:.2} ms\n",
            t.before.runs,
            a.runs,
            t.before.median_ms,
            a.median_ms,
            t.overhead_pct.unwrap_or(0.0),
            t.before.min_ms,
            a.min_ms,
            t.before.max_ms,
            a.max_ms
        ),
        None => format!(
            "{head}{} runs of the original; median {:.2} ms, min {:.2}, max {:.2}\n",
            t.before.runs, t.before.median_ms, t.before.min_ms, t.before.max_ms
        ),
    }
}

/// How an option value is spelled on the command line (its serde name).
pub fn spelled<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// A share in percent with one decimal: "62.4%".
pub fn pct(v: f64) -> String {
    format!("{v:.1}%")
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
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(2_514_944), "2,514,944");
        assert_eq!(fmt_formula(12.5), "12.5");
        assert_eq!(fmt_formula(68_541.5), "68,541.5");
        assert_eq!(fmt_formula(1_999.96), "2,000.0");
    }
}

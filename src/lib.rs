//! se-inject: splices Squeeze-and-Excitation blocks into trained ONNX CNNs.
//!
//! Data flows one way: bytes → [`onnx::Model`] → [`graph::GraphView`] → [`analysis`] (blocks,
//! stages) → [`rewrite`] (a patch applied once) → model → bytes → [`validate`] (tract).

pub mod analysis;
pub mod graph;
pub mod onnx;
pub mod report;
pub mod rewrite;
pub mod validate;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What to print besides the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKind {
    /// The per-stage parameter table.
    Params,
    /// Stages and every block with its decision.
    Stages,
    /// Multiply-accumulates before and after.
    Macs,
    /// Everything.
    All,
}

/// A complete, validated request.
#[derive(Debug, Clone)]
pub struct Config {
    pub model: PathBuf,
    /// Where to write; None with a report means write nothing.
    pub output: Option<PathBuf>,
    pub se: rewrite::SeOptions,
    pub report: Option<ReportKind>,
    pub input_shape: Option<Vec<usize>>,
    pub validate: bool,
}

/// What a run produced.
pub struct Outcome {
    pub report: report::Report,
    /// Files written (empty when nothing was written).
    pub written: Vec<PathBuf>,
}

impl Outcome {
    /// Whether validation ran and failed (nothing was written then).
    pub fn validation_failed(&self) -> bool {
        self.report.validation.as_ref().is_some_and(|v| !v.ok)
    }
}

/// The default output path: `<stem>.se.onnx` beside the model.
pub fn default_output(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    model.with_file_name(format!("{stem}.se.onnx"))
}

/// Runs the whole job: load, analyse, splice, report, validate, write.
pub fn run(cfg: &Config) -> Result<Outcome> {
    let model = onnx::load(&cfg.model)?;
    let shown = cfg.model.display().to_string();
    let output = match (&cfg.output, cfg.report) {
        (Some(o), _) => Some(o.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(default_output(&cfg.model)),
    };
    if let Some(out) = &output {
        onnx::io::check_output_path(&model, out)?;
    }
    let view = graph::GraphView::new(model.graph()).with_context(|| format!("'{shown}'"))?;
    let analysis = analysis::analyse(&view).with_context(|| format!("'{shown}'"))?;
    if let Some(sel) = &cfg.se.stages {
        let n = analysis.stages.len();
        if let Some(bad) = sel.iter().find(|&&s| s == 0 || s > n) {
            bail!("--stages names stage {bad}, but '{shown}' has {n} stage(s), numbered 1 to {n}");
        }
    }
    let mut splice =
        rewrite::splice(&view, &analysis, &cfg.se).with_context(|| format!("'{shown}'"))?;
    if model.proto.ir_version.is_some_and(|v| v < 4) {
        // Before IR 4 every initializer must also be a graph input.
        onnx::list_as_inputs(&mut splice.graph, &splice.added_initializers);
    }
    let macs = |view: &graph::GraphView, feats: &analysis::Features| {
        let shapes = analysis::shapes::Shapes::infer(view, feats, cfg.input_shape.as_deref());
        analysis::shapes::macs(view, &shapes)
    };
    let macs_before = macs(&view, &analysis.features);
    let after_view = graph::GraphView::new(&splice.graph).context("the rewritten graph")?;
    let macs_after = macs(&after_view, &analysis::Features::new(&after_view));
    let mut rep = report::Report::new(
        &shown,
        &view,
        &analysis,
        &splice.decisions,
        &splice.graph,
        &cfg.se,
    );
    rep.set_macs(macs_before, macs_after);
    let Some(out) = output else {
        // A report alone is printed even when nothing can take SE: it says why.
        return Ok(Outcome {
            report: rep,
            written: Vec::new(),
        });
    };
    if splice.decisions.iter().all(|d| d.skipped.is_some()) {
        let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
        for d in &splice.decisions {
            *reasons
                .entry(d.skipped.as_deref().unwrap_or(""))
                .or_default() += 1;
        }
        let why: Vec<String> = reasons
            .iter()
            .map(|(r, n)| format!("{n} block(s): {r}"))
            .collect();
        bail!(
            "'{shown}': no block can take SE at position {} ({})",
            rep.position_name(),
            why.join("; ")
        );
    }
    let mut rewritten = model.clone();
    rewritten.proto.graph = Some(splice.graph);
    if rewritten.storage == onnx::Storage::External {
        rewritten.external_tensors.extend(splice.added_initializers);
    }
    if cfg.validate {
        let opts = validate::ValidateOptions {
            input_shape: cfg.input_shape.clone(),
            seed: cfg.se.seed,
            expect_identical: cfg.se.init == rewrite::Init::Identity,
            runs: 5,
        };
        let v = validate::validate(
            &model.to_inline_bytes(),
            &rewritten.to_inline_bytes(),
            &opts,
        )
        .with_context(|| format!("validating '{shown}' in tract (--no-validate skips this)"))?;
        let ok = v.ok;
        rep.validation = Some(v);
        if !ok {
            return Ok(Outcome {
                report: rep,
                written: Vec::new(),
            });
        }
    }
    let written = onnx::save(&rewritten, &out)?;
    rep.output = Some(out.display().to_string());
    Ok(Outcome {
        report: rep,
        written,
    })
}

#[doc(hidden)]
pub mod testutil;

//! se-inject: splices Squeeze-and-Excitation blocks into trained ONNX CNNs.
//!
//! Data flows one way: bytes → [`onnx::Model`] → [`graph::GraphView`] → [`analysis`] (blocks,
//! stages) → [`rewrite`] (a patch applied once) → model → bytes → [`validate`] (tract).

pub mod analysis;
pub mod errors;
pub mod graph;
pub mod onnx;
pub mod policy;
pub mod progress;
pub mod report;
pub mod rewrite;
pub mod shown;
pub mod targets;
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
    /// Timed runs per model in validation; None times until a budget is spent.
    pub time_runs: Option<usize>,
    /// Where to draw the per-stage cost as SVG; with no output, only the picture is written.
    pub plot: Option<PathBuf>,
    /// What validation may take (its time is enforced by the front end).
    pub budget: validate::Budget,
}

/// What a run produced.
pub struct Outcome {
    pub report: report::Report,
    /// Files written (empty when nothing was written).
    pub written: Vec<PathBuf>,
}

impl Outcome {
    /// A run that wrote nothing.
    fn unwritten(report: report::Report) -> Self {
        Self {
            report,
            written: Vec::new(),
        }
    }

    /// Whether validation ran and failed (nothing was written then).
    pub fn validation_failed(&self) -> bool {
        self.report.validation.as_ref().is_some_and(|v| !v.ok)
    }
}

impl Config {
    /// Where to write: the given output, nothing for a report alone, or the default beside the
    /// model.
    pub fn output_path(&self) -> Option<PathBuf> {
        match (&self.output, self.report, &self.plot) {
            (Some(o), _, _) => Some(o.clone()),
            (None, Some(_), _) | (None, None, Some(_)) => None,
            (None, None, None) => Some(default_output(&self.model)),
        }
    }

    /// Checks that `--stages` names only stages of the model, which has `found` of them.
    pub fn check_stages(&self, found: usize) -> Result<()> {
        if let Some(sel) = &self.se.stages {
            if let Some(bad) = sel.iter().find(|&&s| s == 0 || s > found) {
                bail!(
                    "--stages names stage {bad}, but '{}' has {found} stage(s), numbered 1 to {found}",
                    shown::shown_path(&self.model)
                );
            }
        }
        Ok(())
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
    run_reporting(cfg, &|_| {})
}

/// [`run`], reporting each phase to `progress` as it begins.
pub fn run_reporting(cfg: &Config, progress: progress::Progress) -> Result<Outcome> {
    progress(progress::Phase::Load);
    // The path as the report holds it, and as messages print it (control characters escaped).
    let shown = cfg.model.display().to_string();
    let named = shown::shown_path(&cfg.model);
    let output = cfg.output_path();
    // Validation runs when there is an output to write; its bounds on counts bite before
    // decoding, which costs memory per node.
    let validating = cfg.validate && output.is_some();
    let model = onnx::load_within(&cfg.model, &|counts| match validating {
        true => validate::budget::check_counts(counts, cfg.budget)
            .with_context(|| format!("validating '{named}' in tract")),
        false => Ok(()),
    })?;
    targets::check(&model, output.as_deref(), cfg.plot.as_deref())?;
    progress(progress::Phase::Analyse);
    let view = graph::GraphView::new(model.graph()).with_context(|| format!("'{named}'"))?;
    let analysis = match &cfg.se.at {
        Some(maps) => analysis::named::at_maps(&view, maps),
        None => analysis::analyse(&view),
    }
    .with_context(|| format!("'{named}'"))?;
    cfg.check_stages(analysis.stages.len())?;
    // A report alone needs the new weights' dims, not their values.
    let splice = match output {
        Some(_) => rewrite::splice(&view, &analysis, &cfg.se),
        None => rewrite::plan(&view, &analysis, &cfg.se),
    };
    let mut splice = splice.with_context(|| format!("'{named}'"))?;
    policy::list_new_weights_as_inputs(&model, &mut splice);
    let parts = || report::Parts {
        model: &shown,
        view: &view,
        analysis: &analysis,
        splice: &splice,
        opts: &cfg.se,
        input_shape: cfg.input_shape.as_deref(),
        validation: None,
        output: None,
        data_file: None,
    };
    let Some(out) = output else {
        // A report alone is printed even when nothing can take SE: it says why.
        let rep = report::Report::new(parts())?;
        let written = match drawn(cfg, &rep)? {
            Some(plot) => {
                let to = vec![plot.1.clone()];
                onnx::commit::commit(vec![plot], None)?;
                to
            }
            None => Vec::new(),
        };
        return Ok(Outcome {
            report: rep,
            written,
        });
    };
    let position = report::spelled(cfg.se.position);
    policy::ensure_some_block_takes_se(&splice.decisions, &named, &position)?;
    policy::ensure_broadcasting_mul(&model, &named)?;
    let rewritten = with_splice(&model, &splice);
    let validation = if cfg.validate {
        let shapes =
            analysis::shapes::Shapes::infer(&view, &analysis.features, cfg.input_shape.as_deref());
        validate::budget::check_input_shape(&view, cfg.input_shape.as_deref())
            .and_then(|()| validate::budget::check(&view, &shapes, rewritten.graph(), cfg.budget))
            .with_context(|| format!("validating '{named}' in tract"))?;
        Some(validate_both(cfg, &model, &rewritten, progress)?)
    } else {
        None
    };
    if validation.as_ref().is_some_and(|v| !v.ok) {
        let rep = report::Report::new(report::Parts {
            validation,
            ..parts()
        })?;
        return Ok(Outcome::unwritten(rep));
    }
    progress(progress::Phase::Write);
    let pending = onnx::write::prepare(&rewritten, &out)?;
    let rep = report::Report::new(report::Parts {
        validation,
        output: Some(&out),
        data_file: pending.data_file(),
        ..parts()
    })?;
    // The picture is put in place first, so a picture that cannot be written leaves the output.
    let written = pending.commit(drawn(cfg, &rep)?)?;
    Ok(Outcome {
        report: rep,
        written,
    })
}

/// The report's picture drawn into a temporary file beside where `--plot` asks, and that place.
fn drawn(cfg: &Config, rep: &report::Report) -> Result<Option<(tempfile::NamedTempFile, PathBuf)>> {
    let Some(p) = &cfg.plot else {
        return Ok(None);
    };
    let tmp = onnx::commit::write_temp_file(onnx::io::folder_of(p), rep.to_svg().as_bytes())
        .with_context(|| format!("cannot write the plot '{}'", crate::shown::shown_path(p)))?;
    Ok(Some((tmp, p.clone())))
}

/// `model` with the spliced graph; a model with external data keeps the new weights external.
fn with_splice(model: &onnx::Model, splice: &rewrite::Splice) -> onnx::Model {
    let mut rewritten = model.clone();
    rewritten.proto.graph = Some(splice.graph.clone());
    if rewritten.storage == onnx::Storage::External {
        rewritten
            .external_tensors
            .extend(splice.added_initializers.iter().cloned());
    }
    rewritten
}

/// Runs the original and the rewritten model in tract and compares them; tract reads the weights
/// from the input's files.
fn validate_both(
    cfg: &Config,
    model: &onnx::Model,
    rewritten: &onnx::Model,
    progress: progress::Progress,
) -> Result<validate::Validation> {
    let opts = validate::ValidateOptions {
        input_shape: cfg.input_shape.clone(),
        seed: cfg.se.seed,
        expect_identical: cfg.se.init == rewrite::Init::Identity,
        runs: cfg
            .time_runs
            .map_or(validate::Runs::Budget, validate::Runs::Fixed),
    };
    validate::validate(
        &validate::ModelSource::from_model(model),
        &validate::ModelSource::from_model(rewritten),
        &opts,
        progress,
    )
    .with_context(|| {
        format!(
            "validating '{}' in tract (--no-validate skips this)",
            shown::shown_path(&cfg.model)
        )
    })
}

#[doc(hidden)]
pub mod testutil;

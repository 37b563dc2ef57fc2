//! Run the original and the rewritten ONNX model in tract on the same seeded
//! random input, compare their outputs and time them.
//!
//! Errors on the original model are returned as `Err` (there is nothing to
//! validate against); any problem with the rewritten model is reported as a
//! [`Validation`] with `ok == false` and a one-line `reason`.

pub mod budget;
mod compare;
mod float;
mod input;
mod memory;
mod run;
mod source;
#[cfg(test)]
mod tests;
pub mod timing;

use anyhow::{anyhow, bail, Context};
use tract_onnx::prelude::tract_ndarray::ArrayD;
use tract_onnx::prelude::*;

use crate::errors::error_line;
use crate::progress::{Phase, Progress, Which};
pub use budget::Budget;
use compare::Reference;
use input::InputSpec;
pub use source::ModelSource;
pub use timing::{Runs, Spread, Timing};

/// Options for [`validate`].
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Concrete shape of the (single) image input; `None` uses the model's
    /// declared shape with symbolic dims set to 1.
    pub input_shape: Option<Vec<usize>>,
    /// Seed of the random (standard normal) input.
    pub seed: u64,
    /// `true` when the rewritten model should compute the same function as
    /// the original (identity initialisation of the SE blocks).
    pub expect_identical: bool,
    /// Timed runs per model: until a budget is spent, or a fixed number.
    pub runs: Runs,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            input_shape: None,
            seed: 0,
            expect_identical: false,
            runs: Runs::Budget,
        }
    }
}

/// Outcome of running both models in tract.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Validation {
    /// Runtime used for the check, always `"tract"`.
    pub runtime: &'static str,
    /// Whether every check passed.
    pub ok: bool,
    /// Why the validation failed (one line); `None` when `ok`.
    pub reason: Option<String>,
    /// Largest absolute difference over all outputs; `None` if not computed.
    pub max_abs_diff: Option<f64>,
    /// Largest absolute value among the original model's outputs.
    pub output_scale: Option<f64>,
    /// Median run time of the original model, in milliseconds.
    pub ms_before: f64,
    /// Median run time of the rewritten model, in milliseconds (0 when the
    /// rewritten model could not be run).
    pub ms_after: f64,
    /// Shapes of the rewritten model's outputs (empty if it could not run).
    pub output_shapes: Vec<Vec<usize>>,
    /// The runs' spread, the overhead and the machine; None on a validation made before any
    /// timed run.
    pub timing: Option<Timing>,
    /// The float type both models were converted from to run in FLOAT (tract's FLOAT16 and
    /// DOUBLE support is incomplete: no Sigmoid in DOUBLE), or `None` when they ran in their
    /// own types.
    pub converted_from: Option<&'static str>,
    /// What the checks could not tell, when they passed without seeing everything.
    pub note: Option<String>,
}

/// Decodes, loads, optimises and runs both models and compares their outputs, reporting each
/// phase to `progress`.
///
/// Problems with the original are returned as `Err`, as is too little memory to hold both;
/// problems with the rewritten model give `Ok` with `ok == false` and a `reason`.
pub fn validate(
    original: &ModelSource,
    rewritten: &ModelSource,
    opts: &ValidateOptions,
    progress: Progress,
) -> anyhow::Result<Validation> {
    let runs = opts.runs;
    memory::check(original.weight_bytes() + rewritten.weight_bytes())?;
    // The original: every failure is an error.
    let mut orig = Original::prepare(original, opts, progress)?;
    // The rewritten model: every failure is a failed validation.
    let mut new = match Rewritten::prepare(rewritten, &orig, progress) {
        Ok(new) => new,
        Err(reason) => {
            let before = orig.time_alone(runs)?;
            return Ok(orig.failed(reason, before));
        }
    };
    // Timing, interleaved so both models see the same machine state.
    let (mut times_before, mut times_after) = (Vec::new(), Vec::new());
    while runs.more(
        times_before.len(),
        spent(&times_before).max(spent(&times_after)),
    ) {
        times_before.push(orig.timed_run()?);
        match run::timed_run(&mut new.state, &orig.input) {
            Ok(ms) => times_after.push(ms),
            Err(e) => {
                let reason = format!("tract: {}", error_line(&e));
                return Ok(orig.failed(reason, Spread::of(&mut times_before)));
            }
        }
    }
    let before = Spread::of(&mut times_before);
    let after = Spread::of(&mut times_after);
    let verdict = compare::compare(
        &orig.reference,
        &new.outputs,
        &new.output_names,
        opts.expect_identical,
    );
    Ok(Validation {
        ok: verdict.reason.is_none(),
        reason: verdict.reason,
        max_abs_diff: verdict.max_abs_diff,
        ms_after: after.median_ms,
        output_shapes: new.outputs.iter().map(|t| t.shape().to_vec()).collect(),
        note: verdict.note,
        timing: Some(Timing::new(before, Some(after))),
        ..orig.unjudged(before)
    })
}

/// Time spent in a sample of runs, in ms.
fn spent(times: &[f64]) -> f64 {
    times.iter().sum()
}

/// The original model running in tract, with its outputs on the seeded input.
struct Original {
    /// Its input, which the rewritten model must share.
    spec: InputSpec,
    state: TypedSimpleState,
    /// The seeded random input both models run on.
    input: TValue,
    reference: Reference,
    /// The float type the model was converted from, if it was.
    converted: Option<&'static str>,
}

impl Original {
    /// Decodes, loads and runs the original model on the seeded input and on a second one.
    fn prepare(
        source: &ModelSource,
        opts: &ValidateOptions,
        progress: Progress,
    ) -> anyhow::Result<Original> {
        let mut proto = source
            .decode()
            .context("the original model is not a valid ONNX protobuf")?;
        let converted = float::to_float(&mut proto);
        let spec = input::resolve_input(&proto, opts.input_shape.as_deref())
            .context("original model input")?;
        let steps = (progress, Which::Original);
        let loaded = run::load(&proto, source.dir(), &spec, steps).map_err(|e| {
            anyhow!(
                "tract could not load the original model: {}",
                error_line(&e)
            )
        })?;
        let input = input::random_input(&spec, opts.seed)?;
        let mut state = loaded
            .spawn("spawning the original model")
            .map_err(run_failed)?;
        let names = &loaded.output_names;
        let outputs = run_original(&mut state, &input, names)?;
        if let Some((ix, _)) = compare::first_non_finite(&outputs) {
            bail!(
                "the original model produced non-finite values in {} on the seeded random \
                 input; cannot validate against it (try another seed or input shape)",
                compare::output_label(ix, names)
            );
        }
        let other = input::random_input(&spec, opts.seed.wrapping_add(1))?;
        let other = run_original(&mut state, &other, names)?;
        Ok(Original {
            spec,
            state,
            input,
            reference: Reference::new(outputs, &other),
            converted,
        })
    }

    /// One timed run on the seeded input, in ms.
    fn timed_run(&mut self) -> anyhow::Result<f64> {
        run::timed_run(&mut self.state, &self.input).map_err(run_failed)
    }

    /// The spread of the original's runs when there is no rewritten model to run.
    fn time_alone(&mut self, runs: Runs) -> anyhow::Result<Spread> {
        let mut times = Vec::new();
        while runs.more(times.len(), spent(&times)) {
            times.push(self.timed_run()?);
        }
        Ok(Spread::of(&mut times))
    }

    /// A validation that has not judged the rewritten model (yet); the original's runs took
    /// `before`.
    fn unjudged(&self, before: Spread) -> Validation {
        Validation {
            runtime: "tract",
            ok: false,
            reason: None,
            max_abs_diff: None,
            output_scale: Some(self.reference.scale),
            ms_before: before.median_ms,
            ms_after: 0.0,
            output_shapes: vec![],
            converted_from: self.converted,
            note: None,
            timing: Some(Timing::new(before, None)),
        }
    }

    /// A failed validation of a rewritten model that could not be run.
    fn failed(&self, reason: String, before: Spread) -> Validation {
        Validation {
            reason: Some(reason),
            ..self.unjudged(before)
        }
    }
}

/// One run of the original model; its outputs as f64.
fn run_original(
    state: &mut TypedSimpleState,
    input: &TValue,
    names: &[String],
) -> anyhow::Result<Vec<ArrayD<f64>>> {
    let out = run::run_once(state, input).map_err(run_failed)?;
    compare::outputs_as_f64(&out, names).context("reading the original model's outputs")
}

/// The error of a failed run of the original model.
fn run_failed(e: anyhow::Error) -> anyhow::Error {
    anyhow!("tract could not run the original model: {}", error_line(&e))
}

/// The rewritten model running in tract, with its outputs on the seeded input.
struct Rewritten {
    state: TypedSimpleState,
    output_names: Vec<String>,
    outputs: TVec<TValue>,
}

impl Rewritten {
    /// Decodes, loads and runs the rewritten model once on the original's input (where the runs
    /// of both models begin); the reason it cannot be run otherwise.
    fn prepare(
        source: &ModelSource,
        orig: &Original,
        progress: Progress,
    ) -> Result<Rewritten, String> {
        let mut proto = source.decode().map_err(|e| {
            format!(
                "the rewritten model is not a valid ONNX protobuf: {}",
                error_line(&e)
            )
        })?;
        float::to_float(&mut proto);
        let spec = input::resolve_input(&proto, Some(&orig.spec.shape))
            .and_then(|spec| {
                let want = &orig.spec;
                if spec.datum_type != want.datum_type {
                    bail!(
                        "input `{}` has type {:?} but the original's input `{}` has type {:?}",
                        crate::shown::shown(&spec.name),
                        spec.datum_type,
                        crate::shown::shown(&want.name),
                        want.datum_type
                    );
                }
                Ok(spec)
            })
            .map_err(|e| format!("rewritten model: {}", error_line(&e)))?;
        let steps = (progress, Which::Rewritten);
        let started = run::load(&proto, source.dir(), &spec, steps).and_then(|loaded| {
            let mut state = loaded.spawn("spawning the rewritten model")?;
            progress(Phase::Run);
            let outputs = run::run_once(&mut state, &orig.input)?;
            Ok(Rewritten {
                state,
                output_names: loaded.output_names,
                outputs,
            })
        });
        started.map_err(|e| format!("tract: {}", error_line(&e)))
    }
}

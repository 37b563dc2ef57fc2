//! Loading a model into tract, running it with panics turned into errors, and timing one run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::input::InputSpec;
use crate::errors::panic_message;
use crate::progress::{Phase, Progress, Which};

/// A model loaded into tract, ready to run.
pub(super) struct Loaded {
    plan: Arc<TypedSimplePlan>,
    /// The graph's output names, in order (for messages).
    pub output_names: Vec<String>,
}

impl Loaded {
    /// A runnable state of the plan; `what` names the step if tract panics.
    pub fn spawn(&self, what: &str) -> anyhow::Result<TypedSimpleState> {
        guarded(what, || self.plan.spawn())
    }
}

/// Decodes ONNX bytes into tract's protobuf type and drops stale `value_info`.
pub(super) fn decode_model(bytes: &[u8]) -> anyhow::Result<pb::ModelProto> {
    let mut proto = pb::ModelProto::decode(bytes)?;
    let graph = proto.graph.as_mut().context("the model has no graph")?;
    graph.value_info.clear();
    Ok(proto)
}

/// Parses the proto with tract, reading external data from `dir`, sets the input fact,
/// optimises and plans it, reporting each step as `which` model's.
pub(super) fn load(
    proto: &pb::ModelProto,
    dir: Option<&str>,
    input: &InputSpec,
    (progress, which): (Progress, Which),
) -> anyhow::Result<Loaded> {
    let output_names = proto
        .graph
        .as_ref()
        .map(|g| g.output.iter().map(|o| o.name.clone()).collect())
        .unwrap_or_default();
    let plan = guarded("loading the model", || {
        let _mapped = super::memory::LargeAllocationsMapped::new();
        progress(Phase::TractLoad(which));
        let parsed = tract_onnx::onnx().parse(proto, dir)?;
        if !parsed.unresolved_inputs.is_empty() {
            bail!(
                "Could not resolve inputs at top-level: {:?}",
                parsed.unresolved_inputs
            );
        }
        let mut model = parsed.model;
        let n_inputs = model.input_outlets()?.len();
        if n_inputs != 1 {
            bail!("tract sees {n_inputs} model inputs, expected exactly one");
        }
        model.set_input_fact(0, InferenceFact::dt_shape(input.datum_type, &input.shape))?;
        progress(Phase::TractOptimise(which));
        let optimized = model.into_optimized()?;
        optimized.into_runnable()
    })?;
    Ok(Loaded { plan, output_names })
}

/// One guarded run of a plan state.
pub(super) fn run_once(
    state: &mut TypedSimpleState,
    input: &TValue,
) -> anyhow::Result<TVec<TValue>> {
    guarded("running the model", || state.run(tvec![input.clone()]))
}

/// One guarded, timed run; returns the time in ms.
pub(super) fn timed_run(state: &mut TypedSimpleState, input: &TValue) -> anyhow::Result<f64> {
    let start = Instant::now();
    // The outputs are freed after the clock stops.
    let _outputs = run_once(state, input)?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// Runs `f`, turning a panic into an error mentioning `what`.
pub(super) fn guarded<T>(what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(&*payload).unwrap_or_else(|| "unknown panic payload".into());
            Err(anyhow!("panic while {what}: {msg}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_errors() {
        let e = guarded::<()>("testing", || panic!("boom")).unwrap_err();
        assert_eq!(e.to_string(), "panic while testing: boom");
    }
}

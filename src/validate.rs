//! Run the original and the rewritten ONNX model in tract on the same seeded
//! random input, compare their outputs and time them.
//!
//! Errors on the original model are returned as `Err` (there is nothing to
//! validate against); any problem with the rewritten model is reported as a
//! [`Validation`] with `ok == false` and a one-line `reason`.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tract_onnx::pb;
use tract_onnx::prelude::*;

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
    /// Timed runs per model used for the median; values below 1 count as 1.
    pub runs: usize,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            input_shape: None,
            seed: 0,
            expect_identical: false,
            runs: 5,
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
    /// The float type both models were converted from to run in FLOAT (tract's FLOAT16 and
    /// DOUBLE support is incomplete: no Sigmoid in DOUBLE), or `None` when they ran in their
    /// own types.
    pub converted_from: Option<&'static str>,
    /// What the checks could not tell, when they passed without seeing everything.
    pub note: Option<String>,
}

/// Relative tolerance for "same function" (`expect_identical`).
const IDENTICAL_TOL: f64 = 1e-4;
/// Largest input validation feeds a model (2^28 elements, 1 GiB of f32).
const MAX_INPUT_ELEMENTS: usize = 1 << 28;
/// Relative threshold below which outputs count as unchanged.
const LIVE_TOL: f64 = 1e-6;

/// A model loaded into tract, ready to run.
struct Loaded {
    plan: Arc<TypedSimplePlan>,
    output_names: Vec<String>,
}

/// The resolved single input of a model.
struct InputSpec {
    name: String,
    datum_type: DatumType,
    shape: Vec<usize>,
}

/// Decodes, loads, optimises and runs both models and compares their outputs.
///
/// `original` and `rewritten` are serialized ONNX `ModelProto`s with inline
/// weights. Problems with the original are returned as `Err`; problems with
/// the rewritten model give `Ok` with `ok == false` and a `reason`.
pub fn validate(
    original: &[u8],
    rewritten: &[u8],
    opts: &ValidateOptions,
) -> anyhow::Result<Validation> {
    let runs = opts.runs.max(1);

    // --- original: every failure is an error ---
    let mut orig_proto =
        decode_model(original).context("the original model is not a valid ONNX protobuf")?;
    let converted = to_float(&mut orig_proto);
    let orig_input =
        resolve_input(&orig_proto, opts.input_shape.as_deref()).context("original model input")?;
    let orig = load(&orig_proto, &orig_input)
        .map_err(|e| anyhow!("tract could not load the original model: {}", one_line(&e)))?;
    let input = random_input(&orig_input, opts.seed)?;
    let mut orig_state = guarded("spawning the original model", || orig.plan.spawn())
        .map_err(|e| anyhow!("tract could not run the original model: {}", one_line(&e)))?;
    let orig_out = run_once(&mut orig_state, &input)
        .map_err(|e| anyhow!("tract could not run the original model: {}", one_line(&e)))?;
    let orig_vals = outputs_as_f64(&orig_out, &orig.output_names)
        .context("reading the original model's outputs")?;
    for (ix, (_, vals)) in orig_vals.iter().enumerate() {
        if vals.iter().any(|v| !v.is_finite()) {
            bail!(
                "the original model produced non-finite values in {} on the seeded random \
                 input; cannot validate against it (try another seed or input shape)",
                output_label(ix, &orig.output_names)
            );
        }
    }
    let output_scale = orig_vals
        .iter()
        .flat_map(|(_, v)| v.iter())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    // How much the original's outputs move with its input: a model with random weights can
    // give nearly the same output for any input, and then no change inside it shows either.
    let sensitivity = {
        let other = random_input(&orig_input, opts.seed.wrapping_add(1))?;
        let out = run_once(&mut orig_state, &other)
            .map_err(|e| anyhow!("tract could not run the original model: {}", one_line(&e)))?;
        let vals = outputs_as_f64(&out, &orig.output_names)
            .context("reading the original model's outputs")?;
        max_diff(&orig_vals, &vals)
    };

    // --- rewritten: every failure is a failed validation ---
    let failed = |reason: String, ms_before: f64| Validation {
        runtime: "tract",
        ok: false,
        reason: Some(reason),
        max_abs_diff: None,
        output_scale: Some(output_scale),
        ms_before,
        ms_after: 0.0,
        output_shapes: vec![],
        converted_from: converted,
        note: None,
    };
    let time_original_alone = |state: &mut TypedSimpleState| -> anyhow::Result<f64> {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let (_, ms) = timed_run(state, &input)
                .map_err(|e| anyhow!("tract could not run the original model: {}", one_line(&e)))?;
            times.push(ms);
        }
        Ok(median(&mut times))
    };

    let new_proto = match decode_model(rewritten) {
        Ok(mut p) => {
            to_float(&mut p);
            p
        }
        Err(e) => {
            let ms = time_original_alone(&mut orig_state)?;
            return Ok(failed(
                format!(
                    "the rewritten model is not a valid ONNX protobuf: {}",
                    one_line(&e)
                ),
                ms,
            ));
        }
    };
    let new_input = match resolve_input(&new_proto, Some(&orig_input.shape)).and_then(|spec| {
        if spec.datum_type != orig_input.datum_type {
            bail!(
                "input `{}` has type {:?} but the original's input `{}` has type {:?}",
                spec.name,
                spec.datum_type,
                orig_input.name,
                orig_input.datum_type
            );
        }
        Ok(spec)
    }) {
        Ok(spec) => spec,
        Err(e) => {
            let ms = time_original_alone(&mut orig_state)?;
            return Ok(failed(format!("rewritten model: {}", one_line(&e)), ms));
        }
    };
    let loaded = load(&new_proto, &new_input).and_then(|new| {
        let mut state = guarded("spawning the rewritten model", || new.plan.spawn())?;
        let out = run_once(&mut state, &input)?;
        Ok((new, state, out))
    });
    let (new, mut new_state, new_out) = match loaded {
        Ok(x) => x,
        Err(e) => {
            let ms = time_original_alone(&mut orig_state)?;
            return Ok(failed(format!("tract: {}", one_line(&e)), ms));
        }
    };

    // --- timing, interleaved so both models see the same machine state ---
    let mut times_before = Vec::with_capacity(runs);
    let mut times_after = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (_, ms) = timed_run(&mut orig_state, &input)
            .map_err(|e| anyhow!("tract could not run the original model: {}", one_line(&e)))?;
        times_before.push(ms);
        match timed_run(&mut new_state, &input) {
            Ok((_, ms)) => times_after.push(ms),
            Err(e) => {
                let ms_before = median(&mut times_before);
                return Ok(failed(format!("tract: {}", one_line(&e)), ms_before));
            }
        }
    }
    let ms_before = median(&mut times_before);
    let ms_after = median(&mut times_after);

    let output_shapes: Vec<Vec<usize>> = new_out.iter().map(|t| t.shape().to_vec()).collect();
    let mut result = Validation {
        runtime: "tract",
        ok: false,
        reason: None,
        max_abs_diff: None,
        output_scale: Some(output_scale),
        ms_before,
        ms_after,
        output_shapes,
        converted_from: converted,
        note: None,
    };

    if let Err(reason) = compare(
        &orig_vals,
        &new_out,
        &new.output_names,
        opts,
        sensitivity,
        &mut result,
    ) {
        result.reason = Some(reason);
    } else {
        result.ok = true;
    }
    Ok(result)
}

/// Runs the output checks, filling `max_abs_diff`; returns the failure reason.
fn compare(
    orig_vals: &[(Vec<usize>, Vec<f64>)],
    new_out: &[TValue],
    new_names: &[String],
    opts: &ValidateOptions,
    sensitivity: f64,
    result: &mut Validation,
) -> Result<(), String> {
    if new_out.len() != orig_vals.len() {
        return Err(format!(
            "the rewritten model has {} outputs, the original has {}",
            new_out.len(),
            orig_vals.len()
        ));
    }
    for (ix, ((orig_shape, _), new)) in orig_vals.iter().zip(new_out).enumerate() {
        if new.shape() != orig_shape.as_slice() {
            return Err(format!(
                "{} has shape {:?}, the original's has shape {:?}",
                output_label(ix, new_names),
                new.shape(),
                orig_shape
            ));
        }
    }
    let new_vals = outputs_as_f64(new_out, new_names).map_err(|e| one_line(&e))?;
    for (ix, (_, vals)) in new_vals.iter().enumerate() {
        if let Some(bad) = vals.iter().find(|v| !v.is_finite()) {
            return Err(format!(
                "{} contains non-finite values (e.g. {bad})",
                output_label(ix, new_names)
            ));
        }
    }

    let mut max_diff = 0.0f64;
    let mut worst = 0usize;
    for (ix, ((_, a), (_, b))) in orig_vals.iter().zip(&new_vals).enumerate() {
        let d = a
            .iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        if d > max_diff {
            max_diff = d;
            worst = ix;
        }
    }
    result.max_abs_diff = Some(max_diff);

    let scale = result.output_scale.unwrap_or(0.0);
    if opts.expect_identical {
        let tol = IDENTICAL_TOL * scale.max(1.0);
        if max_diff > tol {
            return Err(format!(
                "{} differs from the original by up to {max_diff:.3e} (tolerance {tol:.3e}) \
                 although the rewrite should compute the same function",
                output_label(worst, new_names)
            ));
        }
    } else {
        // Relative to the outputs' own magnitude, however small (random-weight models).
        let tol = LIVE_TOL * scale;
        if max_diff <= tol {
            if sensitivity <= tol {
                result.note = Some(format!(
                    "the original's outputs hardly depend on its input (two inputs differ by \
                     {sensitivity:.1e}), so whether the SE blocks act cannot be seen at the output"
                ));
            } else {
                return Err(format!(
                    "outputs identical to the original (max abs diff {max_diff:.3e} <= {tol:.3e}): \
                     the SE blocks have no effect"
                ));
            }
        }
    }
    Ok(())
}

/// Largest absolute difference between two sets of outputs of the same shapes.
fn max_diff(a: &[(Vec<usize>, Vec<f64>)], b: &[(Vec<usize>, Vec<f64>)]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|((_, x), (_, y))| x.iter().zip(y))
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

/// Converts a FLOAT16 / BFLOAT16 / DOUBLE model to FLOAT in place: initializers, Constant
/// values, graph input and output types, and Cast targets. Returns the type it converted from.
fn to_float(proto: &mut pb::ModelProto) -> Option<&'static str> {
    use pb::tensor_proto::DataType;
    let (f16, bf16, f32, f64) = (
        DataType::Float16 as i32,
        DataType::Bfloat16 as i32,
        DataType::Float as i32,
        DataType::Double as i32,
    );
    let other = |t: i32| t == f16 || t == bf16 || t == f64;
    let name = |t: i32| match t {
        t if t == f16 => "FLOAT16",
        t if t == bf16 => "BFLOAT16",
        _ => "DOUBLE",
    };
    let graph = proto.graph.as_mut()?;
    let mut from = None;
    let mut convert = |t: &mut pb::TensorProto| {
        if !other(t.data_type) {
            return;
        }
        from = Some(name(t.data_type));
        let values: Vec<f32> = if t.data_type == f64 {
            if t.raw_data.is_empty() {
                t.double_data.iter().map(|&v| v as f32).collect()
            } else {
                t.raw_data
                    .chunks_exact(8)
                    .map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                    })
                    .collect()
            }
        } else {
            let half = t.data_type == f16;
            let widen = |bits: u16| {
                if half {
                    half::f16::from_bits(bits).to_f32()
                } else {
                    half::bf16::from_bits(bits).to_f32()
                }
            };
            if t.raw_data.is_empty() {
                t.int32_data.iter().map(|&v| widen(v as u16)).collect()
            } else {
                t.raw_data
                    .chunks_exact(2)
                    .map(|c| widen(u16::from_le_bytes([c[0], c[1]])))
                    .collect()
            }
        };
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.int32_data.clear();
        t.double_data.clear();
        t.data_type = f32;
    };
    for t in graph.initializer.iter_mut() {
        convert(t);
    }
    for node in graph.node.iter_mut() {
        for a in node.attribute.iter_mut() {
            if let Some(t) = a.t.as_mut() {
                convert(t);
            }
            if node.op_type == "Cast" && a.name == "to" && i32::try_from(a.i).is_ok_and(other) {
                a.i = i64::from(f32);
            }
        }
    }
    for v in graph.input.iter_mut().chain(graph.output.iter_mut()) {
        if let Some(pb::type_proto::Value::TensorType(t)) =
            v.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            if other(t.elem_type) {
                from.get_or_insert(name(t.elem_type));
                t.elem_type = f32;
            }
        }
    }
    from
}

/// Decodes ONNX bytes into tract's protobuf type and drops stale `value_info`.
fn decode_model(bytes: &[u8]) -> anyhow::Result<pb::ModelProto> {
    let mut proto = pb::ModelProto::decode(bytes)?;
    let graph = proto.graph.as_mut().context("the model has no graph")?;
    graph.value_info.clear();
    Ok(proto)
}

/// Finds the single non-initializer graph input and its concrete type/shape.
fn resolve_input(
    proto: &pb::ModelProto,
    shape_override: Option<&[usize]>,
) -> anyhow::Result<InputSpec> {
    let graph = proto.graph.as_ref().context("the model has no graph")?;
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => bail!("the model has no graph input (exactly one image input is supported)"),
        many => bail!(
            "the model has {} graph inputs ({}); exactly one image input is supported",
            many.len(),
            many.iter()
                .map(|i| format!("`{}`", i.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let name = input.name.clone();
    let pb::type_proto::Value::TensorType(tensor_type) = input
        .r#type
        .as_ref()
        .and_then(|t| t.value.as_ref())
        .with_context(|| format!("input `{name}` has no tensor type"))?;

    use pb::tensor_proto::DataType;
    let datum_type = match DataType::try_from(tensor_type.elem_type) {
        Ok(DataType::Float) => DatumType::F32,
        Ok(DataType::Float16) => DatumType::F16,
        Ok(DataType::Double) => DatumType::F64,
        Ok(other) => bail!(
            "input `{name}` has element type {}; only FLOAT, FLOAT16 and DOUBLE inputs are \
             supported",
            other.as_str_name()
        ),
        Err(_) => bail!(
            "input `{name}` has unknown element type {}",
            tensor_type.elem_type
        ),
    };

    let declared = tensor_type.shape.as_ref();
    let shape = match (shape_override, declared) {
        (Some(shape), Some(decl)) if shape.len() != decl.dim.len() => bail!(
            "input shape {shape:?} has rank {} but input `{name}` has rank {}",
            shape.len(),
            decl.dim.len()
        ),
        (Some(shape), _) => {
            if shape.contains(&0) {
                bail!("input shape {shape:?} has a zero dimension");
            }
            shape.to_vec()
        }
        (None, None) => {
            bail!("input `{name}` has no declared shape; pass --input-shape")
        }
        (None, Some(decl)) => {
            use pb::tensor_shape_proto::dimension::Value;
            decl.dim
                .iter()
                .enumerate()
                .map(|(axis, d)| match &d.value {
                    Some(Value::DimValue(v)) if *v > 0 => usize::try_from(*v)
                        .with_context(|| format!("input `{name}` axis {axis}: dim {v} too large")),
                    Some(Value::DimParam(p)) if !p.is_empty() => Ok(1),
                    _ => bail!(
                        "input `{name}` axis {axis} has an unknown dimension; pass --input-shape"
                    ),
                })
                .collect::<anyhow::Result<Vec<usize>>>()?
        }
    };
    let elements = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_INPUT_ELEMENTS);
    if elements.is_none() {
        bail!(
            "input `{name}` of shape {shape:?} is larger than validation runs ({MAX_INPUT_ELEMENTS} \
             elements at most); pass a smaller --input-shape or --no-validate"
        );
    }
    Ok(InputSpec {
        name,
        datum_type,
        shape,
    })
}

/// Parses the proto with tract, sets the input fact, optimises and plans it.
fn load(proto: &pb::ModelProto, input: &InputSpec) -> anyhow::Result<Loaded> {
    let output_names = proto
        .graph
        .as_ref()
        .map(|g| g.output.iter().map(|o| o.name.clone()).collect())
        .unwrap_or_default();
    let plan = guarded("loading the model", || {
        let mut model = tract_onnx::onnx().model_for_proto_model(proto)?;
        let n_inputs = model.input_outlets()?.len();
        if n_inputs != 1 {
            bail!("tract sees {n_inputs} model inputs, expected exactly one");
        }
        model.set_input_fact(0, InferenceFact::dt_shape(input.datum_type, &input.shape))?;
        let optimized = model.into_optimized()?;
        optimized.into_runnable()
    })?;
    Ok(Loaded { plan, output_names })
}

/// Builds the seeded standard-normal input tensor.
fn random_input(spec: &InputSpec, seed: u64) -> anyhow::Result<TValue> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len: usize = spec.shape.iter().product();
    let data: Vec<f32> = (0..len).map(|_| StandardNormal.sample(&mut rng)).collect();
    let tensor = Tensor::from_shape(&spec.shape, &data)?;
    let tensor = tensor.cast_to_dt(spec.datum_type)?.into_owned();
    Ok(tensor.into_tvalue())
}

/// One guarded run of a plan state.
fn run_once(state: &mut TypedSimpleState, input: &TValue) -> anyhow::Result<TVec<TValue>> {
    guarded("running the model", || state.run(tvec![input.clone()]))
}

/// One guarded, timed run; returns the outputs and the time in ms.
fn timed_run(state: &mut TypedSimpleState, input: &TValue) -> anyhow::Result<(TVec<TValue>, f64)> {
    let start = Instant::now();
    let out = run_once(state, input)?;
    Ok((out, start.elapsed().as_secs_f64() * 1e3))
}

/// Converts outputs to (shape, values as f64 in logical order).
fn outputs_as_f64(
    outputs: &[TValue],
    names: &[String],
) -> anyhow::Result<Vec<(Vec<usize>, Vec<f64>)>> {
    outputs
        .iter()
        .enumerate()
        .map(|(ix, t)| {
            let cast = t.cast_to::<f64>().with_context(|| {
                format!(
                    "{} of type {:?} is not numeric",
                    output_label(ix, names),
                    t.datum_type()
                )
            })?;
            let view = cast.to_plain_array_view::<f64>()?;
            Ok((t.shape().to_vec(), view.iter().copied().collect()))
        })
        .collect()
}

/// `output 0 (`name`)`, or `output 0` when the name is unknown.
fn output_label(ix: usize, names: &[String]) -> String {
    match names.get(ix) {
        Some(n) if !n.is_empty() => format!("output {ix} (`{n}`)"),
        _ => format!("output {ix}"),
    }
}

/// Median of a non-empty sample (mean of the two middle values if even).
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Runs `f`, turning a panic into an error mentioning `what`.
fn guarded<T>(what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_string());
            Err(anyhow!("panic while {what}: {msg}"))
        }
    }
}

/// The error chain on one line, whitespace collapsed.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::tensor_shape_proto::{dimension, Dimension};

    fn dim(v: i64) -> Dimension {
        Dimension {
            value: Some(dimension::Value::DimValue(v)),
            ..Default::default()
        }
    }

    fn sym(s: &str) -> Dimension {
        Dimension {
            value: Some(dimension::Value::DimParam(s.into())),
            ..Default::default()
        }
    }

    fn value_info(name: &str, elem_type: i32, dims: Option<Vec<Dimension>>) -> pb::ValueInfoProto {
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type,
                    shape: dims.map(|dim| pb::TensorShapeProto { dim }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: format!("{op}_{output}"),
            ..Default::default()
        }
    }

    fn scalar(name: &str, v: f32) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            data_type: 1,
            dims: vec![],
            float_data: vec![v],
            ..Default::default()
        }
    }

    fn model(
        nodes: Vec<pb::NodeProto>,
        inputs: Vec<pb::ValueInfoProto>,
        initializer: Vec<pb::TensorProto>,
    ) -> Vec<u8> {
        let graph = pb::GraphProto {
            name: "g".into(),
            node: nodes,
            input: inputs,
            initializer,
            output: vec![value_info("y", 1, None)],
            // deliberately wrong stale shape info: must be ignored
            value_info: vec![value_info("r", 1, Some(vec![dim(7), dim(7)]))],
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn x_input() -> pb::ValueInfoProto {
        value_info("x", 1, Some(vec![dim(1), dim(2), dim(3), dim(3)]))
    }

    /// x -> Relu -> y
    fn relu() -> Vec<u8> {
        model(vec![node("Relu", &["x"], "y")], vec![x_input()], vec![])
    }

    /// x -> Relu -> Mul(k) -> y
    fn relu_mul(k: f32) -> Vec<u8> {
        model(
            vec![node("Relu", &["x"], "r"), node("Mul", &["r", "k"], "y")],
            vec![x_input()],
            vec![scalar("k", k)],
        )
    }

    fn opts(expect_identical: bool) -> ValidateOptions {
        ValidateOptions {
            input_shape: None,
            seed: 42,
            expect_identical,
            runs: 3,
        }
    }

    #[test]
    fn identical_models_expected_identical() {
        let v = validate(&relu(), &relu(), &opts(true)).unwrap();
        assert!(v.ok, "{:?}", v.reason);
        assert_eq!(v.reason, None);
        assert_eq!(v.runtime, "tract");
        assert_eq!(v.max_abs_diff, Some(0.0));
        assert!(v.output_scale.unwrap() > 0.0);
        assert_eq!(v.output_shapes, vec![vec![1, 2, 3, 3]]);
        assert!(v.ms_before >= 0.0 && v.ms_after >= 0.0);
    }

    #[test]
    fn different_models_expected_identical_fail() {
        let v = validate(&relu(), &relu_mul(2.0), &opts(true)).unwrap();
        assert!(!v.ok);
        let reason = v.reason.unwrap();
        assert!(reason.contains("output 0 (`y`)"), "{reason}");
        // 2*relu(x) - relu(x) == relu(x) exactly, so the diff is the scale
        assert_eq!(v.max_abs_diff, v.output_scale);
    }

    #[test]
    fn different_models_expected_different_ok() {
        let v = validate(&relu(), &relu_mul(2.0), &opts(false)).unwrap();
        assert!(v.ok, "{:?}", v.reason);
        assert_eq!(v.max_abs_diff, v.output_scale);
        assert_eq!(v.output_shapes, vec![vec![1, 2, 3, 3]]);
    }

    #[test]
    fn identical_models_expected_different_fail() {
        let v = validate(&relu(), &relu_mul(1.0), &opts(false)).unwrap();
        assert!(!v.ok);
        assert_eq!(v.max_abs_diff, Some(0.0));
        assert!(v.reason.unwrap().contains("the SE blocks have no effect"));
    }

    #[test]
    fn an_input_blind_original_passes_with_a_note() {
        // y = relu(x)·0 gives 0 for every input: no change inside can show at the output.
        let v = validate(&relu_mul(0.0), &relu_mul(0.0), &opts(false)).unwrap();
        assert!(v.ok, "{:?}", v.reason);
        assert!(v.note.unwrap().contains("hardly depend on its input"));
    }

    #[test]
    fn tiny_outputs_are_judged_relative_to_their_scale() {
        // Outputs of size 1e-8 that change by 1e-8: live, though far below an absolute 1e-6.
        let v = validate(&relu_mul(1e-8), &relu_mul(2e-8), &opts(false)).unwrap();
        assert!(v.ok, "{:?}", v.reason);
        assert!(v.note.is_none());
    }

    #[test]
    fn garbage_rewritten_is_not_ok() {
        let v = validate(&relu(), b"\xff\xff\xff not onnx", &opts(true)).unwrap();
        assert!(!v.ok);
        assert!(v.reason.unwrap().contains("not a valid ONNX protobuf"));
        assert_eq!(v.max_abs_diff, None);
        assert!(v.output_shapes.is_empty());
    }

    #[test]
    fn unloadable_rewritten_is_tract_reason() {
        let bad = model(vec![node("NoSuchOp", &["x"], "y")], vec![x_input()], vec![]);
        let v = validate(&relu(), &bad, &opts(true)).unwrap();
        assert!(!v.ok);
        let reason = v.reason.unwrap();
        assert!(reason.starts_with("tract: "), "{reason}");
        assert!(!reason.contains('\n'));
    }

    #[test]
    fn garbage_original_is_err() {
        let e = validate(b"\xff\xff\xff not onnx", &relu(), &opts(true)).unwrap_err();
        assert!(format!("{e:#}").contains("original"));
    }

    #[test]
    fn wrong_rank_input_shape_is_err() {
        let o = ValidateOptions {
            input_shape: Some(vec![1, 2, 3]),
            ..opts(true)
        };
        let e = validate(&relu(), &relu(), &o).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("rank 3") && msg.contains("rank 4"), "{msg}");
    }

    #[test]
    fn explicit_input_shape_is_used() {
        let o = ValidateOptions {
            input_shape: Some(vec![2, 2, 5, 4]),
            ..opts(false)
        };
        let v = validate(&relu(), &relu_mul(2.0), &o).unwrap();
        assert!(v.ok, "{:?}", v.reason);
        assert_eq!(v.output_shapes, vec![vec![2, 2, 5, 4]]);
    }

    #[test]
    fn symbolic_batch_is_resolved_to_one() {
        let x = value_info("x", 1, Some(vec![sym("N"), dim(2), dim(3), dim(3)]));
        let a = model(vec![node("Relu", &["x"], "y")], vec![x.clone()], vec![]);
        let b = model(
            vec![node("Relu", &["x"], "r"), node("Mul", &["r", "k"], "y")],
            vec![x],
            vec![scalar("k", 2.0)],
        );
        let v = validate(&a, &b, &opts(false)).unwrap();
        assert!(v.ok, "{:?}", v.reason);
        assert_eq!(v.output_shapes, vec![vec![1, 2, 3, 3]]);
    }

    #[test]
    fn unknown_dim_needs_input_shape() {
        let x = value_info(
            "x",
            1,
            Some(vec![Dimension::default(), dim(2), dim(3), dim(3)]),
        );
        let a = model(vec![node("Relu", &["x"], "y")], vec![x], vec![]);
        let e = validate(&a, &a, &opts(true)).unwrap_err();
        assert!(format!("{e:#}").contains("pass --input-shape"));
        let o = ValidateOptions {
            input_shape: Some(vec![1, 2, 3, 3]),
            ..opts(true)
        };
        let v = validate(&a, &a, &o).unwrap();
        assert!(v.ok, "{:?}", v.reason);
    }

    #[test]
    fn two_inputs_is_err() {
        let a = model(
            vec![node("Add", &["x", "z"], "y")],
            vec![x_input(), value_info("z", 1, Some(vec![dim(1)]))],
            vec![],
        );
        let e = validate(&a, &a, &opts(true)).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("2 graph inputs") && msg.contains("`z`"),
            "{msg}"
        );
    }

    #[test]
    fn initializer_listed_as_input_is_not_an_input() {
        let b = model(
            vec![node("Relu", &["x"], "r"), node("Mul", &["r", "k"], "y")],
            vec![x_input(), value_info("k", 1, Some(vec![]))],
            vec![scalar("k", 3.0)],
        );
        let v = validate(&relu(), &b, &opts(false)).unwrap();
        assert!(v.ok, "{:?}", v.reason);
    }

    #[test]
    fn non_finite_rewritten_output_fails() {
        let v = validate(&relu(), &relu_mul(f32::INFINITY), &opts(false)).unwrap();
        assert!(!v.ok);
        let reason = v.reason.unwrap();
        assert!(
            reason.contains("non-finite") && reason.contains("`y`"),
            "{reason}"
        );
        assert_eq!(v.max_abs_diff, None);
    }

    #[test]
    fn shape_mismatch_fails() {
        let mut t = node("Transpose", &["x"], "y");
        t.attribute.push(pb::AttributeProto {
            name: "perm".into(),
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ints: vec![0, 2, 1, 3],
            ..Default::default()
        });
        let b = model(vec![t], vec![x_input()], vec![]);
        let o = ValidateOptions {
            input_shape: Some(vec![1, 2, 3, 4]),
            ..opts(false)
        };
        let v = validate(&relu(), &b, &o).unwrap();
        assert!(!v.ok);
        let reason = v.reason.unwrap();
        assert!(
            reason.contains("output 0 (`y`) has shape [1, 3, 2, 4]"),
            "{reason}"
        );
        assert_eq!(v.output_shapes, vec![vec![1, 3, 2, 4]]);
    }

    #[test]
    fn double_input_is_supported() {
        let x = value_info("x", 11, Some(vec![dim(1), dim(2), dim(3), dim(3)]));
        let a = model(vec![node("Relu", &["x"], "y")], vec![x], vec![]);
        let v = validate(&a, &a, &opts(true)).unwrap();
        assert!(v.ok, "{:?}", v.reason);
        assert_eq!(v.max_abs_diff, Some(0.0));
    }

    #[test]
    fn integer_input_is_rejected() {
        let x = value_info("x", 7, Some(vec![dim(1), dim(2), dim(3), dim(3)]));
        let a = model(vec![node("Relu", &["x"], "y")], vec![x], vec![]);
        let e = validate(&a, &a, &opts(true)).unwrap_err();
        assert!(format!("{e:#}").contains("INT64"));
    }

    #[test]
    fn same_seed_same_input() {
        let spec = InputSpec {
            name: "x".into(),
            datum_type: DatumType::F32,
            shape: vec![2, 3],
        };
        let a = random_input(&spec, 7).unwrap();
        let b = random_input(&spec, 7).unwrap();
        let c = random_input(&spec, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [5.0]), 5.0);
    }

    #[test]
    fn panics_become_errors() {
        let e = guarded::<()>("testing", || panic!("boom")).unwrap_err();
        assert_eq!(e.to_string(), "panic while testing: boom");
    }

    #[test]
    fn stale_value_info_is_dropped() {
        let bytes = relu_mul(2.0);
        let mut proto = pb::ModelProto::decode(bytes.as_slice()).unwrap();
        let spec = resolve_input(&proto, None).unwrap();
        // the stale [7, 7] shape of `r` makes tract's analysis fail...
        let stale = load(&proto, &spec)
            .err()
            .map(|e| one_line(&e))
            .unwrap_or_default();
        assert!(stale.contains("Impossible to unify"), "{stale}");
        // ...and dropping value_info fixes it
        proto.graph.as_mut().unwrap().value_info.clear();
        assert!(load(&proto, &spec).is_ok());
        let decoded = decode_model(&bytes).unwrap();
        assert!(decoded.graph.unwrap().value_info.is_empty());
    }
}

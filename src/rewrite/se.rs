//! The SE subgraph: squeeze → FC (1×1 Conv) → ReLU → FC (1×1 Conv) → gate → Mul, built from
//! standard ONNX ops available at every opset, with weights in the feature map's float type.

use super::names::Names;
use super::{Gate, Init, SeOptions, Squeeze};
use crate::onnx::proto::attribute_proto::AttributeType;
use crate::onnx::tensor::float_tensor;
use crate::onnx::{AttributeProto, NodeProto, TensorProto};
use anyhow::Result;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Hidden width of the excitation: max(1, round(C / r)).
pub fn hidden_width(channels: usize, ratio: usize) -> usize {
    let r = ratio.max(1);
    (channels.saturating_add(r / 2) / r).max(1)
}

/// Parameters one SE block adds: 2·C·h weights, plus h + C biases when biases are on.
pub fn block_params(channels: usize, hidden: usize, bias: bool) -> u64 {
    let (c, h) = (channels as u64, hidden as u64);
    let biases = if bias { h.saturating_add(c) } else { 0 };
    c.saturating_mul(h).saturating_mul(2).saturating_add(biases)
}

/// Bias of the second FC that saturates the gate at exactly 1 when its weights are zero.
pub fn identity_bias(gate: Gate) -> f32 {
    match gate {
        // f32 sigmoid(20) rounds to 1.0 (onnxruntime reaches 1.0 from 18 up).
        Gate::Sigmoid => 20.0,
        // HardSigmoid(x) = clip(0.2·x + 0.5, 0, 1): any x ≥ 2.5 gives 1; 5 leaves a margin.
        Gate::HardSigmoid => 5.0,
        // f32 tanh(20) rounds to 1.0.
        Gate::Tanh => 20.0,
        // relu(1) = 1 exactly.
        Gate::Relu => 1.0,
    }
}

/// Most parameters one SE block may hold: 2^29 (2 GiB of f32), far beyond any CNN feature map
/// (ResNet-50's widest block at r = 1 holds 8.4M); a larger one means a malformed model.
const MAX_BLOCK_PARAMS: u64 = 1 << 29;

/// What one SE block adds to the graph.
pub struct SeBlock {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    /// The scaled feature map the block produces.
    pub output: String,
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

fn node(
    name: String,
    op: &str,
    inputs: Vec<String>,
    output: String,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: Some(name),
        op_type: Some(op.into()),
        input: inputs,
        output: vec![output],
        attribute,
        ..Default::default()
    }
}

fn normal(rng: &mut ChaCha8Rng, n: usize, std: f32) -> Vec<f32> {
    // std > 0 always (fan-in ≥ 1), so the distribution is valid.
    let dist = Normal::new(0.0f32, std).unwrap_or_else(|_| Normal::new(0.0, 1.0).expect("valid"));
    (0..n).map(|_| dist.sample(rng)).collect()
}

/// Builds the SE block reading `input` (C channels, element type `dtype`). Names start with
/// `prefix` and are made unique with `names`. `output` names the block's result when given
/// (the scale node then writes that tensor), else a fresh name is used.
#[allow(clippy::too_many_arguments)]
pub fn build(
    prefix: &str,
    input: &str,
    output: Option<&str>,
    channels: usize,
    dtype: i32,
    opts: &SeOptions,
    names: &mut Names,
    rng: &mut ChaCha8Rng,
) -> Result<SeBlock> {
    let c = channels;
    let h = hidden_width(c, opts.ratio);
    if block_params(c, h, opts.bias) > MAX_BLOCK_PARAMS {
        anyhow::bail!(
            "an SE block on {c} channels at '{input}' would hold {} parameters; that is not a CNN feature map",
            block_params(c, h, opts.bias)
        );
    }
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut step = |names: &mut Names,
                    what: &str,
                    op: &str,
                    inputs: Vec<String>,
                    attrs: Vec<AttributeProto>,
                    out: Option<&str>| {
        let node_name = names.fresh(&format!("{prefix}/{what}"));
        let out = match out {
            Some(o) => o.to_string(),
            None => names.fresh(&format!("{prefix}/{what}_output")),
        };
        nodes.push(node(node_name, op, inputs, out.clone(), attrs));
        out
    };
    let pooled = match opts.squeeze {
        Squeeze::Avg => step(
            names,
            "pool",
            "GlobalAveragePool",
            vec![input.into()],
            vec![],
            None,
        ),
        Squeeze::Max => step(
            names,
            "pool",
            "GlobalMaxPool",
            vec![input.into()],
            vec![],
            None,
        ),
        Squeeze::None => input.to_string(),
    };
    let w1 = normal(rng, h * c, (2.0 / c as f32).sqrt());
    let w2 = match opts.init {
        Init::Random => normal(rng, c * h, (2.0 / h as f32).sqrt()),
        Init::Identity => vec![0.0; c * h],
    };
    let b2 = match opts.init {
        Init::Random => 0.0,
        Init::Identity => identity_bias(opts.gate),
    };
    let (c64, h64) = (c as i64, h as i64);
    let mut fc = |names: &mut Names,
                  what: &str,
                  w: Vec<f32>,
                  dims: [i64; 4],
                  b: f32|
     -> Result<Vec<String>> {
        let wname = names.fresh(&format!("{prefix}/{what}.weight"));
        inits.push(float_tensor(&wname, &dims, &w, dtype)?);
        let mut inputs = vec![wname];
        if opts.bias {
            let bname = names.fresh(&format!("{prefix}/{what}.bias"));
            inits.push(float_tensor(
                &bname,
                &[dims[0]],
                &vec![b; dims[0] as usize],
                dtype,
            )?);
            inputs.push(bname);
        }
        Ok(inputs)
    };
    let fc1_in = fc(names, "fc1", w1, [h64, c64, 1, 1], 0.0)?;
    let fc2_in = fc(names, "fc2", w2, [c64, h64, 1, 1], b2)?;
    let kernel = || vec![ints_attr("kernel_shape", &[1, 1])];
    let z1 = step(
        names,
        "fc1",
        "Conv",
        [vec![pooled], fc1_in].concat(),
        kernel(),
        None,
    );
    let a1 = step(names, "relu", "Relu", vec![z1], vec![], None);
    let z2 = step(
        names,
        "fc2",
        "Conv",
        [vec![a1], fc2_in].concat(),
        kernel(),
        None,
    );
    let g = match opts.gate {
        Gate::Sigmoid => step(names, "gate", "Sigmoid", vec![z2], vec![], None),
        Gate::HardSigmoid => step(
            names,
            "gate",
            "HardSigmoid",
            vec![z2],
            vec![float_attr("alpha", 0.2), float_attr("beta", 0.5)],
            None,
        ),
        Gate::Tanh => step(names, "gate", "Tanh", vec![z2], vec![], None),
        Gate::Relu => step(names, "gate", "Relu", vec![z2], vec![], None),
    };
    let out = step(names, "scale", "Mul", vec![input.into(), g], vec![], output);
    Ok(SeBlock {
        nodes,
        initializers: inits,
        output: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_width_rounds_and_never_hits_zero() {
        assert_eq!(hidden_width(256, 16), 16);
        assert_eq!(hidden_width(2048, 16), 128);
        assert_eq!(hidden_width(24, 16), 2); // 1.5 rounds up
        assert_eq!(hidden_width(8, 16), 1); // 0.5 rounds up
        assert_eq!(hidden_width(4, 16), 1); // 0.25 would be 0
        assert_eq!(hidden_width(10, 1), 10);
    }

    #[test]
    fn counts_block_params() {
        assert_eq!(block_params(256, 16, false), 8192);
        assert_eq!(block_params(256, 16, true), 8192 + 272);
    }
}

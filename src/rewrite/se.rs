//! The SE subgraph: squeeze → FC (1×1 Conv) → ReLU → FC (1×1 Conv) → gate → Mul, built from
//! standard ONNX ops available at every opset, with weights in the feature map's float type.

use super::names::Names;
use super::options::{Gate, Init, SeOptions, Squeeze};
use crate::analysis::features::Layout;
use crate::onnx::proto::attribute_proto::AttributeType;
use crate::onnx::tensor::{float_tensor, ElemType};
use crate::onnx::{AttributeProto, NodeProto, TensorProto};
use anyhow::Result;
use rand::rngs::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;

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

/// What one SE block adds to the graph, under the names it asks for. The map it scales is
/// written [`SCALED`]; [`SeBlock::settle`] gives it and every name their final spelling when the
/// patch is applied.
pub struct SeBlock {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    /// Every node, tensor and initializer name the block asks for, in the order it asked.
    wanted: Vec<String>,
    /// The name asked for the scaled map (the last node's output).
    output: String,
}

/// How an SE block's nodes refer to the map the block scales, until it is settled.
pub const SCALED: &str = "";

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

fn normal(rng: &mut ChaCha8Rng, n: usize, std: f32) -> Vec<f32> {
    // std > 0 always (fan-in ≥ 1), so the distribution is valid.
    let dist = Normal::new(0.0f32, std).unwrap_or_else(|_| Normal::new(0.0, 1.0).expect("valid"));
    (0..n).map(|_| dist.sample(rng)).collect()
}

/// Most parameters all SE blocks of one model may add together: 2^28 (1 GiB of f32), above
/// any CNN's SE even at r = 1 (ResNet-152: about 105M); more means a malformed model.
pub const MAX_TOTAL_PARAMS: u64 = 1 << 28;

/// Refuses an SE block too large for any CNN feature map, or one that would take the SE blocks
/// so far (`added` parameters) past [`MAX_TOTAL_PARAMS`], before anything is allocated. Returns
/// the block's parameters.
pub fn check_size(channels: usize, opts: &SeOptions, at: &str, added: u64) -> Result<u64> {
    let params = block_params(channels, hidden_width(channels, opts.ratio), opts.bias);
    if params > MAX_BLOCK_PARAMS {
        anyhow::bail!(
            "an SE block on {channels} channels at '{}' would hold {params} parameters; that is not a CNN feature map",
            crate::shown::shown(at)
        );
    }
    let total = added.saturating_add(params);
    if total > MAX_TOTAL_PARAMS {
        anyhow::bail!(
            "the SE blocks would add {total} parameters or more by '{}' (at most {MAX_TOTAL_PARAMS}); that is not a CNN",
            crate::shown::shown(at)
        );
    }
    Ok(params)
}

/// Whether an SE block's weights get values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// Drawn (or set, for identity init): a block to write.
    Drawn,
    /// Dims only: a block to count (parameters, compute), never written.
    DimsOnly,
}

/// An SE block being written: nodes and weights under the names they ask for.
struct Draft<'p> {
    prefix: &'p str,
    dtype: ElemType,
    bias: bool,
    weights: Weights,
    block: SeBlock,
}

impl Draft<'_> {
    fn want(&mut self, what: &str) -> String {
        let name = format!("{}/{what}", self.prefix);
        self.block.wanted.push(name.clone());
        name
    }

    /// One node `what` computing `op` of `inputs`; returns its output.
    fn step(
        &mut self,
        what: &str,
        op: &str,
        inputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        let name = self.want(what);
        let output = self.want(&format!("{what}_output"));
        self.block.nodes.push(NodeProto {
            name: Some(name),
            op_type: Some(op.into()),
            input: inputs,
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    /// A weight named `name` of these dims holding `values` (made only when the block is to be
    /// written).
    fn tensor(
        &self,
        name: &str,
        dims: &[i64],
        values: impl FnOnce() -> Vec<f32>,
    ) -> Result<TensorProto> {
        match self.weights {
            Weights::Drawn => float_tensor(name, dims, &values(), self.dtype),
            Weights::DimsOnly => Ok(TensorProto {
                name: Some(name.to_string()),
                dims: dims.to_vec(),
                data_type: Some(self.dtype.code()),
                ..Default::default()
            }),
        }
    }

    /// The weights `w` (and bias, filled with `b`) of FC `what`; returns the names to read them
    /// by.
    fn fc(
        &mut self,
        what: &str,
        w: impl FnOnce() -> Vec<f32>,
        dims: [i64; 4],
        b: f32,
    ) -> Result<Vec<String>> {
        let wname = self.want(&format!("{what}.weight"));
        let weight = self.tensor(&wname, &dims, w)?;
        self.block.initializers.push(weight);
        let mut inputs = vec![wname];
        if self.bias {
            let bname = self.want(&format!("{what}.bias"));
            let bias = self.tensor(&bname, &[dims[0]], || vec![b; dims[0] as usize])?;
            self.block.initializers.push(bias);
            inputs.push(bname);
        }
        Ok(inputs)
    }
}

/// The Transposes that bring a map's channel axis to axis 1 and back, for a map whose channels
/// are elsewhere (channels-last); None for a channels-first map.
fn channel_moves(layout: Layout) -> Result<Option<(Vec<i64>, Vec<i64>)>> {
    let (axis, rank) = (layout.axis, layout.rank);
    if axis == 1 {
        return Ok(None);
    }
    if axis == 0 || axis >= rank {
        anyhow::bail!("the channel axis {axis} of a rank-{rank} map cannot be pooled around");
    }
    let mut to_first: Vec<i64> = vec![0, axis as i64];
    to_first.extend((1..rank).filter(|&i| i != axis).map(|i| i as i64));
    let mut back = vec![0i64; rank];
    for (i, &p) in to_first.iter().enumerate() {
        back[p as usize] = i as i64;
    }
    Ok(Some((to_first, back)))
}

/// Builds the SE block on a map of `channels` channels of element type `dtype`, its names under
/// `prefix`, its weights drawn from `rng`: squeeze → FC → ReLU → FC → gate → scale. On a map
/// whose channels are not on axis 1 (`layout`: a channels-last section) the squeeze and the FCs
/// read it transposed to channels-first, and the gate is transposed back before the scaling, so
/// the pool runs over the spatial axes and the gate scales the channel axis.
pub fn build(
    prefix: &str,
    channels: usize,
    dtype: ElemType,
    layout: Layout,
    opts: &SeOptions,
    weights: Weights,
    rng: &mut ChaCha8Rng,
) -> Result<SeBlock> {
    let moves = channel_moves(layout)?;
    let (c, h) = (channels, hidden_width(channels, opts.ratio));
    let mut d = Draft {
        prefix,
        dtype,
        bias: opts.bias,
        weights,
        block: SeBlock {
            nodes: Vec::new(),
            initializers: Vec::new(),
            wanted: Vec::new(),
            output: String::new(),
        },
    };
    let map = match &moves {
        Some((to_first, _)) => d.step(
            "channels_first",
            "Transpose",
            vec![SCALED.into()],
            vec![ints_attr("perm", to_first)],
        ),
        None => SCALED.to_string(),
    };
    let pooled = match opts.squeeze {
        Squeeze::Avg => d.step("pool", "GlobalAveragePool", vec![map], vec![]),
        Squeeze::Max => d.step("pool", "GlobalMaxPool", vec![map], vec![]),
        Squeeze::None => map,
    };
    // The draws happen in this order (fc1, then fc2) whatever is made of them.
    let (c64, h64) = (c as i64, h as i64);
    let fc1_in = d.fc(
        "fc1",
        || normal(rng, h * c, (2.0 / c as f32).sqrt()),
        [h64, c64, 1, 1],
        0.0,
    )?;
    let b2 = match opts.init {
        Init::Random => 0.0,
        Init::Identity => identity_bias(opts.gate),
    };
    let w2 = || match opts.init {
        Init::Random => normal(rng, c * h, (2.0 / h as f32).sqrt()),
        Init::Identity => vec![0.0; c * h],
    };
    let fc2_in = d.fc("fc2", w2, [c64, h64, 1, 1], b2)?;
    let kernel = || vec![ints_attr("kernel_shape", &[1, 1])];
    let z1 = d.step("fc1", "Conv", [vec![pooled], fc1_in].concat(), kernel());
    let a1 = d.step("relu", "Relu", vec![z1], vec![]);
    let z2 = d.step("fc2", "Conv", [vec![a1], fc2_in].concat(), kernel());
    let (gate_op, gate_attrs) = match opts.gate {
        Gate::Sigmoid => ("Sigmoid", vec![]),
        Gate::HardSigmoid => (
            "HardSigmoid",
            vec![float_attr("alpha", 0.2), float_attr("beta", 0.5)],
        ),
        Gate::Tanh => ("Tanh", vec![]),
        Gate::Relu => ("Relu", vec![]),
    };
    let mut g = d.step("gate", gate_op, vec![z2], gate_attrs);
    if let Some((_, back)) = &moves {
        g = d.step(
            "channels_back",
            "Transpose",
            vec![g],
            vec![ints_attr("perm", back)],
        );
    }
    d.block.output = d.step("scale", "Mul", vec![SCALED.into(), g], vec![]);
    Ok(d.block)
}

impl SeBlock {
    /// The block reading `input`, every name it asked for made unique by `names` in the order
    /// it asked, and its output named `output` when given. Returns the nodes, the initializers
    /// and the scaled map's name.
    pub fn settle(
        self,
        input: &str,
        output: Option<&str>,
        names: &mut Names,
    ) -> (Vec<NodeProto>, Vec<TensorProto>, String) {
        let mut given: HashMap<String, String> = HashMap::with_capacity(self.wanted.len() + 1);
        given.insert(SCALED.to_string(), input.to_string());
        for w in self.wanted {
            let name = match output {
                Some(o) if w == self.output => o.to_string(),
                _ => names.fresh(&w),
            };
            given.insert(w, name);
        }
        let spell = |n: &mut String| {
            if let Some(g) = given.get(n.as_str()) {
                n.clone_from(g);
            }
        };
        let mut nodes = self.nodes;
        for n in &mut nodes {
            n.name.iter_mut().for_each(spell);
            n.input.iter_mut().for_each(spell);
            n.output.iter_mut().for_each(spell);
        }
        let mut initializers = self.initializers;
        for t in &mut initializers {
            t.name.iter_mut().for_each(spell);
        }
        let out = given.get(&self.output).cloned().unwrap_or(self.output);
        (nodes, initializers, out)
    }
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

    /// NHWC: to channels-first by (0, 3, 1, 2), back by (0, 2, 3, 1); NCHW needs neither.
    #[test]
    fn channels_last_maps_are_transposed_around_the_squeeze() {
        let nhwc = Layout { axis: 3, rank: 4 };
        let moves = channel_moves(nhwc).expect("movable");
        assert_eq!(moves, Some((vec![0, 3, 1, 2], vec![0, 2, 3, 1])));
        assert_eq!(channel_moves(Layout::NCHW).expect("first"), None);
        assert!(channel_moves(Layout { axis: 0, rank: 4 }).is_err());
    }

    #[test]
    fn counts_block_params() {
        assert_eq!(block_params(256, 16, false), 8192);
        assert_eq!(block_params(256, 16, true), 8192 + 272);
    }
}

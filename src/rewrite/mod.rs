//! The splice: for each selected block, where SE goes (found against the read-only graph view),
//! then one patch applied to a copy of the graph, then the invariants checked on the result.

pub mod names;
pub mod patch;
pub mod se;

use crate::analysis::{Analysis, Block, Features};
use crate::graph::GraphView;
use crate::onnx::{op, GraphProto};
use anyhow::Result;
use names::Names;
use patch::{Patch, Site};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Where SE goes relative to a block (see the design notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// On the residual branch output, just before the merge.
    Standard,
    /// On the block input, feeding only the residual branch.
    Pre,
    /// After the merge, and after the activation that directly follows it.
    Post,
    /// On the shortcut path (after the projection when there is one).
    Identity,
    /// Right after the branch's spatial convolution and its activation (SE_3×3).
    Inner,
}

/// How the new weights start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// He-normal (fan-in) weights, zero biases.
    Random,
    /// Gate saturated at 1: the model computes what it computed before.
    Identity,
}

/// The squeeze operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Squeeze {
    Avg,
    Max,
    None,
}

/// The excitation gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    Sigmoid,
    HardSigmoid,
    Tanh,
    Relu,
}

/// Everything that shapes the SE blocks.
#[derive(Debug, Clone)]
pub struct SeOptions {
    pub ratio: usize,
    pub position: Position,
    pub bias: bool,
    pub init: Init,
    pub seed: u64,
    pub squeeze: Squeeze,
    pub gate: Gate,
    /// 1-based stage numbers to inject into; None for all.
    pub stages: Option<Vec<usize>>,
    /// Inject even where an SE block is already present.
    pub force: bool,
}

/// The decision for one block.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Channels of the tensor SE lands on.
    pub channels: usize,
    pub hidden: usize,
    /// Parameters the block adds (0 when skipped).
    pub params: u64,
    /// Why the block gets no SE, when it gets none.
    pub skipped: Option<String>,
}

/// The result of a splice.
pub struct Splice {
    pub graph: GraphProto,
    /// Per block, in the analysis order.
    pub decisions: Vec<Decision>,
    /// Names of the initializers added.
    pub added_initializers: Vec<String>,
}

/// Activations that directly follow a merge or a convolution.
const ACTIVATIONS: &[&str] = &[
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "HardSwish",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Gelu",
    "Mish",
];

/// The tensor after `t` when `t`'s only consumer is an activation (the activation's output).
fn after_activation<'a>(view: &GraphView<'a>, t: &'a str) -> &'a str {
    if view.is_graph_output(t) {
        return t;
    }
    match view.consumers(t) {
        [(n, 0)] if ACTIVATIONS.contains(&op(view.node(*n))) => view
            .node(*n)
            .output
            .first()
            .map(String::as_str)
            .unwrap_or(t),
        _ => t,
    }
}

/// Where SE goes for `block` at `position`, or why it cannot go there.
fn site(
    view: &GraphView,
    feats: &Features,
    block: &Block,
    position: Position,
) -> Result<Site, String> {
    let channels_of = |t: &str| -> Result<usize, String> {
        feats
            .channels(t)
            .ok_or_else(|| format!("the channel count of '{t}' is unknown"))
    };
    Ok(match position {
        Position::Standard => Site::Only {
            tensor: block.branch_out.clone(),
            consumers: vec![(block.merge, block.branch_slot)],
            channels: block.channels,
        },
        Position::Identity => Site::Only {
            tensor: block.shortcut_out.clone(),
            consumers: vec![(block.merge, block.shortcut_slot)],
            channels: block.channels,
        },
        Position::Pre => {
            let consumers: Vec<(usize, usize)> = view
                .consumers(&block.fork)
                .iter()
                .copied()
                .filter(|(n, _)| block.branch.contains(n))
                .collect();
            Site::Only {
                tensor: block.fork.clone(),
                consumers,
                channels: channels_of(&block.fork)?,
            }
        }
        Position::Post => {
            let out = view
                .node(block.merge)
                .output
                .first()
                .ok_or("the merge has no output")?;
            let t = after_activation(view, out);
            Site::All {
                tensor: t.to_string(),
                channels: block.channels,
            }
        }
        Position::Inner => {
            let conv = block
                .branch
                .iter()
                .copied()
                .find(|&n| crate::analysis::features::is_spatial_conv(view, n))
                .ok_or("its residual branch has no spatial convolution")?;
            let out = view
                .node(conv)
                .output
                .first()
                .ok_or("the convolution has no output")?;
            let t = after_activation(view, out);
            let consumers: Vec<(usize, usize)> = view.consumers(t).to_vec();
            if consumers.iter().any(|(n, _)| !block.branch.contains(n)) || view.is_graph_output(t) {
                return Err(format!("'{t}' is read outside the residual branch"));
            }
            Site::Only {
                tensor: t.to_string(),
                consumers,
                channels: channels_of(t)?,
            }
        }
    })
}

/// Plans and applies the splice of SE blocks into the analysed graph.
pub fn splice(view: &GraphView, analysis: &Analysis, opts: &SeOptions) -> Result<Splice> {
    let mut names = Names::new(view.all_names());
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut patch = Patch::default();
    let mut decisions = Vec::with_capacity(analysis.blocks.len());
    let mut added = Vec::new();
    let stage_of = |b: usize| {
        analysis
            .stages
            .iter()
            .find(|s| s.blocks.contains(&b))
            .map_or(0, |s| s.index)
    };
    for (i, block) in analysis.blocks.iter().enumerate() {
        let selected = opts
            .stages
            .as_ref()
            .is_none_or(|s| s.contains(&stage_of(i)));
        let site = if !selected {
            Err("stage not selected".to_string())
        } else if block.has_se && !opts.force {
            Err("an SE block is already present here (use --force to add another)".to_string())
        } else {
            site(view, &analysis.features, block, opts.position)
        };
        match site {
            Err(reason) => decisions.push(Decision {
                channels: block.channels,
                hidden: 0,
                params: 0,
                skipped: Some(reason),
            }),
            Ok(site) => {
                let c = site.channels();
                let prefix = format!("{}/se", block.name);
                let (input, output) = patch.attach(view, &site, &mut names)?;
                let se = se::build(
                    &prefix,
                    &input,
                    output.as_deref(),
                    c,
                    block.dtype,
                    opts,
                    &mut names,
                    &mut rng,
                )?;
                let h = se::hidden_width(c, opts.ratio);
                added.extend(se.initializers.iter().filter_map(|t| t.name.clone()));
                let params = se.initializers.iter().map(crate::onnx::tensor::numel).sum();
                patch.insert(view, &site, se)?;
                decisions.push(Decision {
                    channels: c,
                    hidden: h,
                    params,
                    skipped: None,
                });
            }
        }
    }
    let graph = patch.apply(view)?;
    Ok(Splice {
        graph,
        decisions,
        added_initializers: added,
    })
}

//! What validation may take, checked before tract sees a model. tract's passes grow faster than
//! the graph (a 2,000-block chain or a 10,000-input Concat does not finish in half an hour), it
//! allocates every feature map (a Conv padded by 2^20 makes an allocation fail and the process
//! abort, which nothing can catch), and windows padded near i64::MAX make it spin. So validation
//! refuses, in one line saying how to raise the bound or skip validation:
//! - a graph of more nodes than [`Budget::nodes`], or a node of more than [`MAX_NODE_INPUTS`]
//!   inputs (both counted on the file's bytes before it is decoded, [`check_counts`], and again
//!   on the rewritten graph);
//! - a window attribute (pads, strides, dilations, kernel_shape) beyond [`MAX_WINDOW`];
//! - a tensor that shape inference sizes beyond [`MAX_MAP_ELEMENTS`] elements;
//! - a tensor that shape inference cannot size at all: one whose size is computed from values
//!   only known at run time (a ConstantOfShape, Range, Tile, Expand, Reshape, Resize or OneHot
//!   fed by anything the rules of [`crate::analysis::ops`] do not fold), or the output of an op
//!   those rules do not know. tract would allocate it at whatever size it turns out to be (2^29
//!   elements from a 1.5 KB model), so what cannot be bounded is not run.
//!
//! Every output of every node of the original model is checked, side outputs and tensors no
//! output depends on included; the rewritten model adds only SE blocks, sized from the maps they
//! read.
//!
//! The wall time, [`Budget::seconds`], is enforced by the front end while validation runs.

use crate::analysis::shapes::{product, Shapes};
use crate::graph::GraphView;
use crate::onnx::{attr_ints, describe_node, GraphProto};
use anyhow::{bail, Result};

/// Largest window attribute validation runs: no CNN pads, strides or dilates by 2^16.
pub const MAX_WINDOW: i64 = 1 << 16;

/// Most inputs one node may have for validation (a Concat of every layer of a DenseNet-264
/// block has 65).
pub const MAX_NODE_INPUTS: usize = 4096;

/// Largest feature map validation allocates: 2^28 elements (1 GiB of f32), as for its input.
pub const MAX_MAP_ELEMENTS: usize = 1 << 28;

/// How much validation may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most nodes in either model (`--validate-nodes`).
    pub nodes: usize,
    /// Most seconds the whole validation may run (`--validate-timeout`).
    pub seconds: u64,
}

impl Default for Budget {
    /// 20,000 nodes (ResNet-152 has about 500, EfficientNet-B7 about 3,000); 600 seconds
    /// (a 2.8 GB VGG-16 validates in about 30).
    fn default() -> Self {
        Budget {
            nodes: 20_000,
            seconds: 600,
        }
    }
}

const HOW: &str = "--no-validate skips validation";

/// Checks the counts read from a model's bytes before it is decoded (see
/// [`crate::onnx::scan`]) against `budget` and [`MAX_NODE_INPUTS`]: a graph far beyond what
/// validation takes is refused before decoding makes its nodes cost memory.
pub fn check_counts(counts: &crate::onnx::scan::Counts, budget: Budget) -> Result<()> {
    nodes_within("the model", counts.nodes, budget)?;
    if counts.widest_node > MAX_NODE_INPUTS {
        let node = crate::onnx::NodeProto {
            name: counts.widest_name.clone(),
            op_type: counts.widest_op.clone(),
            output: counts.widest_output.iter().cloned().collect(),
            ..Default::default()
        };
        bail!(
            "{} has {} inputs, more than validation takes ({MAX_NODE_INPUTS}; {HOW})",
            describe_node(&node),
            counts.widest_node
        );
    }
    Ok(())
}

/// Fails when `which` has more than `budget.nodes` nodes.
fn nodes_within(which: &str, nodes: usize, budget: Budget) -> Result<()> {
    if nodes > budget.nodes {
        bail!(
            "{which} has {nodes} nodes, more than validation takes ({}; --validate-nodes raises \
             it, {HOW})",
            budget.nodes
        );
    }
    Ok(())
}

/// Checks the original graph (`view`, its feature maps sized by `shapes`) and the rewritten one
/// against `budget` and the fixed bounds.
/// Refuses an `--input-shape` whose rank is not that of the model's one image input, before any
/// tensor is sized from it (sized from a shape of the wrong rank, every map would be unknown).
pub fn check_input_shape(view: &GraphView, shape: Option<&[usize]>) -> Result<()> {
    let Some(shape) = shape else { return Ok(()) };
    let g = view.graph;
    let stored: std::collections::HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|i| !stored.contains(i.name.as_deref().unwrap_or("")))
        .collect();
    let [input] = inputs.as_slice() else {
        return Ok(()); // validation names what it cannot take
    };
    use crate::onnx::proto::type_proto::Value;
    let declared = input.r#type.as_ref().and_then(|t| match &t.value {
        Some(Value::TensorType(t)) => t.shape.as_ref().map(|s| s.dim.len()),
        _ => None,
    });
    if let Some(rank) = declared.filter(|&r| r != shape.len()) {
        bail!(
            "input shape {shape:?} has rank {} but input `{}` has rank {rank}",
            shape.len(),
            crate::shown::shown(input.name.as_deref().unwrap_or(""))
        );
    }
    Ok(())
}

pub fn check(
    view: &GraphView,
    shapes: &Shapes,
    rewritten: &GraphProto,
    budget: Budget,
) -> Result<()> {
    for (which, g) in [("the model", view.graph), ("the model with SE", rewritten)] {
        nodes_within(which, g.node.len(), budget)?;
    }
    for node in &view.graph.node {
        if node.input.len() > MAX_NODE_INPUTS {
            bail!(
                "{} has {} inputs, more than validation takes ({MAX_NODE_INPUTS}; {HOW})",
                describe_node(node),
                node.input.len()
            );
        }
        for name in ["pads", "strides", "dilations", "kernel_shape"] {
            let values = attr_ints(node, name).unwrap_or_default();
            if let Some(v) = values.iter().find(|v| v.unsigned_abs() > MAX_WINDOW as u64) {
                bail!(
                    "{} has {name} {v}, beyond what validation runs ({MAX_WINDOW}; {HOW})",
                    describe_node(node)
                );
            }
        }
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            let Some(dims) = shapes.get(o) else {
                bail!(
                    "'{}' of {} cannot be sized from the stored tensors and the input shape (its \
                     size is computed at run time, or the op is not known), so validation cannot \
                     bound it ({HOW})",
                    crate::shown::shown(o),
                    describe_node(node)
                );
            };
            if product(dims.iter().copied()).is_none_or(|n| n > MAX_MAP_ELEMENTS) {
                bail!(
                    "'{}' of {} would be {dims:?}, more elements than validation allocates \
                     ({MAX_MAP_ELEMENTS}; {HOW})",
                    crate::shown::shown(o),
                    describe_node(node)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Features;
    use crate::testutil::{ints_attr, GraphBuilder};

    fn checked(g: &GraphProto, budget: Budget) -> Result<()> {
        let view = GraphView::new(g).expect("well formed");
        let shapes = Shapes::infer(&view, &Features::new(&view), None);
        check(&view, &shapes, g, budget)
    }

    /// A 3×3 conv on 1×3×8×8: within every bound; one node is too many for a budget of 0;
    /// pads of 2^20 are beyond the window bound; a 1×1 conv to 2^25 channels on 8×8 makes a map
    /// of 2^31 elements; a Concat of 4,097 inputs has too many.
    #[test]
    fn bounds_are_checked_before_tract() {
        let mut g = GraphBuilder::new(3);
        let c = g.conv("input", 3, 8, 3, 1);
        let ok = g.finish(&c);
        assert!(checked(&ok, Budget::default()).is_ok());
        let few = Budget {
            nodes: 0,
            ..Budget::default()
        };
        let e = checked(&ok, few).unwrap_err().to_string();
        assert!(
            e.contains("1 nodes, more than validation takes (0; --validate-nodes"),
            "{e}"
        );

        let mut padded = ok.clone();
        padded.node[0]
            .attribute
            .push(ints_attr("pads", &[1 << 20; 4]));
        padded.node[0]
            .attribute
            .retain(|a| a.name.as_deref() != Some("pads") || a.ints[0] > 1);
        let e = checked(&padded, Budget::default()).unwrap_err().to_string();
        assert!(
            e.contains("pads 1048576, beyond what validation runs"),
            "{e}"
        );

        let mut g = GraphBuilder::new(3);
        let c = g.conv("input", 3, 1 << 25, 1, 1);
        let e = checked(&g.finish(&c), Budget::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("more elements than validation allocates"), "{e}");

        // A Concat of 4,097 copies of the input (10,000 in the case that hung tract).
        let mut g = GraphBuilder::new(3);
        let inputs = vec!["input"; MAX_NODE_INPUTS + 1];
        let cat = g.concat(&inputs);
        let e = checked(&g.finish(&cat), Budget::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("4097 inputs, more than validation takes (4096"),
            "{e}"
        );
    }
}

//! The attributes of windowed ops checked against the ONNX operator specs, so that an invalid
//! one is refused in one line naming its node instead of reaching tract, which divides by a zero
//! stride, indexes past short pads or fails a unification naming no attribute:
//! - Conv, ConvInteger, QLinearConv, ConvTranspose, DeformConv and the pools (MaxPool,
//!   AveragePool, LpPool, MaxUnpool): kernel sizes, strides and dilations of at least 1, pads
//!   and output_padding not negative, one stride and dilation per spatial axis and two pads,
//!   `auto_pad` one of the four the spec names, a kernel_shape on every pool;
//! - the convolutions: a group of at least 1 that divides the weight's first dim, and a
//!   kernel_shape equal to the weight's kernel when the weight is an initializer; once shapes
//!   are inferred ([`check_channels`]), input channels matching the weight and the group;
//! - DepthToSpace and SpaceToDepth: a blocksize of at least 1.
//!
//! Other ops keep their attributes unchecked here: tract's own messages name their node.

use crate::onnx::op::{Class, Op};
use crate::onnx::{attr_i, attr_ints, describe_node, GraphProto, NodeProto};
use anyhow::{bail, Result};

/// Where a convolution reads its weight: input 3 for QLinearConv (x, x_scale, x_zero_point, w),
/// input 1 otherwise.
fn weight_input(node: &NodeProto) -> Option<&str> {
    let at = if Op::of(node) == Op::QLinearConv {
        3
    } else {
        1
    };
    node.input
        .get(at)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// Checks the nodes of `graph` and of every subgraph nested in it; `weight_dims` gives the dims
/// of a main-graph initializer.
pub fn check_graph<'a>(
    graph: &'a GraphProto,
    weight_dims: &dyn Fn(&str) -> Option<&'a [i64]>,
) -> Result<()> {
    for node in &graph.node {
        let dims = weight_input(node).and_then(weight_dims);
        check_node(node, dims)?;
    }
    // Subgraphs, without their initializers (nested weights are rare and are tract's to check).
    let mut nested: Vec<&GraphProto> = graph
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .flat_map(|a| a.g.iter().chain(&a.graphs))
        .collect();
    while let Some(g) = nested.pop() {
        for node in &g.node {
            check_node(node, None)?;
            nested.extend(
                node.attribute
                    .iter()
                    .flat_map(|a| a.g.iter().chain(&a.graphs)),
            );
        }
    }
    Ok(())
}

/// Checks one node's window attributes; `weight` is the dims of its convolution weight when
/// they are known.
pub fn check_node(node: &NodeProto, weight: Option<&[i64]>) -> Result<()> {
    let kind = Op::of(node);
    if matches!(kind, Op::DepthToSpace | Op::SpaceToDepth) {
        if let Some(b) = attr_i(node, "blocksize").filter(|&b| b < 1) {
            bail!(
                "{} has blocksize {b}; it must be at least 1",
                describe_node(node)
            );
        }
        return Ok(());
    }
    let convolution = kind.is_convolution();
    if !convolution && kind.class() != Class::Pool {
        return Ok(());
    }
    let who = || describe_node(node);
    let kernel = attr_ints(node, "kernel_shape");
    if kernel.is_none() && !convolution {
        bail!("{} has no kernel_shape, which {kind} requires", who());
    }
    for (name, least, what) in [
        ("kernel_shape", 1, "each kernel size must be at least 1"),
        ("strides", 1, "each stride must be at least 1"),
        ("dilations", 1, "each dilation must be at least 1"),
        ("pads", 0, "pads must not be negative"),
        ("output_padding", 0, "output_padding must not be negative"),
    ] {
        if let Some(v) = attr_ints(node, name).filter(|v| v.iter().any(|&x| x < least)) {
            bail!("{} has {name} {v:?}: {what}", who());
        }
    }
    if let Some(pad) = node
        .attribute
        .iter()
        .find(|a| a.name.as_deref() == Some("auto_pad"))
        .and_then(|a| a.s.as_deref())
    {
        if !matches!(pad, b"NOTSET" | b"SAME_UPPER" | b"SAME_LOWER" | b"VALID") {
            bail!(
                "{} has auto_pad '{}': it must be NOTSET, SAME_UPPER, SAME_LOWER or VALID",
                who(),
                crate::shown::shown(&String::from_utf8_lossy(pad))
            );
        }
    }
    let weight = weight.filter(|w| w.len() >= 3);
    let axes = kernel
        .map(<[i64]>::len)
        .or(weight.map(|w| w.len() - 2))
        .or(attr_ints(node, "strides").map(<[i64]>::len));
    if let Some(n) = axes {
        for (name, per_axis) in [
            ("kernel_shape", 1),
            ("strides", 1),
            ("dilations", 1),
            ("pads", 2),
        ] {
            if let Some(v) = attr_ints(node, name).filter(|v| v.len() != per_axis * n) {
                bail!(
                    "{} has {name} {v:?} for a {n}-d window, which needs {} of them",
                    who(),
                    per_axis * n
                );
            }
        }
    }
    if !convolution {
        return Ok(());
    }
    let group = attr_i(node, "group").unwrap_or(1);
    if group < 1 {
        bail!("{} has group {group}: it must be at least 1", who());
    }
    let Some(w) = weight else { return Ok(()) };
    if let Some(k) = kernel.filter(|k| *k != &w[2..]) {
        bail!(
            "{} has kernel_shape {k:?} but its weight's kernel is {:?}",
            who(),
            &w[2..]
        );
    }
    if w[0] % group != 0 {
        let which = if kind == Op::ConvTranspose {
            "input"
        } else {
            "output"
        };
        bail!(
            "{} has group {group}, which does not divide its weight's {} {which} channels",
            who(),
            w[0]
        );
    }
    Ok(())
}

/// Checks that each convolution reads the channels its weight and group take: C = group · W[1]
/// for Conv (and the other convolutions), C = W[0] for ConvTranspose. `dims` gives a tensor's
/// inferred dims; a convolution whose input or weight dims are unknown is not checked.
pub fn check_channels(graph: &GraphProto, dims: &dyn Fn(&str) -> Option<Vec<usize>>) -> Result<()> {
    for node in graph.node.iter().filter(|n| Op::of(n).is_convolution()) {
        let (Some(x), Some(w)) = (
            node.input.first().and_then(|x| dims(x)),
            weight_input(node).and_then(dims),
        ) else {
            continue;
        };
        let (Some(&c), Some(&w0), Some(&w1)) = (x.get(1), w.first(), w.get(1)) else {
            continue;
        };
        let group = usize::try_from(attr_i(node, "group").unwrap_or(1)).unwrap_or(1);
        let takes = if Op::of(node) == Op::ConvTranspose {
            Some(w0)
        } else {
            w1.checked_mul(group)
        };
        if takes.is_some_and(|t| t != c) {
            bail!(
                "{} reads {c} channels but its weight {w:?} and group {group} take {}",
                describe_node(node),
                takes.map_or("more".into(), |t| t.to_string())
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::AttributeProto;
    use crate::testutil::{ints_attr, node};

    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            i: Some(v),
            r#type: Some(2),
            ..Default::default()
        }
    }

    fn conv(op: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        let mut n = node("c", op, &["x", "w"], "y");
        n.attribute = attrs;
        n
    }

    fn refusal(n: &NodeProto, weight: Option<&[i64]>) -> String {
        check_node(n, weight).unwrap_err().to_string()
    }

    #[test]
    fn valid_windows_pass() {
        let w: &[i64] = &[8, 2, 3, 3];
        let n = conv(
            "Conv",
            vec![
                ints_attr("kernel_shape", &[3, 3]),
                ints_attr("strides", &[2, 2]),
                ints_attr("dilations", &[1, 1]),
                ints_attr("pads", &[0, 1, 0, 1]),
                int("group", 2),
            ],
        );
        check_node(&n, Some(w)).unwrap();
        check_node(&conv("Conv", vec![]), Some(w)).unwrap();
        check_node(&conv("Relu", vec![ints_attr("strides", &[0])]), None).unwrap();
        let pool = conv("MaxPool", vec![ints_attr("kernel_shape", &[2, 2])]);
        check_node(&pool, None).unwrap();
    }

    #[test]
    fn zero_and_negative_values_are_refused() {
        let w: &[i64] = &[4, 4, 3, 3];
        let cases = [
            (
                "strides",
                vec![ints_attr("strides", &[0, 0])],
                "node 'c' (Conv) has strides [0, 0]: each stride must be at least 1",
            ),
            (
                "dilations",
                vec![ints_attr("dilations", &[1, -1])],
                "node 'c' (Conv) has dilations [1, -1]: each dilation must be at least 1",
            ),
            (
                "kernel",
                vec![ints_attr("kernel_shape", &[0, 3])],
                "node 'c' (Conv) has kernel_shape [0, 3]: each kernel size must be at least 1",
            ),
            (
                "pads",
                vec![ints_attr("pads", &[0, -1, 0, 0])],
                "node 'c' (Conv) has pads [0, -1, 0, 0]: pads must not be negative",
            ),
            (
                "group",
                vec![int("group", 0)],
                "node 'c' (Conv) has group 0: it must be at least 1",
            ),
        ];
        for (what, attrs, expected) in cases {
            assert_eq!(refusal(&conv("Conv", attrs), Some(w)), expected, "{what}");
        }
        let t = conv("ConvTranspose", vec![ints_attr("output_padding", &[-1, 0])]);
        assert_eq!(
            refusal(&t, Some(w)),
            "node 'c' (ConvTranspose) has output_padding [-1, 0]: output_padding must not be \
             negative"
        );
    }

    #[test]
    fn lengths_must_match_the_spatial_axes() {
        let w: &[i64] = &[4, 4, 3, 3];
        let n = conv("Conv", vec![ints_attr("pads", &[1, 1])]);
        assert_eq!(
            refusal(&n, Some(w)),
            "node 'c' (Conv) has pads [1, 1] for a 2-d window, which needs 4 of them"
        );
        let n = conv("Conv", vec![ints_attr("strides", &[1, 1, 1])]);
        assert_eq!(
            refusal(&n, Some(w)),
            "node 'c' (Conv) has strides [1, 1, 1] for a 2-d window, which needs 2 of them"
        );
        let n = conv(
            "MaxPool",
            vec![
                ints_attr("kernel_shape", &[2]),
                ints_attr("dilations", &[1, 1]),
            ],
        );
        assert_eq!(
            refusal(&n, None),
            "node 'c' (MaxPool) has dilations [1, 1] for a 1-d window, which needs 1 of them"
        );
    }

    #[test]
    fn pools_need_a_kernel() {
        let n = conv("AveragePool", vec![ints_attr("strides", &[2, 2])]);
        assert_eq!(
            refusal(&n, None),
            "node 'c' (AveragePool) has no kernel_shape, which AveragePool requires"
        );
        let n = conv(
            "MaxPool",
            vec![
                ints_attr("kernel_shape", &[2, 2]),
                ints_attr("strides", &[0, 1]),
            ],
        );
        assert_eq!(
            refusal(&n, None),
            "node 'c' (MaxPool) has strides [0, 1]: each stride must be at least 1"
        );
    }

    #[test]
    fn the_weight_fixes_kernel_and_group() {
        let w: &[i64] = &[4, 2, 3, 3];
        let n = conv("Conv", vec![ints_attr("kernel_shape", &[2, 2])]);
        assert_eq!(
            refusal(&n, Some(w)),
            "node 'c' (Conv) has kernel_shape [2, 2] but its weight's kernel is [3, 3]"
        );
        let n = conv("Conv", vec![int("group", 3)]);
        assert_eq!(
            refusal(&n, Some(w)),
            "node 'c' (Conv) has group 3, which does not divide its weight's 4 output channels"
        );
        let n = conv("ConvTranspose", vec![int("group", 3)]);
        assert_eq!(
            refusal(&n, Some(w)),
            "node 'c' (ConvTranspose) has group 3, which does not divide its weight's 4 input \
             channels"
        );
    }

    #[test]
    fn blocksize_and_auto_pad() {
        let n = conv("DepthToSpace", vec![int("blocksize", 0)]);
        assert_eq!(
            refusal(&n, None),
            "node 'c' (DepthToSpace) has blocksize 0; it must be at least 1"
        );
        let pad = AttributeProto {
            name: Some("auto_pad".into()),
            s: Some(b"SAME\x1b".to_vec()),
            r#type: Some(3),
            ..Default::default()
        };
        assert_eq!(
            refusal(&conv("Conv", vec![pad]), None),
            "node 'c' (Conv) has auto_pad 'SAME\\x1b': it must be NOTSET, SAME_UPPER, \
             SAME_LOWER or VALID"
        );
    }

    #[test]
    fn input_channels_must_match_weight_and_group() {
        let g = GraphProto {
            node: vec![conv("Conv", vec![int("group", 2)])],
            ..Default::default()
        };
        let dims = |c: usize| {
            move |t: &str| match t {
                "x" => Some(vec![1, c, 8, 8]),
                "w" => Some(vec![4, 4, 3, 3]),
                _ => None,
            }
        };
        check_channels(&g, &dims(8)).unwrap();
        assert_eq!(
            check_channels(&g, &dims(4)).unwrap_err().to_string(),
            "node 'c' (Conv) reads 4 channels but its weight [4, 4, 3, 3] and group 2 take 8"
        );
        check_channels(&g, &|_| None).unwrap();
    }

    #[test]
    fn subgraphs_are_checked_too() {
        let inner = GraphProto {
            node: vec![conv("Conv", vec![ints_attr("strides", &[0, 0])])],
            ..Default::default()
        };
        let mut branch = node("if", "If", &["c"], "y");
        branch.attribute.push(AttributeProto {
            name: Some("then_branch".into()),
            g: Some(inner),
            r#type: Some(5),
            ..Default::default()
        });
        let g = GraphProto {
            node: vec![branch],
            ..Default::default()
        };
        assert_eq!(
            check_graph(&g, &|_| None).unwrap_err().to_string(),
            "node 'c' (Conv) has strides [0, 0]: each stride must be at least 1"
        );
    }
}

//! Activations: what closes a convolution in a chain, and what directly follows a tensor.
//! Also what follows a convolution: its normalisation and activation.

use crate::graph::GraphView;
use crate::graph::Inlet;
use crate::onnx::op::Op;

/// The activation that directly follows `t`, when there is one: a single activation node
/// reading only `t` (an op of the activation class), or the pair `Mul(t, gate(t))` of a gated
/// activation (SiLU = x·sigmoid(x); HardSwish before opset 14 = x·hardsigmoid(x)). Returns its nodes
/// and its output. Not for graph outputs, which keep their readers' meaning.
pub fn activation_after<'a>(view: &GraphView<'a>, t: &str) -> Option<(Vec<usize>, &'a str)> {
    if view.is_graph_output(t) {
        return None;
    }
    let out = |n: usize| view.node(n).output.first().map(String::as_str);
    match view.consumers(t) {
        [Inlet { node: n, slot: 0 }] if Op::of(view.node(*n)).is_activation() => {
            Some((vec![*n], out(*n)?))
        }
        [Inlet { node: a, .. }, Inlet { node: b, .. }] => {
            let (gate, mul) = if Op::of(view.node(*a)) == Op::Mul {
                (*b, *a)
            } else {
                (*a, *b)
            };
            let g_out = out(gate)?;
            let ok = Op::of(view.node(gate)).is_gate()
                && Op::of(view.node(mul)) == Op::Mul
                && view.node(gate).input.first().map(String::as_str) == Some(t)
                && view.node(mul).input.iter().any(|i| i == g_out)
                && view.node(mul).input.iter().any(|i| i == t)
                && matches!(view.consumers(g_out), [Inlet { node: m, .. }] if *m == mul);
            ok.then_some((vec![gate, mul], out(mul)?))
        }
        _ => None,
    }
}

/// The tensor after `t`'s activation when one directly follows it, else `t`.
pub fn after_activation<'a>(view: &GraphView<'a>, t: &'a str) -> &'a str {
    activation_after(view, t).map_or(t, |(_, out)| out)
}

/// The single reader of `t` when it is `want` (and `t` is not a graph output).
pub fn next_if(view: &GraphView, t: &str, want: Op) -> Option<usize> {
    if view.is_graph_output(t) {
        return None;
    }
    match view.consumers(t) {
        [Inlet { node: n, slot: 0 }] if Op::of(view.node(*n)) == want => Some(*n),
        _ => None,
    }
}

/// From the output of node `conv`: an optional BatchNormalization, then an optional activation.
/// Returns the nodes (`conv` first), the last tensor, and whether an activation closed it.
pub fn tail(view: &GraphView, conv: usize) -> (Vec<usize>, String, bool) {
    let mut nodes = vec![conv];
    let first = |n: usize| view.node(n).output.first().cloned().unwrap_or_default();
    let mut t = first(conv);
    if let Some(bn) = next_if(view, &t, Op::BatchNormalization) {
        nodes.push(bn);
        t = first(bn);
    }
    if let Some((act, out)) = activation_after(view, &t) {
        nodes.extend(act);
        return (nodes, out.to_string(), true);
    }
    (nodes, t, false)
}

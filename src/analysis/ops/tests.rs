//! The op rules on small graphs and single nodes: sliding windows, broadcasting, shape
//! arithmetic folded to values, weights computed by constant subgraphs.

use super::shape::window_for_tests;
use super::values::broadcast;
use super::*;
use crate::onnx::AttributeProto;

fn known_broadcast(shapes: &[Vec<usize>]) -> Option<Vec<usize>> {
    let dims: Vec<Vec<Dim>> = shapes
        .iter()
        .map(|s| s.iter().copied().map(Some).collect())
        .collect();
    broadcast(dims.iter().map(Vec::as_slice))?
        .into_iter()
        .collect()
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn node(attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        attribute: attrs,
        ..Default::default()
    }
}

#[test]
fn sliding_windows_follow_the_onnx_formulas() {
    // 7×7 stride 2 pad 3 on 224: (224 + 6 − 7) / 2 + 1 = 112.
    let conv = node(vec![ints("strides", &[2, 2]), ints("pads", &[3, 3, 3, 3])]);
    assert_eq!(
        window_for_tests(&conv, &[1, 3, 224, 224], &[7, 7]),
        Some(vec![112, 112])
    );
    // 3×3 stride 2 pad 1 max pool on 112: 56.
    let pool = node(vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])]);
    assert_eq!(
        window_for_tests(&pool, &[1, 64, 112, 112], &[3, 3]),
        Some(vec![56, 56])
    );
    // ceil_mode: 3×3 stride 2 on 14 gives 7 rather than 6.
    let mut ceil = node(vec![ints("strides", &[2, 2])]);
    ceil.attribute.push(AttributeProto {
        name: Some("ceil_mode".into()),
        i: Some(1),
        ..Default::default()
    });
    assert_eq!(
        window_for_tests(&ceil, &[1, 8, 14, 14], &[3, 3]),
        Some(vec![7, 7])
    );
    // SAME_UPPER: ceil(15 / 2) = 8; dilation 2 on a 3×3 without pads: 15 − 4 = 11.
    let mut same = node(vec![ints("strides", &[2, 2])]);
    same.attribute.push(AttributeProto {
        name: Some("auto_pad".into()),
        s: Some(b"SAME_UPPER".to_vec()),
        ..Default::default()
    });
    assert_eq!(
        window_for_tests(&same, &[1, 8, 15, 15], &[3, 3]),
        Some(vec![8, 8])
    );
    let dilated = node(vec![ints("dilations", &[2, 2])]);
    assert_eq!(
        window_for_tests(&dilated, &[1, 8, 15, 15], &[3, 3]),
        Some(vec![11, 11])
    );
    // A kernel larger than the padded input has no output.
    assert_eq!(
        window_for_tests(&node(vec![]), &[1, 8, 2, 2], &[3, 3]),
        None
    );
}

#[test]
fn broadcasting_follows_numpy() {
    assert_eq!(
        known_broadcast(&[vec![1, 8, 4, 4], vec![1, 8, 1, 1]]),
        Some(vec![1, 8, 4, 4])
    );
    assert_eq!(
        known_broadcast(&[vec![1, 8, 4, 4], vec![]]),
        Some(vec![1, 8, 4, 4])
    );
    assert_eq!(known_broadcast(&[vec![8, 4], vec![3, 4]]), None);
}

/// Facts of a graph built with the shared builder, its input's batch dim symbolic.
fn facts_of(g: &crate::onnx::GraphProto) -> crate::analysis::facts::Facts {
    let view = crate::graph::GraphView::new(g).expect("well formed");
    crate::analysis::facts::Facts::infer(&view, crate::analysis::facts::InputDims::Declared)
}

/// A batch dim left symbolic, as the exporters declare it.
fn symbolic_batch(g: &mut GraphBuilder) {
    let dims = &mut g.graph.input[0].r#type.as_mut().expect("typed").value;
    if let Some(crate::onnx::proto::type_proto::Value::TensorType(t)) = dims {
        let d = &mut t.shape.as_mut().expect("shaped").dim[0];
        d.value = Some(
            crate::onnx::proto::tensor_shape_proto::dimension::Value::DimParam("batch".into()),
        );
    }
}

use crate::testutil::{ints_attr, GraphBuilder};

/// Weights as older converters and quantisers write them:
/// `w [4,18] → Reshape([4,2,3,-1]) → Transpose(1,0,2,3) → Unsqueeze(0) → Squeeze(0) →
/// DequantizeLinear`, and a weight made by ConstantOfShape([8,2,1,1]).
#[test]
fn weights_computed_by_constant_subgraphs() {
    let mut g = GraphBuilder::new(2);
    let w = g.weight(&[4, 18]);
    let shape = g.ints(&[4, 2, 3, -1]);
    let r = g.node("Reshape", &[&w, &shape], vec![]);
    let t = g.node("Transpose", &[&r], vec![ints_attr("perm", &[1, 0, 2, 3])]);
    let u = g.node("Unsqueeze", &[&t], vec![ints_attr("axes", &[0])]);
    let s = g.node("Squeeze", &[&u], vec![ints_attr("axes", &[0])]);
    let q = g.node("DequantizeLinear", &[&s], vec![]);
    let c = g.node("Conv", &["input", &q], vec![]);
    let dims = g.ints(&[8, 2, 1, 1]);
    let w2 = g.node("ConstantOfShape", &[&dims], vec![]);
    let c2 = g.node("Conv", &[&c, &w2], vec![]);
    let f = facts_of(&g.finish(&c2));
    assert_eq!(f.known_dims(&r), Some(vec![4, 2, 3, 3]));
    assert_eq!(f.known_dims(&t), Some(vec![2, 4, 3, 3]));
    assert_eq!(f.known_dims(&u), Some(vec![1, 2, 4, 3, 3]));
    assert_eq!(f.known_dims(&q), Some(vec![2, 4, 3, 3]));
    // 8×8 input, 3×3 without padding: 6×6; then 1×1 to 8 channels.
    assert_eq!(f.known_dims(&c), Some(vec![1, 2, 6, 6]));
    assert_eq!(f.known_dims(&c2), Some(vec![1, 8, 6, 6]));
}

/// Shape arithmetic folded as the TorchScript exporter writes `torch.chunk(x, 2, dim=1)` and a
/// channel shuffle, with a symbolic batch: `Shape → Gather(1) → Add 1 → Div 2 → Unsqueeze` is
/// the Slice bound (16 → 8 channels); `Shape → Gather → Unsqueeze → Concat [N, 2, C/2, H, W]`
/// the shuffle's Reshape.
#[test]
fn shape_arithmetic_folds_to_channels() {
    let mut g = GraphBuilder::new(16);
    symbolic_batch(&mut g);
    let shape = g.node("Shape", &["input"], vec![]);
    let one = g.ints(&[1]);
    let c = g.node("Gather", &[&shape, &one], vec![]);
    let plus = g.node("Add", &[&c, &one], vec![]);
    let two = g.ints(&[2]);
    let half = g.node("Div", &[&plus, &two], vec![]);
    let zero = g.ints(&[0]);
    let a = g.node("Slice", &["input", &zero, &half, &one], vec![]);
    let n = g.node("Gather", &[&shape, &zero], vec![]);
    let rest = g.ints(&[2, 8, 8, 8]);
    let target = g.node("Concat", &[&n, &rest], vec![axis0()]);
    let r = g.node("Reshape", &["input", &target], vec![]);
    let t = g.node(
        "Transpose",
        &[&r],
        vec![ints_attr("perm", &[0, 2, 1, 3, 4])],
    );
    let f = facts_of(&g.finish(&a));
    assert_eq!(f.get(&half).and_then(Fact::known_ints), Some(vec![8]));
    assert_eq!(f.dims(&a), Some(&[None, Some(8), Some(8), Some(8)][..]));
    assert_eq!(
        f.dims(&r),
        Some(&[None, Some(2), Some(8), Some(8), Some(8)][..])
    );
    assert_eq!(
        f.dims(&t),
        Some(&[None, Some(8), Some(2), Some(8), Some(8)][..])
    );
}

fn axis0() -> AttributeProto {
    AttributeProto {
        name: Some("axis".into()),
        i: Some(0),
        ..Default::default()
    }
}

/// `F.pad(x, (1, 2, 3, 4))` as the TorchScript exporter writes it: the pads [1,2,3,4] and zeros
/// from ConstantOfShape, reshaped to pairs, reversed by a Slice of step −1, transposed and
/// flattened: ONNX pads [0,0,3,1, 0,0,4,2], so 8×8 becomes 15×11.
#[test]
fn pads_computed_in_the_graph() {
    let mut g = GraphBuilder::new(2);
    let given = g.ints(&[1, 2, 3, 4]);
    let four = g.ints(&[4]);
    let zeros = g.node("ConstantOfShape", &[&four], vec![]);
    let zeros = g.node("Cast", &[&zeros], vec![int("to", 7)]);
    let all = g.node("Concat", &[&given, &zeros], vec![axis0()]);
    let pairs_shape = g.ints(&[-1, 2]);
    let pairs = g.node("Reshape", &[&all, &pairs_shape], vec![]);
    let (start, end, axes, step) = (
        g.ints(&[-1]),
        g.ints(&[i64::MIN + 1]),
        g.ints(&[0]),
        g.ints(&[-1]),
    );
    let rev = g.node("Slice", &[&pairs, &start, &end, &axes, &step], vec![]);
    let t = g.node("Transpose", &[&rev], vec![ints_attr("perm", &[1, 0])]);
    let flat_shape = g.ints(&[-1]);
    let pads = g.node("Reshape", &[&t, &flat_shape], vec![]);
    let y = g.node("Pad", &["input", &pads], vec![]);
    let f = facts_of(&g.finish(&y));
    let values = |t: &str| f.get(t).and_then(Fact::known_ints);
    assert_eq!(values(&rev), Some(vec![0, 0, 0, 0, 3, 4, 1, 2]));
    assert_eq!(values(&pads), Some(vec![0, 0, 3, 1, 0, 0, 4, 2]));
    assert_eq!(f.known_dims(&y), Some(vec![1, 2, 15, 11]));
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(i),
        ..Default::default()
    }
}

/// MatMul broadcasts its batch dims; Gemm transposes; Split without sizes cuts equal parts
/// (the last one smaller with `num_outputs`); Einsum's letters carry their sizes; Resize by
/// constant scales.
#[test]
fn products_splits_and_resizes() {
    let f = |dims: &[usize]| Fact::of_dims(dims.iter().copied().map(Some).collect());
    let node = |op: &str, attrs: Vec<AttributeProto>, outputs: usize| NodeProto {
        op_type: Some(op.into()),
        attribute: attrs,
        output: (0..outputs).map(|i| format!("o{i}")).collect(),
        ..Default::default()
    };
    let dims = |outs: Outs| -> Vec<Vec<usize>> {
        outs.expect("derived")
            .iter()
            .map(|o| o.known_dims().expect("known"))
            .collect()
    };
    let (a, b) = (f(&[1, 7, 7, 96]), f(&[96, 384]));
    assert_eq!(
        dims(apply(&node("MatMul", vec![], 1), &[Some(&a), Some(&b)])),
        [[1, 7, 7, 384]]
    );
    let (x, w) = (f(&[1, 512]), f(&[1000, 512]));
    let gemm = node("Gemm", vec![int("transB", 1)], 1);
    assert_eq!(dims(apply(&gemm, &[Some(&x), Some(&w)])), [[1, 1000]]);
    let x = f(&[1, 10, 4, 4]);
    let split = node("Split", vec![int("axis", 1)], 3);
    assert_eq!(
        dims(apply(&split, &[Some(&x)])),
        [[1, 4, 4, 4], [1, 4, 4, 4], [1, 2, 4, 4]]
    );
    let scales = Fact {
        floats: Some(vec![1.0, 1.0, 2.0, 2.0]),
        ..f(&[4])
    };
    let mut einsum = node("Einsum", vec![], 1);
    einsum.attribute.push(AttributeProto {
        name: Some("equation".into()),
        s: Some(b"bhwc,cd->bhwd".to_vec()),
        ..Default::default()
    });
    let (nhwc, linear) = (f(&[1, 7, 7, 96]), f(&[96, 384]));
    let outs = apply(&einsum, &[Some(&nhwc), Some(&linear)]);
    assert_eq!(dims(outs), [[1, 7, 7, 384]]);
    let resize = node("Resize", vec![], 1);
    assert_eq!(
        dims(apply(&resize, &[Some(&x), None, Some(&scales)])),
        [[1, 10, 8, 8]]
    );
}

/// Ops whose output size comes from values: an integer shape through Abs is folded and sizes a
/// ConstantOfShape; RandomNormal is sized by its attribute, OneHot by its depth, a float Range
/// by ⌈(limit − start) / delta⌉; a float shape through Floor is not folded, so what it feeds
/// stays unsized.
#[test]
fn sizes_computed_from_values_are_folded() {
    use crate::testutil::{float_constant, int_constant, node as named};
    let f = |t: &[f32]| Fact {
        dims: Some(vec![]),
        floats: Some(t.iter().map(|&v| f64::from(v)).collect()),
        ..Fact::default()
    };
    let d = int_constant("d", "d", &[-3, 4], false);
    let dims = constant(&d).unwrap().remove(0);
    let abs = apply(&named("a", "Abs", &["d"], "a"), &[Some(&dims)]).unwrap();
    assert_eq!(abs[0].known_ints(), Some(vec![3, 4]));
    let filled = apply(
        &named("c", "ConstantOfShape", &["a"], "c"),
        &[Some(&abs[0])],
    );
    assert_eq!(filled.unwrap()[0].known_dims(), Some(vec![3, 4]));

    let mut random = named("r", "RandomNormal", &[], "r");
    random.attribute.push(ints("shape", &[2, 5]));
    assert_eq!(
        apply(&random, &[]).unwrap()[0].known_dims(),
        Some(vec![2, 5])
    );

    let idx = Fact::of_dims(vec![Some(3)]);
    let depth = constant(&int_constant("k", "k", &[7], true))
        .unwrap()
        .remove(0);
    let hot = apply(
        &named("h", "OneHot", &["i", "k", "v"], "h"),
        &[Some(&idx), Some(&depth), None],
    );
    assert_eq!(hot.unwrap()[0].known_dims(), Some(vec![3, 7]));

    let range = named("g", "Range", &["s", "l", "d"], "g");
    let (s, l, step) = (f(&[0.0]), f(&[2.5]), f(&[0.5]));
    let out = apply(&range, &[Some(&s), Some(&l), Some(&step)]).unwrap();
    assert_eq!(out[0].known_dims(), Some(vec![5]));

    let fl = constant(&float_constant("f", "f", &[3.0, 4.0], false))
        .unwrap()
        .remove(0);
    let floor = apply(&named("fl", "Floor", &["f"], "fl"), &[Some(&fl)]).unwrap();
    let mut cast = named("ca", "Cast", &["fl"], "ca");
    cast.attribute.push(AttributeProto {
        name: Some("to".into()),
        i: Some(7),
        ..Default::default()
    });
    let cast = apply(&cast, &[Some(&floor[0])]).unwrap();
    let hidden = apply(
        &named("c", "ConstantOfShape", &["ca"], "c"),
        &[Some(&cast[0])],
    );
    assert_eq!(hidden, None);
}

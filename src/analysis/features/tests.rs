//! Channels and layouts through the ops CNNs use, on graphs built with the shared builders.

use super::*;
use crate::testutil::{ints_attr, value_info, GraphBuilder};

/// A channels-last section between NCHW convolutions, as ConvNeXt writes it, after an
/// NHWC input as tf2onnx writes Keras models:
///
/// ```text
/// x [1,8,8,3] ─ Transpose(0,3,1,2) ─ conv 3→8 ─ Transpose(0,2,3,1) ─ LayerNorm
///   ─ MatMul [8,32] ─ MatMul [32,8] ─ Transpose(0,3,1,2) ─ Concat(axis 1, with the conv)
/// ```
/// The convolution writes its channels on axis 1 whatever its input's layout; the Linear
/// layers act on the last axis, where the permute put the channels: 8 → 32 → 8; the Concat
/// gathers 8 + 8.
#[test]
fn channels_follow_the_channel_axis() {
    let mut g = GraphBuilder::new(3);
    g.graph.input = vec![value_info("input", ElemType::FLOAT, &[1, 8, 8, 3])];
    let x = g.node(
        "Transpose",
        &["input"],
        vec![ints_attr("perm", &[0, 3, 1, 2])],
    );
    let c = g.conv(&x, 3, 8, 3, 1);
    let t = g.node("Transpose", &[&c], vec![ints_attr("perm", &[0, 2, 3, 1])]);
    let scale = g.weight(&[8]);
    let n = g.node("LayerNormalization", &[&t, &scale], vec![]);
    let w1 = g.weight(&[8, 32]);
    let up = g.node("MatMul", &[&n, &w1], vec![]);
    let w2 = g.weight(&[32, 8]);
    let down = g.node("MatMul", &[&up, &w2], vec![]);
    let back = g.node(
        "Transpose",
        &[&down],
        vec![ints_attr("perm", &[0, 3, 1, 2])],
    );
    let cat = g.concat(&[&c, &back]);
    let graph = g.finish(&cat);
    let view = GraphView::new(&graph).expect("well formed");
    let f = Features::new(&view);
    assert_eq!(f.channels(&c), Some(8));
    assert_eq!(f.get(&c).map(|f| f.layout.axis), Some(1));
    assert_eq!(f.get(&n).map(|f| f.layout.axis), Some(3));
    assert_eq!(f.channels(&up), Some(32));
    assert_eq!(f.channels(&down), Some(8));
    assert_eq!(f.channels(&cat), Some(16));
}

/// A LayerNorm over the channels written out, as opset-13 exports write it: the means over
/// the channel axis are one channel, broadcast back to the map's 8.
#[test]
fn a_written_out_layer_norm_keeps_the_channels() {
    let mut g = GraphBuilder::new(3);
    let x = g.conv("input", 3, 8, 1, 1);
    let keep_c = vec![ints_attr("axes", &[1])];
    let mean = g.node("ReduceMean", &[&x], keep_c.clone());
    let xc = g.node("Sub", &[&x, &mean], vec![]);
    let sq = g.node("Mul", &[&xc, &xc], vec![]);
    let var = g.node("ReduceMean", &[&sq], keep_c);
    let std = g.node("Sqrt", &[&var], vec![]);
    let y = g.node("Div", &[&xc, &std], vec![]);
    let graph = g.finish(&y);
    let view = GraphView::new(&graph).expect("well formed");
    let f = Features::new(&view);
    assert_eq!(f.channels(&mean), Some(1));
    assert_eq!(f.channels(&xc), Some(8));
    assert_eq!(f.channels(&std), Some(1));
    assert_eq!(f.channels(&y), Some(8));
}

/// Axes as hostile files write them: negative from the end, and near the ends of i64.
#[test]
fn channel_axes_from_either_end() {
    let nchw = Layout::NCHW;
    assert!(nchw.is_channel_axis(1) && nchw.is_channel_axis(-3));
    assert!(!nchw.is_channel_axis(3) && !nchw.is_channel_axis(-1));
    assert!(!nchw.is_channel_axis(i64::MAX) && !nchw.is_channel_axis(i64::MIN));
}

/// Broadcasting takes every operand's size on the channel axis: a 1-channel map times a
/// 4-channel one is 4 channels, whichever comes first; 2 and 4 do not broadcast.
#[test]
fn broadcasting_takes_the_broadcast_channels() {
    let mut g = GraphBuilder::new(3);
    let one = g.conv("input", 3, 1, 1, 1);
    let four = g.conv("input", 3, 4, 1, 1);
    let two = g.conv("input", 3, 2, 1, 1);
    let a = g.node("Mul", &[&one, &four], vec![]);
    let b = g.node("Add", &[&two, &four], vec![]);
    let graph = g.finish(&a);
    let view = GraphView::new(&graph).expect("well formed");
    let f = Features::new(&view);
    assert_eq!(f.channels(&a), Some(4));
    assert_eq!(f.channels(&b), None);
}

/// A reshape keeps the channel axis when it leaves it whole, as a Dense layer's Tensordot folds
/// the other axes and unfolds them again; otherwise (a channel shuffle's split of it) it says
/// nothing, and the caller starts again from axis 1.
#[test]
fn a_reshape_keeps_a_whole_channel_axis() {
    let k = |d: &[usize]| d.iter().map(|&d| Some(d)).collect::<Vec<Dim>>();
    let last = |rank| Layout {
        axis: rank - 1,
        rank,
    };
    // NHWC folded for a MatMul and unfolded after it.
    assert_eq!(
        reshaped_axis(&k(&[1, 56, 56, 96]), last(4), &k(&[3136, 96])),
        Some(1)
    );
    assert_eq!(
        reshaped_axis(&k(&[3136, 384]), last(2), &k(&[1, 56, 56, 384])),
        Some(3)
    );
    // A symbolic batch before the channels does not matter; after them it does.
    let batch: Vec<Dim> = vec![None, Some(7), Some(7), Some(32)];
    assert_eq!(reshaped_axis(&batch, last(4), &[None, Some(32)]), Some(1));
    let nchw: Vec<Dim> = vec![Some(1), Some(32), None, Some(7)];
    assert_eq!(
        reshaped_axis(&nchw, Layout::NCHW, &[Some(1), Some(32), None]),
        None
    );
    // NCHW with its spatial axes folded, and a Flatten before a classifier.
    assert_eq!(
        reshaped_axis(&k(&[1, 96, 56, 56]), Layout::NCHW, &k(&[1, 96, 3136])),
        Some(1)
    );
    assert_eq!(
        reshaped_axis(&k(&[1, 96, 1, 1]), Layout::NCHW, &k(&[1, 96])),
        Some(1)
    );
    // A channel shuffle splits the axis: nothing kept.
    assert_eq!(
        reshaped_axis(&k(&[1, 8, 4, 4]), Layout::NCHW, &k(&[1, 2, 4, 4, 4])),
        None
    );
    assert_eq!(
        reshaped_axis(
            &k(&[1, 8, 4, 4]),
            Layout { axis: 1, rank: 3 },
            &k(&[1, 8, 16])
        ),
        None,
        "a layout of another rank than the dims"
    );
}

/// `input [1,8,8,8] ─ conv ─ Relu ─ GlobalAveragePool ─ conv 1×1 ─ Relu ─ Flatten`, beside a
/// map that strided convolutions bring to 1×1:
/// the maps after the pool, and the flattened vector, are no maps SE can pool; the map that is
/// 1×1 because the input is small is one.
#[test]
fn maps_after_a_global_pool_cannot_take_se() {
    let mut g = GraphBuilder::new(8);
    let c = g.conv("input", 8, 8, 3, 1);
    let r = g.relu(&c);
    let pooled = g.node("GlobalAveragePool", &[&r], vec![]);
    let head = g.conv(&pooled, 8, 16, 1, 1);
    let head = g.relu(&head);
    let flat = g.node("Flatten", &[&head], vec![]);
    let w = g.weight(&[8, 8, 8, 8]);
    let tiny = g.node(
        "Conv",
        &[&r, &w],
        vec![
            ints_attr("kernel_shape", &[8, 8]),
            ints_attr("strides", &[8, 8]),
        ],
    );
    let out = g.concat(&[&head, &tiny]);
    let graph = g.finish(&out);
    let view = GraphView::new(&graph).expect("well formed");
    let f = Features::new(&view);
    assert_eq!(f.poolable(&r), Ok(()));
    assert_eq!(f.dims(&tiny), Some(vec![1, 8, 1, 1]));
    assert_eq!(f.poolable(&tiny), Ok(()), "1×1 from a strided conv");
    assert_eq!(f.poolable(&pooled), Err(NotPoolable::Pooled));
    assert_eq!(f.poolable(&head), Err(NotPoolable::Pooled));
    assert_eq!(
        f.poolable(&flat),
        Err(NotPoolable::Axis { axis: 1, rank: 2 })
    );
    assert_eq!(f.poolable(&out), Ok(()), "a pooled and an unpooled map");
    assert_eq!(f.poolable("w_missing"), Err(NotPoolable::NotAMap));
}

/// A window that leaves one position of an 8×8 map pools it globally; one of 2×2 does not.
#[test]
fn a_window_over_the_whole_map_is_a_global_pool() {
    let mut g = GraphBuilder::new(8);
    let whole = g.node(
        "AveragePool",
        &["input"],
        vec![ints_attr("kernel_shape", &[8, 8])],
    );
    let half = g.max_pool("input");
    let out = g.concat(&[&whole, &half]);
    let graph = g.finish(&out);
    let view = GraphView::new(&graph).expect("well formed");
    let f = Features::new(&view);
    assert_eq!(f.poolable(&whole), Err(NotPoolable::Pooled));
    assert_eq!(f.poolable(&half), Ok(()));
}

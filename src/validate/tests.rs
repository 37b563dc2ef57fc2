//! Both models through [`validate`], as small ONNX graphs from [`crate::testutil`].

use super::run::{decode_model, load};
use super::*;
use crate::onnx::tensor::ElemType;
use crate::testutil::{
    ints_attr, node, relu_mul_on, relu_on, small_input, small_model, value_info, value_info_shape,
    Dim,
};
use input::resolve_input;
use prost::Message;
use tract_onnx::pb;

/// [`super::validate`] on two serialized models, reporting to nobody.
fn validate(a: &[u8], b: &[u8], opts: &ValidateOptions) -> anyhow::Result<Validation> {
    let (a, b) = (ModelSource::from_bytes(a), ModelSource::from_bytes(b));
    super::validate(&a, &b, opts, &|_| {})
}

/// `x → Relu → y`, encoded.
fn relu() -> Vec<u8> {
    relu_on(small_input()).encode_to_vec()
}

/// `x → Relu → Mul(k) → y`, encoded.
fn relu_mul(k: f32) -> Vec<u8> {
    relu_mul_on(vec![small_input()], k).encode_to_vec()
}

fn opts(expect_identical: bool) -> ValidateOptions {
    ValidateOptions {
        input_shape: None,
        seed: 42,
        expect_identical,
        runs: Runs::Fixed(3),
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
    let bad = small_model(
        vec![node("NoSuchOp_y", "NoSuchOp", &["x"], "y")],
        vec![small_input()],
        vec![],
    )
    .encode_to_vec();
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
    let dims = [Dim::Named("N"), Dim::Fixed(2), Dim::Fixed(3), Dim::Fixed(3)];
    let x = value_info_shape("x", ElemType::FLOAT, Some(&dims));
    let a = relu_on(x.clone()).encode_to_vec();
    let b = relu_mul_on(vec![x], 2.0).encode_to_vec();
    let v = validate(&a, &b, &opts(false)).unwrap();
    assert!(v.ok, "{:?}", v.reason);
    assert_eq!(v.output_shapes, vec![vec![1, 2, 3, 3]]);
}

#[test]
fn unknown_dim_needs_input_shape() {
    let dims = [Dim::Unknown, Dim::Fixed(2), Dim::Fixed(3), Dim::Fixed(3)];
    let x = value_info_shape("x", ElemType::FLOAT, Some(&dims));
    let a = relu_on(x).encode_to_vec();
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
    let a = small_model(
        vec![node("Add_y", "Add", &["x", "z"], "y")],
        vec![small_input(), value_info("z", ElemType::FLOAT, &[1])],
        vec![],
    )
    .encode_to_vec();
    let e = validate(&a, &a, &opts(true)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("2 graph inputs") && msg.contains("`z`"),
        "{msg}"
    );
}

#[test]
fn initializer_listed_as_input_is_not_an_input() {
    let k = value_info("k", ElemType::FLOAT, &[]);
    let b = relu_mul_on(vec![small_input(), k], 3.0).encode_to_vec();
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
    let mut t = node("Transpose_y", "Transpose", &["x"], "y");
    t.attribute.push(ints_attr("perm", &[0, 2, 1, 3]));
    let b = small_model(vec![t], vec![small_input()], vec![]).encode_to_vec();
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
    let x = value_info("x", ElemType::DOUBLE, &[1, 2, 3, 3]);
    let a = relu_on(x).encode_to_vec();
    let v = validate(&a, &a, &opts(true)).unwrap();
    assert!(v.ok, "{:?}", v.reason);
    assert_eq!(v.max_abs_diff, Some(0.0));
}

#[test]
fn integer_input_is_rejected() {
    let x = value_info("x", ElemType::INT64, &[1, 2, 3, 3]);
    let a = relu_on(x).encode_to_vec();
    let e = validate(&a, &a, &opts(true)).unwrap_err();
    assert!(format!("{e:#}").contains("INT64"));
}

#[test]
fn stale_value_info_is_dropped() {
    let bytes = relu_mul(2.0);
    let mut proto = pb::ModelProto::decode(bytes.as_slice()).unwrap();
    let spec = resolve_input(&proto, None).unwrap();
    // the stale [7, 7] shape of `r` makes tract's analysis fail...
    let quiet: crate::progress::Progress = &|_| {};
    let steps = (quiet, crate::progress::Which::Original);
    let stale = load(&proto, None, &spec, steps)
        .err()
        .map(|e| error_line(&e))
        .unwrap_or_default();
    assert!(stale.contains("Impossible to unify"), "{stale}");
    // ...and dropping value_info fixes it
    proto.graph.as_mut().unwrap().value_info.clear();
    assert!(load(&proto, None, &spec, steps).is_ok());
    let decoded = decode_model(&bytes).unwrap();
    assert!(decoded.graph.unwrap().value_info.is_empty());
}

//! Options of the splice: initialisation, determinism, stage selection, a second run.

use super::*;

// ------------------------------------------------------------------------------------------------
// 3. Initialisation

fn validation_of(name: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let j = json_to(fixture(name), &out, extra);
    let v = j["validation"].clone();
    assert_eq!(v["ok"], Value::Bool(true), "{name} {extra:?}: {v}");
    assert!(out.exists(), "{name} {extra:?}: nothing written");
    v
}

/// --init identity keeps the function: max |diff| <= 1e-4 · max(1, output scale).
#[test]
fn identity_init_keeps_the_function() {
    for name in [
        "resnet_basic_ts",
        "resnet_bottleneck_ts",
        "resnext_tiny_ts",
        "resnet_bottleneck_dynamo",
    ] {
        let v = validation_of(name, &["--init", "identity"]);
        let diff = f(&v, "max_abs_diff");
        let scale = f(&v, "output_scale");
        assert!(scale > 0.0, "{name}: output scale {scale}");
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{name}: identity init changed the output by {diff} (scale {scale})"
        );
    }
}

/// Random init changes the function (the SE blocks are live), and the model still runs.
#[test]
fn random_init_changes_the_output() {
    for name in ["resnet_basic_ts", "resnext_tiny_dynamo"] {
        let v = validation_of(name, &["--init", "random", "--seed", "3"]);
        let diff = f(&v, "max_abs_diff");
        assert!(diff > 0.0, "{name}: random init left the output unchanged");
    }
}

/// Every gate and squeeze keeps the function with --init identity.
#[test]
fn identity_init_with_every_gate_and_squeeze() {
    for (gate, squeeze) in [
        ("hard-sigmoid", "avg"),
        ("tanh", "max"),
        ("relu", "none"),
        ("sigmoid", "max"),
    ] {
        let v = validation_of(
            "resnet_basic_ts",
            &["--init", "identity", "--gate", gate, "--squeeze", squeeze],
        );
        let diff = f(&v, "max_abs_diff");
        let scale = f(&v, "output_scale");
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "gate {gate}, squeeze {squeeze}: diff {diff} (scale {scale})"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// 4. Determinism

/// Writes `fixtures/<name>` into `<dir>/<sub>/out.onnx` with the given seed; returns the bytes of
/// out.onnx and (when external) out.onnx.data.
fn spliced_bytes(name: &str, dir: &Path, sub: &str, seed: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let d = dir.join(sub);
    std::fs::create_dir(&d).unwrap();
    let out = d.join("out.onnx");
    let o = run_unvalidated(fixture(name), &out, &["--seed", seed]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
    let data = se_inject::onnx::io::data_files_beside(&out);
    (read(&out), data.first().map(|d| read(d)))
}

fn check_determinism(name: &str, external: bool) {
    let dir = tempfile::tempdir().unwrap();
    let a = spliced_bytes(name, dir.path(), "a", "7");
    let b = spliced_bytes(name, dir.path(), "b", "7");
    let c = spliced_bytes(name, dir.path(), "c", "8");
    assert_eq!(a.1.is_some(), external, "{name}: data file written?");
    assert!(a.0 == b.0, "{name}: same seed, different .onnx bytes");
    assert!(a.1 == b.1, "{name}: same seed, different .onnx.data bytes");
    if external {
        // The new weights go to the data file.
        assert!(a.1 != c.1, "{name}: another seed, same .onnx.data bytes");
    } else {
        assert!(a.0 != c.0, "{name}: another seed, same .onnx bytes");
    }
}

#[test]
fn same_seed_same_bytes_ts() {
    check_determinism("resnet_bottleneck_ts", false);
}

#[test]
fn same_seed_same_bytes_dynamo() {
    check_determinism("resnet_basic_dynamo", true);
}

// ------------------------------------------------------------------------------------------------
// 5. Stage selection

/// --stages 2 on resnet_basic: only stage 2's single block (C = 16, h = 1) gets SE.
#[test]
fn stages_2_injects_only_stage_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let j = json_unvalidated(fixture("resnet_basic_ts"), &out, &["--stages", "2"]);
    let stage2 = 2 * 16 * 1 + 1 + 16; // 49
    for b in arr(&j, "blocks") {
        if u(b, "stage") == 2 {
            assert_eq!(b["injected"], Value::Bool(true), "{b}");
            assert!(b["skipped"].is_null(), "{b}");
            assert_eq!(u(b, "added_params"), stage2, "{b}");
        } else {
            assert_eq!(b["injected"], Value::Bool(false), "{b}");
            assert_eq!(b["skipped"], "stage not selected", "{b}");
            assert_eq!(u(b, "added_params"), 0, "{b}");
        }
    }
    let injected: Vec<u64> = arr(&j, "stages").iter().map(|s| u(s, "injected")).collect();
    assert_eq!(injected, vec![0, 1, 0]);
    // Only stage 2's formula: 2·1·16²/16 = 32.
    assert_eq!(f(&j, "formula_params"), (2 * 16 * 16) as f64 / 16.0);
    assert_eq!(u(&j, "added_params"), stage2);
    assert_eq!(u(&j, "params_after"), 39_450 + stage2);
    assert_eq!(float_params_on_disk(&out), 39_450 + stage2);
}

/// --stages 1,3 on resnet_basic: stages 1 and 3 only.
#[test]
fn stages_1_and_3() {
    let j = params_report(fixture("resnet_basic_ts"), &["--stages", "1,3"]);
    // 2·2·8²/16 + 2·2·32²/16 = 16 + 256
    assert_eq!(f(&j, "formula_params"), 16.0 + 256.0);
    // 2·(2·8·1 + 1 + 8) + 2·(2·32·2 + 2 + 32) = 50 + 324
    assert_eq!(u(&j, "added_params"), 50 + 324);
    let injected: Vec<u64> = arr(&j, "stages").iter().map(|s| u(s, "injected")).collect();
    assert_eq!(injected, vec![2, 0, 2]);
}

/// A stage number past the last: exit 1, naming the stage and the count (resnet_basic has 3).
#[test]
fn stages_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let o = run_to(fixture("resnet_basic_ts"), &out, &["--stages", "7"]);
    assert_error(&o, &["7", "3 stage"]);
    assert!(!out.exists());
}

// ------------------------------------------------------------------------------------------------
// 6. Idempotence

/// Running on its own output stops (exit 1, "already present"); --force adds the same again.
#[test]
fn second_run_finds_existing_se() {
    for (name, net) in [
        ("resnet_basic_ts", "resnet_basic"),
        ("resnet_bottleneck_dynamo", "resnet_bottleneck"),
    ] {
        let e = expect_r16(net);
        let dir = tempfile::tempdir().unwrap();
        let once = dir.path().join("once.onnx");
        let twice = dir.path().join("twice.onnx");
        let o = run_unvalidated(fixture(name), &once, &[]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));

        let o = run_to(&once, &twice, &["--format", "json"]);
        assert_error(&o, &["already present", "once.onnx"]);
        assert!(!twice.exists(), "{name}: written although SE was present");

        let j = json_to(&once, &twice, &["--force"]);
        assert_eq!(u(&j, "params_before"), e.params_before + e.added, "{name}");
        assert_eq!(u(&j, "added_params"), e.added, "{name}");
        assert_eq!(
            u(&j, "params_after"),
            e.params_before + 2 * e.added,
            "{name}"
        );
        assert_eq!(stages_of(&j), e.stages, "{name}: stages after --force");
        for b in arr(&j, "blocks") {
            assert_eq!(b["existing_se"], Value::Bool(true), "{name}: {b}");
            assert_eq!(b["injected"], Value::Bool(true), "{name}: {b}");
        }
        assert_eq!(j["validation"]["ok"], Value::Bool(true), "{name}");
        assert!(twice.exists());
    }
}

//! Bad input and bad arguments: one error line, the right exit code, nothing written.

use super::*;

/// Asserts a usage error: exit 2, no panic.
fn assert_usage_error(args: &[&str]) {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?}: expected exit 2\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    assert!(
        !stderr(&o).is_empty(),
        "{args:?}: usage error without a message"
    );
}

// ------------------------------------------------------------------------------------------------
// 7. Bad input

/// Runs on `model` with -o into `dir`; asserts the error and that nothing was written.
fn bad_input(dir: &Path, model: &Path, needles: &[&str]) -> String {
    let out = dir.join("never.onnx");
    let o = run_to(model, &out, &[]);
    let line = assert_error(&o, needles);
    assert!(!out.exists(), "written despite the error: {line}");
    assert!(!dir.join("never.onnx.data").exists());
    line
}

#[test]
fn error_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    bad_input(
        dir.path(),
        &dir.path().join("nowhere.onnx"),
        &["nowhere.onnx"],
    );
}

#[test]
fn error_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.onnx");
    std::fs::write(&p, b"").unwrap();
    bad_input(dir.path(), &p, &["empty.onnx"]);
}

#[test]
fn error_text_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.onnx");
    std::fs::write(&p, "this is a text file, not a protobuf\nsecond line\n").unwrap();
    bad_input(dir.path(), &p, &["notes.onnx"]);
}

#[test]
fn error_truncated_model() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["resnet_basic_ts", "resnet_bottleneck_dynamo"] {
        let bytes = read(&fixture(name));
        let p = dir.path().join(format!("half_{name}.onnx"));
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        if name.ends_with("dynamo") {
            std::fs::copy(
                fixture_data(name),
                dir.path().join(format!("{name}.onnx.data")),
            )
            .unwrap();
        }
        bad_input(dir.path(), &p, &[&format!("half_{name}.onnx")]);
    }
}

#[test]
fn error_external_data_missing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("resnet_basic_dynamo.onnx");
    std::fs::copy(fixture("resnet_basic_dynamo"), &p).unwrap();
    bad_input(dir.path(), &p, &["resnet_basic_dynamo.onnx.data"]);
}

#[test]
fn error_external_data_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnet_bottleneck_dynamo", dir.path());
    let data = dir.path().join("resnet_bottleneck_dynamo.onnx.data");
    let bytes = read(&data);
    std::fs::write(&data, &bytes[..bytes.len() / 3]).unwrap();
    bad_input(dir.path(), &p, &["resnet_bottleneck_dynamo.onnx.data"]);
}

#[test]
fn error_external_data_empty() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnext_tiny_dynamo", dir.path());
    std::fs::write(dir.path().join("resnext_tiny_dynamo.onnx.data"), b"").unwrap();
    bad_input(dir.path(), &p, &["resnext_tiny_dynamo.onnx.data"]);
}

/// plain_cnn with its ReLUs cut out (each consumer reads the Conv directly): no residual
/// merge and no convolution with an activation, so no block at all. The error says so and lists
/// what the graph holds: 3 Conv, 1 MaxPool, ... and no Relu.
#[test]
fn error_no_block_at_all() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let mut m = se_inject::onnx::load(&fixture("plain_cnn_ts")).unwrap();
    let graph = m.proto.graph.as_mut().unwrap();
    let relus: Vec<(String, String)> = graph
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("Relu"))
        .map(|n| (n.output[0].clone(), n.input[0].clone()))
        .collect();
    assert_eq!(relus.len(), 3, "plain_cnn has 3 ReLUs");
    graph.node.retain(|n| n.op_type.as_deref() != Some("Relu"));
    for n in graph.node.iter_mut() {
        for i in n.input.iter_mut() {
            if let Some((_, from)) = relus.iter().find(|(out, _)| out == i) {
                *i = from.clone();
            }
        }
    }
    let p = dir.path().join("no_relu.onnx");
    std::fs::write(&p, m.proto.encode_to_vec()).unwrap();
    let line = bad_input(dir.path(), &p, &["no_relu.onnx", "3 Conv", "MaxPool"]);
    let lower = line.to_lowercase();
    assert!(
        lower.contains("no block") || lower.contains("no residual block"),
        "{line}"
    );
    assert!(!line.contains("Relu"), "{line}");
    // The report alone fails the same way.
    let o = run_model_in(Some(dir.path()), "no_relu.onnx", &["--report", "params"]);
    assert_error(&o, &["no_relu.onnx", "3 Conv"]);
}

/// plain_cnn has no residual block: each conv + ReLU is a plain block (DESIGN.md: "For a plain
/// chain ... SE goes after that activation"), split into stages at the MaxPool:
/// conv 3→8, conv 8→8 | MaxPool | conv 8→16; N = [2, 1], C = [8, 16]. 2,146 parameters.
#[test]
fn plain_cnn_gets_se_after_each_activation() {
    for name in ["plain_cnn_ts", "plain_cnn_dynamo"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.onnx");
        let j = json_to(fixture(name), &out, &[]);
        let kinds: Vec<&str> = arr(&j, "stages")
            .iter()
            .map(|s| s["kind"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["plain", "plain"], "{name}");
        let by_hand = [
            // 2·2·8²/16 = 16; 2·(2·8·1 + 1 + 8) = 50
            stage(1, 2, 8, 16, 2 * (2 * 8 * 1 + 1 + 8)),
            // 2·16²/16 = 32; 2·16·1 + 1 + 16 = 49
            stage(2, 1, 16, 16, 2 * 16 * 1 + 1 + 16),
        ];
        assert_eq!(stages_of(&j), by_hand, "{name}");
        assert_eq!(f(&j, "formula_params"), 16.0 + 32.0, "{name}");
        assert_eq!(u(&j, "added_params"), 50 + 49, "{name}");
        assert_eq!(u(&j, "params_before"), 2_146, "{name}");
        assert_eq!(u(&j, "params_after"), 2_146 + 50 + 49, "{name}");
        assert_eq!(j["validation"]["ok"], Value::Bool(true), "{name}");
        assert_eq!(
            j["validation"]["output_shapes"],
            serde_json::json!([[1, 10]])
        );
        assert_eq!(float_params_on_disk(&out), 2_146 + 50 + 49, "{name}");
    }
}

/// The output may not be the input, however it is spelled.
#[test]
fn error_output_is_input() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("dir");
    std::fs::create_dir(&sub).unwrap();
    let p = copy_fixture("resnet_basic_ts", &sub);
    let before = read(&p);

    let o = run_to(&p, &p, &[]);
    assert_error(&o, &["resnet_basic_ts.onnx"]);

    let o = run_model_in(
        Some(dir.path()),
        "dir/resnet_basic_ts.onnx",
        &["-o", "./dir/../dir/resnet_basic_ts.onnx"],
    );
    assert_error(&o, &["resnet_basic_ts.onnx"]);

    let o = run_model_in(
        Some(&sub),
        "resnet_basic_ts.onnx",
        &["-o", "../dir/./resnet_basic_ts.onnx"],
    );
    assert_error(&o, &["resnet_basic_ts.onnx"]);

    assert_eq!(read(&p), before, "input changed");
    assert_eq!(listing(&sub), vec!["resnet_basic_ts.onnx".to_string()]);
}

/// Nor the input's external data file.
#[test]
fn error_output_is_input_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnet_basic_dynamo", dir.path());
    let data = dir.path().join("resnet_basic_dynamo.onnx.data");
    let (before, before_data) = (read(&p), read(&data));
    let model = "resnet_basic_dynamo.onnx";
    let o = run_model_in(
        Some(dir.path()),
        model,
        &["-o", "./resnet_basic_dynamo.onnx"],
    );
    assert_error(&o, &["resnet_basic_dynamo.onnx"]);
    let o = run_model_in(
        Some(dir.path()),
        model,
        &["-o", "resnet_basic_dynamo.onnx.data"],
    );
    assert_error(&o, &["resnet_basic_dynamo.onnx.data"]);
    assert_eq!(read(&p), before);
    assert_eq!(read(&data), before_data);
    assert_eq!(
        listing(dir.path()),
        vec![
            "resnet_basic_dynamo.onnx".to_string(),
            "resnet_basic_dynamo.onnx.data".to_string()
        ]
    );
}

#[test]
fn usage_errors_exit_2() {
    let m = "fixtures/resnet_basic_ts.onnx";
    for args in [
        &[m, "--ratio", "0", "--report", "params"][..],
        &[m, "--ratio", "-3", "--report", "params"],
        &[m, "--ratio=-3", "--report", "params"],
        &[m, "-r", "x", "--report", "params"],
        &[m, "--position", "bogus", "--report", "params"],
        &[m, "--init", "identity", "--no-bias", "--report", "params"],
        &[m, "--stages", "0", "--report", "params"],
        &[m, "--stages", "1,x", "--report", "params"],
        &[m, "--squeeze", "median", "--report", "params"],
        &[m, "--gate", "softmax", "--report", "params"],
        &[m, "--format", "xml", "--report", "params"],
        &[m, "--input-shape", "1,0", "--report", "params"],
        &[m, "--input-shape", "1,x,32,32", "--report", "params"],
        &[m, "--no-such-flag"],
        &[],
    ] {
        assert_usage_error(args);
    }
}

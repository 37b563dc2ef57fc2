//! Choosing where SE goes by name: `--only` and `--exclude` over block names, `--at` on named
//! feature maps. On resnet_basic (r = 16, biases) a block of C channels and hidden width h adds
//! 2·C·h + h + C: 25 at C = 8 (h = 1), 49 at C = 16 (h = 1), 162 at C = 32 (h = 2); its blocks
//! are /layer1/layer1.0, /layer1/layer1.1, /layer2/layer2.0, /layer3/layer3.0, /layer3/layer3.1.

use super::*;

const L1_OUT: &str = "/layer1/layer1.1/relu_1/Relu_output_0";
const L3_OUT: &str = "/layer3/layer3.1/relu_1/Relu_output_0";

fn selected(args: &[&str]) -> Value {
    params_report(fixture("resnet_basic_ts"), args)
}

/// The names of the blocks that took SE.
fn taking(j: &Value) -> Vec<String> {
    arr(j, "blocks")
        .iter()
        .filter(|b| b["skipped"].is_null())
        .map(|b| b["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn only_and_exclude_select_blocks_by_name() {
    let j = selected(&["--only", "layer3"]);
    assert_eq!(taking(&j), ["/layer3/layer3.0", "/layer3/layer3.1"]);
    assert_eq!(u(&j, "added_params"), 2 * 162);
    assert_eq!(j["only"], "layer3");
    let skipped = &arr(&j, "blocks")[0]["skipped"];
    assert_eq!(skipped, "name not selected by --only / --exclude");

    let j = selected(&["--exclude", r"layer1\."]);
    assert_eq!(u(&j, "added_params"), 49 + 2 * 162);
    assert_eq!(j["exclude"], r"layer1\.");

    let j = selected(&["--only", "layer", "--exclude", r"layer3\.1$"]);
    assert_eq!(
        taking(&j),
        [
            "/layer1/layer1.0",
            "/layer1/layer1.1",
            "/layer2/layer2.0",
            "/layer3/layer3.0"
        ]
    );
    assert_eq!(u(&j, "added_params"), 2 * 25 + 49 + 162);

    let j = selected(&[]);
    assert!(j.get("only").is_none() && j.get("at").is_none(), "{j}");
}

#[test]
fn the_selection_is_echoed_in_the_text_report() {
    let o = run_model(
        fixture("resnet_basic_ts"),
        &["--report", "params", "--only", "layer3", "--exclude", "x"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first = stdout(&o).lines().next().unwrap_or_default().to_string();
    assert!(first.ends_with("; only /layer3/; exclude /x/"), "{first}");
}

/// `--at` puts SE on each named map for every reader, in graph order, one stage each here
/// (8 and 32 channels), with no detection; identity init keeps the function.
#[test]
fn at_puts_se_on_named_maps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("at.onnx");
    let at = format!("{L3_OUT},{L1_OUT}");
    let j = json_to(
        fixture("resnet_basic_ts"),
        &out,
        &["--at", &at, "--init", "identity"],
    );
    assert_eq!(j["validation"]["ok"], true, "{j}");
    assert_eq!(u(&j, "added_params"), 25 + 162);
    assert_eq!(taking(&j), [L1_OUT, L3_OUT]);
    let stages: Vec<(String, u64)> = arr(&j, "stages")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap_or_default().to_string(),
                u(s, "channels"),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [("named".to_string(), 8), ("named".to_string(), 32)]
    );
    assert_eq!(j["at"], serde_json::json!([L3_OUT, L1_OUT]));
    // The SE block takes over the named map's name, so every reader (layer2.0's first conv
    // and its projection) reads the scaled map.
    let m = se_inject::onnx::load(&out).expect("written model");
    let g = m.proto.graph.as_ref().expect("graph");
    let producer = g.node.iter().find(|n| n.output.iter().any(|o| o == L1_OUT));
    let op = producer.and_then(|n| n.op_type.as_deref());
    assert_eq!(
        op,
        Some(se_inject::onnx::op::Op::Mul.name()),
        "the SE scale writes it"
    );
    let readers = g
        .node
        .iter()
        .filter(|n| n.input.iter().any(|i| i == L1_OUT))
        .count();
    assert_eq!(readers, 2);
}

#[test]
fn at_refuses_what_it_cannot_take() {
    let model = fixture("resnet_basic_ts");
    let o = run_model(&model, &["--at", "nope"]);
    assert_error(&o, &["--at", "no tensor 'nope'"]);
    let o = run_model(&model, &["--at", &format!("{L1_OUT},{L1_OUT}")]);
    assert_error(&o, &["twice"]);
    let o = run_model(&model, &["--at", L1_OUT, "--position", "pre"]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    let o = run_model(&model, &["--only", "("]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("unclosed group"), "{}", stderr(&o));
}

/// csp_tiny: one csp module '/stage' of 16 channels (h 1: 2·16 + 1 + 16 = 49) holding two
/// residual units of 16 ('/stage/blocks/blocks.0', '.1', 49 each) at standard.
#[test]
fn the_level_chooses_modules_units_or_both() {
    let nested = |args: &[&str]| params_report(fixture("csp_tiny_ts"), args);
    let units = ["/stage/blocks/blocks.0", "/stage/blocks/blocks.1"];

    let j = nested(&[]);
    assert_eq!(j["level"], "module");
    assert_eq!(taking(&j), ["/stage"]);
    assert_eq!(u(&j, "added_params"), 49);
    for b in &arr(&j, "blocks")[..2] {
        assert_eq!(b["module"], "/stage");
        let why = b["skipped"].as_str().unwrap_or_default();
        assert!(why.starts_with("a unit of module '/stage'"), "{why}");
    }
    assert!(arr(&j, "blocks")[2].get("module").is_none());

    let j = nested(&["--level", "unit"]);
    assert_eq!(j["level"], "unit");
    assert_eq!(taking(&j), units);
    assert_eq!(u(&j, "added_params"), 2 * 49);
    let why = &arr(&j, "blocks")[2]["skipped"];
    assert_eq!(
        why,
        "its 2 unit(s) take SE at level unit (SE on the module: --level module or all)"
    );

    let j = nested(&["--level", "all"]);
    assert_eq!(taking(&j), [units[0], units[1], "/stage"]);
    assert_eq!(u(&j, "added_params"), 3 * 49);

    // A model without nesting echoes no level.
    assert!(selected(&[]).get("level").is_none());
}

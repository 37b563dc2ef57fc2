//! Names a model or its path carries cannot forge output: escape sequences and newlines in node,
//! tensor and file names are printed as visible escapes (`\x1b`, `\n`) in the text report, in the
//! one-line error and in the plot, and kept as they are in JSON, which serde escapes. Every
//! hostile model is generated here.

use crate::common::hostile::{run_on, write};
use crate::common::{stderr, stdout};
use prost::Message;
use se_inject::onnx::tensor::ElemType;
use se_inject::testutil::residual_model;

/// Sets the window title and clears the screen on a terminal that receives it raw.
const TITLE_AND_CLEAR: &str = "\x1b]0;owned\x07\x1b[2J";
/// The same, as se-inject prints it.
const TITLE_AND_CLEAR_SHOWN: &str = "\\x1b]0;owned\\x07\\x1b[2J";

/// Whether `s` holds a control character other than the newlines ending its lines.
fn has_controls(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

/// The residual model with its block's nodes named `/b<escape sequences>/...` and its first
/// convolution named so that a raw newline would start a `written:` line.
fn hostile_names() -> se_inject::onnx::ModelProto {
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    for n in g.node.iter_mut() {
        let name = n.name.take().unwrap();
        n.name = Some(name.replacen("/b/", &format!("/b{TITLE_AND_CLEAR}/"), 1));
    }
    g.node[0].name = Some("/b/conv1\nwritten: /tmp/forged.onnx".into());
    m
}

#[test]
fn names_in_the_text_report_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m\x1b[2J\n.onnx",
        &hostile_names().encode_to_vec(),
    );
    let o = run_on(&p, &["--report", "all", "--no-validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(!has_controls(&text), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    let folder = dir.path().display();
    assert_eq!(
        lines[0],
        format!(
            "{folder}/m\\x1b[2J\\n.onnx: position standard, r = 16, with biases, squeeze avg, \
             gate sigmoid, init random"
        )
    );
    // The first node's newline is shown, so the only `written:` line is the real one.
    assert!(
        lines[3].ends_with(" 100.0%  /b/conv1\\nwritten: /tmp/forged.onnx"),
        "{}",
        lines[3]
    );
    let written: Vec<&&str> = lines.iter().filter(|l| l.starts_with("written")).collect();
    assert_eq!(written, [&format!("written: {folder}/out.onnx")]);
    assert!(
        lines.contains(
            &format!(
                "{:>5}  {:<40} {:>8} {:>6}  {:<10} {}",
                1,
                format!("/b{TITLE_AND_CLEAR_SHOWN}"),
                4,
                1,
                "identity",
                "added (13 params)"
            )
            .as_str()
        ),
        "{text}"
    );
}

#[test]
fn json_keeps_names_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "m.onnx", &hostile_names().encode_to_vec());
    let o = run_on(
        &p,
        &["--report", "stages", "--no-validate", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // serde escapes them: stdout holds no control character.
    assert!(!has_controls(&stdout(&o)));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["stages"][0]["first_node"],
        "/b/conv1\nwritten: /tmp/forged.onnx"
    );
    assert_eq!(v["blocks"][0]["name"], format!("/b{TITLE_AND_CLEAR}"));
}

#[test]
fn names_in_the_error_line_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // A node reading a tensor nothing produces, both names hostile, in a file named so too.
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    g.node[1].input[0] = format!("ghost{TITLE_AND_CLEAR}");
    g.node[1].name = Some("relu\nse-inject: done".into());
    let p = write(dir.path(), "e\x1b[2J.onnx", &m.encode_to_vec());
    let o = run_on(&p, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "se-inject: error: '{}/e\\x1b[2J.onnx': node 'relu\\nse-inject: done' (Relu) reads \
             tensor 'ghost{TITLE_AND_CLEAR_SHOWN}', which nothing produces\n",
            dir.path().display()
        )
    );

    // A message whose tensor name reaches the line unescaped on its way (validation's map
    // bound): the line itself is escaped before it is printed.
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    g.node[0].output[0] = format!("c1{TITLE_AND_CLEAR}");
    g.node[1].input[0] = format!("c1{TITLE_AND_CLEAR}");
    let p = write(dir.path(), "big.onnx", &m.encode_to_vec());
    let o = run_on(&p, &["--input-shape", "1,4,20000,20000"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(!has_controls(&err), "{err:?}");
    assert!(
        err.contains(&format!(
            "'c1{TITLE_AND_CLEAR_SHOWN}' of node '/b/conv1/Conv' (Conv) would be \
             [1, 4, 20000, 20000]"
        )),
        "{err}"
    );
}

/// Validation's own refusals name the input escaped too.
#[test]
fn the_input_name_in_a_validation_refusal_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    let x = format!("x\n{TITLE_AND_CLEAR}");
    g.input[0].name = Some(x.clone());
    for n in g.node.iter_mut() {
        for i in n.input.iter_mut().filter(|i| *i == "x") {
            *i = x.clone();
        }
    }
    let p = write(dir.path(), "m.onnx", &m.encode_to_vec());
    let o = run_on(&p, &["--input-shape", "1,4,8"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "se-inject: error: validating '{}' in tract: input shape [1, 4, 8] has rank 3 but \
             input \
             `x\\n{TITLE_AND_CLEAR_SHOWN}` has rank 4\n",
            p.display()
        )
    );
}

#[test]
fn a_file_name_with_control_characters_keeps_the_plot_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m\x01\x1b[2J.onnx",
        &residual_model(ElemType::FLOAT).encode_to_vec(),
    );
    let plot = dir.path().join("p.svg");
    let o = run_on(&p, &["--no-validate", "--plot", plot.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&plot).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let title = doc.descendants().find(|n| n.has_tag_name("title"));
    assert_eq!(
        title.and_then(|t| t.text()),
        Some(
            format!(
                "{}/m\\x01\\x1b[2J.onnx: SE at standard, r = 16",
                dir.path().display()
            )
            .as_str()
        )
    );
}

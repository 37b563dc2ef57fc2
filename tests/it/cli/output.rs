//! What a run prints and writes: the text report, the default output path, the positions,
//! --input-shape and the MACs report.

use super::*;

// ------------------------------------------------------------------------------------------------
// 8. Text report

/// The text table: one line per stage (index, kind, blocks, channels, formula) and a total line
/// with the formula total.
#[test]
fn text_report_params() {
    let o = run_model(fixture("resnet_basic_ts"), &["--report", "params"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // (index, blocks, channels, formula) by hand, as in expect_r16("resnet_basic").
    for (index, blocks, channels, formula) in [
        ("1", "2", "8", "16"),
        ("2", "1", "16", "32"),
        ("3", "2", "32", "256"),
    ] {
        let row = rows
            .iter()
            .find(|r| r.first() == Some(&index) && r.get(1) == Some(&"residual"))
            .unwrap_or_else(|| panic!("no line for stage {index}:\n{text}"));
        assert_eq!(
            &row[2..5],
            &[blocks, channels, formula],
            "stage {index}:\n{text}"
        );
    }
    let total = rows
        .iter()
        .find(|r| r.first() == Some(&"total"))
        .unwrap_or_else(|| panic!("no total line:\n{text}"));
    // 16 + 32 + 256 = 304 by the formula, 50 + 49 + 324 = 423 counted, 5 blocks.
    assert!(total.contains(&"304"), "total line: {total:?}");
    assert!(total.contains(&"423"), "total line: {total:?}");
    assert!(total.contains(&"5"), "total line: {total:?}");
}

// ------------------------------------------------------------------------------------------------
// 9. Default output path

/// Without -o (and without --report) the model goes to `<stem>.se.onnx` beside the input, not
/// into the working folder.
#[test]
fn default_output_beside_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnext_tiny_ts", dir.path());
    let o = run_model_in(Some(cwd.path()), &p, &["--no-validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        listing(dir.path()),
        vec![
            "resnext_tiny_ts.onnx".to_string(),
            "resnext_tiny_ts.se.onnx".to_string()
        ]
    );
    assert!(listing(cwd.path()).is_empty(), "written into the cwd");
    // 49 + 162 + 580 = 791 added to 13,978.
    assert_eq!(
        float_params_on_disk(&dir.path().join("resnext_tiny_ts.se.onnx")),
        13_978 + 791
    );

    // Relative path, run in the model's folder.
    let dir2 = tempfile::tempdir().unwrap();
    copy_fixture("resnet_basic_dynamo", dir2.path());
    let o = run_model_in(
        Some(dir2.path()),
        "resnet_basic_dynamo.onnx",
        &["--no-validate"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        listing(dir2.path()),
        vec![
            "resnet_basic_dynamo.onnx".to_string(),
            "resnet_basic_dynamo.onnx.data".to_string(),
            "resnet_basic_dynamo.se.onnx".to_string(),
            data_name_of(&dir2.path().join("resnet_basic_dynamo.se.onnx")),
        ]
    );
}

// ------------------------------------------------------------------------------------------------
// 10. Positions

/// Runs resnet_bottleneck_ts at `position`, validated; returns the report.
fn at_position(net: &str, position: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let j = json_to(fixture(net), &out, &["-p", position]);
    assert_eq!(j["position"], position);
    assert_eq!(
        j["validation"]["ok"],
        Value::Bool(true),
        "{position}: {}",
        j["validation"]
    );
    assert_eq!(
        j["validation"]["output_shapes"],
        serde_json::json!([[1, 10]])
    );
    for b in arr(&j, "blocks") {
        assert_eq!(b["injected"], Value::Bool(true), "{position}: {b}");
    }
    assert_eq!(
        u(&j, "params_after"),
        u(&j, "params_before") + u(&j, "added_params")
    );
    assert_eq!(float_params_on_disk(&out), u(&j, "params_after"));
    j
}

/// (channels, hidden) of each block, in order.
fn landing(j: &Value) -> Vec<(u64, u64)> {
    arr(j, "blocks")
        .iter()
        .map(|b| (u(b, "channels"), u(b, "hidden")))
        .collect()
}

/// Where SE lands at one position: the fixture, the position, (channels, hidden) per block and
/// the parameters added in all, by hand.
struct Landing {
    fixture: &'static str,
    position: &'static str,
    blocks: &'static [(u64, u64)],
    added: u64,
}

/// pre: SE on each block's input: 8 (the stem), 16, 16, 32, 32 channels.
const PRE: Landing = Landing {
    fixture: "resnet_bottleneck_ts",
    position: "pre",
    blocks: &[(8, 1), (16, 1), (16, 1), (32, 2), (32, 2)],
    // (2·8·1 + 1 + 8) + 2·(2·16·1 + 1 + 16) + 2·(2·32·2 + 2 + 32) = 25 + 98 + 324
    added: 25 + 98 + 324,
};

/// post: after the Add and its ReLU, on the block output: C = 16, 16, 32, 32, 64.
const POST: Landing = Landing {
    fixture: "resnet_bottleneck_ts",
    position: "post",
    blocks: &[(16, 1), (16, 1), (32, 2), (32, 2), (64, 4)],
    added: 98 + 324 + 580,
};

/// identity: on the shortcut (after the projection where there is one): C as the block output.
const IDENTITY: Landing = Landing {
    fixture: "resnet_bottleneck_ts",
    position: "identity",
    blocks: &[(16, 1), (16, 1), (32, 2), (32, 2), (64, 4)],
    added: 98 + 324 + 580,
};

/// inner: after the 3x3 conv and its ReLU, on the bottleneck width C/4 = 4, 4, 8, 8, 16, each
/// with h = max(1, round(w/16)) = 1: 2·4 + 1 + 4 = 13 per block of 4, 2·8 + 1 + 8 = 25 per
/// block of 8, 2·16 + 1 + 16 = 49 for the block of 16.
const INNER: Landing = Landing {
    fixture: "resnet_bottleneck_ts",
    position: "inner",
    blocks: &[(4, 1), (4, 1), (8, 1), (8, 1), (16, 1)],
    // 2·13 + 2·25 + 49
    added: 26 + 50 + 49,
};

/// inner on the grouped 3x3 convs of resnext_tiny: widths 8, 16, 32 (h = 1, 1, 2).
const INNER_GROUPED: Landing = Landing {
    fixture: "resnext_tiny_dynamo",
    position: "inner",
    blocks: &[(8, 1), (16, 1), (32, 2)],
    // (2·8·1 + 1 + 8) + (2·16·1 + 1 + 16) + (2·32·2 + 2 + 32)
    added: 25 + 49 + 162,
};

/// Runs one landing: where each block's SE sits, the parameters each block adds
/// (2·C·h + h + C) and the total.
fn check_landing(e: &Landing) {
    let j = at_position(e.fixture, e.position);
    assert_eq!(landing(&j), e.blocks, "{}", e.position);
    let per_block: Vec<u64> = arr(&j, "blocks")
        .iter()
        .map(|b| u(b, "added_params"))
        .collect();
    let by_hand: Vec<u64> = e.blocks.iter().map(|&(c, h)| 2 * c * h + h + c).collect();
    assert_eq!(per_block, by_hand, "{}", e.position);
    assert_eq!(u(&j, "added_params"), e.added, "{}", e.position);
}

#[test]
fn position_pre() {
    check_landing(&PRE);
}

#[test]
fn position_post() {
    check_landing(&POST);
}

#[test]
fn position_identity() {
    check_landing(&IDENTITY);
}

#[test]
fn position_inner() {
    check_landing(&INNER);
}

#[test]
fn position_inner_grouped() {
    check_landing(&INNER_GROUPED);
}

// ------------------------------------------------------------------------------------------------
// 11. --input-shape

/// A concrete batch of 2 for the symbolic batch dim of the TorchScript export: the validation
/// runs with it and the logits come out 2×10.
#[test]
fn input_shape_sets_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let args = ["--input-shape", "2,3,32,32", "--format", "json"];
    let o = run_to(fixture("resnet_basic_ts"), &out, &args);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let j = json_ok(&o);
    assert_eq!(
        j["validation"]["ok"],
        Value::Bool(true),
        "{}",
        j["validation"]
    );
    assert_eq!(
        j["validation"]["output_shapes"],
        serde_json::json!([[2, 10]])
    );
    assert!(out.exists());
}

/// An input shape that does not fit the model fails cleanly (bad input or failed validation),
/// without a panic, and writes nothing.
#[test]
fn input_shape_of_the_wrong_rank() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let o = run_to(
        fixture("resnet_basic_ts"),
        &out,
        &["--input-shape", "1,3,32"],
    );
    let err = stderr(&o);
    assert!(
        matches!(o.status.code(), Some(1) | Some(3)),
        "exit {:?}\n{err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("se-inject: "), "{err}");
    assert!(!out.exists(), "written despite a wrong input shape");
}

/// MACs of resnet_basic on its 1×3×32×32 input, by hand (out H·W · C_out · C_in · k²):
/// stem 32·32·8·3·9; layer1 4 convs 32·32·8·8·9; layer2 conv1 (stride 2) 16·16·16·8·9, conv2
/// 16·16·16·16·9, projection 16·16·16·8; layer3 conv1 8·8·32·16·9, three convs 8·8·32·32·9,
/// projection 8·8·32·16; the Linear 32·10. SE adds its two FCs, 2·C·h per block.
#[test]
fn macs_report() {
    let before = 32 * 32 * 8 * 3 * 9
        + 4 * (32 * 32 * 8 * 8 * 9)
        + 16 * 16 * 16 * 8 * 9
        + 16 * 16 * 16 * 16 * 9
        + 16 * 16 * 16 * 8
        + 8 * 8 * 32 * 16 * 9
        + 3 * (8 * 8 * 32 * 32 * 9)
        + 8 * 8 * 32 * 16
        + 32 * 10;
    let se = 2 * (2 * 8 * 1) + 2 * 16 * 1 + 2 * (2 * 32 * 2);
    for name in ["resnet_basic_ts", "resnet_basic_dynamo"] {
        let j = json(fixture(name), &["--report", "macs"]);
        assert_eq!(u(&j, "macs_before"), before, "{name}");
        assert_eq!(u(&j, "macs_after"), before + se, "{name}");
        let o = run_model(fixture(name), &["--report", "macs"]);
        let text = stdout(&o);
        assert!(
            text.contains(
                "MACs (convolutions and matrix products): 5,595,456 before, 5,595,776 after"
            ),
            "{text}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Standard output that cannot be written

/// A full device on stdout is one error line and exit 1; a reader that goes away before the
/// report is written (`| head`) ends the run quietly, exit 0.
#[test]
fn stdout_full_or_closed() {
    let line = [
        fixture("resnet_basic_ts").into_os_string(),
        "--report".into(),
        "all".into(),
    ];
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_se-inject"))
            .args(&line)
            .stdout(full)
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(1));
        assert_error(&o, &["standard output", "No space left"]);
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_se-inject"))
        .args(&line)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

// ------------------------------------------------------------------------------------------------
// Outputs that must not be replaced

/// Every path the run writes or removes is checked against every path it reads: an input model
/// named `x.onnx.data`, or a data file the input reads named `x.onnx.data`, has the name of an
/// earlier output's data file for `-o x.onnx`, yet is neither replaced nor removed.
#[test]
fn files_the_run_reads_are_never_replaced_or_removed() {
    let dir = tempfile::tempdir().unwrap();
    let copied = copy_fixture("resnet_basic_dynamo", dir.path());
    let input = dir.path().join("x.onnx.data");
    std::fs::rename(&copied, &input).unwrap();
    let out = dir.path().join("x.onnx");
    let o = run([input.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(&input), read(&fixture("resnet_basic_dynamo")));
    let data = se_inject::onnx::io::data_files_beside(&out);
    assert_eq!(data.len(), 2, "the input and the output's data: {data:?}");
    let written = data.iter().find(|p| **p != input).unwrap();
    assert!(se_inject::onnx::load(&out).is_ok(), "the output loads");
    let mut want = vec![
        "resnet_basic_dynamo.onnx.data".to_string(),
        "x.onnx".to_string(),
        written.file_name().unwrap().to_string_lossy().into_owned(),
        "x.onnx.data".to_string(),
    ];
    want.sort();
    assert_eq!(listing(dir.path()), want);

    // A renamed model reading `resnet_basic_dynamo.onnx.data`, written as
    // `resnet_basic_dynamo.onnx`.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("renamed.onnx");
    let data = dir.path().join("resnet_basic_dynamo.onnx.data");
    std::fs::copy(fixture("resnet_basic_dynamo"), &model).unwrap();
    std::fs::copy(fixture_data("resnet_basic_dynamo"), &data).unwrap();
    let out = dir.path().join("resnet_basic_dynamo.onnx");
    let o = run_unvalidated(&model, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read(&data), read(&fixture_data("resnet_basic_dynamo")));
    assert_eq!(read(&model), read(&fixture("resnet_basic_dynamo")));
    assert!(se_inject::onnx::load(&out).is_ok(), "the output loads");
}

/// Writing over an earlier output switches the pair. A model file that changes gets a data file
/// of a new name (the model file's fingerprint), and the data file the earlier output referred
/// to is removed; a file merely named like an output's data (`<out>.data` here, which no model
/// refers to) stays. A model file that stays the same (other SE weights only) keeps the name,
/// its data file replaced in one rename: either data file fits it.
#[test]
fn an_output_written_again_replaces_its_pair() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    std::fs::write(dir.path().join("out.onnx.data"), b"an older layout").unwrap();
    let other = dir.path().join("other.onnx.0000000000000000.data");
    std::fs::write(&other, b"another output's").unwrap();
    let write = |args: &[&str]| {
        let o = run_unvalidated(fixture("resnet_basic_dynamo"), &out, args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(se_inject::onnx::load(&out).is_ok(), "the output loads");
        let data = data_file_of(&out);
        let mut want = vec![
            "other.onnx.0000000000000000.data".to_string(),
            "out.onnx".to_string(),
            "out.onnx.data".to_string(),
            data_name_of(&out),
        ];
        want.sort();
        assert_eq!(listing(dir.path()), want);
        (read(&out), read(&data), data)
    };
    let first = write(&["--seed", "7"]);
    let reseeded = write(&["--seed", "8"]);
    assert!(
        reseeded.0 == first.0,
        "other SE weights, the same model file"
    );
    assert!(reseeded.1 != first.1, "other SE weights in the data file");
    assert_eq!(reseeded.2, first.2, "the same model file, the same name");
    let reduced = write(&["--seed", "7", "--ratio", "8"]);
    assert!(reduced.0 != first.0, "SE blocks of another width");
    assert_ne!(reduced.2, first.2, "another model file, another name");
    let again = write(&["--seed", "7"]);
    assert!(again == first, "the same run, the same files");

    // An inline model written there leaves no data file.
    let o = run_unvalidated(fixture("resnet_basic_ts"), &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        listing(dir.path()),
        [
            "other.onnx.0000000000000000.data",
            "out.onnx",
            "out.onnx.data"
        ]
    );
}

/// An output that exists and is not a regular file (a FIFO here; a device alike) or is
/// read-only is refused and left as it is.
#[test]
fn special_and_read_only_outputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_fixture("resnet_basic_ts", dir.path());
    let fifo = dir.path().join("fifo.onnx");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let o = run([model.as_os_str(), "-o".as_ref(), fifo.as_os_str()]);
        assert_error(&o, &["fifo.onnx", "not a regular file"]);
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(!kind.is_file(), "the FIFO is still a FIFO");
    }
    let kept = dir.path().join("kept.onnx");
    std::fs::write(&kept, b"keep me").unwrap();
    let mut perms = std::fs::metadata(&kept).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&kept, perms).unwrap();
    let o = run([model.as_os_str(), "-o".as_ref(), kept.as_os_str()]);
    assert_error(&o, &["kept.onnx", "read-only"]);
    assert_eq!(std::fs::read(&kept).unwrap(), b"keep me");
}

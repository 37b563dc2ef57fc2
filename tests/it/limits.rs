//! The limits a run keeps under attack, beyond the malformed inputs of tests/it/hostile.rs: what
//! validation may take (nodes, inputs, window sizes, map sizes, time), memory on a sparse 4 GiB
//! data file, old opsets, sparse initializers, external data in subgraphs, signals during the
//! save and output paths that name folders. Every hostile input is generated here.

use crate::common::hostile::{external_model, run_on, write};
use crate::common::{assert_error, data_file_of, data_name_of, fixture, listing, run, stderr};
use prost::Message;
use se_inject::onnx::proto::tensor_proto::{DataLocation, DataType};
use se_inject::onnx::proto::{AttributeProto, GraphProto, StringStringEntryProto, TensorProto};
use se_inject::testutil::{
    ints_attr, model, node, residual_graph, residual_model, tensor, value_info,
};

/// Validation's bounds, checked before tract sees the model: one error line naming the bound
/// and how to raise it or skip validation, nothing written; `--no-validate` writes the model.
#[test]
fn validation_refuses_what_would_hang_or_abort_tract() {
    let dir = tempfile::tempdir().unwrap();
    // A max pool padded by 2^20 after the block (tract would fail to allocate and abort).
    let mut m = residual_model(DataType::Float as i32);
    let g = m.graph.as_mut().unwrap();
    let mut pool = node("/head/MaxPool", "MaxPool", &["y"], "z");
    pool.attribute = vec![
        ints_attr("kernel_shape", &[1, 1]),
        ints_attr("pads", &[1 << 20; 4]),
    ];
    g.node.push(pool);
    g.output = vec![value_info("z", DataType::Float as i32, &[])];
    let p = write(dir.path(), "padded.onnx", &m.encode_to_vec());
    assert_error(
        &run_on(&p, &[]),
        &["/head/MaxPool", "pads 1048576", "--no-validate skips"],
    );
    assert_eq!(listing(dir.path()), vec!["padded.onnx"]);
    assert_eq!(run_on(&p, &["--no-validate"]).status.code(), Some(0));
    std::fs::remove_file(dir.path().join("out.onnx")).unwrap();

    // More nodes than the budget; a map larger than validation allocates.
    let p = write(
        dir.path(),
        "m.onnx",
        &residual_model(DataType::Float as i32).encode_to_vec(),
    );
    assert_error(
        &run_on(&p, &["--validate-nodes", "3"]),
        &["5 nodes", "(3; --validate-nodes raises it"],
    );
    assert_error(
        &run_on(&p, &["--input-shape", "1,4,20000,20000"]),
        &[
            "[1, 4, 20000, 20000]",
            "more elements than validation allocates",
        ],
    );
    assert_eq!(listing(dir.path()), vec!["m.onnx", "padded.onnx"]);
}

/// A validation that outlives `--validate-timeout` stops the run with one line, nothing
/// written: a block of two 3×3 convolutions on 64×512×512 maps (about 20 GMAC a run), timed 20
/// runs per model, takes far more than a second on any CPU.
#[test]
fn validation_stops_at_its_time_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = residual_graph(DataType::Float as i32);
    for (t, dims) in [("w1", [64i64, 64, 3, 3]), ("w2", [64, 64, 3, 3])] {
        let at = g
            .initializer
            .iter()
            .position(|i| i.name.as_deref() == Some(t))
            .unwrap();
        g.initializer[at] = tensor(t, &dims, DataType::Float as i32, 1);
    }
    for (t, seed) in [("b1", 2), ("b2", 4)] {
        let at = g
            .initializer
            .iter()
            .position(|i| i.name.as_deref() == Some(t))
            .unwrap();
        g.initializer[at] = tensor(t, &[64], DataType::Float as i32, seed);
    }
    g.input = vec![value_info("x", DataType::Float as i32, &[1, 64, 512, 512])];
    g.output = vec![value_info("y", DataType::Float as i32, &[1, 64, 512, 512])];
    let p = write(dir.path(), "big.onnx", &model(g, 8, 13).encode_to_vec());
    let o = run_on(&p, &["--validate-timeout", "1", "--time-runs", "20"]);
    assert_error(
        &o,
        &["did not finish within 1 s", "--validate-timeout raises it"],
    );
    assert_eq!(listing(dir.path()), vec!["big.onnx"]);
}

/// The binary started on `model` writing `out` without validation, its output discarded.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn spawn_unvalidated(model: &std::path::Path, out: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_se-inject"))
        .args([
            model.as_os_str(),
            "--no-validate".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A 4 GiB sparse data file whose one tensor sits at its end: only the tensor's bytes are read
/// (the files are mapped), so the run stays far below the file's size in memory, and the
/// output's data file holds that tensor and the new weights alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_sparse_data_file_is_read_only_where_its_tensors_are() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let w = tensor("w1", &[4, 4, 3, 3], DataType::Float as i32, 1);
    let raw = w.raw_data.clone().unwrap();
    let size: u64 = 4 << 30;
    let offset = size - raw.len() as u64;
    let model = external_model(dir.path(), "w.data", offset, raw.len() as u64);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("w.data"))
        .unwrap();
    f.set_len(size).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&raw).unwrap();
    drop(f);
    let mut child = spawn_unvalidated(&model, &dir.path().join("out.onnx"));
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; the pid is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let peak_mib = usage.ru_maxrss / 1024;
    assert!(
        peak_mib < 256,
        "peak {peak_mib} MiB for a 4 GiB sparse file"
    );
    let data = std::fs::metadata(data_file_of(&dir.path().join("out.onnx")))
        .unwrap()
        .len();
    // That tensor and the SE block's 2·4·1 + 1 + 4 = 13 float weights.
    assert_eq!(data, raw.len() as u64 + 13 * 4);
    let _ = child.wait();
}

/// Before opset 7 Mul does not broadcast the SE gate over the map: writing is refused in one
/// line naming the opset, the input untouched and nothing written; a report still runs.
#[test]
fn opsets_before_numpy_broadcasting_are_refused_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = model(residual_graph(DataType::Float as i32), 3, 6).encode_to_vec();
    let p = write(dir.path(), "old.onnx", &bytes);
    assert_error(
        &run_on(&p, &["--no-validate"]),
        &[
            "old.onnx",
            "opset 6 is older than 7",
            "onnx.version_converter",
        ],
    );
    assert_eq!(listing(dir.path()), vec!["old.onnx"]);
    assert_eq!(std::fs::read(&p).unwrap(), bytes);
    let report = run([p.to_str().unwrap(), "--report", "stages"]);
    assert_eq!(report.status.code(), Some(0));
}

/// A weight stored as a sparse initializer (the second conv's, 3 non-zero values of 144): its
/// dense dims size the block, and the output keeps it as it was.
#[test]
fn sparse_initializers_are_weights() {
    use se_inject::onnx::proto::SparseTensorProto;
    let dir = tempfile::tempdir().unwrap();
    let mut m = residual_model(DataType::Float as i32);
    let g = m.graph.as_mut().unwrap();
    let at = g
        .initializer
        .iter()
        .position(|t| t.name.as_deref() == Some("w2"))
        .unwrap();
    g.initializer.remove(at);
    let values = TensorProto {
        name: Some("w2".into()),
        dims: vec![3],
        data_type: Some(DataType::Float as i32),
        float_data: vec![0.5, -0.25, 1.0],
        ..Default::default()
    };
    let indices = TensorProto {
        dims: vec![3],
        data_type: Some(DataType::Int64 as i32),
        int64_data: vec![0, 40, 143],
        ..Default::default()
    };
    g.sparse_initializer.push(SparseTensorProto {
        values: Some(values),
        indices: Some(indices),
        dims: vec![4, 4, 3, 3],
    });
    let p = write(dir.path(), "sparse.onnx", &m.encode_to_vec());
    let o = run_on(&p, &["--no-validate", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["blocks"][0]["channels"], 4);
    let out = se_inject::onnx::load(&dir.path().join("out.onnx")).unwrap();
    let sparse = &out.graph().sparse_initializer;
    assert_eq!(sparse.len(), 1);
    assert_eq!(sparse[0].dims, vec![4, 4, 3, 3]);
}

/// External data inside a subgraph (a branch of an If) is refused in one line, nothing written:
/// nothing would copy it beside the output.
#[test]
fn external_data_in_a_subgraph_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = residual_model(DataType::Float as i32);
    let g = m.graph.as_mut().unwrap();
    let mut far = tensor("far", &[4], DataType::Float as i32, 9);
    far.raw_data = None;
    far.data_location = Some(DataLocation::External as i32);
    far.external_data = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some("far.data".into()),
    }];
    let branch = GraphProto {
        name: Some("then".into()),
        initializer: vec![far],
        ..Default::default()
    };
    g.node[1].attribute.push(AttributeProto {
        name: Some("then_branch".into()),
        g: Some(branch),
        ..Default::default()
    });
    let p = write(dir.path(), "nested.onnx", &m.encode_to_vec());
    assert_error(
        &run_on(&p, &["--no-validate"]),
        &["nested.onnx", "'far'", "inside a subgraph"],
    );
    assert_eq!(listing(dir.path()), vec!["nested.onnx"]);
}

/// A model in `dir` whose data files are `w.data` (its convolution's weights) and `big.data`, a
/// sparse file of `big` bytes holding one more tensor.
fn model_with_big_data(dir: &std::path::Path, big: u64) -> std::path::PathBuf {
    let model = external_model(dir, "w.data", 0, 576);
    let mut m =
        se_inject::onnx::proto::ModelProto::decode(std::fs::read(&model).unwrap().as_slice())
            .unwrap();
    let g = m.graph.as_mut().unwrap();
    let mut t = g.initializer[0].clone();
    t.name = Some("big".into());
    t.dims = vec![(big / 4) as i64];
    t.external_data[0].value = Some("big.data".into());
    t.external_data[2].value = Some(big.to_string());
    g.initializer.push(t);
    std::fs::write(&model, m.encode_to_vec()).unwrap();
    std::fs::File::create(dir.join("big.data"))
        .unwrap()
        .set_len(big)
        .unwrap();
    model
}

/// SIGINT, SIGTERM, SIGHUP (the terminal closed) and SIGQUIT while a 256 MiB data file is being
/// written: the run either finished (the model and its data file, both whole) or ends with 128 +
/// the signal leaving no temporary file behind; never a model without its data, never a `.tmp`
/// file.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_signal_during_the_save_leaves_no_temporary_file() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        let dir = tempfile::tempdir().unwrap();
        let model = model_with_big_data(dir.path(), 256 << 20);
        let mut child = spawn_unvalidated(&model, &dir.path().join("out.onnx"));
        std::thread::sleep(std::time::Duration::from_millis(60));
        // SAFETY: signalling our own child, which has not been waited for.
        unsafe { libc::kill(child.id() as i32, signal) };
        let code = child.wait().unwrap().code();
        let files = listing(dir.path());
        if code == Some(0) {
            let data = data_name_of(&dir.path().join("out.onnx"));
            assert_eq!(files, ["big.data", "ext.onnx", "out.onnx", &data, "w.data"]);
        } else {
            assert_eq!(code, Some(128 + signal), "signal {signal}");
            assert_eq!(files, ["big.data", "ext.onnx", "w.data"], "signal {signal}");
        }
    }
}

/// SIGKILL, which nothing can catch, at moments spread over a save that replaces an earlier
/// output: the model at the output path always loads with its own data file (the earlier pair or
/// the new one), and the next run writing into the folder removes what the killed run left.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_kill_during_the_save_leaves_a_whole_pair() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_big_data(dir.path(), 128 << 20);
    let out = dir.path().join("out.onnx");
    let write = |args: &[&str]| {
        let o = run_on(&model, &[&["--no-validate"], args].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        std::fs::read(&out).unwrap()
    };
    let temporaries = || {
        listing(dir.path())
            .into_iter()
            .filter(|f| f.starts_with(".se-inject-") && f.ends_with(".tmp"))
            .count()
    };
    let new = write(&["--ratio", "2"]);
    let old = write(&[]);
    assert!(old != new, "the two outputs differ");
    let (mut killed, mut left) = (Vec::new(), 0);
    for delay in [0, 10, 25, 50, 100, 200, 400] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_se-inject"))
            .args([
                model.as_os_str(),
                "--no-validate".as_ref(),
                "--ratio".as_ref(),
            ])
            .args(["2".as_ref(), "-o".as_ref(), out.as_os_str()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill();
        killed.push(child.wait().unwrap().code());
        let now = std::fs::read(&out).unwrap();
        assert!(
            now == old || now == new,
            "after {delay} ms: another model file"
        );
        let loaded = se_inject::onnx::load(&out);
        assert!(
            loaded.is_ok(),
            "after {delay} ms: {:#}",
            loaded.err().unwrap()
        );
        // What a killed run leaves goes with the next run; the earlier pair is back.
        left += temporaries();
        assert!(write(&[]) == old);
        assert_eq!(temporaries(), 0, "after {delay} ms: temporaries left");
    }
    assert!(killed.contains(&None), "some run was killed: {killed:?}");
    eprintln!("exit codes {killed:?}; {left} temporary file(s) left by the killed runs");
    let data = data_name_of(&out);
    assert_eq!(
        listing(dir.path()),
        ["big.data", "ext.onnx", "out.onnx", &data, "w.data"]
    );
}

/// `-o newdir/` names a folder that does not exist: refused before anything is written (it used
/// to leave `newdir.data` behind).
#[test]
fn an_output_ending_in_a_separator_is_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("resnet_basic_dynamo");
    let out = format!("{}/newdir/", dir.path().display());
    assert_error(
        &run([model.to_str().unwrap(), "-o", &out]),
        &["newdir/", "is a folder"],
    );
    assert!(listing(dir.path()).is_empty());
}

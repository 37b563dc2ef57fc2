//! The limits a run keeps under attack, beyond the malformed inputs of tests/it/hostile.rs: what
//! validation may take (nodes, inputs, window sizes, map sizes, time), memory on a sparse 4 GiB
//! data file, old opsets, sparse initializers, external data in subgraphs, signals during the
//! save and output paths that name folders. Every hostile input is generated here.

use crate::common::hostile::{external_model, run_on, write};
use crate::common::{assert_error, data_file_of, data_name_of, fixture, listing, run, stderr};
use prost::Message;
use se_inject::onnx::proto::tensor_proto::{DataLocation, DataType};
use se_inject::onnx::proto::NodeProto;
use se_inject::onnx::proto::{AttributeProto, GraphProto, StringStringEntryProto, TensorProto};
use se_inject::onnx::tensor::ElemType;
use se_inject::testutil::{
    float_constant, int_constant, ints_attr, model, node, residual_graph, residual_model, tensor,
    value_info, value_info_shape,
};

/// Validation's bounds, checked before tract sees the model: one error line naming the bound
/// and how to raise it or skip validation, nothing written; `--no-validate` writes the model.
#[test]
fn validation_refuses_what_would_hang_or_abort_tract() {
    let dir = tempfile::tempdir().unwrap();
    // A max pool padded by 2^20 after the block (tract would fail to allocate and abort).
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    let mut pool = node("/head/MaxPool", "MaxPool", &["y"], "z");
    pool.attribute = vec![
        ints_attr("kernel_shape", &[1, 1]),
        ints_attr("pads", &[1 << 20; 4]),
    ];
    g.node.push(pool);
    g.output = vec![value_info("z", ElemType::FLOAT, &[])];
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
        &residual_model(ElemType::FLOAT).encode_to_vec(),
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

/// Nodes writing the INT64 tensor `out` of `values` through a Floor and a Cast, which the op
/// rules do not fold: its values are known only at run time.
fn hidden(prefix: &str, out: &str, values: &[f32], scalar: bool) -> Vec<NodeProto> {
    let (f, fl) = (format!("{prefix}_f"), format!("{prefix}_fl"));
    let mut cast = node(&format!("{prefix}/Cast"), "Cast", &[&fl], out);
    cast.attribute.push(AttributeProto {
        name: Some("to".into()),
        i: Some(DataType::Int64 as i64),
        r#type: Some(2),
        ..Default::default()
    });
    vec![
        float_constant(&format!("{prefix}/Constant"), &f, values, scalar),
        node(&format!("{prefix}/Floor"), "Floor", &[&f], &fl),
        cast,
    ]
}

/// The residual model with `nodes` added and their tensor `side` a second graph output.
fn with_side_output(nodes: Vec<NodeProto>, side: &str) -> Vec<u8> {
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    g.node.extend(nodes);
    g.output.push(value_info_shape(side, ElemType::FLOAT, None));
    m.encode_to_vec()
}

/// Tensors whose size is computed from values (ConstantOfShape, RandomNormal, OneHot, Range,
/// Tile, Expand, Resize) are sized from the constants they come from and refused when too
/// large, or refused as unsizable when their size is known only at run time; each in one line
/// naming the node, before tract allocates anything, nothing written. A 1.5 KB model with
/// `ConstantOfShape(Abs([16384, 32768]))` as a side output used to take 16.8 GB.
#[test]
fn tensors_sized_by_values_are_bounded_before_tract() {
    let dir = tempfile::tempdir().unwrap();
    let big = "more elements than validation allocates";
    let unsized_ = "cannot be sized from the stored tensors and the input shape";
    let mut random = node("/side/RandomNormal", "RandomNormal", &[], "big");
    random.attribute.push(ints_attr("shape", &[16384, 32768]));
    let range = |limit: Vec<NodeProto>| {
        let mut nodes = vec![
            float_constant("/side/start", "start", &[0.0], true),
            float_constant("/side/delta", "delta", &[1.0], true),
        ];
        nodes.extend(limit);
        nodes.push(node(
            "/side/Range",
            "Range",
            &["start", "l", "delta"],
            "big",
        ));
        nodes
    };
    let cases: Vec<(&str, Vec<NodeProto>, Vec<&str>)> = vec![
        (
            "abs",
            vec![
                int_constant("/side/dims", "d", &[16384, 32768], false),
                node("/side/Abs", "Abs", &["d"], "a"),
                node("/side/ConstantOfShape", "ConstantOfShape", &["a"], "big"),
            ],
            vec!["/side/ConstantOfShape", "[16384, 32768]", big],
        ),
        (
            "hidden_fill",
            [
                hidden("/side/dims", "a", &[16384.0, 32768.0], false),
                vec![node(
                    "/side/ConstantOfShape",
                    "ConstantOfShape",
                    &["a"],
                    "big",
                )],
            ]
            .concat(),
            vec!["'big' of node '/side/ConstantOfShape'", unsized_],
        ),
        (
            "random",
            vec![random],
            vec!["/side/RandomNormal", "[16384, 32768]", big],
        ),
        (
            "one_hot",
            [
                hidden("/side/depth", "k", &[536870912.0], true),
                vec![
                    int_constant("/side/idx", "i", &[0, 1], false),
                    float_constant("/side/values", "v", &[0.0, 1.0], false),
                    node("/side/OneHot", "OneHot", &["i", "k", "v"], "big"),
                ],
            ]
            .concat(),
            vec!["/side/OneHot", unsized_],
        ),
        (
            "float_range",
            range(vec![float_constant("/side/limit", "l", &[6e8], true)]),
            vec!["/side/Range", "[600000000]", big],
        ),
        (
            "hidden_range",
            range(vec![
                float_constant("/side/limit_f", "lf", &[6e8], true),
                node("/side/limit/Floor", "Floor", &["lf"], "l"),
            ]),
            vec!["/side/Range", unsized_],
        ),
        (
            "tile",
            [
                hidden("/side/reps", "r", &[1.0, 1.0, 4096.0, 4096.0], false),
                vec![node("/side/Tile", "Tile", &["y", "r"], "big")],
            ]
            .concat(),
            vec!["/side/Tile", unsized_],
        ),
        (
            "expand",
            [
                hidden("/side/shape", "e", &[1.0, 4.0, 16384.0, 16384.0], false),
                vec![node("/side/Expand", "Expand", &["y", "e"], "big")],
            ]
            .concat(),
            vec!["/side/Expand", unsized_],
        ),
        (
            "resize",
            [
                hidden("/side/sizes", "z", &[1.0, 4.0, 16384.0, 16384.0], false),
                vec![node("/side/Resize", "Resize", &["y", "", "", "z"], "big")],
            ]
            .concat(),
            vec!["/side/Resize", unsized_],
        ),
    ];
    for (name, nodes, needles) in cases {
        let file = format!("{name}.onnx");
        let p = write(dir.path(), &file, &with_side_output(nodes, "big"));
        let o = run_on(&p, &[]);
        let mut all = needles.clone();
        all.extend([file.as_str(), "--no-validate skips"]);
        assert_error(&o, &all);
        assert!(!dir.path().join("out.onnx").exists(), "{name}");
    }
    // Without validation nothing is allocated: the model is written.
    let p = dir.path().join("abs.onnx");
    assert_eq!(run_on(&p, &["--no-validate"]).status.code(), Some(0));
}

/// A validation that outlives `--validate-timeout` stops the run with one line, nothing
/// written: a block of two 3×3 convolutions on 64×512×512 maps (about 20 GMAC a run), timed 20
/// runs per model, takes far more than a second on any CPU.
#[test]
fn validation_stops_at_its_time_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = residual_graph(ElemType::FLOAT);
    for (t, dims) in [("w1", [64i64, 64, 3, 3]), ("w2", [64, 64, 3, 3])] {
        let at = g
            .initializer
            .iter()
            .position(|i| i.name.as_deref() == Some(t))
            .unwrap();
        g.initializer[at] = tensor(t, &dims, ElemType::FLOAT, 1);
    }
    for (t, seed) in [("b1", 2), ("b2", 4)] {
        let at = g
            .initializer
            .iter()
            .position(|i| i.name.as_deref() == Some(t))
            .unwrap();
        g.initializer[at] = tensor(t, &[64], ElemType::FLOAT, seed);
    }
    g.input = vec![value_info("x", ElemType::FLOAT, &[1, 64, 512, 512])];
    g.output = vec![value_info("y", ElemType::FLOAT, &[1, 64, 512, 512])];
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
    let w = tensor("w1", &[4, 4, 3, 3], ElemType::FLOAT, 1);
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
    let bytes = model(residual_graph(ElemType::FLOAT), 3, 6).encode_to_vec();
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
    let mut m = residual_model(ElemType::FLOAT);
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
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    let mut far = tensor("far", &[4], ElemType::FLOAT, 9);
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

/// The binary run on `model` (writing `out.onnx` beside it) with its address space limited to
/// `bytes`: an allocation beyond it fails and the process aborts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn run_in_address_space(model: &std::path::Path, bytes: u64) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let out = model.with_file_name("out.onnx");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_se-inject"));
    cmd.arg(model).arg("-o").arg(out);
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent's state.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.output().unwrap()
}

/// 300,000 Identity nodes (about 11 MiB) decode to about 900 MiB: the node count is read from
/// the file's bytes and refused before decoding, so the run ends with the one line of the node
/// limit within an address space of 512 MiB (the program itself maps about 100 MiB). A node of
/// 5,000 inputs is refused the same way, named. The nodes are encoded one by one and appended
/// as a second `graph` field, which protobuf merges into the first.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn node_counts_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let chain = |n: usize| {
        let mut graph = Vec::new();
        for i in 0..n {
            let from = if i == 0 {
                "y".to_string()
            } else {
                format!("i{}", i - 1)
            };
            let id = node(&format!("/id/{i}"), "Identity", &[&from], &format!("i{i}"));
            // GraphProto.node is field 1, length-delimited.
            graph.push(0x0a);
            prost::encoding::encode_varint(id.encoded_len() as u64, &mut graph);
            id.encode(&mut graph).unwrap();
        }
        graph
    };
    let with_graph = |graph: Vec<u8>| {
        let mut bytes = residual_model(ElemType::FLOAT).encode_to_vec();
        // ModelProto.graph is field 7, length-delimited.
        bytes.push(0x3a);
        prost::encoding::encode_varint(graph.len() as u64, &mut bytes);
        bytes.extend(graph);
        bytes
    };
    let p = write(dir.path(), "identities.onnx", &with_graph(chain(300_000)));
    assert!(std::fs::metadata(&p).unwrap().len() > 10 << 20);
    let o = run_in_address_space(&p, 512 << 20);
    assert_error(
        &o,
        &[
            "identities.onnx",
            "the model has 300005 nodes, more than validation takes (20000",
        ],
    );

    let mut cat = node("/wide/Concat", "Concat", &[], "w");
    cat.input = vec!["y".into(); 5000];
    cat.attribute.push(AttributeProto {
        name: Some("axis".into()),
        i: Some(1),
        r#type: Some(2),
        ..Default::default()
    });
    let mut graph = vec![0x0a];
    prost::encoding::encode_varint(cat.encoded_len() as u64, &mut graph);
    cat.encode(&mut graph).unwrap();
    let p = write(dir.path(), "wide.onnx", &with_graph(graph));
    let o = run_in_address_space(&p, 512 << 20);
    assert_error(
        &o,
        &["node '/wide/Concat' (Concat) has 5000 inputs, more than validation takes (4096"],
    );
    assert_eq!(listing(dir.path()), vec!["identities.onnx", "wide.onnx"]);
}

/// The binary run with `args`, killed if it has not finished within `secs` (a safety net for
/// a run that would otherwise go on for minutes, not a measure of speed): its output, or None
/// when it was killed.
fn run_or_kill(args: &[&std::ffi::OsStr], secs: u64) -> Option<std::process::Output> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_se-inject"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(child.wait_with_output().unwrap())
}

/// A DenseNet block of 500 layers written one Concat per layer (2.8 MB, 125,000 Concat inputs)
/// is one dense block, found with work linear in the graph's edges: block detection walks the
/// block once, not once per layer and input (which made it grow as layers⁴: 87 s). Through the
/// binary the report comes out (the kill after 10 minutes is only a safety net).
#[test]
fn a_dense_block_written_one_concat_per_layer_is_analysed_in_linear_work() {
    let m = se_inject::testutil::dense_concat_model(500);
    let g = m.graph.as_ref().unwrap();
    let edges: usize = g.node.iter().map(|n| n.input.len()).sum();
    assert!(edges > 125_000);
    let view = se_inject::graph::GraphView::new(g).unwrap();
    let a = se_inject::analysis::analyse(&view).unwrap();
    assert_eq!(a.blocks.len(), 1);
    assert_eq!(a.blocks[0].kind, se_inject::analysis::BlockKind::Dense);
    assert_eq!(a.blocks[0].channels, 1004);
    assert!(
        a.work < 2 * edges as u64,
        "{} steps for {edges} edges",
        a.work
    );
    // Under a budget below that work, the analysis stops and says so in one line.
    let e = se_inject::analysis::analyse_within(&view, edges as u64)
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("block detection stopped after "), "{e}");
    assert!(e.contains(&format!("its budget ({edges})")), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "dense.onnx", &m.encode_to_vec());
    let o = run_or_kill(
        &[p.as_os_str(), "--report".as_ref(), "params".as_ref()],
        600,
    )
    .expect("the report comes out");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("dense"));
}

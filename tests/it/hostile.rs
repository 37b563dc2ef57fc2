//! Hostile and broken input: every case ends in one clear error line and exit code 1 (or is
//! handled), never a panic, and never touches the input or leaves a partial output. The bad
//! files are generated here from the small residual model of `se_inject::testutil`.

use crate::common;

use crate::common::hostile::{external_model, run_on, write};
use crate::common::{assert_error, copy_fixture, data_file_of, fixture, listing, run, stderr};
use prost::Message;
use se_inject::onnx::proto::tensor_proto::DataType;
use se_inject::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};
use se_inject::onnx::tensor::ElemType;
use se_inject::testutil::{
    ints_attr, model, node, residual_graph, residual_model, tensor, value_info,
};

#[test]
fn the_generated_model_itself_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.onnx",
        &residual_model(ElemType::FLOAT).encode_to_vec(),
    );
    let o = run_on(&p, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // One block on 4 channels at r = 16: h = 1, 2·4·1 + 1 + 4 = 13.
    assert_eq!(v["added_params"], 2 * 4 + 1 + 4);
    assert_eq!(v["validation"]["ok"], true);
}

#[test]
fn empty_and_random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.onnx", b"");
    assert_error(&run_on(&p, &[]), &["empty.onnx", "empty"]);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for k in 0..20 {
        let bytes: Vec<u8> = (0..1000 + 97 * k)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let p = write(dir.path(), &format!("random{k}.onnx"), &bytes);
        assert_error(&run_on(&p, &[]), &[&format!("random{k}.onnx")]);
    }
}

#[test]
fn truncated_at_every_tenth() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "resnet_basic_ts",
        "resnet_basic_dynamo",
        "mobilenet_v2_tiny_ts",
    ] {
        let model = copy_fixture(name, dir.path());
        let bytes = std::fs::read(&model).unwrap();
        for tenth in 1..10 {
            let cut = write(
                dir.path(),
                &format!("{name}.cut{tenth}.onnx"),
                &bytes[..bytes.len() * tenth / 10],
            );
            let o = run_on(&cut, &["--no-validate"]);
            // A cut may fall between two fields and leave a decodable model with dangling
            // references: every outcome must still be a clean error.
            assert_error(&o, &[&format!("cut{tenth}.onnx")]);
        }
        assert!(
            listing(dir.path()).iter().all(|f| f != "out.onnx"),
            "a failed run wrote output"
        );
    }
}

#[test]
fn a_protobuf_that_is_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let t = tensor("w", &[2, 2], ElemType::FLOAT, 0);
    let p = write(dir.path(), "tensor.onnx", &t.encode_to_vec());
    assert_error(&run_on(&p, &[]), &["tensor.onnx", "not an ONNX model"]);
    let mut m = residual_model(ElemType::FLOAT);
    m.graph = None;
    let p = write(dir.path(), "nograph.onnx", &m.encode_to_vec());
    assert_error(&run_on(&p, &[]), &["nograph.onnx", "no graph"]);
}

/// A change that breaks a graph.
type Mutation = Box<dyn Fn(&mut GraphProto)>;

#[test]
fn structural_faults_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Mutation, Vec<&str>)> = vec![
        (
            "dangling",
            Box::new(|g| g.node[1].input[0] = "ghost".into()),
            vec!["'ghost'", "/b/relu1/Relu"],
        ),
        (
            "twice",
            Box::new(|g| g.node[1].output[0] = "c1".into()),
            vec!["'c1'", "produced twice"],
        ),
        (
            "cycle",
            Box::new(|g| g.node[0].input[0] = "r1".into()),
            vec!["cycle"],
        ),
        (
            "no-output",
            Box::new(|g| g.output[0].name = Some("nowhere".into())),
            vec!["'nowhere'"],
        ),
        (
            "dims",
            Box::new(|g| g.initializer[0].dims = vec![4, 4, 3, 4]),
            vec!["'w1'", "bytes"],
        ),
        (
            "negative",
            Box::new(|g| g.initializer[1].dims = vec![-4]),
            vec!["'b1'", "negative"],
        ),
        (
            "absurd",
            Box::new(|g| g.initializer[1].dims = vec![1_000_000, 1_000_000]),
            vec!["'b1'"],
        ),
        (
            "no-data",
            Box::new(|g| g.initializer[2].raw_data = None),
            vec!["'w2'"],
        ),
    ];
    for (name, mutate, needles) in cases {
        let mut m = residual_model(ElemType::FLOAT);
        mutate(m.graph.as_mut().unwrap());
        let file = format!("{name}.onnx");
        let p = write(dir.path(), &file, &m.encode_to_vec());
        let mut all = needles.clone();
        all.push(&file);
        assert_error(&run_on(&p, &[]), &all);
    }
    assert!(!dir.path().join("out.onnx").exists());
}

#[test]
fn unknown_ops_outside_the_splice_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    // y → custom op in a custom domain → z, the new graph output.
    let mut custom = node("/post/Custom", "FancyNorm", &["y"], "z");
    custom.domain = Some("com.example".into());
    custom.attribute.push(AttributeProto {
        name: Some("eps".into()),
        f: Some(0.5),
        r#type: Some(1),
        ..Default::default()
    });
    g.node.push(custom.clone());
    g.output[0].name = Some("z".into());
    m.opset_import.push(OperatorSetIdProto {
        domain: Some("com.example".into()),
        version: Some(1),
    });
    let p = write(dir.path(), "custom.onnx", &m.encode_to_vec());
    // tract cannot run the custom op: validation cannot start, and says how to skip it.
    assert_error(&run_on(&p, &[]), &["custom.onnx", "--no-validate"]);
    let o = run_on(&p, &["--no-validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = se_inject::onnx::load(&dir.path().join("out.onnx")).unwrap();
    let kept: Vec<&NodeProto> = out
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type.as_deref() == Some("FancyNorm"))
        .collect();
    assert_eq!(kept, vec![&custom]);
    assert_eq!(out.proto.opset_import, m.opset_import);
}

/// A model in `elem` gets SE weights in `elem` and validates (tract runs it as FLOAT).
fn se_in_the_model_type(elem: DataType, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.onnx",
        &residual_model(ElemType::of(elem as i32)).encode_to_vec(),
    );
    let o = run_on(&p, &["--format", "json", "--init", "identity"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["validation"]["ok"], true);
    assert_eq!(v["validation"]["converted_from"], name);
    let out = se_inject::onnx::load(&dir.path().join("out.onnx")).unwrap();
    let added: Vec<&TensorProto> = out
        .graph()
        .initializer
        .iter()
        .filter(|t| t.name.as_deref().is_some_and(|n| n.contains("/se/")))
        .collect();
    assert_eq!(added.len(), 4);
    assert!(added.iter().all(|t| t.data_type == Some(elem as i32)));
    // h = 1 on 4 channels: 4 + 1 + 4 + 4 elements.
    assert_eq!(
        added
            .iter()
            .map(|t| t.dims.iter().product::<i64>())
            .sum::<i64>(),
        4 + 1 + 4 + 4
    );
}

#[test]
fn double_precision_models_get_double_se() {
    se_in_the_model_type(DataType::Double, "DOUBLE");
}

#[test]
fn bfloat16_models_get_bfloat16_se() {
    se_in_the_model_type(DataType::Bfloat16, "BFLOAT16");
}

#[test]
fn external_data_is_confined_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let len = 4 * 4 * 3 * 3 * 4;
    let p = external_model(d, "w.data", 0, len);
    let o = run_on(&p, &["--no-validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    data_file_of(&d.join("out.onnx"));

    let p = external_model(d, "/etc/passwd", 0, len);
    assert_error(&run_on(&p, &[]), &["'w1'", "/etc/passwd"]);
    let p = external_model(d, "../w.data", 0, len);
    assert_error(&run_on(&p, &[]), &["'w1'", "leaves the model's folder"]);
    let p = external_model(d, "w.data", 8, len);
    assert_error(&run_on(&p, &[]), &["'w1'", "holds"]);
    let p = external_model(d, "w.data", u64::MAX, 1);
    assert_error(&run_on(&p, &[]), &["'w1'"]);
    let p = external_model(d, "missing.data", 0, len);
    assert_error(&run_on(&p, &[]), &["missing.data"]);
    #[cfg(unix)]
    {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), vec![0u8; len as usize]).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), d.join("link.data")).unwrap();
        let p = external_model(d, "link.data", 0, len);
        assert_error(&run_on(&p, &[]), &["'w1'", "outside"]);
    }
}

#[test]
fn a_failed_run_leaves_an_existing_output_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    std::fs::write(&out, b"precious").unwrap();
    let p = write(dir.path(), "bad.onnx", b"not a model");
    assert_error(&run_on(&p, &[]), &["bad.onnx"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // An unwritable target (a missing folder) fails before any work, writing nothing.
    let model = fixture("resnet_basic_ts");
    let o = run([
        model.to_str().unwrap(),
        "-o",
        dir.path().join("no/such/dir/x.onnx").to_str().unwrap(),
    ]);
    assert_error(&o, &["no/such/dir"]);
    assert_eq!(listing(dir.path()), vec!["bad.onnx", "out.onnx"]);
}

#[test]
fn nhwc_graphs_are_refused_with_a_reason() {
    // A TensorFlow-style graph: the residual Add merges NHWC maps between Transposes, so its
    // channel count is not the Conv's: the Add is rejected and the error says why.
    let dir = tempfile::tempdir().unwrap();
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    let mut t1 = node("/nhwc/T1", "Transpose", &["c2"], "c2t");
    t1.attribute.push(ints_attr("perm", &[0, 2, 3, 1]));
    let mut t2 = node("/nhwc/T2", "Transpose", &["x"], "xt");
    t2.attribute.push(ints_attr("perm", &[0, 2, 3, 1]));
    g.node.insert(3, t1);
    g.node.insert(3, t2);
    g.node[5].input = vec!["c2t".into(), "xt".into()];
    g.output[0] = value_info("y", ElemType::FLOAT, &[1, 8, 8, 4]);
    let p = write(dir.path(), "nhwc.onnx", &m.encode_to_vec());
    let o = run_on(&p, &["--report", "stages"]);
    // Either refused with the reason, or handled: never a panic, never a wrong block.
    if o.status.code() == Some(1) {
        assert_error(&o, &["nhwc.onnx"]);
    } else {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = common::stdout(&o);
        assert!(
            !text.contains("residual"),
            "an NHWC merge was taken for a residual block:\n{text}"
        );
    }
}

#[test]
fn a_full_disk_leaves_no_partial_file_and_the_old_output_alone() {
    // A 120 KiB tmpfs cannot hold the rewritten model (about 170 KB). Mounting needs root: where
    // it is refused the machine cannot stage a full disk and the test says so.
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let Some(_mounted) = common::mount_tmpfs(&small, "size=120k") else {
        eprintln!("cannot mount a tmpfs here (not root?): full-disk case not exercised");
        return;
    };
    let out = small.join("out.onnx");
    std::fs::write(&out, b"precious").unwrap();
    let model = fixture("resnet_basic_ts");
    let o = run([model.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_error(&o, &["out.onnx", "No space left"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(listing(&small), vec!["out.onnx"]);
}

/// A model as older converters wrote them (IR 3, opset 8): initializers also listed as graph
/// inputs, BatchNormalization kept as its own node, the merge a `Sum`, one weight in a Constant
/// node and one computed by a constant subgraph (Reshape of a flat tensor).
fn legacy_model() -> ModelProto {
    let mut m = model(residual_graph(ElemType::FLOAT), 3, 8);
    let g = m.graph.as_mut().unwrap();
    // w1 from a Constant node.
    let w1 = g.initializer.remove(0);
    let mut constant = node("/b/w1/Constant", "Constant", &[], "w1");
    constant.attribute.push(AttributeProto {
        name: Some("value".into()),
        t: Some(w1),
        r#type: Some(4),
        ..Default::default()
    });
    // w2 = Reshape(w2_flat [4, 36], [4, 4, 3, 3]).
    let w2 = g
        .initializer
        .iter_mut()
        .find(|t| t.name.as_deref() == Some("w2"))
        .unwrap();
    w2.name = Some("w2_flat".into());
    w2.dims = vec![4, 36];
    let shape = TensorProto {
        name: Some("w2_shape".into()),
        dims: vec![4],
        data_type: Some(DataType::Int64 as i32),
        int64_data: vec![4, 4, 3, 3],
        ..Default::default()
    };
    g.initializer.push(shape);
    let reshape = node("/b/w2/Reshape", "Reshape", &["w2_flat", "w2_shape"], "w2");
    // BatchNormalization after each convolution, with its four tensors.
    let bn = |name: &str, x: &str, out: &str, g: &mut GraphProto| {
        for (k, p) in ["scale", "bias", "mean", "var"].iter().enumerate() {
            let mut t = tensor(&format!("{name}.{p}"), &[4], ElemType::FLOAT, 10 + k as u32);
            if *p == "var" {
                // A variance of 1.0 (f32 little endian) in each channel.
                t.raw_data = Some([0x00, 0x00, 0x80, 0x3f].repeat(4).into());
            }
            g.initializer.push(t);
        }
        let ins: Vec<String> = ["scale", "bias", "mean", "var"]
            .iter()
            .map(|p| format!("{name}.{p}"))
            .collect();
        let mut n = node(name, "BatchNormalization", &[x], out);
        n.input.extend(ins);
        n
    };
    let bn1 = bn("/b/bn1", "c1", "c1n", g);
    let bn2 = bn("/b/bn2", "c2", "c2n", g);
    g.node[1].input[0] = "c1n".into();
    g.node[3].input[0] = "c2n".into();
    g.node[3].op_type = Some("Sum".into());
    g.node.insert(3, bn2);
    g.node.insert(1, bn1);
    g.node.insert(0, reshape);
    g.node.insert(0, constant);
    // IR 3: every initializer is also a graph input.
    let inits: Vec<ValueInfoProto> = g
        .initializer
        .iter()
        .map(|t| value_info(t.name.as_deref().unwrap(), ElemType::of_tensor(t), &t.dims))
        .collect();
    g.input.extend(inits);
    m
}

#[test]
fn older_converters_sum_merges_batchnorm_and_computed_weights() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "legacy.onnx", &legacy_model().encode_to_vec());
    let o = run_on(&p, &["--format", "json", "--init", "identity"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0]["kind"], "residual");
    assert_eq!(blocks[0]["merge"], "Sum");
    assert_eq!(blocks[0]["channels"], 4);
    // One block on 4 channels at r = 16: h = 1, 2·4·1 + 1 + 4 = 13.
    assert_eq!(v["added_params"], 2 * 4 + 1 + 4);
    assert_eq!(v["validation"]["ok"], true, "{}", v["validation"]);
    // MACs: two 3×3 convs on an 8×8 map with 4 → 4 channels, plus the SE's 2·4·1.
    assert_eq!(v["macs_before"], 2 * (8 * 8 * 4 * 4 * 9));
    assert_eq!(v["macs_after"], 2 * (8 * 8 * 4 * 4 * 9) + 2 * 4);
    let out = se_inject::onnx::load(&dir.path().join("out.onnx")).unwrap();
    assert_eq!(out.proto.ir_version, Some(3));
    assert_eq!(out.proto.opset_import[0].version, Some(8));
    // IR 3 lists every initializer as a graph input, the new SE weights included.
    let g = out.graph();
    for t in &g.initializer {
        assert!(
            g.input.iter().any(|i| i.name == t.name),
            "{:?} is not a graph input",
            t.name
        );
    }
}

/// A model or data file that is a FIFO is refused at once (reading it would block), and a tensor
/// of an undefined element type is refused (its size could not be checked).
#[test]
fn fifo_data_and_undefined_element_types_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_fixture("resnet_basic_dynamo", dir.path());
    let data = dir.path().join("resnet_basic_dynamo.onnx.data");
    std::fs::remove_file(&data).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&data).status();
    if made.is_ok_and(|s| s.success()) {
        assert_error(&run_on(&model, &[]), &["not a regular file"]);
        assert_error(&run_on(&data, &[]), &["model", "not a regular file"]);
    }
    let mut m = residual_model(ElemType::FLOAT);
    let g = m.graph.as_mut().unwrap();
    g.initializer[0].data_type = Some(DataType::Undefined as i32);
    let p = write(dir.path(), "undefined.onnx", &m.encode_to_vec());
    assert_error(
        &run_on(&p, &[]),
        &["undefined.onnx", "not an ONNX element type"],
    );
}

/// A tensor of one float kept in the external data file `location`.
fn external_tensor(name: &str, location: &str) -> TensorProto {
    use se_inject::onnx::proto::tensor_proto::DataLocation;
    TensorProto {
        name: Some(name.into()),
        dims: vec![1],
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![se_inject::onnx::proto::StringStringEntryProto {
            key: Some("location".into()),
            value: Some(location.into()),
        }],
        ..Default::default()
    }
}

/// External data anywhere but the main graph's initializers is refused on load, naming the
/// node and attribute: a Constant inside an If branch, a Constant's `sparse_value`, a TENSORS
/// attribute; none of the files they name is read or copied.
#[test]
fn external_data_outside_the_initializers_is_refused() {
    use se_inject::onnx::proto::SparseTensorProto;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), 1f32.to_le_bytes()).unwrap();
    let attr = |name: &str| AttributeProto {
        name: Some(name.into()),
        ..Default::default()
    };
    let constant = |name: &str, location: &str| NodeProto {
        name: Some(name.into()),
        op_type: Some("Constant".into()),
        output: vec![format!("{name}_out")],
        attribute: vec![AttributeProto {
            t: Some(external_tensor("c", location)),
            ..attr("value")
        }],
        ..Default::default()
    };
    let branch = |location: &str| GraphProto {
        name: Some("branch".into()),
        node: vec![constant("inner", location)],
        output: vec![value_info("inner_out", ElemType::FLOAT, &[1])],
        ..Default::default()
    };
    let cond = TensorProto {
        name: Some("cond".into()),
        data_type: Some(DataType::Bool as i32),
        raw_data: Some(vec![1u8].into()),
        ..Default::default()
    };
    let if_node = |location: &str| NodeProto {
        name: Some("choose".into()),
        op_type: Some("If".into()),
        input: vec!["cond".into()],
        output: vec!["chosen".into()],
        attribute: vec![
            AttributeProto {
                g: Some(branch(location)),
                ..attr("then_branch")
            },
            AttributeProto {
                g: Some(branch(location)),
                ..attr("else_branch")
            },
        ],
        ..Default::default()
    };
    let sparse = NodeProto {
        name: Some("sparse".into()),
        op_type: Some("Constant".into()),
        output: vec!["sparse_out".into()],
        attribute: vec![AttributeProto {
            sparse_tensor: Some(SparseTensorProto {
                values: Some(external_tensor("v", "/etc/passwd")),
                indices: Some(TensorProto {
                    name: Some("i".into()),
                    dims: vec![1],
                    data_type: Some(DataType::Int64 as i32),
                    int64_data: vec![0],
                    ..Default::default()
                }),
                dims: vec![4],
            }),
            ..attr("sparse_value")
        }],
        ..Default::default()
    };
    let tensors = NodeProto {
        name: Some("custom".into()),
        op_type: Some("Lookup".into()),
        domain: Some("com.example".into()),
        output: vec!["looked_up".into()],
        attribute: vec![AttributeProto {
            tensors: vec![external_tensor("t", "/etc/shadow")],
            ..attr("tables")
        }],
        ..Default::default()
    };
    let cases = [
        (if_node("/etc/passwd"), "node 'inner' (Constant)", "'value'"),
        (if_node("../secret"), "node 'inner' (Constant)", "'value'"),
        (if_node("secret"), "node 'inner' (Constant)", "'value'"),
        (sparse, "node 'sparse' (Constant)", "'sparse_value'"),
        (tensors, "node 'custom' (Lookup)", "'tables'"),
    ];
    for (i, (extra, who, attribute)) in cases.into_iter().enumerate() {
        let mut m = residual_model(ElemType::FLOAT);
        let g = m.graph.as_mut().unwrap();
        g.initializer.push(cond.clone());
        g.node.push(extra);
        let p = write(dir.path(), &format!("m{i}.onnx"), &m.encode_to_vec());
        let o = run_on(&p, &["--no-validate"]);
        assert_error(&o, &[who, attribute, "external data"]);
        assert!(!dir.path().join("out.onnx").exists());
    }
}

/// A folder on the data file's path swapped for a symbolic link to another folder, over and over
/// while the model loads, never makes a load read the other folder's file: the file is checked
/// as opened, not as named before opening.
#[cfg(unix)]
#[test]
fn a_folder_swapped_for_a_link_never_redirects_a_read() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let len = 4 * 4 * 3 * 3 * 4;
    let model = external_model(&d, "sub/w.data", 0, len);
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::remove_file(d.join("w.data")).unwrap();
    std::fs::write(d.join("sub/w.data"), vec![0u8; len as usize]).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("w.data"), vec![0xEEu8; len as usize]).unwrap();
    std::os::unix::fs::symlink(outside.path(), d.join("link")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapping = {
        let (stop, d) = (stop.clone(), d.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // sub ↔ link, by two renames each way.
                let _ = std::fs::rename(d.join("sub"), d.join("real"));
                let _ = std::fs::rename(d.join("link"), d.join("sub"));
                let _ = std::fs::rename(d.join("sub"), d.join("link"));
                let _ = std::fs::rename(d.join("real"), d.join("sub"));
            }
        })
    };
    let (mut loaded, mut redirected) = (0, 0);
    for _ in 0..400 {
        if let Ok(m) = se_inject::onnx::load(&model) {
            loaded += 1;
            let w = &m.graph().initializer[0];
            if w.raw_data.as_ref().is_some_and(|r| r.contains(&0xEE)) {
                redirected += 1;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    swapping.join().unwrap();
    assert_eq!(
        redirected, 0,
        "{redirected} of {loaded} loads read the other folder"
    );
}

/// An integer attribute.
fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(2),
        ..Default::default()
    }
}

/// Window attributes the operator specs forbid (zero strides, dilations and kernel sizes, pads
/// too short, a group that does not fit the channels) are refused in one line naming the node,
/// with or without validation, before tract sees them (it divided by zero, indexed past the pads
/// or named no node). Nothing is written.
#[test]
fn invalid_window_attributes_are_refused_naming_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let pads = || ints_attr("pads", &[1, 1, 1, 1]);
    // The block's second convolution, [4, 4, 3, 3] weights on 4 channels.
    let conv = "node '/b/conv2/Conv' (Conv) has";
    let convs: Vec<(&str, Vec<AttributeProto>, String)> = vec![
        (
            "strides",
            vec![pads(), ints_attr("strides", &[0, 0])],
            format!("{conv} strides [0, 0]: each stride must be at least 1"),
        ),
        (
            "dilations",
            vec![pads(), ints_attr("dilations", &[0, 1])],
            format!("{conv} dilations [0, 1]: each dilation must be at least 1"),
        ),
        (
            "kernel",
            vec![pads(), ints_attr("kernel_shape", &[0, 0])],
            format!("{conv} kernel_shape [0, 0]: each kernel size must be at least 1"),
        ),
        (
            "short-pads",
            vec![ints_attr("pads", &[1, 1])],
            format!("{conv} pads [1, 1] for a 2-d window, which needs 4 of them"),
        ),
        (
            "group0",
            vec![pads(), int_attr("group", 0)],
            format!("{conv} group 0: it must be at least 1"),
        ),
        (
            "group3",
            vec![pads(), int_attr("group", 3)],
            format!("{conv} group 3, which does not divide its weight's 4 output channels"),
        ),
        (
            "group2",
            vec![pads(), int_attr("group", 2)],
            "node '/b/conv2/Conv' (Conv) reads 4 channels but its weight [4, 4, 3, 3] and group \
             2 take 8"
                .into(),
        ),
    ];
    let mut models = Vec::new();
    for (name, attrs, line) in convs {
        let mut m = residual_model(ElemType::FLOAT);
        m.graph.as_mut().unwrap().node[2].attribute = attrs;
        models.push((name, m, line));
    }
    // A window after the block.
    let heads: Vec<(&str, &str, Vec<AttributeProto>, &str)> = vec![
        (
            "maxpool-strides",
            "MaxPool",
            vec![
                ints_attr("kernel_shape", &[2, 2]),
                ints_attr("strides", &[0, 0]),
            ],
            "strides [0, 0]: each stride must be at least 1",
        ),
        (
            "maxpool-kernel",
            "MaxPool",
            vec![ints_attr("kernel_shape", &[0, 0])],
            "kernel_shape [0, 0]: each kernel size must be at least 1",
        ),
        (
            "averagepool-strides",
            "AveragePool",
            vec![
                ints_attr("kernel_shape", &[2, 2]),
                ints_attr("strides", &[0, 1]),
            ],
            "strides [0, 1]: each stride must be at least 1",
        ),
        (
            "maxpool-dilations",
            "MaxPool",
            vec![
                ints_attr("kernel_shape", &[2, 2]),
                ints_attr("dilations", &[0, 1]),
            ],
            "dilations [0, 1]: each dilation must be at least 1",
        ),
        (
            "maxpool-no-kernel",
            "MaxPool",
            vec![],
            "no kernel_shape, which MaxPool requires",
        ),
    ];
    for (name, op, attrs, what) in heads {
        let mut m = residual_model(ElemType::FLOAT);
        let g = m.graph.as_mut().unwrap();
        let mut head = node("/head", op, &["y"], "z");
        head.attribute = attrs;
        g.node.push(head);
        g.output = vec![value_info("z", ElemType::FLOAT, &[])];
        models.push((name, m, format!("node '/head' ({op}) has {what}")));
    }
    let mut t = residual_model(ElemType::FLOAT);
    let g = t.graph.as_mut().unwrap();
    let mut head = node("/up", "ConvTranspose", &["y", "w1"], "z");
    head.attribute = vec![ints_attr("strides", &[0, 0])];
    g.node.push(head);
    g.output = vec![value_info("z", ElemType::FLOAT, &[])];
    models.push((
        "convtranspose",
        t,
        "node '/up' (ConvTranspose) has strides [0, 0]: each stride must be at least 1".into(),
    ));
    for (name, m, line) in models {
        let p = write(dir.path(), &format!("{name}.onnx"), &m.encode_to_vec());
        for flags in [&[][..], &["--no-validate"]] {
            let o = run_on(&p, flags);
            assert_eq!(o.status.code(), Some(1), "{name} {flags:?}");
            assert_eq!(
                stderr(&o),
                format!("se-inject: error: '{}': {line}\n", p.display()),
                "{name} {flags:?}"
            );
        }
    }
    assert!(
        listing(dir.path())
            .iter()
            .all(|f| f.ends_with(".onnx") && f != "out.onnx"),
        "{:?}",
        listing(dir.path())
    );
}

/// A model nested past prost's recursion limit (If nodes whose branches hold If nodes, 40
/// deep) is refused in one short line, not one naming each of the hundred fields it went through.
#[test]
fn a_model_nested_too_deep_is_refused_in_a_short_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut inner = GraphProto::default();
    for _ in 0..40 {
        let mut branch = node("if", "If", &["c"], "y");
        branch.attribute.push(AttributeProto {
            name: Some("then_branch".into()),
            g: Some(inner),
            r#type: Some(5),
            ..Default::default()
        });
        inner = GraphProto {
            node: vec![branch],
            ..Default::default()
        };
    }
    let p = write(
        dir.path(),
        "deep.onnx",
        &model(inner, 8, 13).encode_to_vec(),
    );
    let o = run_on(&p, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "se-inject: error: '{}' is not an ONNX model: protobuf decoding failed \
             (ModelProto.graph: GraphProto.node: (98 more fields): GraphProto.node: recursion \
             limit reached)\n",
            p.display()
        )
    );
}

/// Two imports of the default domain at different opsets (`""` and `"ai.onnx"` name the same
/// domain) leave it open which opset the nodes follow: refused on load, nothing written.
#[test]
fn the_default_domain_imported_at_two_opsets_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = residual_model(ElemType::FLOAT);
    m.opset_import.push(OperatorSetIdProto {
        domain: Some("ai.onnx".into()),
        version: Some(11),
    });
    let p = write(dir.path(), "two.onnx", &m.encode_to_vec());
    for flags in [&[][..], &["--no-validate"], &["--report", "params"]] {
        let o = run_on(&p, flags);
        assert_eq!(o.status.code(), Some(1), "{flags:?}");
        assert_eq!(
            stderr(&o),
            format!(
                "se-inject: error: '{}': imports the default domain (\"\" and \"ai.onnx\" name \
                 it) at two opsets, 13 and 11: runtimes differ on which its nodes follow; keep \
                 one import\n",
                p.display()
            ),
            "{flags:?}"
        );
    }
    assert_eq!(listing(dir.path()), ["two.onnx"]);
}

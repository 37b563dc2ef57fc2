//! A fuzz harness over load → analyse → splice → save (stable Rust, proptest): fixture models
//! mutated at the byte level (flips, truncation, insertion) and at the graph level (rewired
//! inputs, dropped nodes, changed op types, dims, attribute values and lists, element types and
//! the values of integer tensors: shapes, axes, bounds and pads; node and tensor names made hostile:
//! control characters, newlines, paths, 300 bytes; external data locations pointing elsewhere),
//! with the picture asked at paths the run must not replace. Every case must end in Ok or a clean
//! Err, never a panic, its message free of control characters (names escaped where they are printed); the input model and its data file are the same bytes afterwards, and the
//! folder holds nothing but them and what the run may write. `SE_FUZZ_CASES=N cargo test
//! --release --test it fuzz::` runs longer.

use crate::common;

use proptest::prelude::*;
use prost::Message;
use se_inject::onnx::proto::ModelProto;
use se_inject::rewrite::{Position, SeOptions};
use se_inject::Config;

const FIXTURES: [&str; 13] = [
    "resnet_basic_ts",
    "resnet_bottleneck_dynamo",
    "inception_tiny_ts",
    "mobilenet_v2_tiny_dynamo",
    "shufflenet_v2_tiny_ts",
    "densenet_tiny_ts",
    "efficientnet_tiny_dynamo",
    "vgg_tiny_ts",
    // Shape arithmetic folded by the op rules: F.pad's pads, a dual path's Slices, weights
    // computed by Constant / Reshape / Transpose / Cast / ConstantOfShape, channels-last maps,
    // tf2onnx's Tensordots and written-out LayerNorms.
    "resnet_v2_tiny_ts",
    "dpn_tiny_ts",
    "legacy_resnet_nodes",
    "channels_last_tiny",
    "keras_convnext_tiny",
];

fn cases() -> u32 {
    std::env::var("SE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96)
}

/// Where the picture is asked: nowhere, a path of its own, or one the run must never replace
/// (the input, its data file, the output, its data file's name, a folder, a missing folder).
const PLOTS: [Option<&str>; 8] = [
    None,
    Some("p.svg"),
    Some("{model}"),
    Some("{model}.data"),
    Some("out.onnx"),
    Some("out.onnx.data"),
    Some("."),
    Some("nowhere/p.svg"),
];

/// Runs the whole pipeline (without tract) on `bytes` written beside a copy of the fixture's
/// data file, with the picture asked at `PLOTS[plot]`; panics only if the library panics, or if
/// the input's files changed or files appeared that the run may not write. Returns the
/// pipeline's error, if any.
fn pipeline(fixture: &str, bytes: &[u8], position: usize) -> Result<(), String> {
    pipeline_plotting(fixture, bytes, position, 0)
}

fn pipeline_plotting(
    fixture: &str,
    bytes: &[u8],
    position: usize,
    plot: usize,
) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let model = common::copy_fixture(fixture, dir.path());
    std::fs::write(&model, bytes).unwrap();
    let inputs = common::listing(dir.path());
    let before: Vec<Vec<u8>> = inputs
        .iter()
        .map(|n| std::fs::read(dir.path().join(n)).unwrap())
        .collect();
    let plot = PLOTS[plot % PLOTS.len()].map(|p| {
        dir.path()
            .join(p.replace("{model}", &format!("{fixture}.onnx")))
    });
    let positions = [
        Position::Standard,
        Position::Pre,
        Position::Post,
        Position::Identity,
        Position::Inner,
    ];
    let cfg = Config {
        model: model.clone(),
        output: Some(dir.path().join("out.onnx")),
        se: SeOptions {
            position: positions[position % positions.len()],
            ..SeOptions::default()
        },
        report: None,
        input_shape: None,
        validate: false,
        time_runs: None,
        plot: plot.clone(),
        budget: se_inject::validate::Budget::default(),
    };
    let result = std::panic::catch_unwind(|| se_inject::run(&cfg));
    for (name, bytes) in inputs.iter().zip(&before) {
        let now = std::fs::read(dir.path().join(name)).ok();
        assert!(
            now.as_ref() == Some(bytes),
            "the run changed the input file {name} (bytes kept in {})",
            keep(bytes)
        );
    }
    for name in common::listing(dir.path()) {
        let allowed = inputs.contains(&name)
            || name == "out.onnx"
            || se_inject::onnx::io::is_data_name("out.onnx".as_ref(), name.as_ref())
            || plot
                .as_ref()
                .is_some_and(|p| p.file_name() == Some(name.as_ref()));
        assert!(
            allowed,
            "the run left '{name}' (bytes kept in {})",
            keep(bytes)
        );
    }
    match result {
        Err(_) => panic!(
            "the pipeline panicked on a mutated {fixture} (bytes kept in {})",
            keep(bytes)
        ),
        Ok(Ok(_)) => {
            // Whatever was accepted must load back and be well formed.
            let out = se_inject::onnx::load(&dir.path().join("out.onnx")).expect("reload output");
            let view =
                se_inject::graph::GraphView::new(out.graph()).expect("output is well formed");
            assert!(view.is_ordered());
            Ok(())
        }
        Ok(Err(e)) => {
            let message = format!("{e:#}");
            // Names are escaped where messages print them, not only by the guard on the line.
            assert!(
                !message.chars().any(char::is_control),
                "an error with control characters on {fixture}: {message:?}"
            );
            assert!(
                !message.is_empty(),
                "an error without a message on {fixture}"
            );
            Err(message)
        }
    }
}

/// Saves a failing input for reproduction and returns its path.
fn keep(bytes: &[u8]) -> String {
    let p = std::env::temp_dir().join(format!("se-inject-fuzz-{}.onnx", bytes.len()));
    let _ = std::fs::write(&p, bytes);
    p.display().to_string()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(common::fixture(name)).unwrap()
}

#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, xor: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Edit::Flip { at, xor }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
    ]
}

#[derive(Debug, Clone)]
enum GraphEdit {
    RewireInput {
        node: usize,
        slot: usize,
        from: usize,
    },
    DropNode {
        node: usize,
    },
    OpType {
        node: usize,
        op: usize,
    },
    Dims {
        init: usize,
        dim: usize,
        value: i64,
    },
    AttrInt {
        node: usize,
        value: i64,
    },
    SwapInputs {
        node: usize,
    },
    /// Every value of one attribute (an integer list: perm, pads, strides, axes, kernel_shape…).
    AttrList {
        node: usize,
        attr: usize,
        values: Vec<i64>,
    },
    /// The element type of an initializer or a Constant's value.
    ElemType {
        at: usize,
        ty: i32,
    },
    /// The values of an integer tensor (a shape, axes, bounds, pads) held by a Constant node
    /// or an initializer.
    IntValues {
        at: usize,
        values: Vec<i64>,
    },
    /// A node's name made hostile.
    NodeName {
        node: usize,
        name: usize,
    },
    /// A tensor renamed everywhere it is named (producer, readers, graph outputs), or, when
    /// `everywhere` is false, at one reader only.
    TensorName {
        tensor: usize,
        name: usize,
        everywhere: bool,
    },
    /// The location of a stored tensor's external data (an initializer's, or a Constant's value
    /// made external).
    Location {
        at: usize,
        path: usize,
    },
}

/// Names as hostile files write them: terminal escapes, forged report lines, paths, nothing,
/// an over-long name, right-to-left overrides, NUL.
const NAMES: [&str; 9] = [
    "\u{1b}]0;owned\u{7}\u{1b}[2J",
    "x\nwritten: /tmp/forged.onnx",
    "../../etc/passwd",
    "/",
    "",
    "\u{202e}fdp.exe",
    "a\u{0}b",
    "\r\tname",
    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
];

/// External data locations: outside the folder in every spelling, the folder itself, the
/// output, the input model, a legitimate name spelt another way, nothing, NUL.
const LOCATIONS: [&str; 10] = [
    "/etc/passwd",
    "../secret.data",
    "sub/../../secret.data",
    ".",
    "out.onnx",
    "{model}",
    "./{model}.data",
    "",
    "a\u{0}b",
    "/proc/self/fd/0",
];

/// Integers as hostile files write them: zero, negatives, the ends of i64, large dims.
fn hostile_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(-1),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(1 << 40),
        -8i64..64,
    ]
}

const OPS: [&str; 8] = [
    "Add", "Concat", "Conv", "Relu", "Mul", "Split", "Reshape", "Unknown",
];

fn graph_edit() -> impl Strategy<Value = GraphEdit> {
    prop_oneof![
        (any::<usize>(), 0usize..3, any::<usize>())
            .prop_map(|(node, slot, from)| GraphEdit::RewireInput { node, slot, from }),
        any::<usize>().prop_map(|node| GraphEdit::DropNode { node }),
        (any::<usize>(), 0..OPS.len()).prop_map(|(node, op)| GraphEdit::OpType { node, op }),
        (
            any::<usize>(),
            0usize..4,
            prop_oneof![Just(0i64), Just(-1), Just(1), Just(1 << 40), -4i64..64]
        )
            .prop_map(|(init, dim, value)| GraphEdit::Dims { init, dim, value }),
        (
            any::<usize>(),
            prop_oneof![Just(0i64), Just(-3), Just(1), Just(i64::MAX), -4i64..8]
        )
            .prop_map(|(node, value)| GraphEdit::AttrInt { node, value }),
        any::<usize>().prop_map(|node| GraphEdit::SwapInputs { node }),
        (
            any::<usize>(),
            any::<usize>(),
            proptest::collection::vec(hostile_int(), 0..9)
        )
            .prop_map(|(node, attr, values)| GraphEdit::AttrList { node, attr, values }),
        (any::<usize>(), -2i32..26).prop_map(|(at, ty)| GraphEdit::ElemType { at, ty }),
        (
            any::<usize>(),
            proptest::collection::vec(hostile_int(), 0..9)
        )
            .prop_map(|(at, values)| GraphEdit::IntValues { at, values }),
        (any::<usize>(), 0..NAMES.len())
            .prop_map(|(node, name)| GraphEdit::NodeName { node, name }),
        (any::<usize>(), 0..NAMES.len(), any::<bool>()).prop_map(|(tensor, name, everywhere)| {
            GraphEdit::TensorName {
                tensor,
                name,
                everywhere,
            }
        }),
        (any::<usize>(), 0..LOCATIONS.len())
            .prop_map(|(at, path)| GraphEdit::Location { at, path }),
    ]
}

/// The stored tensors of a graph: initializers, then the values of Constant nodes.
fn stored(g: &mut se_inject::onnx::GraphProto) -> Vec<&mut se_inject::onnx::TensorProto> {
    let constants = g
        .node
        .iter_mut()
        .flat_map(|n| n.attribute.iter_mut())
        .filter_map(|a| a.t.as_mut());
    g.initializer.iter_mut().chain(constants).collect()
}

fn apply(model: &mut ModelProto, e: &GraphEdit, fixture: &str) {
    let Some(g) = model.graph.as_mut() else {
        return;
    };
    if matches!(
        e,
        GraphEdit::NodeName { .. } | GraphEdit::TensorName { .. } | GraphEdit::Location { .. }
    ) {
        return apply_name(g, e, fixture);
    }
    let n = g.node.len().max(1);
    match *e {
        GraphEdit::RewireInput { node, slot, from } => {
            let tensors: Vec<String> = g.node.iter().flat_map(|n| n.output.clone()).collect();
            if tensors.is_empty() {
                return;
            }
            let t = tensors[from % tensors.len()].clone();
            if let Some(inp) = g.node.get_mut(node % n).and_then(|x| x.input.get_mut(slot)) {
                *inp = t;
            }
        }
        GraphEdit::DropNode { node } => {
            if !g.node.is_empty() {
                g.node.remove(node % n);
            }
        }
        GraphEdit::OpType { node, op } => {
            if let Some(x) = g.node.get_mut(node % n) {
                x.op_type = Some(OPS[op].to_string());
            }
        }
        GraphEdit::Dims { init, dim, value } => {
            let k = g.initializer.len().max(1);
            if let Some(t) = g.initializer.get_mut(init % k) {
                if let Some(d) = t.dims.get_mut(dim) {
                    *d = value;
                } else {
                    t.dims.push(value);
                }
            }
        }
        GraphEdit::AttrInt { node, value } => {
            if let Some(a) = g
                .node
                .get_mut(node % n)
                .and_then(|x| x.attribute.first_mut())
            {
                a.i = Some(value);
                if let Some(v) = a.ints.first_mut() {
                    *v = value;
                }
            }
        }
        GraphEdit::SwapInputs { node } => {
            if let Some(x) = g.node.get_mut(node % n) {
                x.input.reverse();
            }
        }
        _ => apply_value(g, e),
    }
}

/// The edits of names and locations.
fn apply_name(g: &mut se_inject::onnx::GraphProto, e: &GraphEdit, fixture: &str) {
    let n = g.node.len().max(1);
    match *e {
        GraphEdit::NodeName { node, name } => {
            if let Some(x) = g.node.get_mut(node % n) {
                x.name = Some(NAMES[name].to_string());
            }
        }
        GraphEdit::TensorName {
            tensor,
            name,
            everywhere,
        } => {
            let tensors: Vec<String> = g.node.iter().flat_map(|n| n.output.clone()).collect();
            let Some(old) = tensors.get(tensor % tensors.len().max(1)).cloned() else {
                return;
            };
            let new = NAMES[name].to_string();
            let named = g
                .node
                .iter_mut()
                .flat_map(|n| n.input.iter_mut().chain(n.output.iter_mut()))
                .chain(g.output.iter_mut().filter_map(|o| o.name.as_mut()))
                .filter(|t| **t == old);
            for t in named.take(if everywhere { usize::MAX } else { 1 }) {
                *t = new.clone();
            }
        }
        GraphEdit::Location { at, path } => {
            use se_inject::onnx::proto::tensor_proto::DataLocation;
            let location = LOCATIONS[path].replace("{model}", &format!("{fixture}.onnx"));
            let mut all = stored(g);
            let k = all.len().max(1);
            if let Some(t) = all.get_mut(at % k) {
                t.raw_data = None;
                t.data_location = Some(DataLocation::External as i32);
                t.external_data = vec![se_inject::onnx::proto::StringStringEntryProto {
                    key: Some("location".into()),
                    value: Some(location),
                }];
            }
        }
        _ => {}
    }
}

/// The edits of values: attribute lists, element types, integer tensors.
fn apply_value(g: &mut se_inject::onnx::GraphProto, e: &GraphEdit) {
    let n = g.node.len().max(1);
    match *e {
        GraphEdit::AttrList {
            node,
            attr,
            ref values,
        } => {
            if let Some(x) = g.node.get_mut(node % n) {
                let k = x.attribute.len().max(1);
                if let Some(a) = x.attribute.get_mut(attr % k) {
                    a.ints = values.clone();
                }
            }
        }
        GraphEdit::ElemType { at, ty } => {
            let mut all = stored(g);
            let k = all.len().max(1);
            if let Some(t) = all.get_mut(at % k) {
                t.data_type = Some(ty);
            }
        }
        GraphEdit::IntValues { at, ref values } => {
            let mut ints: Vec<_> = stored(g)
                .into_iter()
                .filter(|t| t.data_type == Some(7))
                .collect();
            let k = ints.len().max(1);
            if let Some(t) = ints.get_mut(at % k) {
                t.raw_data = None;
                t.int64_data = values.clone();
                t.dims = vec![values.len() as i64];
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn byte_mutations_never_panic(f in 0..FIXTURES.len(), edits in proptest::collection::vec(edit(), 1..6), position in 0usize..5) {
        let mut bytes = fixture_bytes(FIXTURES[f]);
        for e in &edits {
            let len = bytes.len().max(1);
            match e {
                Edit::Flip { at, xor } => {
                    let i = at % len;
                    if let Some(b) = bytes.get_mut(i) {
                        *b ^= xor;
                    }
                }
                Edit::Truncate { at } => bytes.truncate(at % len),
                Edit::Insert { at, bytes: ins } => {
                    let i = at % len;
                    bytes.splice(i..i, ins.iter().copied());
                }
            }
        }
        // A clean error is as good an outcome as a model.
        let _ = pipeline(FIXTURES[f], &bytes, position);
    }

    #[test]
    fn graph_mutations_never_panic(f in 0..FIXTURES.len(), edits in proptest::collection::vec(graph_edit(), 1..4), position in 0usize..5, plot in 0..PLOTS.len()) {
        let bytes = fixture_bytes(FIXTURES[f]);
        let mut model = ModelProto::decode(bytes.as_slice()).unwrap();
        for e in &edits {
            apply(&mut model, e, FIXTURES[f]);
        }
        let _ = pipeline_plotting(FIXTURES[f], &model.encode_to_vec(), position, plot);
    }
}

/// The unmutated runs that refuse, as tests/it/families.rs expects: (fixture, position index, what
/// the error says). Plain, inception and dense blocks have no shortcut and no inner position;
/// every block of efficientnet_tiny already holds SE.
const REFUSED: [(&str, usize, &str); 11] = [
    ("inception_tiny_ts", 3, "identity has no meaning"),
    ("inception_tiny_ts", 4, "inner has no meaning"),
    ("densenet_tiny_ts", 3, "identity has no meaning"),
    ("densenet_tiny_ts", 4, "inner has no meaning"),
    ("efficientnet_tiny_dynamo", 0, "already present"),
    ("efficientnet_tiny_dynamo", 1, "already present"),
    ("efficientnet_tiny_dynamo", 2, "already present"),
    ("efficientnet_tiny_dynamo", 3, "already present"),
    ("efficientnet_tiny_dynamo", 4, "already present"),
    ("vgg_tiny_ts", 3, "identity has no meaning"),
    ("vgg_tiny_ts", 4, "inner has no meaning"),
];

#[test]
fn unmutated_fixtures_pass_the_harness() {
    for f in FIXTURES {
        for position in 0..5 {
            let refused = REFUSED
                .iter()
                .find(|(name, p, _)| *name == f && *p == position);
            match (pipeline(f, &fixture_bytes(f), position), refused) {
                (Ok(()), None) => {}
                (Err(e), Some((_, _, why))) => {
                    assert!(
                        e.contains("no block can take SE") && e.contains(why),
                        "{f} position {position}: {e}"
                    );
                }
                (Err(e), None) => panic!("{f} position {position}: {e}"),
                (Ok(()), Some(_)) => panic!("{f} position {position}: accepted"),
            }
        }
    }
}

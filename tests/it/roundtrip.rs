//! Loading and saving through the library: inline models re-encode to their exact bytes,
//! external-data models survive load → save → load unchanged, and saving is deterministic.

use crate::common::*;
use prost::Message;
use se_inject::onnx::{load, save, Model, Storage};
use std::path::Path;

const TS: [&str; 4] = [
    "resnet_basic_ts",
    "resnet_bottleneck_ts",
    "resnext_tiny_ts",
    "plain_cnn_ts",
];

const DYNAMO: [&str; 4] = [
    "resnet_basic_dynamo",
    "resnet_bottleneck_dynamo",
    "resnext_tiny_dynamo",
    "plain_cnn_dynamo",
];

fn load_ok(p: &Path) -> Model {
    load(p).unwrap_or_else(|e| panic!("cannot load {}: {e:#}", p.display()))
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Every `_ts` fixture (weights inline): load, then encode, gives exactly the file's bytes.
#[test]
fn inline_fixtures_reencode_to_the_same_bytes() {
    for name in TS {
        let path = fixture(name);
        let m = load_ok(&path);
        assert_eq!(m.storage, Storage::Inline, "{name}");
        assert!(m.external_tensors.is_empty(), "{name}");
        assert!(m.data_files.is_empty(), "{name}");
        let bytes = read(&path);
        assert!(
            m.proto.encode_to_vec() == bytes,
            "{name}: re-encoded bytes differ from the file"
        );
        let streamed = se_inject::onnx::write::encode_to(&m.proto, &m.sources, Vec::new());
        assert!(streamed.unwrap() == bytes, "{name}: streamed bytes differ");
    }
}

/// An inline model saved stays inline: one file, no `.data`, and the same bytes as the input.
#[test]
fn inline_model_saved_stays_inline() {
    let dir = tempfile::tempdir().unwrap();
    for name in TS {
        let m = load_ok(&fixture(name));
        let out = dir.path().join(format!("{name}.copy.onnx"));
        let written = save(&m, &out).expect("save");
        assert_eq!(written, vec![out.clone()], "{name}: files written");
        assert!(!dir.path().join(format!("{name}.copy.onnx.data")).exists());
        assert!(read(&out) == read(&fixture(name)), "{name}: bytes changed");
        let again = load_ok(&out);
        assert_eq!(again.storage, Storage::Inline, "{name}");
        assert!(again.proto == m.proto, "{name}: proto changed");
    }
    // Nothing but the outputs (no temporary files left behind).
    let expected: Vec<String> = TS.iter().map(|n| format!("{n}.copy.onnx")).collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(listing(dir.path()), expected);
}

/// Every `_dynamo` fixture: load → save into a temp folder → load gives an equal proto, external
/// storage, the data file written beside the output; saving again gives identical bytes.
#[test]
fn external_fixtures_survive_a_round_trip() {
    for name in DYNAMO {
        let dir = tempfile::tempdir().unwrap();
        let m = load_ok(&fixture(name));
        assert_eq!(m.storage, Storage::External, "{name}");
        assert!(!m.external_tensors.is_empty(), "{name}");
        assert_eq!(
            m.data_files,
            vec![fixture_data(name).canonicalize().unwrap()],
            "{name}: data files read"
        );

        let out = dir.path().join("rt.onnx");
        let written = save(&m, &out).expect("save");
        let data = data_file_of(&out);
        assert_eq!(
            written,
            vec![out.clone(), data.clone()],
            "{name}: files written"
        );
        assert!(out.exists() && data.exists(), "{name}");
        assert_eq!(
            listing(dir.path()),
            vec!["rt.onnx".to_string(), data_name_of(&out)],
            "{name}: files in the output folder"
        );

        let back = load_ok(&out);
        assert_eq!(back.storage, Storage::External, "{name}");
        assert_eq!(back.external_tensors, m.external_tensors, "{name}");
        assert_eq!(
            back.data_files,
            vec![data.canonicalize().unwrap()],
            "{name}: reloaded from the new data file"
        );
        assert!(
            back.proto == m.proto,
            "{name}: proto changed by the round trip"
        );

        external_tensors_point_at_the_new_data_file(name, &m, &out, &data);
        saving_again_gives_the_same_bytes(name, &m, &back, &out, &data);

        // The fixtures themselves are untouched by all this.
        let reloaded = load_ok(&fixture(name));
        assert!(reloaded.proto == m.proto, "{name}: fixture changed");
    }
}

/// Every tensor stored externally in the input `m` is external in the output `out`, pointing at
/// the new data file `data`, and the data file holds exactly their bytes.
fn external_tensors_point_at_the_new_data_file(name: &str, m: &Model, out: &Path, data: &Path) {
    let on_disk = se_inject::onnx::ModelProto::decode(read(out).as_slice()).unwrap();
    let mut external_bytes = 0u64;
    for t in &on_disk.graph.as_ref().unwrap().initializer {
        let tname = t.name.clone().unwrap_or_default();
        let is_ext = t.data_location == Some(1);
        assert_eq!(
            is_ext,
            m.external_tensors.contains(&tname),
            "{name}: storage of '{tname}'"
        );
        if is_ext {
            let entry = |k: &str| {
                t.external_data
                    .iter()
                    .find(|e| e.key.as_deref() == Some(k))
                    .and_then(|e| e.value.clone())
            };
            assert_eq!(entry("location"), Some(data_name_of(out)));
            external_bytes += entry("length").unwrap().parse::<u64>().unwrap();
            assert!(t.raw_data.is_none(), "{name}: '{tname}' also inline");
        }
    }
    assert_eq!(
        external_bytes,
        std::fs::metadata(data).unwrap().len(),
        "{name}"
    );
}

/// Saving `m` again (same name, another folder) gives the same bytes as `out` and `data`, and so
/// does saving its reloaded copy `back` (a fixed point after one save).
fn saving_again_gives_the_same_bytes(name: &str, m: &Model, back: &Model, out: &Path, data: &Path) {
    let dir2 = tempfile::tempdir().unwrap();
    let out2 = dir2.path().join("rt.onnx");
    save(m, &out2).expect("save again");
    assert!(read(out) == read(&out2), "{name}: .onnx differs");
    assert!(
        read(data) == read(&data_file_of(&out2)),
        "{name}: .onnx.data differs"
    );
    let dir3 = tempfile::tempdir().unwrap();
    let out3 = dir3.path().join("rt.onnx");
    save(back, &out3).expect("save the reloaded copy");
    assert!(read(out) == read(&out3), "{name}: resave .onnx differs");
    assert!(
        read(data) == read(&data_file_of(&out3)),
        "{name}: resave .onnx.data differs"
    );
}

/// After load, no initializer of any fixture is left pointing at external data.
#[test]
fn load_resolves_every_external_tensor() {
    for name in TS.iter().chain(DYNAMO.iter()) {
        let m = load_ok(&fixture(name));
        for t in &m.graph().initializer {
            assert!(
                t.data_location != Some(1) && t.external_data.is_empty(),
                "{name}: '{}' still external after load",
                t.name.as_deref().unwrap_or("")
            );
        }
    }
}

/// save() refuses to overwrite the model's own file or data file.
#[test]
fn save_refuses_to_overwrite_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_fixture("resnet_basic_dynamo", dir.path());
    let m = load_ok(&p);
    let before = read(&p);
    assert!(save(&m, &p).is_err());
    assert!(save(&m, &dir.path().join("resnet_basic_dynamo.onnx.data")).is_err());
    assert_eq!(read(&p), before);
}

//! The mapped loader and the streaming writer on every fixture: weights are views of the mapped
//! files, the streamed encoding is prost's byte for byte, a saved model is what prost would have
//! written, and the by-reference form tract reads points at the weights' exact bytes.

use crate::common::*;
use prost::Message;
use se_inject::onnx::proto::tensor_proto::DataLocation;
use se_inject::onnx::{load, save, Model, ModelProto, Storage, TensorProto};
use std::path::{Path, PathBuf};

/// Every `.onnx` file of the fixtures folder, loaded.
fn every_fixture() -> Vec<(String, Model)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 40, "fixtures missing: {}", paths.len());
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let m = load(&p).unwrap_or_else(|e| panic!("cannot load {name}: {e:#}"));
            (name, m)
        })
        .collect()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn entry<'a>(t: &'a TensorProto, key: &str) -> &'a str {
    t.external_data
        .iter()
        .find(|e| e.key.as_deref() == Some(key))
        .and_then(|e| e.value.as_deref())
        .unwrap_or_else(|| panic!("no '{key}' entry"))
}

/// What saving wrote before it streamed: the external tensors' bytes one after the other in the
/// data file, the proto pointing at them encoded by prost.
fn reference_save(m: &Model, location: &str) -> (Vec<u8>, Vec<u8>) {
    let mut proto: ModelProto = m.proto.clone();
    let mut data = Vec::new();
    for t in proto.graph.as_mut().unwrap().initializer.iter_mut() {
        if !m.external_tensors.contains(t.name.as_deref().unwrap_or("")) {
            continue;
        }
        let Some(raw) = t.raw_data.take() else {
            continue;
        };
        let entry = |k: &str, v: String| se_inject::onnx::proto::StringStringEntryProto {
            key: Some(k.into()),
            value: Some(v),
        };
        t.external_data = vec![
            entry("location", location.into()),
            entry("offset", data.len().to_string()),
            entry("length", raw.len().to_string()),
        ];
        t.data_location = Some(DataLocation::External as i32);
        data.extend_from_slice(&raw);
    }
    (proto.encode_to_vec(), data)
}

/// Every weight of every fixture is a view of the file it was read from: the model file for
/// inline weights, the data file for external ones.
#[test]
fn weights_are_views_of_the_mapped_files() {
    for (name, m) in every_fixture() {
        let expected_files = match m.storage {
            Storage::Inline => 1,
            Storage::External => 2,
        };
        assert_eq!(m.sources.len(), expected_files, "{name}: files mapped");
        assert_eq!(
            m.sources[0].bytes().len() as u64,
            read(&m.path).len() as u64
        );
        for t in &m.graph().initializer {
            let Some(raw) = t.raw_data.as_ref().filter(|r| !r.is_empty()) else {
                continue;
            };
            let external = m.external_tensors.contains(t.name.as_deref().unwrap_or(""));
            let file = &m.sources[usize::from(external)];
            let at = file
                .offset_of(raw)
                .unwrap_or_else(|| panic!("{name}: '{:?}' is not a view of its file", t.name));
            let start = at as usize;
            assert!(file.bytes()[start..start + raw.len()] == raw[..], "{name}");
        }
    }
}

/// The streamed encoding of every fixture is prost's, and saving writes what prost would have.
#[test]
fn streamed_and_saved_bytes_are_prosts() {
    let dir = tempfile::tempdir().unwrap();
    for (name, m) in every_fixture() {
        let streamed = se_inject::onnx::write::encode_to(&m.proto, &m.sources, Vec::new());
        assert!(
            streamed.unwrap() == m.proto.encode_to_vec(),
            "{name}: streamed"
        );
        let out = dir.path().join(format!("{name}.out.onnx"));
        save(&m, &out).expect("save");
        let data_name = match m.storage {
            Storage::External => data_name_of(&out),
            Storage::Inline => String::new(),
        };
        let (onnx, data) = reference_save(&m, &data_name);
        assert!(
            read(&out) == onnx,
            "{name}: saved .onnx differs from prost's"
        );
        if m.storage == Storage::External {
            assert!(
                read(&dir.path().join(&data_name)) == data,
                "{name}: saved data file differs"
            );
        }
    }
}

/// The form tract reads: every weight of a fixture becomes a reference to the exact bytes of the
/// file it was read from, relative to the model's folder, and the proto is small.
#[test]
fn by_reference_points_at_the_weights_bytes() {
    for (name, m) in every_fixture() {
        let (proto, dir) = m.by_reference(|_| false);
        let dir = PathBuf::from(dir.expect("a UTF-8 folder"));
        for (t, orig) in proto
            .graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .zip(&m.graph().initializer)
        {
            let Some(raw) = orig.raw_data.as_ref().filter(|r| !r.is_empty()) else {
                assert!(t == orig, "{name}: a tensor without raw data changed");
                continue;
            };
            assert_eq!(
                t.data_location,
                Some(DataLocation::External as i32),
                "{name}"
            );
            assert!(t.raw_data.is_none(), "{name}");
            let file = read(&dir.join(entry(t, "location")));
            let offset: usize = entry(t, "offset").parse().unwrap();
            let length: usize = entry(t, "length").parse().unwrap();
            assert!(
                file[offset..offset + length] == raw[..],
                "{name}: wrong bytes"
            );
        }
        let kept = m.by_reference(|_| true).0;
        assert!(kept == m.proto, "{name}: kept tensors changed");
    }
}

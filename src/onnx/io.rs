//! Loading ONNX models, with weights inline or in an external data file, and the rules for where
//! a model may be saved.
//!
//! On load, the model file and each external data file are mapped into memory, not read: every
//! tensor's bytes are a zero-copy view of its file, so the rest of the program sees every weight
//! inline while only the pages it reads are ever touched. The model remembers which initializers
//! were external so that saving (in `write.rs`) writes them external again, to `<output>.data`
//! beside the output.

use super::map::MappedFile;
use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::{ModelProto, TensorProto};
use super::tensor::{element_count, ElemType};
use crate::shown::{shown as shown_str, shown_path};
use anyhow::{anyhow, bail, Context, Result};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// How a model's weights are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// Every tensor inside the `.onnx` file.
    Inline,
    /// Some tensors in a separate data file (`data_location = EXTERNAL`).
    External,
}

/// A loaded model: the protobuf with every weight in memory, and where it came from.
#[derive(Debug, Clone)]
pub struct Model {
    pub proto: ModelProto,
    pub path: PathBuf,
    pub storage: Storage,
    /// Initializers that are stored (and will be saved) in the external data file.
    pub external_tensors: BTreeSet<String>,
    /// Canonical paths of the external data files the model was read from.
    pub data_files: Vec<PathBuf>,
    /// The mapped files its tensors' bytes are views of: the model file, then its data files.
    pub sources: Vec<MappedFile>,
}

impl Model {
    /// Canonical paths of every file the model was read from: the model, then its data files.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        let model = self
            .path
            .canonicalize()
            .unwrap_or_else(|_| self.path.clone());
        std::iter::once(model)
            .chain(self.data_files.iter().cloned())
            .collect()
    }

    /// The graph; loading guarantees it is present.
    pub fn graph(&self) -> &super::GraphProto {
        self.proto
            .graph
            .as_ref()
            .expect("load() rejects models without a graph")
    }
}

/// Maps and decodes the model at `path`, resolving external data relative to its folder.
pub fn load(path: &Path) -> Result<Model> {
    load_within(path, &|_| Ok(()))
}

/// [`load`], first passing the counts read from the file's bytes ([`super::scan`]) to
/// `before_decode`, whose error ends the load before the model is decoded.
pub fn load_within(
    path: &Path,
    before_decode: &dyn Fn(&super::scan::Counts) -> Result<()>,
) -> Result<Model> {
    let shown = shown_path(path);
    let file = MappedFile::open(path, "model")?;
    if file.bytes().is_empty() {
        bail!("'{shown}' is empty: not an ONNX model");
    }
    before_decode(&super::scan::counts(file.bytes()))?;
    let proto = ModelProto::decode(file.bytes().clone()).map_err(|e| {
        anyhow!(
            "'{shown}' is not an ONNX model: protobuf decoding failed ({})",
            decode_failure(&e)
        )
    })?;
    let mut model = from_proto(proto, path)?;
    model.sources.insert(0, file);
    Ok(model)
}

/// Where and why decoding failed: the fields from the model down to where decoding stopped
/// (prost lists them from the innermost out), then why. A path through more than four fields (a
/// model nested past prost's recursion limit of 100 would name every one) keeps its first two
/// and its last.
fn decode_failure(e: &prost::DecodeError) -> String {
    let text = e.to_string();
    let rest = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let parts: Vec<&str> = rest.split(": ").collect();
    let is_field = |p: &&&str| {
        p.split_once('.').is_some_and(|(m, f)| {
            [m, f]
                .iter()
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        })
    };
    let depth = parts[..parts.len() - 1].iter().take_while(is_field).count();
    let (fields, why) = parts.split_at(depth);
    let mut path: Vec<String> = fields.iter().rev().map(|f| f.to_string()).collect();
    if depth > 4 {
        path.splice(2..depth - 1, [format!("({} more fields)", depth - 3)]);
    }
    path.push(why.join(": "));
    path.join(": ")
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn a_short_path_is_kept_whole_from_the_model_down() {
        let e = ModelProto::decode(&[0x3a, 0x02, 0x0a, 0x05][..]).unwrap_err();
        assert_eq!(
            decode_failure(&e),
            "ModelProto.graph: GraphProto.node: buffer underflow"
        );
    }
}

/// Checks a decoded model and resolves its external tensors; `path` is where it was read from.
pub fn from_proto(mut proto: ModelProto, path: &Path) -> Result<Model> {
    let shown = shown_path(path);
    if proto.ir_version.is_none() || proto.opset_import.is_empty() {
        bail!("'{shown}' is not an ONNX model: it has no IR version or no opset import");
    }
    super::opset::check_imports(&proto.opset_import).with_context(|| format!("'{shown}'"))?;
    let Some(graph) = proto.graph.as_mut() else {
        bail!("'{shown}' is not an ONNX model: it has no graph");
    };
    let dir = folder_of(path);
    let mut files: BTreeMap<PathBuf, MappedFile> = BTreeMap::new();
    let mut external_tensors = BTreeSet::new();
    for t in graph.initializer.iter_mut() {
        let name = t.name.clone().unwrap_or_default();
        if t.data_location == Some(DataLocation::External as i32) {
            resolve_external(t, dir, &mut files).with_context(|| {
                format!("'{shown}': external data of tensor '{}'", shown_str(&name))
            })?;
            external_tensors.insert(name.clone());
        }
        check_tensor_size(t)
            .with_context(|| format!("'{shown}': tensor '{}'", shown_str(&name)))?;
    }
    for node in &graph.node {
        for a in &node.attribute {
            if let Some(t) = &a.t {
                check_tensor_size(t).with_context(|| {
                    format!(
                        "'{shown}': tensor attribute of {}",
                        super::describe_node(node)
                    )
                })?;
            }
        }
    }
    refuse_external_elsewhere(&proto, &shown)?;
    let storage = if external_tensors.is_empty() {
        Storage::Inline
    } else {
        Storage::External
    };
    Ok(Model {
        proto,
        path: path.to_path_buf(),
        storage,
        external_tensors,
        data_files: files.keys().cloned().collect(),
        sources: files.into_values().collect(),
    })
}

/// Refuses external data anywhere but the main graph's initializers: in a subgraph's
/// initializers, a sparse initializer, training_info's graphs, or any node's tensor attributes
/// (a Constant's `value` or `sparse_value`, a TENSOR or TENSORS attribute, in the main graph or a
/// subgraph). Nothing resolves it there, so a rewrite would write a reference to a file it did
/// not copy, or copy a file it never checked.
fn refuse_external_elsewhere(proto: &ModelProto, shown: &str) -> Result<()> {
    let external = |t: &TensorProto| t.data_location == Some(DataLocation::External as i32);
    let mut graphs: Vec<(&super::GraphProto, bool)> =
        proto.graph.iter().map(|g| (g, true)).collect();
    for t in &proto.training_info {
        graphs.extend(
            t.initialization
                .iter()
                .chain(&t.algorithm)
                .map(|g| (g, false)),
        );
    }
    let mut seen = 0usize;
    while let Some((g, main)) = graphs.pop() {
        seen += 1;
        if seen > 100_000 {
            bail!("'{shown}' nests more than 100000 subgraphs");
        }
        let inits = g.initializer.iter().filter(|_| !main);
        if let Some(t) = inits
            .chain(g.sparse_initializer.iter().flat_map(sparse))
            .find(|t| external(t))
        {
            bail!(
                "'{shown}': tensor '{}' keeps its data in external data inside a subgraph, a sparse \
                 initializer or training_info, which is not supported",
                shown_str(t.name.as_deref().unwrap_or(""))
            );
        }
        for node in &g.node {
            for a in &node.attribute {
                let tensors =
                    a.t.iter()
                        .chain(&a.tensors)
                        .chain(a.sparse_tensor.iter().flat_map(sparse))
                        .chain(a.sparse_tensors.iter().flat_map(sparse));
                if tensors.into_iter().any(external) {
                    bail!(
                        "'{shown}': {} keeps its attribute '{}' in external data, which is not \
                         supported",
                        super::describe_node(node),
                        shown_str(a.name.as_deref().unwrap_or(""))
                    );
                }
                graphs.extend(a.g.iter().chain(&a.graphs).map(|g| (g, false)));
            }
        }
    }
    Ok(())
}

/// The dense tensors of a sparse tensor: its values and its indices.
fn sparse(s: &super::proto::SparseTensorProto) -> impl Iterator<Item = &TensorProto> {
    s.values.iter().chain(&s.indices)
}

/// Checks that a tensor's raw data holds exactly what its dims and element type need.
fn check_tensor_size(t: &TensorProto) -> Result<()> {
    let n = element_count(&t.dims)?;
    let dt = ElemType::of_tensor(t);
    if !matches!(dt.known(), Some(d) if d != DataType::Undefined) {
        bail!("element type {} is not an ONNX element type", dt.code());
    }
    if let (Some(raw), Some(size)) = (&t.raw_data, dt.size()) {
        let need = n
            .checked_mul(size as u64)
            .ok_or_else(|| anyhow!("dims {:?} overflow", t.dims))?;
        if need != raw.len() as u64 {
            bail!(
                "dims {:?} of {} need {need} bytes but its data holds {}",
                t.dims,
                dt.name(),
                raw.len()
            );
        }
    } else if t.raw_data.is_none() {
        // Typed storage: one value per element (two for complex numbers) in one of the fields.
        let typed = [
            t.float_data.len(),
            t.int32_data.len(),
            t.int64_data.len(),
            t.double_data.len(),
            t.uint64_data.len(),
            t.string_data.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as u64;
        let complex = matches!(dt.known(), Some(DataType::Complex64 | DataType::Complex128));
        let expected = if complex { n.saturating_mul(2) } else { n };
        if typed != expected {
            bail!(
                "dims {:?} need {n} values but the tensor holds {typed}",
                t.dims
            );
        }
    }
    Ok(())
}

fn external_entry<'a>(t: &'a TensorProto, key: &str) -> Option<&'a str> {
    t.external_data
        .iter()
        .find(|e| e.key.as_deref() == Some(key))
        .and_then(|e| e.value.as_deref())
}

/// Points an external tensor's `raw_data` at its bytes in the mapped data file and marks it
/// inline in memory.
fn resolve_external(
    t: &mut TensorProto,
    dir: &Path,
    files: &mut BTreeMap<PathBuf, MappedFile>,
) -> Result<()> {
    let location = external_entry(t, "location").ok_or_else(|| anyhow!("no 'location' entry"))?;
    let (base, full) = data_path(dir, location)?;
    let named = crate::shown::shown(location);
    let parse = |key: &str| -> Result<Option<u64>> {
        external_entry(t, key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| anyhow!("'{key}' is not a number: '{}'", shown_str(v)))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    // Opened first, checked after: the file checked is the file read, whatever a swap of a
    // folder on the way does between the two.
    let opened = MappedFile::open(&full, "external data file").with_context(|| {
        format!(
            "external data file '{}' is missing",
            crate::shown::shown_path(&full)
        )
    })?;
    if !opened.path.starts_with(&base) {
        bail!(
            "location '{named}' resolves outside the model's folder (to '{}')",
            crate::shown::shown_path(&opened.path)
        );
    }
    let file = opened.path.clone();
    files.entry(file.clone()).or_insert(opened);
    let buf = files[&file].bytes();
    let size = buf.len() as u64;
    let end = match length {
        Some(l) => offset
            .checked_add(l)
            .ok_or_else(|| anyhow!("offset + length overflow"))?,
        None => size,
    };
    if offset > size || end > size {
        bail!(
            "'{}' holds {size} bytes but the tensor needs bytes {offset}..{end}",
            crate::shown::shown_path(&file)
        );
    }
    t.raw_data = Some(buf.slice(offset as usize..end as usize));
    t.external_data.clear();
    t.data_location = None;
    Ok(())
}

/// The canonical folder `dir` and the path of `location` in it, refusing any location that
/// could name a file elsewhere by its spelling: absolute paths and `..` components. Where the path
/// leads (through symbolic links) is checked on the file opened, by [`resolve_external`].
fn data_path(dir: &Path, location: &str) -> Result<(PathBuf, PathBuf)> {
    let named = crate::shown::shown(location);
    let rel = Path::new(location);
    if location.is_empty()
        || rel.is_absolute()
        || location.starts_with('/')
        || location.starts_with('\\')
    {
        bail!("location '{named}' is not a relative path inside the model's folder");
    }
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("location '{named}' leaves the model's folder");
    }
    let base = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve folder '{}'", crate::shown::shown_path(dir)))?;
    let full = base.join(rel);
    Ok((base, full))
}

/// The data file written beside `out` when a model is saved with external data, named by the
/// fingerprint of the model file that refers to it: `<out>.<16 hex digits>.data` (see
/// `write::fingerprint`). A new output's data takes the name of the data the output it replaces
/// refers to only when the two model files are the same bytes, so the model, renamed last,
/// switches from one whole pair to the other.
pub fn data_path_for(out: &Path, fingerprint: u64) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{fingerprint:016x}.data"));
    out.with_file_name(name)
}

/// Whether `file` is, by its name, a data file of an output named `model`: `<model>.data` (the
/// PyTorch exporters' name, and se-inject's before data files were named by a fingerprint) or
/// `<model>.<16 hex digits>.data` (see [`data_path_for`]).
pub fn is_data_name(model: &std::ffi::OsStr, file: &std::ffi::OsStr) -> bool {
    let (Some(model), Some(file)) = (model.to_str(), file.to_str()) else {
        return false;
    };
    let Some(middle) = file
        .strip_prefix(model)
        .and_then(|rest| rest.strip_suffix(".data"))
    else {
        return false;
    };
    middle.is_empty()
        || middle.strip_prefix('.').is_some_and(|hex| {
            hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// The regular files beside `out` that hold, by their name, the external data of an output
/// written at `out` ([`is_data_name`]).
pub fn data_files_beside(out: &Path) -> Vec<PathBuf> {
    let Some(name) = out.file_name() else {
        return Vec::new();
    };
    files_beside(out, |file| is_data_name(name, std::ffi::OsStr::new(file)))
}

/// The folder holding (or to hold) the file `path`: its parent, `.` for a bare file name.
pub fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The regular files in the folder of `path` whose names (in UTF-8) `wanted` picks, sorted.
pub fn files_beside(path: &Path, wanted: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name().to_str().is_some_and(&wanted))
        .map(|e| path.with_file_name(e.file_name()))
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The external data file `location` names inside `dir`, opened and checked as
    /// `resolve_external` does: its canonical path.
    fn safe_data_path(dir: &Path, location: &str) -> Result<PathBuf> {
        let named = crate::shown::shown(location);
        let mut t = TensorProto {
            data_location: Some(DataLocation::External as i32),
            external_data: vec![crate::onnx::proto::StringStringEntryProto {
                key: Some("location".into()),
                value: Some(location.into()),
            }],
            ..Default::default()
        };
        let mut files = BTreeMap::new();
        resolve_external(&mut t, dir, &mut files)?;
        files
            .into_keys()
            .next()
            .ok_or_else(|| anyhow!("location '{named}' named no file"))
    }

    #[test]
    fn refuses_escaping_locations() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["/etc/passwd", "../x.data", "a/../../x", ""] {
            assert!(safe_data_path(dir.path(), bad).is_err(), "{bad} accepted");
        }
        std::fs::write(dir.path().join("w.data"), b"1234").unwrap();
        assert!(safe_data_path(dir.path(), "w.data").is_ok());
        let err = safe_data_path(dir.path(), "missing.data").unwrap_err();
        assert!(format!("{err:#}").contains("missing.data"));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symlinks_out_of_the_folder() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("w.data"))
            .unwrap();
        let err = safe_data_path(dir.path(), "w.data").unwrap_err();
        assert!(format!("{err:#}").contains("outside"));
    }

    #[test]
    fn data_files_are_named_by_their_fingerprint() {
        assert_eq!(
            data_path_for(Path::new("a/b.se.onnx"), 0x00ab_cdef_0123_4567),
            PathBuf::from("a/b.se.onnx.00abcdef01234567.data")
        );
    }

    /// Only `<out>.data` and `<out>.<16 hex digits>.data` regular files are an output's data.
    #[test]
    fn data_files_beside_an_output_are_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "m.onnx",
            "m.onnx.data",
            "m.onnx.00abcdef01234567.data",
            "m.onnx.00ABCDEF01234567.data",
            "m.onnx.00abcdef0123456.data",
            "m.onnx.x.onnx.00abcdef01234567.data",
            "n.onnx.00abcdef01234567.data",
            "m.onnx.00abcdef01234567.data.tmp",
        ] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        std::fs::create_dir(d.join("m.onnx.1111111111111111.data")).unwrap();
        assert_eq!(
            data_files_beside(&d.join("m.onnx")),
            vec![
                d.join("m.onnx.00abcdef01234567.data"),
                d.join("m.onnx.data")
            ]
        );
        assert!(data_files_beside(&d.join("missing/m.onnx")).is_empty());
    }
}

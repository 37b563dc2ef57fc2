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
use super::tensor::{element_count, element_size, type_name};
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
    let shown = path.display();
    let file = MappedFile::open(path, "model")?;
    if file.bytes().is_empty() {
        bail!("'{shown}' is empty: not an ONNX model");
    }
    before_decode(&super::scan::counts(file.bytes()))?;
    let proto = ModelProto::decode(file.bytes().clone())
        .map_err(|e| anyhow!("'{shown}' is not an ONNX model: protobuf decoding failed ({e})"))?;
    let mut model = from_proto(proto, path)?;
    model.sources.insert(0, file);
    Ok(model)
}

/// Checks a decoded model and resolves its external tensors; `path` is where it was read from.
pub fn from_proto(mut proto: ModelProto, path: &Path) -> Result<Model> {
    let shown = path.display();
    if proto.ir_version.is_none() || proto.opset_import.is_empty() {
        bail!("'{shown}' is not an ONNX model: it has no IR version or no opset import");
    }
    let Some(graph) = proto.graph.as_mut() else {
        bail!("'{shown}' is not an ONNX model: it has no graph");
    };
    let dir = folder_of(path);
    let mut files: BTreeMap<PathBuf, MappedFile> = BTreeMap::new();
    let mut external_tensors = BTreeSet::new();
    for t in graph.initializer.iter_mut() {
        let name = t.name.clone().unwrap_or_default();
        if t.data_location == Some(DataLocation::External as i32) {
            resolve_external(t, dir, &mut files)
                .with_context(|| format!("'{shown}': external data of tensor '{name}'"))?;
            external_tensors.insert(name.clone());
        }
        check_tensor_size(t).with_context(|| format!("'{shown}': tensor '{name}'"))?;
    }
    for node in &graph.node {
        for a in &node.attribute {
            if let Some(t) = &a.t {
                if t.data_location == Some(DataLocation::External as i32) {
                    bail!(
                        "'{shown}': {} keeps its tensor attribute in external data, which is not supported",
                        super::describe_node(node)
                    );
                }
                check_tensor_size(t).with_context(|| {
                    format!(
                        "'{shown}': tensor attribute of {}",
                        super::describe_node(node)
                    )
                })?;
            }
        }
    }
    refuse_external_elsewhere(&proto, &shown.to_string())?;
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

/// Refuses external data anywhere but the main graph's initializers (a subgraph's, a sparse
/// initializer's, training_info's): nothing resolves it there, so a rewrite would write a
/// reference to a file it did not copy.
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
        let sparse = g
            .sparse_initializer
            .iter()
            .flat_map(|s| s.values.iter().chain(&s.indices));
        let inits = g.initializer.iter().filter(|_| !main);
        if let Some(t) = inits.chain(sparse).find(|t| external(t)) {
            bail!(
                "'{shown}': tensor '{}' keeps its data in external data inside a subgraph, a sparse \
                 initializer or training_info, which is not supported",
                t.name.as_deref().unwrap_or("")
            );
        }
        for a in g.node.iter().flat_map(|n| &n.attribute) {
            graphs.extend(a.g.iter().chain(&a.graphs).map(|g| (g, false)));
        }
    }
    Ok(())
}

/// Checks that a tensor's raw data holds exactly what its dims and element type need.
fn check_tensor_size(t: &TensorProto) -> Result<()> {
    let n = element_count(&t.dims)?;
    let dt = t.data_type.unwrap_or(0);
    if !matches!(DataType::try_from(dt), Ok(d) if d != DataType::Undefined) {
        bail!("element type {dt} is not an ONNX element type");
    }
    if let (Some(raw), Some(size)) = (&t.raw_data, element_size(dt)) {
        let need = n
            .checked_mul(size as u64)
            .ok_or_else(|| anyhow!("dims {:?} overflow", t.dims))?;
        if need != raw.len() as u64 {
            bail!(
                "dims {:?} of {} need {need} bytes but its data holds {}",
                t.dims,
                type_name(dt),
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
        let complex = matches!(
            DataType::try_from(dt),
            Ok(DataType::Complex64 | DataType::Complex128)
        );
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
    let file = safe_data_path(dir, location)?;
    let parse = |key: &str| -> Result<Option<u64>> {
        external_entry(t, key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| anyhow!("'{key}' is not a number: '{v}'"))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    if !files.contains_key(&file) {
        files.insert(file.clone(), MappedFile::open(&file, "external data file")?);
    }
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
            file.display()
        );
    }
    t.raw_data = Some(buf.slice(offset as usize..end as usize));
    t.external_data.clear();
    t.data_location = None;
    Ok(())
}

/// Resolves an external data `location` inside `dir`, refusing anything that could escape it:
/// absolute paths, `..` components, and symlinks that lead outside.
pub fn safe_data_path(dir: &Path, location: &str) -> Result<PathBuf> {
    let rel = Path::new(location);
    if location.is_empty()
        || rel.is_absolute()
        || location.starts_with('/')
        || location.starts_with('\\')
    {
        bail!("location '{location}' is not a relative path inside the model's folder");
    }
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!("location '{location}' leaves the model's folder");
    }
    let base = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve folder '{}'", dir.display()))?;
    let full = base.join(rel);
    let real = full
        .canonicalize()
        .with_context(|| format!("external data file '{}' is missing", full.display()))?;
    if !real.starts_with(&base) {
        bail!(
            "location '{location}' resolves outside the model's folder (to '{}')",
            real.display()
        );
    }
    Ok(real)
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

/// The regular files beside `out` that hold, by their name, the external data of an output
/// written at `out`: `<out>.<16 hex digits>.data` (see [`data_path_for`]) and `<out>.data`
/// (the PyTorch exporters' name, and se-inject's before data files were named by a fingerprint).
pub fn data_files_beside(out: &Path) -> Vec<PathBuf> {
    let Some(name) = out.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    files_beside(out, |file| {
        let Some(middle) = file
            .strip_prefix(name)
            .and_then(|rest| rest.strip_suffix(".data"))
        else {
            return false;
        };
        middle.is_empty()
            || middle.strip_prefix('.').is_some_and(|hex| {
                hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            })
    })
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

/// Canonical form of a path that may not exist yet: its folder canonicalized, its name kept.
fn canonical_target(p: &Path) -> Result<PathBuf> {
    let dir = folder_of(p);
    let name = p
        .file_name()
        .ok_or_else(|| anyhow!("output path '{}' has no file name", p.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("output folder '{}' does not exist", dir.display()))?;
    let full = dir.join(name);
    Ok(full.canonicalize().unwrap_or(full))
}

/// Refuses an output path that is a folder, or that would overwrite the input model or one of
/// its data files.
pub fn check_output_path(model: &Model, out: &Path) -> Result<()> {
    let text = out.as_os_str().as_encoded_bytes();
    if out.is_dir()
        || text.ends_with(b"/")
        || text.ends_with(std::path::MAIN_SEPARATOR_STR.as_bytes())
    {
        bail!(
            "output path '{}' is a folder: give a file name",
            out.display()
        );
    }
    check_written(model, out)
}

/// Refuses to write `path` when it is the input model or one of its data files, or exists and
/// is not a regular, writable file.
pub fn check_written(model: &Model, path: &Path) -> Result<()> {
    refuse_special(path)?;
    let t = canonical_target(path)?;
    if model.read_paths().contains(&t) {
        let what = if model.data_files.contains(&t) {
            "the input's external data file"
        } else {
            "the input model"
        };
        bail!(
            "output path '{}' would overwrite {what} '{}': choose another path",
            path.display(),
            t.display()
        );
    }
    Ok(())
}

/// Refuses to replace what exists at `path` and is not a regular, writable file: a device, a
/// FIFO or a socket would become a regular file, and a read-only file is the user's to keep.
fn refuse_special(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(()); // nothing there yet
    };
    let meta = if meta.file_type().is_symlink() {
        match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => return Ok(()), // a dangling link: writing creates its target
        }
    } else {
        meta
    };
    if !meta.is_file() {
        bail!(
            "output path '{}' exists and is not a regular file: choose another path",
            path.display()
        );
    }
    if meta.permissions().readonly() {
        bail!(
            "output path '{}' is read-only: make it writable or choose another path",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! Input files mapped into memory: a model's bytes and its external data are views of the files,
//! never copies, and the bytes of a tensor can be traced back to the file and offset they come
//! from, so that saving copies them file to file and a runtime can read them from the file.

use super::io::{folder_of, Model};
use super::proto::tensor_proto::DataLocation;
use super::proto::{ModelProto, StringStringEntryProto, TensorProto};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// A regular file mapped read-only: its bytes, and the open file to copy ranges from.
#[derive(Clone)]
pub struct MappedFile {
    /// The file's canonical path.
    pub path: PathBuf,
    bytes: Bytes,
    file: Arc<Mutex<File>>,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl MappedFile {
    /// Maps the file at `path`, which `what` names in errors ("model", "external data file").
    /// Only a regular file is opened: a FIFO would block, a device never end. The file is
    /// checked as opened, not as named: its kind comes from the open handle, and its `path` is
    /// where the file that was opened is ([`opened_path`]), whatever the name led to before or
    /// after.
    pub fn open(path: &Path, what: &str) -> Result<Self> {
        let shown = crate::shown::shown_path(path);
        let cannot = || format!("cannot read {what} '{shown}'");
        // Refused before opening, as opening a FIFO would block; and again on the handle.
        let named = std::fs::metadata(path).with_context(cannot)?;
        if !named.is_file() {
            bail!("{what} '{shown}' is not a regular file");
        }
        let file = File::open(path).with_context(cannot)?;
        let meta = file.metadata().with_context(cannot)?;
        if !meta.is_file() {
            bail!("{what} '{shown}' is not a regular file");
        }
        let bytes = if meta.len() == 0 {
            Bytes::new()
        } else {
            // SAFETY: the mapping is read-only and private to this process. The input files are
            // only read; as with any program reading a file, one truncated by another process
            // while it runs is outside what se-inject can guard against.
            let map = unsafe { memmap2::Mmap::map(&file) }.with_context(cannot)?;
            Bytes::from_owner(map)
        };
        let path = opened_path(&file, path, &meta)
            .with_context(|| format!("cannot resolve {what} '{shown}'"))?;
        Ok(Self {
            path,
            bytes,
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The metadata of the file opened.
    pub fn metadata(&self) -> std::io::Result<std::fs::Metadata> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .metadata()
    }

    /// The whole file's bytes (a view of the mapping; slices of it share it).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Where `slice` starts in this file, when it is a non-empty view of it.
    pub fn offset_of(&self, slice: &[u8]) -> Option<u64> {
        let base = self.bytes.as_ptr() as usize;
        let start = slice.as_ptr() as usize;
        let inside =
            !slice.is_empty() && start >= base && start + slice.len() <= base + self.bytes.len();
        inside.then(|| (start - base) as u64)
    }

    /// Copies `len` bytes from `offset` of the file to `out`, file to file (`copy_file_range` on
    /// Linux) when `out` is a file, without touching the mapping.
    pub fn copy_range(&self, offset: u64, len: u64, out: &mut impl Write) -> std::io::Result<()> {
        let file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reader: &File = &file;
        reader.seek(SeekFrom::Start(offset))?;
        let copied = std::io::copy(&mut reader.take(len), out)?;
        if copied != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "'{}' shrank while it was read",
                    crate::shown::shown_path(&self.path)
                ),
            ));
        }
        Ok(())
    }
}

/// The canonical path of the open `file`, which was opened as `path`: on Linux, the kernel's
/// record of the file it opened (`/proc/self/fd`), which no later rename or swap of a folder on
/// the way changes; elsewhere, the canonical form of `path`, accepted only when it still leads to
/// the file opened (same device and inode).
fn opened_path(file: &File, path: &Path, meta: &std::fs::Metadata) -> Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let record = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if let Ok(real) = std::fs::read_link(record) {
            if real.is_absolute() {
                return Ok(real);
            }
        }
    }
    let _ = file;
    let real = path.canonicalize()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::metadata(&real)?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            bail!(
                "'{}' changed while it was opened",
                crate::shown::shown_path(path)
            );
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(real)
}

/// The file among `files` that `slice` is a view of, and where it starts in it.
pub fn locate<'a>(files: &'a [MappedFile], slice: &[u8]) -> Option<(&'a MappedFile, u64)> {
    files
        .iter()
        .find_map(|f| f.offset_of(slice).map(|offset| (f, offset)))
}

impl Model {
    /// The model with its weights left in their files: each initializer whose bytes are a view of
    /// a file inside the model's folder becomes external data naming that file (relative to the
    /// folder) and the place of its bytes in it, unless `keep` asks for its bytes. Returns the
    /// proto, small whatever the weights' size, and the folder it refers to (`None` when it
    /// refers to nothing, the folder's path not being UTF-8).
    pub fn by_reference(
        &self,
        keep: impl Fn(&TensorProto) -> bool,
    ) -> (ModelProto, Option<String>) {
        let mut proto = self.proto.clone();
        let dir = folder_of(&self.path)
            .canonicalize()
            .ok()
            .and_then(|d| d.to_str().map(str::to_string));
        let Some(dir) = dir else {
            return (proto, None);
        };
        let initializers = proto
            .graph
            .iter_mut()
            .flat_map(|g| g.initializer.iter_mut());
        for t in initializers.filter(|t| !keep(t)) {
            let Some((file, offset)) = t.raw_data.as_ref().and_then(|r| locate(&self.sources, r))
            else {
                continue;
            };
            let location = file.path.strip_prefix(&dir).ok().and_then(Path::to_str);
            if let Some(location) = location {
                point_at(t, location, offset);
            }
        }
        (proto, Some(dir))
    }
}

/// Moves a tensor's bytes out of it: it becomes external data, `length` bytes (those of its
/// `raw_data`) at `offset` in the file `location`.
pub(super) fn point_at(t: &mut TensorProto, location: &str, offset: u64) {
    let length = t.raw_data.take().map_or(0, |r| r.len());
    let entry = |k: &str, v: String| StringStringEntryProto {
        key: Some(k.to_string()),
        value: Some(v),
    };
    t.external_data = vec![
        entry("location", location.to_string()),
        entry("offset", offset.to_string()),
        entry("length", length.to_string()),
    ];
    t.data_location = Some(DataLocation::External as i32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_views_of_the_file_and_copy_back_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.data");
        std::fs::write(&path, b"0123456789").unwrap();
        let mapped = MappedFile::open(&path, "external data file").unwrap();
        let part = mapped.bytes().slice(3..7);
        assert_eq!(&part[..], b"3456");
        assert_eq!(mapped.offset_of(&part), Some(3));
        assert_eq!(mapped.offset_of(b"3456"), None);
        let files = [mapped];
        let (found, offset) = locate(&files, &part).unwrap();
        let mut out = Vec::new();
        found.copy_range(offset, 4, &mut out).unwrap();
        assert_eq!(out, b"3456");
        let err = found.copy_range(8, 4, &mut out).unwrap_err();
        assert!(err.to_string().contains("shrank"));
    }

    #[test]
    fn empty_files_map_to_nothing_and_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.onnx");
        std::fs::write(&path, b"").unwrap();
        assert!(MappedFile::open(&path, "model").unwrap().bytes().is_empty());
        let err = MappedFile::open(dir.path(), "model").unwrap_err();
        assert!(err.to_string().ends_with("is not a regular file"), "{err}");
    }
}

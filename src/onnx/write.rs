//! Saving a model: the protobuf encoded as a stream through a small reused buffer, each large
//! tensor's bytes copied file to file from where they were read, into temporary files in the
//! target folder that are moved into place only once complete (`commit.rs`).

use super::commit::{commit, create_temp, Sweep};
use super::io::{data_path_for, folder_of, Model, Storage};
use super::map::{locate, point_at, MappedFile};
use super::proto::ModelProto;
use anyhow::{anyhow, Context, Result};
use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut};
use prost::Message;
use rapidhash::v3::{RapidSecrets, RapidStreamHasherV3};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Size of the buffer small fields go through; larger slices are written directly.
const BUFFER: usize = 64 * 1024;

/// A [`BufMut`] that streams what is put into it to `out` through a small buffer. A slice at least
/// as large as the buffer goes straight to `out`, copied file to file when it is a view of one of
/// `sources`. Write errors are kept and returned by [`StreamSink::finish`].
pub struct StreamSink<'a, W: Write> {
    out: W,
    buf: Vec<u8>,
    sources: &'a [MappedFile],
    error: Option<std::io::Error>,
}

impl<'a, W: Write> StreamSink<'a, W> {
    /// A sink writing to `out`, copying views of `sources` from their files.
    pub fn new(out: W, sources: &'a [MappedFile]) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(BUFFER),
            sources,
            error: None,
        }
    }

    /// Writes `result`'s error down unless an earlier one is kept.
    fn keep(&mut self, result: std::io::Result<()>) {
        if let (Err(e), None) = (result, &self.error) {
            self.error = Some(e);
        }
    }

    /// Writes the buffer out and empties it (writing nothing after an error).
    fn flush_buffer(&mut self) {
        if self.error.is_none() && !self.buf.is_empty() {
            let result = self.out.write_all(&self.buf);
            self.keep(result);
        }
        self.buf.clear();
    }

    /// Writes a large slice directly, from its file when it is a view of one.
    fn write_large(&mut self, src: &[u8]) {
        self.flush_buffer();
        if self.error.is_some() {
            return;
        }
        let result = match locate(self.sources, src) {
            Some((file, offset)) => file.copy_range(offset, src.len() as u64, &mut self.out),
            None => self.out.write_all(src),
        };
        self.keep(result);
    }

    /// Writes out what is buffered; the writer, or the first error met.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_buffer();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

// SAFETY: every method delegates to the buffer's own `Vec<u8>` implementation, which is kept
// below its capacity (it is written out when full), so `chunk_mut` never reallocates and
// `advance_mut` advances over bytes `chunk_mut` handed out.
unsafe impl<W: Write> BufMut for StreamSink<'_, W> {
    fn remaining_mut(&self) -> usize {
        isize::MAX as usize
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the chunk `chunk_mut` returned.
        unsafe { self.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        if self.buf.len() == self.buf.capacity() {
            self.flush_buffer();
        }
        self.buf.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() > BUFFER - self.buf.len() {
            self.flush_buffer();
        }
        if src.len() >= BUFFER {
            self.write_large(src);
        } else {
            self.buf.extend_from_slice(src);
        }
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        while src.has_remaining() {
            let chunk = src.chunk();
            let n = chunk.len();
            self.put_slice(chunk);
            src.advance(n);
        }
    }
}

/// Encodes `proto` to `out` as prost encodes it, byte for byte, streaming: views of `sources`
/// are copied from their files.
pub fn encode_to<W: Write>(
    proto: &ModelProto,
    sources: &[MappedFile],
    out: W,
) -> std::io::Result<W> {
    let mut sink = StreamSink::new(out, sources);
    proto
        .encode(&mut sink)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    sink.finish()
}

/// A saved output not yet in place: its files written as temporaries in the target folder.
pub struct Pending {
    /// The finished temporaries and where each goes, the model last.
    files: Vec<(tempfile::NamedTempFile, PathBuf)>,
    out: PathBuf,
    read: Vec<PathBuf>,
}

impl Pending {
    /// The files it puts in place: the model, then its data file when it has one.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.iter().map(|(_, to)| to.clone()).collect();
        paths.rotate_right(1);
        paths
    }

    /// The data file it writes beside the model, when the model keeps weights external.
    pub fn data_file(&self) -> Option<&Path> {
        (self.files.len() > 1).then(|| self.files[0].1.as_path())
    }

    /// Puts the output in place, after `first` (a finished picture and its place), as one step:
    /// see [`super::commit`]. Returns the files put in place, the model first.
    pub fn commit(self, first: Option<(tempfile::NamedTempFile, PathBuf)>) -> Result<Vec<PathBuf>> {
        let paths = self.paths();
        let mut files: Vec<_> = first.into_iter().collect();
        let extra: Vec<PathBuf> = files.iter().map(|(_, to)| to.clone()).collect();
        files.extend(self.files);
        let sweep = Sweep {
            out: &self.out,
            read: &self.read,
        };
        commit(files, Some(sweep))?;
        Ok(paths.into_iter().chain(extra).collect())
    }
}

/// Writes `model` to `out` (and its data file beside it when its storage is external), as one
/// step: see [`super::commit`]. Returns the files written.
pub fn save(model: &Model, out: &Path) -> Result<Vec<PathBuf>> {
    prepare(model, out)?.commit(None)
}

/// Writes the files of `model` saved at `out` as temporaries beside it, each with the input's
/// permissions (less the umask, and writable by its owner so a later run can replace it).
pub fn prepare(model: &Model, out: &Path) -> Result<Pending> {
    crate::targets::check(model, Some(out), None)?;
    let dir = folder_of(out);
    let cannot = |p: &Path| format!("cannot write '{}'", crate::shown::shown_path(p));
    let read = model.read_paths();
    let mode = input_mode(model);
    let files = match model.storage {
        Storage::Inline => {
            let tmp = write_temp(dir, mode, |f| {
                encode_to(&model.proto, &model.sources, f).map(drop)
            })
            .with_context(|| cannot(out))?;
            vec![(tmp, out.to_path_buf())]
        }
        Storage::External => {
            let mut proto = model.proto.clone();
            let data = write_temp(dir, mode, |f| externalise(model, &mut proto, f))
                .with_context(|| cannot(out))?;
            let fingerprint = fingerprint(&proto).with_context(|| cannot(out))?;
            let data_path = data_path_for(out, fingerprint);
            crate::targets::check_data_file(model, &data_path)?;
            let location = data_path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    anyhow!(
                        "output name '{}' is not valid UTF-8",
                        crate::shown::shown_path(out)
                    )
                })?;
            name_location(&mut proto, location);
            let tmp = write_temp(dir, mode, |f| {
                encode_to(&proto, &model.sources, f).map(drop)
            })
            .with_context(|| cannot(out))?;
            vec![(data, data_path), (tmp, out.to_path_buf())]
        }
    };
    Ok(Pending {
        files,
        out: out.to_path_buf(),
        read,
    })
}

/// The permission bits of the input model file, when known.
fn input_mode(model: &Model) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = model.sources.first()?.metadata().ok()?;
        Some(meta.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = model;
        None
    }
}

/// The secrets of [`fingerprint`]'s hash: rapidhash v3's defaults, seed 0.
static SECRETS: RapidSecrets = RapidSecrets::seed(0);

/// A writer that only hashes what is written to it.
struct Hashing(RapidStreamHasherV3<'static>);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fingerprint naming the data file of the model file `proto` is written as, taken before the
/// data file is named (every location empty): rapidhash v3 of its encoded bytes, which is the
/// same on every platform and in every release of one major version.
///
/// Two outputs whose data files get the same name thus have byte-identical model files (to
/// within a 2^-64 chance), which refer to the same tensors at the same offsets: whichever of the
/// two data files sits under that name, the model file beside it describes it. Their data files
/// may differ (other weight values, other SE weights); hashing only the model file, not the
/// gigabytes of weights, keeps a rewrite at about the cost of a copy.
fn fingerprint(proto: &ModelProto) -> std::io::Result<u64> {
    let hashing = encode_to(proto, &[], Hashing(RapidStreamHasherV3::new(&SECRETS)))?;
    Ok(hashing.0.finish())
}

/// Moves the bytes of `model`'s external tensors out of `proto` into the data file `out`, one
/// after the other in initializer order, and points each tensor at its place there; the file's
/// name, left empty, is given afterwards by [`name_location`].
fn externalise(model: &Model, proto: &mut ModelProto, out: &mut File) -> std::io::Result<()> {
    let mut sink = StreamSink::new(out, &model.sources);
    let mut offset: u64 = 0;
    let initializers = proto
        .graph
        .iter_mut()
        .flat_map(|g| g.initializer.iter_mut());
    for t in initializers {
        if !model
            .external_tensors
            .contains(t.name.as_deref().unwrap_or(""))
        {
            continue;
        }
        let Some(raw) = &t.raw_data else {
            continue;
        };
        sink.put_slice(raw);
        let length = raw.len() as u64;
        point_at(t, "", offset);
        offset += length;
    }
    sink.finish().map(drop)
}

/// Names `location` as the file of every tensor `externalise` moved out.
fn name_location(proto: &mut ModelProto, location: &str) {
    let entries = proto
        .graph
        .iter_mut()
        .flat_map(|g| g.initializer.iter_mut())
        .flat_map(|t| t.external_data.iter_mut())
        .filter(|e| e.key.as_deref() == Some("location"));
    for e in entries {
        e.value = Some(location.to_string());
    }
}

/// A temporary file in `dir` that `fill` wrote, given the permissions `mode` allows of those
/// a new file gets (0666 less the umask), and always its owner's write permission. It is left to
/// the system to write it to disk, as `cp` does: forcing it there would double the time of a
/// rewrite, to guard against a power cut rather than a failed run.
fn write_temp(
    dir: &Path,
    mode: Option<u32>,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<tempfile::NamedTempFile> {
    let mut f = create_temp(dir)?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        let new = f.as_file().metadata()?.permissions().mode() & 0o777;
        let kept = (mode & new) | (new & 0o200);
        f.as_file()
            .set_permissions(std::fs::Permissions::from_mode(kept))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    fill(f.as_file_mut())?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small slices are buffered, large ones written directly or copied from their file; the
    /// bytes come out in order either way.
    #[test]
    fn the_sink_keeps_order_across_buffered_direct_and_copied_slices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let big: Vec<u8> = (0..3 * BUFFER).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &big).unwrap();
        let mapped = MappedFile::open(&path, "model").unwrap();
        let view = mapped.bytes().slice(1..2 * BUFFER + 1);
        let owned = vec![7u8; BUFFER + 5];
        let sources = [mapped];
        let mut sink = StreamSink::new(Vec::new(), &sources);
        sink.put_slice(b"head");
        sink.put(view.clone());
        sink.put_u8(9);
        sink.put_slice(&owned);
        sink.put_bytes(3, BUFFER + 1);
        let out = sink.finish().unwrap();
        let mut want = b"head".to_vec();
        want.extend_from_slice(&view);
        want.push(9);
        want.extend_from_slice(&owned);
        want.extend(std::iter::repeat_n(3u8, BUFFER + 1));
        assert!(out == want);
    }

    /// rapidhash v3, seed 0, of a model whose only field is its producer, "se-inject".
    const PINNED: u64 = 0xfb25_ca57_b52b_a190;

    /// The fingerprint is rapidhash v3 of the model file's bytes as prost encodes them, large
    /// tensors included; its value is pinned, since it names the files written.
    #[test]
    fn the_fingerprint_hashes_the_encoded_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let big: Vec<u8> = (0..3 * BUFFER).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &big).unwrap();
        let mapped = MappedFile::open(&path, "model").unwrap();
        let mut proto = ModelProto {
            producer_name: Some("se-inject".into()),
            ..Default::default()
        };
        assert_eq!(fingerprint(&proto).unwrap(), PINNED);
        // field 2 (producer_name), length-delimited: tag 0x12, 9 bytes
        let encoded = b"\x12\x09se-inject";
        assert_eq!(
            rapidhash::v3::rapidhash_v3_seeded(encoded, &SECRETS),
            PINNED
        );
        proto.graph = Some(crate::onnx::GraphProto {
            initializer: vec![crate::onnx::TensorProto {
                raw_data: Some(mapped.bytes().slice(5..2 * BUFFER + 5)),
                ..Default::default()
            }],
            ..Default::default()
        });
        let want = rapidhash::v3::rapidhash_v3_seeded(&proto.encode_to_vec(), &SECRETS);
        assert_eq!(fingerprint(&proto).unwrap(), want);
        assert_ne!(want, PINNED);
    }

    /// A write error is kept and returned once, at the end.
    #[test]
    fn write_errors_come_back_from_finish() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("device full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut sink = StreamSink::new(Full, &[]);
        sink.put_slice(&vec![0u8; 3 * BUFFER]);
        sink.put_slice(b"more");
        let err = sink.finish().err().unwrap();
        assert_eq!(err.to_string(), "device full");
    }
}

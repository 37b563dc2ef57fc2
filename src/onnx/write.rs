//! Saving a model: the protobuf encoded as a stream through a small reused buffer, each large
//! tensor's bytes copied file to file from where they were read, into temporary files in the
//! target folder that are moved into place only once complete (`commit.rs`).

use super::commit::{commit, create_temp};
use super::io::{check_output_path, check_written, data_path_for, Model, Storage};
use super::map::{locate, point_at, MappedFile};
use super::proto::{ModelProto, TensorProto};
use anyhow::{anyhow, Context, Result};
use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes};
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

/// Writes `model` to `out` (and its data file beside it when its storage is external), as one
/// step: see [`super::commit`]. Returns the files written.
pub fn save(model: &Model, out: &Path) -> Result<Vec<PathBuf>> {
    check_output_path(model, out)?;
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let cannot = |p: &Path| format!("cannot write '{}'", p.display());
    let read = model.read_paths();
    match model.storage {
        Storage::Inline => {
            let tmp = write_temp(dir, |f| {
                encode_to(&model.proto, &model.sources, f).map(drop)
            })
            .with_context(|| cannot(out))?;
            commit(vec![(tmp, out.to_path_buf())], out, &read)?;
            Ok(vec![out.to_path_buf()])
        }
        Storage::External => {
            let mut proto = model.proto.clone();
            let parts = external_parts(model, &proto);
            // The data file is written and its bytes fingerprinted at the same time: the
            // fingerprint reads the input's files itself rather than wait for the copy.
            let (data, fingerprint) = std::thread::scope(|s| {
                let hashing = s.spawn(|| fingerprint(&parts, &model.sources));
                let data = write_temp(dir, |f| externalise(model, &mut proto, f));
                (data, hashing.join())
            });
            let data = data.with_context(|| cannot(out))?;
            let fingerprint = fingerprint
                .map_err(|_| anyhow!("fingerprinting the data file failed"))?
                .with_context(|| cannot(out))?;
            let data_path = data_path_for(out, fingerprint);
            check_written(model, &data_path)?;
            let location = data_path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("output name '{}' is not valid UTF-8", out.display()))?;
            name_location(&mut proto, location);
            let tmp = write_temp(dir, |f| encode_to(&proto, &model.sources, f).map(drop))
                .with_context(|| cannot(out))?;
            commit(
                vec![(data, data_path.clone()), (tmp, out.to_path_buf())],
                out,
                &read,
            )?;
            Ok(vec![out.to_path_buf(), data_path])
        }
    }
}

/// Whether `t` is one of `model`'s tensors saved in its data file.
fn goes_external(model: &Model, t: &TensorProto) -> bool {
    t.raw_data.is_some()
        && model
            .external_tensors
            .contains(t.name.as_deref().unwrap_or(""))
}

/// The bytes of the data file `externalise` writes for `proto`, in order, as views.
fn external_parts(model: &Model, proto: &ModelProto) -> Vec<Bytes> {
    proto
        .graph
        .iter()
        .flat_map(|g| &g.initializer)
        .filter(|t| goes_external(model, t))
        .filter_map(|t| t.raw_data.clone())
        .collect()
}

/// The fingerprint of the bytes of `parts` in order: rapidhash v3, whose output is the same on
/// every platform and in every release of one major version. Views of `sources` large enough to
/// be copied file to file are read from their files rather than through the mapping.
fn fingerprint(parts: &[Bytes], sources: &[MappedFile]) -> std::io::Result<u64> {
    let secrets = RapidSecrets::seed(0);
    let mut hasher = RapidStreamHasherV3::new(&secrets);
    for part in parts {
        match locate(sources, part).filter(|_| part.len() >= BUFFER) {
            Some((file, offset)) => {
                file.read_range(offset, part.len() as u64, |b| hasher.write(b))?
            }
            None => hasher.write(part),
        }
    }
    Ok(hasher.finish())
}

/// Moves the bytes of `model`'s external tensors out of `proto` into the data file `out`, one
/// after the other in initializer order, and points each tensor at its place there; the file's
/// name is given afterwards, by [`name_location`].
fn externalise(model: &Model, proto: &mut ModelProto, out: &mut File) -> std::io::Result<()> {
    let mut sink = StreamSink::new(out, &model.sources);
    let mut offset: u64 = 0;
    let initializers = proto
        .graph
        .iter_mut()
        .flat_map(|g| g.initializer.iter_mut());
    for t in initializers {
        if !goes_external(model, t) {
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

/// A temporary file in `dir` that `fill` wrote. It is left to the system to write it to disk, as
/// `cp` does: forcing it there would double the time of a rewrite, to guard against a power cut
/// rather than a failed run.
fn write_temp(
    dir: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<tempfile::NamedTempFile> {
    let mut f = create_temp(dir)?;
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

    /// rapidhash v3, seed 0, of the bytes of "se-inject".
    const PINNED: u64 = 0x7906_0e8f_bb4e_2ecd;

    /// The fingerprint is rapidhash v3 of the bytes in order, whether they are read from their
    /// file or from memory; its value is pinned, since it names the files written.
    #[test]
    fn the_fingerprint_hashes_the_bytes_in_order_wherever_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let big: Vec<u8> = (0..3 * BUFFER).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &big).unwrap();
        let mapped = MappedFile::open(&path, "model").unwrap();
        let from_file = [
            mapped.bytes().slice(5..2 * BUFFER + 5),
            Bytes::from_static(b"se"),
            mapped.bytes().slice(..3),
        ];
        let in_memory: Vec<Bytes> = from_file.iter().map(|b| Bytes::from(b.to_vec())).collect();
        let sources = [mapped];
        let mut all = big[5..2 * BUFFER + 5].to_vec();
        all.extend_from_slice(b"se");
        all.extend_from_slice(&big[..3]);
        let want = rapidhash::v3::rapidhash_v3_seeded(&all, &RapidSecrets::seed(0));
        assert_eq!(fingerprint(&from_file, &sources).unwrap(), want);
        assert_eq!(fingerprint(&in_memory, &[]).unwrap(), want);
        assert_eq!(
            fingerprint(&[Bytes::from_static(b"se-inject")], &[]).unwrap(),
            PINNED
        );
        assert_ne!(fingerprint(&[], &[]).unwrap(), PINNED);
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

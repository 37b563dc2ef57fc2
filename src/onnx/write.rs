//! Saving a model: the protobuf encoded as a stream through a small reused buffer, each large
//! tensor's bytes copied file to file from where they were read, into temporary files in the
//! target folder that are renamed into place only once complete.

use super::io::{check_output_path, data_path_for, Model, Storage};
use super::map::{locate, point_at, MappedFile};
use super::proto::ModelProto;
use anyhow::{anyhow, Context, Result};
use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut};
use prost::Message;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Temporary files this process is writing, for [`remove_temporaries`]. Its lock is held while
/// finished files move into place, so an interruption never falls between the data file's
/// rename and the model's.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary files being written, once no output is moving into place, and keeps
/// any new one from being moved there: for a front end interrupted by a signal, just before it
/// exits. Returns the guard, which the caller holds until it exits.
pub fn remove_temporaries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    let mut held = temporaries();
    for p in held.drain(..) {
        let _ = std::fs::remove_file(p);
    }
    held
}

/// Moves finished temporary files into place, in order, as one step with respect to
/// [`remove_temporaries`] and to other runs writing into the same folder (which wait for the
/// folder's lock): two runs writing one output pair never interleave their renames.
fn persist_all(files: Vec<(tempfile::NamedTempFile, &Path)>) -> Result<()> {
    let mut held = temporaries();
    let _folder = match files.first() {
        Some((_, to)) => FolderLock::take(to),
        None => return Ok(()),
    };
    for (tmp, to) in files {
        let from = tmp.path().to_path_buf();
        held.retain(|p| *p != from);
        persist(tmp, to)?;
    }
    Ok(())
}

/// An exclusive advisory lock on the folder a file is moved into, released when dropped; a
/// no-op where the folder cannot be opened or locks are not available.
struct FolderLock {
    _folder: Option<File>,
}

impl FolderLock {
    fn take(to: &Path) -> FolderLock {
        let dir = to
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Ok(folder) = File::open(dir) else {
            return FolderLock { _folder: None };
        };
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor this File owns; the lock goes with the descriptor.
            if unsafe { libc::flock(folder.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return FolderLock { _folder: None };
            }
        }
        FolderLock {
            _folder: Some(folder),
        }
    }
}

/// Writes `model` to `out` (and `<out>.data` when its storage is external), atomically.
/// Returns the files written.
pub fn save(model: &Model, out: &Path) -> Result<Vec<PathBuf>> {
    check_output_path(model, out)?;
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let cannot = |p: &Path| format!("cannot write '{}'", p.display());
    match model.storage {
        Storage::Inline => {
            let tmp = write_temp(dir, |f| {
                encode_to(&model.proto, &model.sources, f).map(drop)
            })
            .with_context(|| cannot(out))?;
            persist_all(vec![(tmp, out)])?;
            Ok(vec![out.to_path_buf()])
        }
        Storage::External => {
            let data_path = data_path_for(out);
            let location = data_path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("output name '{}' is not valid UTF-8", out.display()))?
                .to_string();
            let mut proto = model.proto.clone();
            let data = write_temp(dir, |f| externalise(model, &mut proto, &location, f))
                .with_context(|| cannot(&data_path))?;
            let tmp = write_temp(dir, |f| encode_to(&proto, &model.sources, f).map(drop))
                .with_context(|| cannot(out))?;
            persist_all(vec![(data, &data_path), (tmp, out)])?;
            Ok(vec![out.to_path_buf(), data_path])
        }
    }
}

/// Moves the bytes of `model`'s external tensors out of `proto` into the data file `out`, one
/// after the other in initializer order, and points each tensor at its place in `location`.
fn externalise(
    model: &Model,
    proto: &mut ModelProto,
    location: &str,
    out: &mut File,
) -> std::io::Result<()> {
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
        point_at(t, location, offset);
        offset += length;
    }
    sink.finish().map(drop)
}

/// A new temporary file in `dir`, created with the mode of any new file (0666 less the umask)
/// rather than the owner-only mode temporary files get, so the renamed result looks like a file
/// written in place.
fn create_temp(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut held = temporaries();
    let tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in '{}'", dir.display()))?;
    held.push(tmp.path().to_path_buf());
    Ok(tmp)
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

/// Moves a finished temporary file into place.
fn persist(tmp: tempfile::NamedTempFile, to: &Path) -> Result<()> {
    tmp.persist(to).map_err(|e| {
        anyhow!(
            "cannot move the written file into place at '{}': {}",
            to.display(),
            e.error
        )
    })?;
    Ok(())
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

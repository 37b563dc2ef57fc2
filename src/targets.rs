//! The files a run may create or replace: the model output, the data file beside it, the plot.
//! Decided here, in one place, before any work, and checked again for the data file once its
//! name is known.
//!
//! A target is named by its canonical folder and its name in it. It is refused when it is a file
//! the run reads (the input model, one of its data files), the same file as another target, a name
//! the output's data file could take (for the plot), a folder, a symbolic link (replacing one
//! would replace the link, never its target: `-o /dev/stdout` would leave a regular file where the
//! link was), anything but a regular file (a device, a FIFO, a socket), a read-only file, or a
//! file another user owns; and when its name is too long for the filesystem (255 bytes, the data
//! file's `.<16 hex digits>.data` counted), not UTF-8 where a model must name its data file, or its
//! folder cannot be written (a temporary file is created there and removed to tell).

use crate::onnx::commit::probe_folder;
use crate::onnx::io::{folder_of, is_data_name};
use crate::onnx::{Model, Storage};
use crate::shown::shown_path;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// The longest file name the filesystems se-inject writes to take (NAME_MAX), in bytes.
pub const NAME_MAX: usize = 255;

/// What a data file's name adds to its model's: `.<16 hex digits>.data`.
pub const DATA_SUFFIX_LEN: usize = 1 + 16 + 5;

/// What a target is, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The model written (`-o` or the default beside the input).
    Output,
    /// The external data file written beside the output.
    Data,
    /// The SVG picture of `--plot`.
    Plot,
}

impl Role {
    fn what(self) -> &'static str {
        match self {
            Role::Output => "output path",
            Role::Data => "the output's data file",
            Role::Plot => "--plot",
        }
    }
}

/// A path the run may create or replace.
#[derive(Debug, Clone)]
pub struct Target {
    /// As given.
    pub path: PathBuf,
    /// Its folder canonicalized, its name kept.
    pub canonical: PathBuf,
}

/// The paths of one run, checked.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub output: Option<Target>,
    pub plot: Option<Target>,
}

/// Checks every path the run is to write, against the files `model` was read from and against
/// each other.
pub fn check(model: &Model, output: Option<&Path>, plot: Option<&Path>) -> Result<Targets> {
    let read = model.read_paths();
    let output = output
        .map(|o| {
            let t = target(o, Role::Output, &read)?;
            check_data_name(model, &t)?;
            Ok::<_, anyhow::Error>(t)
        })
        .transpose()?;
    let plot = plot.map(|p| target(p, Role::Plot, &read)).transpose()?;
    if let (Some(o), Some(p)) = (&output, &plot) {
        let same_folder = folder_of(&o.canonical) == folder_of(&p.canonical);
        let names = (o.canonical.file_name(), p.canonical.file_name());
        if o.canonical == p.canonical {
            bail!(
                "--plot '{}' is the output model; give the picture a path of its own",
                shown_path(&p.path)
            );
        }
        if let (true, (Some(model_name), Some(plot_name))) = (same_folder, names) {
            if is_data_name(model_name, plot_name) {
                bail!(
                    "--plot '{}' has the name of the output's data file; give the picture a path \
                     of its own",
                    shown_path(&p.path)
                );
            }
        }
    }
    Ok(Targets { output, plot })
}

/// Checks the data file `path` written beside the output of `model`, once its name is known.
pub fn check_data_file(model: &Model, path: &Path) -> Result<Target> {
    target(path, Role::Data, &model.read_paths())
}

/// A model with external data names its data file in UTF-8, and that name must fit.
fn check_data_name(model: &Model, out: &Target) -> Result<()> {
    if model.storage != Storage::External {
        return Ok(());
    }
    let name = out.canonical.file_name().unwrap_or_default();
    let Some(name) = name.to_str() else {
        bail!(
            "output path '{}' is not valid UTF-8, which the model's reference to its data file \
             must be",
            shown_path(&out.path)
        );
    };
    if name.len() + DATA_SUFFIX_LEN > NAME_MAX {
        bail!(
            "output name '{}' is {} bytes: its data file's name (the name and \
             '.<16 hex digits>.data') would exceed {NAME_MAX} bytes",
            shown_path(&out.path),
            name.len()
        );
    }
    Ok(())
}

/// One path checked for `role`, against the files the run reads.
fn target(path: &Path, role: Role, read: &[PathBuf]) -> Result<Target> {
    let what = role.what();
    let shown = shown_path(path);
    let text = path.as_os_str().as_encoded_bytes();
    if text.ends_with(b"/") || text.ends_with(std::path::MAIN_SEPARATOR_STR.as_bytes()) {
        bail!("{what} '{shown}' is a folder: give a file name");
    }
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{what} '{shown}' has no file name"))?;
    if name.as_encoded_bytes().len() > NAME_MAX {
        bail!("{what} '{shown}' has a file name over {NAME_MAX} bytes");
    }
    let dir = folder_of(path);
    let folder = dir
        .canonicalize()
        .with_context(|| format!("the folder of {what} '{shown}' ('{}')", dir.display()))?;
    let canonical = folder.join(name);
    if read.contains(&canonical) {
        bail!("{what} '{shown}' is a file this run reads: choose another path");
    }
    let owner = probe_folder(&folder)
        .with_context(|| format!("{what} '{shown}': its folder cannot be written"))?;
    if let Ok(meta) = std::fs::symlink_metadata(&canonical) {
        let kind = meta.file_type();
        if kind.is_symlink() {
            bail!(
                "{what} '{shown}' is a symbolic link, which would be replaced by a file: give \
                 the path it leads to, or another path"
            );
        }
        if kind.is_dir() {
            bail!("{what} '{shown}' is a folder: give a file name");
        }
        if !kind.is_file() {
            bail!("{what} '{shown}' exists and is not a regular file: choose another path");
        }
        if meta.permissions().readonly() {
            bail!("{what} '{shown}' is read-only: make it writable or choose another path");
        }
        if let (Some(me), Some(theirs)) = (owner, owner_of(&meta)) {
            if me != theirs {
                bail!(
                    "{what} '{shown}' belongs to another user (uid {theirs}): choose another path"
                );
            }
        }
    }
    Ok(Target {
        path: path.to_path_buf(),
        canonical,
    })
}

/// Whether the file at `path` (not followed) belongs to `owner`; true when `owner` is unknown.
pub fn owns(owner: Option<u32>, path: &Path) -> bool {
    match (owner, std::fs::symlink_metadata(path)) {
        (None, Ok(_)) => true,
        (Some(me), Ok(meta)) => owner_of(&meta).is_none_or(|them| them == me),
        (_, Err(_)) => false,
    }
}

/// The owner of a file, on unix.
pub fn owner_of(meta: &std::fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(meta.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_in(dir: &Path) -> Model {
        let path = dir.join("m.onnx");
        let proto = crate::testutil::residual_model(crate::onnx::tensor::ElemType::FLOAT);
        std::fs::write(&path, prost::Message::encode_to_vec(&proto)).unwrap();
        crate::onnx::load(&path).unwrap()
    }

    fn refused(model: &Model, out: Option<&Path>, plot: Option<&Path>) -> String {
        format!("{:#}", check(model, out, plot).unwrap_err())
    }

    #[test]
    fn the_input_and_names_through_other_spellings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let model = model_in(d);
        std::fs::create_dir(d.join("sub")).unwrap();
        let input = d.join("sub/../m.onnx");
        assert!(refused(&model, Some(&input), None).contains("a file this run reads"));
        assert!(refused(&model, None, Some(&input)).contains("a file this run reads"));
        let out = d.join("o.onnx");
        let e = refused(&model, Some(&out), Some(&d.join("./sub/../o.onnx")));
        assert!(e.contains("is the output model"), "{e}");
        check(&model, Some(&out), Some(&d.join("o.svg"))).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn links_special_files_and_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let model = model_in(d);
        std::os::unix::fs::symlink("/dev/null", d.join("null.svg")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling.svg")).unwrap();
        for link in ["null.svg", "dangling.svg"] {
            let e = refused(&model, None, Some(&d.join(link)));
            assert!(e.contains("symbolic link"), "{e}");
        }
        let fifo = d.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        let e = refused(&model, Some(&fifo), None);
        assert!(e.contains("not a regular file"), "{e}");
        let e = refused(&model, Some(d), None);
        assert!(e.contains("a folder"), "{e}");
        let e = refused(&model, None, Some(&d.join("nowhere/p.svg")));
        assert!(e.contains("nowhere"), "{e}");
    }

    #[test]
    fn over_long_names_are_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let model = model_in(dir.path());
        let long = dir.path().join("x".repeat(NAME_MAX + 1));
        let e = refused(&model, Some(&long), None);
        assert!(e.contains("over 255 bytes"), "{e}");
    }
}
